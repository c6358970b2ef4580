"""Benchmarks of the suite through its real edge; see benchmarks/README.md."""
