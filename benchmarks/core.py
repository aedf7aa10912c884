"""What a benchmark returns, and the registry the runner reads."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs


@attrs.frozen(kw_only=True)
class Context:
    backend: str
    #: A scratch folder, new for every run and removed afterwards.
    workdir: Path
    #: Scale factor: 1.0 is the documented size; --quick uses less.
    scale: float = 1.0

    def n(self, count: int) -> int:
        return max(1, int(count * self.scale))

    def url(self) -> str:
        if self.backend == "memory":
            return "memory://"
        if self.backend == "file":
            return f"file:{self.workdir / 'store'}"
        raise ValueError(f"unknown backend {self.backend!r}")


@attrs.frozen(kw_only=True)
class Measurement:
    events: int
    seconds: float
    extra: dict[str, Any] = attrs.field(factory=dict)


Bench = Callable[[Context], Measurement]

#: name -> (function, backends it runs on)
BENCHES: dict[str, tuple[Bench, tuple[str, ...]]] = {}


def bench(
    name: str, backends: tuple[str, ...] = ("memory",)
) -> Callable[[Bench], Bench]:
    def register(fn: Bench) -> Bench:
        BENCHES[name] = (fn, backends)
        return fn

    return register


@contextmanager
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="bench-", dir=None) as path:
        yield Path(path)
