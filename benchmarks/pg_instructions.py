"""Instructions the PostgreSQL server spends per statement, counted by callgrind.

On a shared virtual machine one statement's time wanders by 2x from minute to
minute; the instructions it executes do not. This makes a throwaway cluster
(``initdb`` in a temporary directory), applies the framework's migrations, and runs
``postgres --single`` under ``valgrind --tool=callgrind`` twice per statement: with
``--few`` and with ``--many`` executions. The difference, divided by the extra
executions, is the cost of one execution, without start-up. One JSON line per
statement:

    python -m benchmarks.pg_instructions [--setup "ALTER TABLE ...;"]

Statements: ``append`` (the single-event append of a new stream, as the store
prepares it) and ``raw`` (a single-row INSERT into a table with a bigserial key).
Parameters are text literals of an ``EXECUTE``, whose parsing adds the same cost
to both runs of a statement but more to ``append`` (eight parameters) than to
``raw`` (one). Compare variants of one statement, not the two statements.

Needs valgrind and PostgreSQL's server programs (``pg_config --bindir``). As
root it runs PostgreSQL as the ``postgres`` user (``su``), since PostgreSQL
refuses to run as root.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Any

from psycopg import sql

from framework.postgres.migration import registered
from framework.store.backends.postgres.params import event_headers
from framework.store.backends.postgres.statements import (
    APPEND_TYPES,
    append_statement,
)
from framework.store.events import NewEvent

SCHEMA = "bench"
_SQL_TYPES = {23: "integer", 20: "bigint", 25: "text", 17: "bytea", 2950: "uuid"}


class _Tables:
    """What ``append_statement`` asks of a ``Database``: schema-qualified names."""

    def __init__(self, schema: str) -> None:
        self.schema = schema

    def table(self, name: str) -> sql.Identifier:
        return sql.Identifier(self.schema, name)


def append_prepare(schema: str = SCHEMA) -> tuple[str, list[str]]:
    """The ``PREPARE append(...)`` of the store's single-event append to a new
    stream, and its parameters' names in ``$n`` order."""
    statement = append_statement(_Tables(schema), single=True, kind="new")  # type: ignore[arg-type]
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    query = re.sub(r"%\((\w+)\)s", number, statement.decode())
    types = ", ".join(_SQL_TYPES[APPEND_TYPES[n]] for n in names)
    return f"PREPARE append({types}) AS {query};\n\n", names


def append_execute(names: list[str], i: int) -> str:
    """An ``EXECUTE append(...)`` of a new stream's first event, in partition
    ``i % 8``."""
    event_id = uuid.uuid4()
    event = NewEvent(
        event_id=event_id,
        name="ledger.AccountOpened",
        version=1,
        data=b'{"owner":"alice"}',
        timestamp_ms=1_700_000_000_000,
        correlation_id=str(event_id),
        causation_id=str(event_id),
    )
    values: dict[str, str] = {
        "topic": "1",
        "partition": str(i % 8),
        "expected": "0",
        "key": f"'\\x{str(uuid.uuid4()).encode().hex()}'",
        "ts": str(event.timestamp_ms),
        "data": f"'\\x{event.data.hex()}'",
        "headers": f"'\\x{event_headers(1, event).hex()}'",
        "id": f"'{event_id}'",
        "stamp": "0",
    }
    return f"EXECUTE append({', '.join(values[n] for n in names)});\n\n"


