"""The partitioned log on PostgreSQL: ``PostgresLog``, the SQL its tables are
written with, the byte layout of its headers column, and its migrations."""

from __future__ import annotations

from framework.log.backends.postgres.log import PostgresLog, TopicInfo

__all__ = ["PostgresLog", "TopicInfo"]
