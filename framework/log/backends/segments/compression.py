"""Batch compression: ``none``, or ``zstd`` when the optional ``zstandard`` package is
installed. A topic asking for zstd without it is written uncompressed (with a warning):
compression saves space, it never changes what is stored."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from framework.errors import LogError
from framework.log.backends.segments.batch import COMPRESSION_NONE, COMPRESSION_ZSTD

logger = logging.getLogger("framework.log")

Codec = Callable[[bytes], bytes]
_warned = False


def _zstandard() -> Any:
    try:
        import zstandard  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return None
    return zstandard


def compressor(name: str) -> tuple[int, Codec | None]:
    """The ``attributes`` code and compress function for a topic's ``compression``."""
    global _warned  # noqa: PLW0603 - warn once per process, not once per append
    if name != "zstd":
        return COMPRESSION_NONE, None
    zstandard = _zstandard()
    if zstandard is None:
        if not _warned:
            _warned = True
            logger.warning(
                "a topic asks for zstd compression but the zstandard package is not "
                "installed; writing its batches uncompressed (pip install zstandard)"
            )
        return COMPRESSION_NONE, None
    level3: Codec = zstandard.ZstdCompressor(level=3).compress
    return COMPRESSION_ZSTD, level3


def decompressor(code: int, where: str) -> Codec:
    """The decompress function for a batch's compression code."""
    if code == COMPRESSION_ZSTD:
        zstandard = _zstandard()
        if zstandard is None:
            raise LogError(
                f"the batch at {where} is zstd-compressed but the zstandard package "
                "is not installed; pip install zstandard to read it"
            )
        decompress: Codec = zstandard.ZstdDecompressor().decompress
        return decompress
    raise LogError(
        f"the batch at {where} uses unknown compression code {code}; it was written "
        "by a newer version of the framework"
    )