def setup_sql(extra: str, schema: str = SCHEMA) -> str:
    """The schema with every migration, an 8-partition ``events`` topic, the raw
    table and its ``PREPARE raw``, then ``extra``: statements ended by ``;`` and
    an empty line, as ``postgres --single -j`` reads them."""
    ident = sql.Identifier(schema)
    table = _Tables(schema).table
    statements: list[sql.Composable] = [sql.SQL("CREATE SCHEMA {}").format(ident)]
    statements += [
        sql.SQL(s).format(schema=ident)
        for subsystem in registered()
        for m in subsystem.migrations
        for s in m.statements
    ]
    statements += [
        sql.SQL(
            "INSERT INTO {} (name, partitions, config) VALUES ('events', 8, '{{}}')"
        ).format(table("topics")),
        sql.SQL(
            "INSERT INTO {} (topic_id, partition) "
            "SELECT 1, p FROM generate_series(0, 7) AS p"
        ).format(table("partitions")),
        sql.SQL("CREATE TABLE {} (id bigserial PRIMARY KEY, data bytea)").format(
            table("raw")
        ),
        sql.SQL("PREPARE raw(bytea) AS INSERT INTO {} (data) VALUES ($1)").format(
            table("raw")
        ),
    ]
    # Single-user mode with -j ends a statement at a semicolon and an empty line.
    text = "".join(f"{s.as_bytes(None).decode()};\n\n" for s in statements)
    if extra.strip():
        text += "".join(f"{s.strip()};\n\n" for s in extra.split(";") if s.strip())
    return text


def _run_as_postgres(argv: list[str], stdin: Path, workdir: Path) -> None:
    command = " ".join(argv) + f" < {stdin} > /dev/null 2> {workdir / 'stderr'}"
    if os.geteuid() == 0:
        subprocess.run(["su", "postgres", "-c", command], check=True)
    else:
        subprocess.run(["sh", "-c", command], check=True)


def _instructions(out: Path) -> int:
    for line in out.read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise RuntimeError(f"no instruction count in {out}")


def _bindir() -> Path:
    found = subprocess.run(
        ["pg_config", "--bindir"], capture_output=True, text=True, check=False
    )
    if found.returncode == 0 and Path(found.stdout.strip(), "postgres").exists():
        return Path(found.stdout.strip())
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "postgres").exists():
            return candidate
    raise SystemExit("PostgreSQL's server programs were not found (pg_config --bindir)")


def measure(setup: str, few: int, many: int) -> list[dict[str, Any]]:
    bindir = _bindir()
    prepare, names = append_prepare()
    with tempfile.TemporaryDirectory(prefix="pg-instructions-") as tmp:
        workdir = Path(tmp)
        workdir.chmod(0o777)
        cluster = workdir / "cluster"
        _run_as_postgres(
            [str(bindir / "initdb"), "-D", str(cluster), "-A", "trust"],
            Path("/dev/null"),
            workdir,
        )
        head = setup_sql(setup) + prepare
        results = []
        for name in ("append", "raw"):
            counts = []
            for executions in (few, many):
                copy = workdir / f"c-{name}-{executions}"
                shutil.copytree(cluster, copy, symlinks=True)
                if os.geteuid() == 0:
                    shutil.chown(copy, "postgres")
                    for path in copy.rglob("*"):
                        shutil.chown(path, "postgres")
                if name == "append":
                    body = "".join(append_execute(names, i) for i in range(executions))
                else:
                    body = "EXECUTE raw('\\x78787878');\n\n" * executions
                script = workdir / f"{name}-{executions}.sql"
                script.write_text(head + body)
                script.chmod(0o644)
                out = workdir / f"{name}-{executions}.callgrind"
                _run_as_postgres(
                    [
                        "valgrind",
                        "--tool=callgrind",
                        f"--callgrind-out-file={out}",
                        str(bindir / "postgres"),
                        "--single",
                        "-j",
                        "-D",
                        str(copy),
                        "postgres",
                    ],
                    script,
                    workdir,
                )
                counts.append(_instructions(out))
            results.append(
                {
                    "bench": "pg_instructions",
                    "statement": name,
                    "setup": setup,
                    "instructions_per_execution": round(
                        (counts[1] - counts[0]) / (many - few)
                    ),
                }
            )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.pg_instructions", description=__doc__
    )
    parser.add_argument("--setup", default="", help="SQL run after the migrations")
    parser.add_argument("--few", type=int, default=200)
    parser.add_argument("--many", type=int, default=1200)
    args = parser.parse_args()
    for line in measure(args.setup, args.few, args.many):
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
