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


def test_paired_targets_take_each_runs_own_ratio() -> None:
    lines = [
        json.dumps(
            {
                "bench": "pg_writers_paired",
                "backend": "postgres",
                "run": run,
                "events_per_s": 6000.0,
                "ours_1_to_raw_1": mine,
                "ours_4_to_ours_1": 1.3,
                "ours_4_to_raw_4": 0.75,
                "raw_4_to_raw_1": 1.4,
            }
        )
        for run, mine in ((1, 0.79), (2, 0.85), (3, 0.81))
    ]
    # The median line of the runner carries the same fields: not a run, not counted.
    lines.append(
        json.dumps(
            {"bench": "pg_writers_paired", "stat": "median", "ours_1_to_raw_1": 9.9}
        )
    )
    rows = {row["ratio"]: row for row in ratios(lines)}
    single = rows["pg single-event saves / raw INSERT, paired"]
    assert single["per_run"] == [0.79, 0.85, 0.81]
    assert single["median"] == 0.81
    assert single["met"] is True
    assert rows["pg 4 writer processes / our one writer, paired"]["met"] is False
    assert rows["pg 4 writer processes / raw 4 connections, paired"]["met"] is True
