"""The partitioned log: records, topics of partitions, Kafka's partitioner, backends."""

from __future__ import annotations

from framework.log.config import TopicConfig
from framework.log.partitioner import murmur2, partition_for
from framework.log.ports import Log
from framework.log.records import (
    AppendResult,
    Headers,
    LogRecord,
    PartitionBatch,
    Record,
    is_void,
)

__all__ = [
    "AppendResult",
    "Headers",
    "Log",
    "LogRecord",
    "PartitionBatch",
    "Record",
    "TopicConfig",
    "is_void",
    "murmur2",
    "partition_for",
]
