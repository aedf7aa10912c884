"""Shared fixtures; service markers skip without the service unless CI requires it.

A test marked with a service marker (``postgres``; later the brokers) is skipped
when the service does not answer, unless ``FRAMEWORK_REQUIRE_SERVICES=1``, in which
case it fails, so that CI cannot go green by skipping.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest

#: The PostgreSQL fixtures (``schema``, ``pg_url``, ``closing``) for every folder:
#: each subsystem's PostgreSQL tests sit beside its other tests.
pytest_plugins = ["tests.postgres.fixtures", "tests.children"]

#: Set to 1 (as CI does) to turn "service unreachable" skips into failures.
REQUIRE_SERVICES_ENV = "FRAMEWORK_REQUIRE_SERVICES"

#: The PostgreSQL the tests use unless FRAMEWORK_DATABASE_URL names another.
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"


def database_url() -> str:
    return os.environ.get("FRAMEWORK_DATABASE_URL") or DEFAULT_DATABASE_URL


def _tcp_reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or default_port), timeout=2
        ):
            return True
    except OSError:
        return False


#: marker name -> (how to check the service, what to tell the reader)
SERVICES: dict[str, tuple[Callable[[], bool], str]] = {
    "postgres": (
        lambda: _tcp_reachable(database_url(), 5432),
        f"PostgreSQL is not reachable at {urlsplit(database_url()).hostname}:"
        f"{urlsplit(database_url()).port or 5432} (set FRAMEWORK_DATABASE_URL)",
    ),
}

_reachable: dict[str, bool] = {}


def services_required() -> bool:
    return os.environ.get(REQUIRE_SERVICES_ENV, "") not in ("", "0")


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip (or, when services are required, fail) before a test whose service is
    down; the check runs once per service per session."""
    for name, (check, reason) in SERVICES.items():
        if item.get_closest_marker(name) is None:
            continue
        if name not in _reachable:
            _reachable[name] = check()
        if _reachable[name]:
            continue
        if services_required():
            pytest.fail(
                f"{reason}, and {REQUIRE_SERVICES_ENV}=1 requires it: start the "
                "service (see .ci/run)",
                pytrace=False,
            )
        pytest.skip(reason)
