"""Run benchmarks and print JSON lines: one per run, then the median of the runs."""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import statistics
import sys

import benchmarks
from benchmarks.core import BENCHES, Context, scratch


def _load_all() -> None:
    for module in pkgutil.iter_modules(benchmarks.__path__):
        if module.name.startswith("bench_"):
            importlib.import_module(f"benchmarks.{module.name}")


def main(argv: list[str] | None = None) -> int:
    _load_all()
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "names", nargs="*", help=f"any of: {', '.join(sorted(BENCHES))}"
    )
    parser.add_argument("--backend", action="append", help="memory, file (repeatable)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the size")
    parser.add_argument("--list", action="store_true")
    args = parser.parse_args(argv)
    if args.list:
        for name, (_, backends) in sorted(BENCHES.items()):
            print(f"{name}\t{','.join(backends)}")
        return 0
    unknown = [n for n in args.names if n not in BENCHES]
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; --list shows them")
    for name in args.names or sorted(BENCHES):
        fn, backends = BENCHES[name]
        for backend in args.backend or backends:
            if backend not in backends:
                continue
            rates = []
            seconds = []
            extras: dict[str, list[float]] = {}
            last = None
            for run in range(1, args.runs + 1):
                with scratch() as workdir:
                    m = fn(Context(backend=backend, workdir=workdir, scale=args.scale))
                rate = m.events / m.seconds if m.seconds > 0 else float("inf")
                rates.append(rate)
                seconds.append(m.seconds)
                for key, value in m.extra.items():
                    if isinstance(value, int | float) and not isinstance(value, bool):
                        extras.setdefault(key, []).append(value)
                last = m
                line = {
                    "bench": name,
                    "backend": backend,
                    "run": run,
                    "events": m.events,
                    "seconds": round(m.seconds, 6),
                    "events_per_s": round(rate, 1),
                    **m.extra,
                }
                print(json.dumps(line), flush=True)
            assert last is not None
            print(
                json.dumps(
                    {
                        "bench": name,
                        "backend": backend,
                        "stat": "median",
                        "runs": args.runs,
                        "events": last.events,
                        "seconds": round(statistics.median(seconds), 6),
                        "events_per_s": round(statistics.median(rates), 1),
                        **{k: statistics.median(v) for k, v in extras.items()},
                    }
                ),
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
