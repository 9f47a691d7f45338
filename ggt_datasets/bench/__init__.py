"""The generator study: `ggt bench-mfm` (bench.mfm, bench.report, bench.charts) and the arena tally
(`ggt arena-results`, bench.arena)."""
