"""The topic catalog: each topic's ``TopicConfig`` as a JSON file under the root.

``<root>/topics/<name>.json`` is written atomically (temp file, fsync, rename, fsync
of the folder) after the topic's partition folders exist, so a topic whose file is
there always has its folders. Creation is serialised across processes by a file lock.
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

import attrs

from framework.errors import ConfigurationError, CorruptLogError
from framework.files import make_dirs, sync_dir
from framework.log.backends.segments.errors import storage_error
from framework.log.backends.segments.fsutil import replace_atomically
from framework.log.backends.segments.lock import FileLock
from framework.log.config import TopicConfig

#: Topic names as Kafka allows them; they become file and folder names.
_NAME = re.compile(r"[A-Za-z0-9._-]{1,200}")
_FORMAT = 1


def check_topic_name(name: str) -> None:
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name in {".", ".."}:
        raise ConfigurationError(
            f"topic name {name!r} cannot be stored in files: use 1 to 200 of the "
            "characters A-Z a-z 0-9 . _ - (as Kafka does)"
        )


def partition_dir(root: Path, topic: str, partition: int) -> Path:
    return root / f"{topic}-{partition}"


class TopicCatalog:
    """Topic configurations, cached once read (a stored configuration never changes)."""

    def __init__(self, root: Path, lock_timeout: float) -> None:
        self.root = root
        self.folder = root / "topics"
        try:
            make_dirs(self.folder)
        except OSError as exc:
            raise storage_error(exc, self.folder, "creating") from exc
        self._lock_timeout = lock_timeout
        self._file_lock = FileLock(root / "topics.lock")
        self._lock = threading.Lock()
        self._configs: dict[str, TopicConfig] = {}

    def _path(self, name: str) -> Path:
        return self.folder / f"{name}.json"

    def get(self, name: str) -> TopicConfig | None:
        config = self._configs.get(name)
        if config is not None:
            return config
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            return None
        path = self._path(name)
        try:
            text = path.read_text()
        except FileNotFoundError:
            return None
        config = self._parse(path, text)
        self._configs[name] = config
        return config

    @staticmethod
    def _parse(path: Path, text: str) -> TopicConfig:
        try:
            stored = json.loads(text)
            if stored.get("format") != _FORMAT:
                raise ValueError(f"unknown format {stored.get('format')!r}")
            return TopicConfig(**stored["config"])
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise CorruptLogError(
                f"the topic file {path} cannot be read ({exc}); restore it from a "
                "backup, or delete it and create the topic again with its settings"
            ) from exc

    def names(self) -> list[str]:
        return sorted(p.stem for p in self.folder.glob("*.json"))

    def create(self, name: str, config: TopicConfig) -> tuple[TopicConfig, bool]:
        """Store ``config`` unless the topic exists: (stored config, created?)."""
        check_topic_name(name)
        existing = self.get(name)
        if existing is not None:
            return existing, False
        with self._lock:
            if not self._file_lock.acquire(self._lock_timeout):
                raise ConfigurationError(
                    f"could not lock {self._file_lock.path} within "
                    f"{self._lock_timeout:g} s to create topic {name!r}; another "
                    "process holds it. Retry, or stop that process"
                )
            try:
                existing = self.get(name)
                if existing is not None:
                    return existing, False
                try:
                    self._store(name, config)
                except OSError as exc:
                    raise storage_error(
                        exc,
                        self._path(name),
                        f"creating topic {name!r}:",
                        "The topic was not created (its partition folders may "
                        "exist, empty; creating it again reuses them). ",
                    ) from exc
                self._configs[name] = config
                return config, True
            finally:
                self._file_lock.release()

    def _store(self, name: str, config: TopicConfig) -> None:
        """The partition folders, then the topic file: a topic whose file exists
        always has its folders."""
        folders = [
            partition_dir(self.root, name, partition)
            for partition in range(config.partitions)
        ]
        # Left by a creation cut short, whose entries may not be durable.
        leftover = any(folder.is_dir() for folder in folders)
        make_dirs(*folders)
        if leftover:
            sync_dir(self.root)
        stored = {"format": _FORMAT, "config": attrs.asdict(config)}
        data = json.dumps(stored, indent=2, sort_keys=True).encode() + b"\n"
        replace_atomically(self._path(name), data)

    def close(self) -> None:
        self._file_lock.close()
