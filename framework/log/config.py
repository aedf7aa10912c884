"""Per-topic settings: partitions, segment rolling, durability, retention, cleanup."""

from __future__ import annotations

from typing import Literal

import attrs

from framework.errors import ConfigurationError

CleanupPolicy = Literal["delete", "compact"]
FsyncPolicy = Literal["always", "interval"]
Compression = Literal["none", "zstd", "lz4"]


def _positive(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value < 1:
        raise ConfigurationError(
            f"TopicConfig.{attribute.name} must be at least 1, got {value}"
        )


def _positive_or_none(
    instance: object, attribute: attrs.Attribute[int | None], value: int | None
) -> None:
    if value is not None and value < 1:
        raise ConfigurationError(
            f"TopicConfig.{attribute.name} must be at least 1 or None (no limit), "
            f"got {value}"
        )


@attrs.frozen(kw_only=True)
class TopicConfig:
    """How a topic is laid out and kept. Backends ignore what does not apply to them.

    ``retention_ms``/``retention_bytes`` of ``None`` keep everything (the ``events``
    topic's default). ``cleanup_policy="compact"`` keeps the latest record per key.
    ``fsync="interval"`` acknowledges appends before they reach the disk: a crash may
    lose up to ``fsync_interval_ms`` of acknowledged appends.
    """

    partitions: int = attrs.field(default=1, validator=_positive)
    cleanup_policy: CleanupPolicy = "delete"
    retention_ms: int | None = attrs.field(default=None, validator=_positive_or_none)
    retention_bytes: int | None = attrs.field(default=None, validator=_positive_or_none)
    segment_bytes: int = attrs.field(default=128 * 1024 * 1024, validator=_positive)
    segment_ms: int = attrs.field(default=7 * 24 * 3600 * 1000, validator=_positive)
    fsync: FsyncPolicy = "always"
    fsync_interval_ms: int = attrs.field(default=1000, validator=_positive)
    compression: Compression = "none"

    def __attrs_post_init__(self) -> None:
        if self.cleanup_policy not in ("delete", "compact"):
            raise ConfigurationError(
                f"TopicConfig.cleanup_policy must be 'delete' or 'compact', "
                f"got {self.cleanup_policy!r}"
            )
        if self.fsync not in ("always", "interval"):
            raise ConfigurationError(
                f"TopicConfig.fsync must be 'always' or 'interval', got {self.fsync!r}"
            )
        if self.compression not in ("none", "zstd", "lz4"):
            raise ConfigurationError(
                f"TopicConfig.compression must be 'none', 'zstd' or 'lz4', "
                f"got {self.compression!r}"
            )
