"""Test support: fake API servers, fault makers, tiny-model and tiny-data writers.

Used by the test suite, the benchmarks and the demo; never imported by the runtime library.
"""
