"""Run benchmarks and print JSON lines: one per run, then the median of the runs."""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import statistics
import sys

import benchmarks
from benchmarks.core import BENCHES, Context, Measurement, scratch


def _load_all() -> None:
    for module in pkgutil.iter_modules(benchmarks.__path__):
        if module.name.startswith("bench_"):
            importlib.import_module(f"benchmarks.{module.name}")


def _rate(m: Measurement) -> float:
    return m.events / m.seconds if m.seconds > 0 else float("inf")


def _run(name: str, backend: str, run: int, scale: float) -> Measurement:
    """One run of a benchmark, printed as a JSON line."""
    fn, _ = BENCHES[name]
    with scratch() as workdir:
        m = fn(Context(backend=backend, workdir=workdir, scale=scale))
    line = {
        "bench": name,
        "backend": backend,
        "run": run,
        "events": m.events,
        "seconds": round(m.seconds, 6),
        "events_per_s": round(_rate(m), 1),
        **m.extra,
    }
    print(json.dumps(line), flush=True)
    return m


def _print_median(name: str, backend: str, measured: list[Measurement]) -> None:
    extras: dict[str, list[float]] = {}
    for m in measured:
        for key, value in m.extra.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                extras.setdefault(key, []).append(value)
    print(
        json.dumps(
            {
                "bench": name,
                "backend": backend,
                "stat": "median",
                "runs": len(measured),
                "events": measured[-1].events,
                "seconds": round(statistics.median(m.seconds for m in measured), 6),
                "events_per_s": round(statistics.median(map(_rate, measured)), 1),
                **{k: statistics.median(v) for k, v in extras.items()},
            }
        ),
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    _load_all()
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "names", nargs="*", help=f"any of: {', '.join(sorted(BENCHES))}"
    )
    parser.add_argument("--backend", action="append", help="memory, file (repeatable)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the size")
    parser.add_argument(
        "--interleave",
        action="store_true",
        help="run 1 of every benchmark, then run 2, ... (for ratios on a noisy host)",
    )
    parser.add_argument("--list", action="store_true")
    args = parser.parse_args(argv)
    if args.list:
        for name, (_, backends) in sorted(BENCHES.items()):
            print(f"{name}\t{','.join(backends)}")
        return 0
    unknown = [n for n in args.names if n not in BENCHES]
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; --list shows them")
    pairs = [
        (name, backend)
        for name in args.names or sorted(BENCHES)
        for backend in args.backend or BENCHES[name][1]
        if backend in BENCHES[name][1]
    ]
    if args.interleave:
        # Run k of every benchmark, then run k+1: neighbours in time see the same
        # machine, so per-run ratios hold up when the machine's speed drifts.
        results: dict[tuple[str, str], list[Measurement]] = {p: [] for p in pairs}
        for run in range(1, args.runs + 1):
            for name, backend in pairs:
                results[name, backend].append(_run(name, backend, run, args.scale))
        for (name, backend), measured in results.items():
            _print_median(name, backend, measured)
    else:
        for name, backend in pairs:
            measured = [
                _run(name, backend, run, args.scale) for run in range(1, args.runs + 1)
            ]
            _print_median(name, backend, measured)
    return 0


if __name__ == "__main__":
    sys.exit(main())
