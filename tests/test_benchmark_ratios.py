"""``benchmarks.ratios`` pairs run k with run k and states each target's median."""

from __future__ import annotations

import json

from benchmarks.ratios import ratios


def _line(bench: str, backend: str, run: int, rate: float) -> str:
    return json.dumps(
        {"bench": bench, "backend": backend, "run": run, "events_per_s": rate}
    )


def test_ratios_pair_runs_by_number_and_ignore_medians_and_noise() -> None:
    lines = [
        "not json: a warning from a benchmark",
        _line("pg_save_1", "postgres", 1, 900.0),
        _line("pg_raw_insert", "raw", 1, 1000.0),
        _line("pg_save_1", "postgres", 2, 400.0),  # the host slowed down...
        _line("pg_raw_insert", "raw", 2, 500.0),  # ...for both sides
        _line("pg_save_1", "postgres", 3, 700.0),
        _line("pg_raw_insert", "raw", 3, 1000.0),
        _line("pg_save_1", "postgres", 4, 1.0),  # no raw run 4: not paired
        json.dumps({"bench": "pg_save_1", "backend": "postgres", "stat": "median"}),
    ]
    (row,) = ratios(lines)
    assert row["ratio"] == "pg single-event saves / raw INSERT"
    assert row["per_run"] == [0.9, 0.8, 0.7]
    assert row["median"] == 0.8
    assert row["met"] is True
    assert row["target"] == 0.8


def test_a_target_without_both_sides_is_left_out() -> None:
    assert ratios([_line("pg_save_1", "postgres", 1, 900.0)]) == []
