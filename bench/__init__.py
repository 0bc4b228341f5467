"""Benchmarks of the meta-analysis engine (``make bench``); not part of the installed package."""
