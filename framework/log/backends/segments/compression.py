"""Batch compression: ``none``, ``zstd`` when the optional ``zstandard`` package is
installed, or ``lz4`` (frame format) with the optional ``lz4`` package. A topic asking
for a codec whose package is missing is written uncompressed (with a warning):
compression saves space, it never changes what is stored."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from framework.errors import LogError
from framework.log.backends.segments.batch import (
    COMPRESSION_LZ4,
    COMPRESSION_NONE,
    COMPRESSION_ZSTD,
)

logger = logging.getLogger("framework.log")

Codec = Callable[[bytes], bytes]
_warned = False


def _zstandard() -> Any:
    try:
        import zstandard  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return None
    return zstandard


def _lz4_frame() -> Any:
    try:
        import lz4.frame  # type: ignore[import-untyped, import-not-found, unused-ignore]
    except ImportError:
        return None
    return lz4.frame


#: Topic setting -> (attributes code, the package, how to get its module, make the
#: compress function from the module, make the decompress function).
_CODECS: dict[
    str,
    tuple[int, str, Callable[[], Any], Callable[[Any], Codec], Callable[[Any], Codec]],
] = {
    "zstd": (
        COMPRESSION_ZSTD,
        "zstandard",
        _zstandard,
        lambda m: m.ZstdCompressor(level=3).compress,
        lambda m: m.ZstdDecompressor().decompress,
    ),
    "lz4": (
        COMPRESSION_LZ4,
        "lz4",
        _lz4_frame,
        lambda m: m.compress,
        lambda m: m.decompress,
    ),
}


def compressor(name: str) -> tuple[int, Codec | None]:
    """The ``attributes`` code and compress function for a topic's ``compression``."""
    global _warned  # noqa: PLW0603 - warn once per process, not once per append
    codec = _CODECS.get(name)
    if codec is None:
        return COMPRESSION_NONE, None
    code, package, load, make_compress, _ = codec
    module = load()
    if module is None:
        if not _warned:
            _warned = True
            logger.warning(
                "a topic asks for %s compression but the %s package is not "
                "installed; writing its batches uncompressed (pip install %s)",
                name,
                package,
                package,
            )
        return COMPRESSION_NONE, None
    return code, make_compress(module)


def decompressor(code: int, where: str) -> Codec:
    """The decompress function for a batch's compression code."""
    for name, (known, package, load, _, make_decompress) in _CODECS.items():
        if code == known:
            module = load()
            if module is None:
                raise LogError(
                    f"the batch at {where} is {name}-compressed but the {package} "
                    f"package is not installed; pip install {package} to read it"
                )
            return make_decompress(module)
    raise LogError(
        f"the batch at {where} uses unknown compression code {code}; it was written "
        "by a newer version of the framework"
    )
