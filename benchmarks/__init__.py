"""Benchmarks of vbs_async against hand-written clients and the raw limit (see README)."""
