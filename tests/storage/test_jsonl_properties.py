"""Property: the record-by-record JSON-lines reader never loses a good line, whatever the bad ones are."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ggt_datasets.raw import read_jsonl_records

good_rows = st.dictionaries(st.text(min_size=1, max_size=8), st.one_of(st.integers(), st.text(max_size=12), st.none()),
                            max_size=4)
bad_lines = st.one_of(
    st.just('{"id": "cut in the mid'),           # a kill during an append
    st.just("[1, 2, 3]"),                        # JSON, but not an object
    st.just("not json at all"),
    st.binary(min_size=1, max_size=20).map(lambda b: b.replace(b"\n", b" ").replace(b"\r", b" ").decode("latin-1")),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(st.one_of(good_rows.map(lambda r: ("good", r)), bad_lines.map(lambda b: ("bad", b))),
                      max_size=12))
def test_every_good_line_is_kept_in_order(tmp_path: Path, lines: list[tuple[str, object]]) -> None:
    path = tmp_path / "rows.jsonl"
    text = "".join((json.dumps(v) if kind == "good" else v) + "\n" for kind, v in lines)
    path.write_text(text, encoding="utf-8")
    rows, problems = read_jsonl_records(path)
    expected_good = [v for kind, v in lines if kind == "good"]
    # a "bad" line that happens to be a valid JSON object counts as good; none of the good ones may go
    it = iter(rows)
    assert all(any(r == g for r in it) for g in expected_good)
    numbers = [int(p.path.rsplit(":", 1)[1]) for p in problems]
    assert numbers == sorted(numbers) and len(rows) + len(problems) == sum(1 for ln in text.split("\n") if ln.strip())
