"""``PostgresURL``: a ``postgresql://`` store URL split into libpq's part and ours."""

from __future__ import annotations

import os
import re
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import attrs
import psycopg
from psycopg.conninfo import conninfo_to_dict

from framework.errors import ConfigurationError

#: Environment variable holding the database URL when none is given.
DATABASE_URL_ENV = "FRAMEWORK_DATABASE_URL"
#: The schema the framework's tables live in unless ``?schema=`` says otherwise.
DEFAULT_SCHEMA = "framework"

_SCHEMES = ("postgresql", "postgres")
# Conservative on purpose: a schema name also becomes part of the NOTIFY channel.
_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
#: The query parameters that are the framework's, not libpq's.
OWN_OPTIONS = ("schema", "pool_min", "pool_max", "notify")
# libpq's words for a parameter it does not know, in a URL or a conninfo string.
_UNKNOWN_OPTION = re.compile(
    r'invalid (?:URI query parameter: |connection option )"([^"]*)"'
)


class UnknownOptionError(ConfigurationError):
    """The store URL has a query parameter that is neither libpq's nor ours."""

    def __init__(self, option: str, detail: str) -> None:
        self.option = option
        super().__init__(
            f"the store URL's option {option!r} is neither a libpq connection "
            f"parameter nor one of the framework's ({', '.join(OWN_OPTIONS)}); fix "
            f"its spelling or remove it (libpq: {detail})"
        )


def unknown_option(message: str) -> UnknownOptionError | None:
    """The error for libpq's refusal ``message`` of an unknown parameter, if it
    is one."""
    found = _UNKNOWN_OPTION.search(message)
    return None if found is None else UnknownOptionError(found.group(1), message)


def _query_params(query: str) -> dict[str, str]:
    """The URL's query parameters, decoded as libpq decodes them: ``%xx`` escapes
    only, so a ``+`` stays a plus (``parse_qsl`` would make it a space)."""
    params: dict[str, str] = {}
    for item in query.split("&"):
        if item:
            key, _, value = item.partition("=")
            params[unquote(key)] = unquote(value)
    return params


def _query(params: dict[str, str]) -> str:
    """``params`` as a URL query that libpq decodes back to the same values:
    percent-encoded (a space as ``%20``, never ``+``, which libpq keeps as is)."""
    return "&".join(
        f"{quote(key, safe='')}={quote(value, safe='')}"
        for key, value in params.items()
    )


@attrs.frozen(kw_only=True)
class PostgresURL:
    """What a store URL says: where to connect and how to behave.

    Our options travel as query parameters and are removed before the rest goes to
    libpq, which refuses parameters it does not know:

    - ``schema``: the schema holding the tables (default ``framework``);
    - ``pool_min`` / ``pool_max``: connection pool bounds (default 1 / 10); one more
      connection, beside the pool, serves short statements;
    - ``connect_timeout``: seconds to wait for a connection (default 10; libpq's
      own parameter, also passed on to it);
    - ``notify``: NOTIFY after appends while a framework ``Listener`` is connected
      (``1``, the default), ``always`` (for listeners of other programs), or never
      (``0``).
    """

    conninfo: str = attrs.field(repr=False)
    host: str
    port: int
    dbname: str
    user: str
    schema: str = DEFAULT_SCHEMA
    pool_min: int = 1
    pool_max: int = 10
    connect_timeout: float = 10.0
    notify: bool = True
    #: Notify even when no framework ``Listener`` is connected.
    notify_always: bool = False
    #: Only for scrubbing driver messages; never shown.
    password: str = attrs.field(default="", repr=False)

    @property
    def redacted(self) -> str:
        """The URL without its password, safe for logs and error messages."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.dbname}"

    def scrub(self, text: str) -> str:
        """``text`` with the password (if any) blanked out."""
        if self.password and len(self.password) >= 1:
            text = text.replace(self.password, "***")
        return text


def _redacted(user: str, host: str, port: int, dbname: str) -> str:
    return f"postgresql://{user}@{host}:{port}/{dbname}"


def _int_option(name: str, raw: str, low: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if value < low:
        raise ConfigurationError(
            f"store URL option {name}={raw!r} must be a whole number >= {low}"
        )
    return value


def parse_url(url: str | None = None) -> PostgresURL:
    """Parse a ``postgresql://`` or ``postgres://`` URL (``FRAMEWORK_DATABASE_URL``
    when ``url`` is ``None``). Raises ``ConfigurationError`` naming the bad part;
    the message never repeats the password."""
    if url is None:
        url = os.environ.get(DATABASE_URL_ENV, "")
        if not url:
            raise ConfigurationError(
                f"no database URL: pass postgresql://user@host:port/dbname or set "
                f"{DATABASE_URL_ENV}"
            )
    parts = urlsplit(url)
    if parts.scheme.lower() not in _SCHEMES:
        raise ConfigurationError(
            f"{parts.scheme or '(no scheme)'}: is not a PostgreSQL URL; use "
            "postgresql://user@host:port/dbname"
        )
    options = _query_params(parts.query)
    schema = options.pop("schema", DEFAULT_SCHEMA)
    if not _SCHEMA_NAME.match(schema):
        raise ConfigurationError(
            f"schema {schema!r} in the store URL is not a plain identifier; use "
            "letters, digits and underscores (at most 63), starting with a letter"
        )
    pool_min = _int_option("pool_min", options.pop("pool_min", "1"), 0)
    pool_max = _int_option("pool_max", options.pop("pool_max", "10"), 1)
    if pool_max < max(pool_min, 1):
        raise ConfigurationError(
            f"store URL option pool_max={pool_max} is below pool_min={pool_min}"
        )
    notify_raw = options.pop("notify", "1").lower()
    if notify_raw not in ("0", "1", "true", "false", "on", "off", "always"):
        raise ConfigurationError(
            f"store URL option notify={notify_raw!r} must be 1/0, true/false, on/off "
            "or always"
        )
    connect_timeout = _int_option(
        "connect_timeout", options.get("connect_timeout", "10"), 1
    )
    options["connect_timeout"] = str(connect_timeout)
    try:
        port = parts.port or 5432
    except ValueError:
        raise ConfigurationError(
            f"the port in the store URL {parts.hostname}:... is not a number"
        ) from None
    host = parts.hostname or "localhost"
    user = unquote(parts.username or "") or os.environ.get("PGUSER", "") or "postgres"
    password = unquote(parts.password or "")
    dbname = unquote(parts.path.lstrip("/")) or user
    netloc = quote(user, safe="")
    if password:
        netloc += ":" + quote(password, safe="")
    netloc += f"@{host}:{port}" if ":" not in host else f"@[{host}]:{port}"
    conninfo = urlunsplit(
        ("postgresql", netloc, "/" + quote(dbname), _query(options), "")
    )
    try:
        # libpq's own parser, without connecting: an unknown parameter is named
        # now rather than when the first connection is made.
        conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise unknown_option(detail) or ConfigurationError(
            f"libpq cannot read the store URL {_redacted(user, host, port, dbname)}: "
            f"{detail.replace(password, '***') if password else detail}"
        ) from None
    return PostgresURL(
        conninfo=conninfo,
        host=host,
        port=port,
        dbname=dbname,
        user=user,
        schema=schema,
        pool_min=pool_min,
        pool_max=pool_max,
        connect_timeout=float(connect_timeout),
        notify=notify_raw in ("1", "true", "on", "always"),
        notify_always=notify_raw == "always",
        password=password,
    )
