"""Benchmarks: ``python -m benchmarks [NAME ...] [--backend B] [--runs N]``.

Each module here registers functions in ``BENCHES``; the runner calls each several
times and prints one JSON object per run and one for the median of the runs.
"""
