"""The speed targets as ratios, from the JSON lines of a benchmark run.

``python -m benchmarks ... --interleave > run.jsonl`` then
``python -m benchmarks.ratios run.jsonl`` prints one JSON line per target: the
ratio of each run (run k of both sides, measured next to each other), their median,
the target and whether the median meets it. ``pg_writers_paired`` measures both
sides of the writer targets inside each run, in alternating blocks; its runs' own
ratios are read the same way (``PAIRED``). A ratio of medians would mix minutes
in which the machine ran at different speeds; on a shared host that moved the
PostgreSQL ratios by a third between rounds.
"""

from __future__ import annotations

import json
import statistics
import sys
from collections.abc import Iterable

#: (name, numerator (bench, backend), denominator (bench, backend), target).
TARGETS: list[tuple[str, tuple[str, str], tuple[str, str], float]] = [
    (
        "pg single-event saves / raw INSERT",
        ("pg_save_1", "postgres"),
        ("pg_raw_insert", "raw"),
        0.8,
    ),
    (
        "pg single-event saves / eventsourcing",
        ("pg_save_1", "postgres"),
        ("pg_save_1", "peer"),
        3.0,
    ),
    (
        "pg commands / eventsourcing",
        ("pg_command", "postgres"),
        ("pg_command", "peer"),
        3.0,
    ),
    (
        "pg 4 writer processes / our one writer",
        ("pg_save_1_4procs", "postgres"),
        ("pg_save_1", "postgres"),
        2.0,
    ),
    (
        "pg 4 writer processes / raw 4 connections",
        ("pg_save_1_4procs", "postgres"),
        ("pg_raw_insert_4", "raw"),
        0.7,
    ),
    (
        "pg 100-event saves / eventsourcing",
        ("pg_save_100", "postgres"),
        ("pg_save_100", "peer"),
        3.0,
    ),
    (
        "pg replay / eventsourcing",
        ("pg_replay", "postgres"),
        ("pg_replay", "peer"),
        2.0,
    ),
    (
        "pg raw INSERT / eventsourcing (the host, not a target)",
        ("pg_raw_insert", "raw"),
        ("pg_save_1", "peer"),
        0.0,
    ),
    (
        # What four writers can gain on this host at all: where the disk's flush is
        # fast, two cores shared by eight processes bound the raw inserts too.
        "pg raw 4 connections / raw INSERT (the host, not a target)",
        ("pg_raw_insert_4", "raw"),
        ("pg_raw_insert", "raw"),
        0.0,
    ),
    (
        "file one writer / raw fsync loop",
        ("segments_append_1", "file"),
        ("segments_raw_fsync_loop", "file"),
        0.7,
    ),
    (
        "file 4 threads / one writer",
        ("segments_append_1_threads4", "file"),
        ("segments_append_1", "file"),
        2.5,
    ),
    (
        "file single-event saves / eventsourcing on SQLite",
        ("save_1", "file"),
        ("peer_save_1", "file"),
        1.5,
    ),
]


#: Targets measured inside one benchmark whose runs give both sides, block by
#: block (``pg_writers_paired``): (name, bench, the run's ratio field, target).
PAIRED: list[tuple[str, str, str, float]] = [
    (
        "pg single-event saves / raw INSERT, paired",
        "pg_writers_paired",
        "ours_1_to_raw_1",
        0.8,
    ),
    (
        "pg 4 writer processes / our one writer, paired",
        "pg_writers_paired",
        "ours_4_to_ours_1",
        2.0,
    ),
    (
        "pg 4 writer processes / raw 4 connections, paired",
        "pg_writers_paired",
        "ours_4_to_raw_4",
        0.7,
    ),
    (
        "pg raw 4 connections / raw INSERT, paired (the host, not a target)",
        "pg_writers_paired",
        "raw_4_to_raw_1",
        0.0,
    ),
]


def ratios(lines: Iterable[str]) -> list[dict[str, object]]:
    """The targets whose two sides both appear in ``lines``."""
    rates: dict[tuple[str, str], dict[int, float]] = {}
    fields: dict[tuple[str, str], list[float]] = {}
    for line in lines:
        if not line.startswith("{"):
            continue
        row = json.loads(line)
        if "run" in row:
            key = (row["bench"], row["backend"])
            rates.setdefault(key, {})[int(row["run"])] = float(row["events_per_s"])
            for name, value in row.items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    fields.setdefault((row["bench"], name), []).append(float(value))
    measured: list[tuple[str, list[float], float]] = []
    for name, top, bottom, target in TARGETS:
        runs = sorted(set(rates.get(top, {})) & set(rates.get(bottom, {})))
        measured.append(
            (name, [rates[top][r] / rates[bottom][r] for r in runs], target)
        )
    for name, bench_name, field, target in PAIRED:
        measured.append((name, fields.get((bench_name, field), []), target))
    out: list[dict[str, object]] = []
    for name, per_run, target in measured:
        if not per_run:
            continue
        median = statistics.median(per_run)
        out.append(
            {
                "ratio": name,
                "per_run": [round(r, 2) for r in per_run],
                "median": round(median, 2),
                "target": target,
                "met": median >= target,
            }
        )
    return out


def main(argv: list[str]) -> int:
    lines: list[str] = []
    for path in argv or ["-"]:
        if path == "-":
            lines.extend(sys.stdin)
        else:
            with open(path, encoding="utf-8") as f:
                lines.extend(f)
    for row in ratios(lines):
        print(json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
