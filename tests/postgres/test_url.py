"""The store URL's query reaches libpq intact: every libpq parameter as the user
wrote it (spaces raw or percent-encoded, a plus as a plus), the framework's own
options taken out."""

from __future__ import annotations

import pytest
from psycopg.conninfo import conninfo_to_dict

from framework.errors import ConfigurationError
from framework.postgres.url import UnknownOptionError, parse_url

BASE = "postgresql://app:p%40ss@db.example:5433/ledger"


def libpq_params(url: str) -> dict[str, object]:
    """What libpq reads from the URL the framework hands it."""
    return dict(conninfo_to_dict(parse_url(url).conninfo))


@pytest.mark.parametrize(
    "query",
    [
        "options=-c statement_timeout=5000",
        "options=-c%20statement_timeout%3D5000",
        "options=-c%20statement_timeout=5000",
    ],
)
def test_options_with_spaces_reach_libpq_as_written(query: str) -> None:
    params = libpq_params(f"{BASE}?{query}&schema=books")
    assert params["options"] == "-c statement_timeout=5000"


def test_other_libpq_parameters_reach_libpq_intact() -> None:
    params = libpq_params(
        f"{BASE}?application_name=my ledger%2Fwriter&sslmode=disable"
        "&target_session_attrs=read-write&keepalives_idle=30"
    )
    assert params["application_name"] == "my ledger/writer"
    assert params["sslmode"] == "disable"
    assert params["target_session_attrs"] == "read-write"
    assert params["keepalives_idle"] == "30"


def test_a_plus_stays_a_plus_as_libpq_reads_it() -> None:
    assert libpq_params(f"{BASE}?application_name=a+b")["application_name"] == "a+b"


def test_the_frameworks_options_are_taken_out_and_the_rest_kept() -> None:
    url = parse_url(
        f"{BASE}?schema=books&pool_min=2&pool_max=4&notify=0&connect_timeout=3"
        "&application_name=ledger"
    )
    params = libpq_params(url.conninfo)
    assert not {"schema", "pool_min", "pool_max", "notify"} & params.keys()
    assert params["connect_timeout"] == "3"
    assert params["application_name"] == "ledger"
    assert (params["user"], params["password"]) == ("app", "p@ss")
    assert (params["host"], params["port"], params["dbname"]) == (
        "db.example",
        "5433",
        "ledger",
    )
    assert (url.schema, url.pool_min, url.pool_max, url.notify) == (
        "books",
        2,
        4,
        False,
    )


def test_an_unknown_option_is_named_before_anything_connects() -> None:
    with pytest.raises(UnknownOptionError) as info:
        parse_url(f"{BASE}?schema=books&sslmod=disable")
    assert info.value.option == "sslmod"
    assert isinstance(info.value, ConfigurationError)
    assert "'sslmod'" in str(info.value)
    assert "schema, pool_min, pool_max, notify" in str(info.value)
    assert "p@ss" not in str(info.value)
