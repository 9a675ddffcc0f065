"""Shared fixtures: workspaces, and the real PostgreSQL and Redis servers.

A test that needs a service it cannot reach is skipped with the reason, unless
``SEGMINT_REQUIRE_SERVICES=1`` (as in CI), where it fails instead.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from segmint.cli.main import main
from segmint.store import Store
from segmint.store.duckdb import DuckDBStore
from segmint.workspace import Workspace

POSTGRES_URL = os.environ.get(
    "SEGMINT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("SEGMINT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
REQUIRE = os.environ.get("SEGMINT_REQUIRE_SERVICES") == "1"


def service_missing(name: str, reason: str) -> None:
    """Skip (locally) or fail (in CI) a test whose service is unreachable."""
    message = f"{name} unreachable: {reason}"
    if REQUIRE:
        pytest.fail(f"{message} (SEGMINT_REQUIRE_SERVICES=1)")
    pytest.skip(message)


def schema_url(url: str, schema: str) -> str:
    """``url`` with its search path set to ``schema`` (for a subprocess's store URL)."""
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options=-csearch_path%3D{schema}"


@contextlib.contextmanager
def postgres_schema(prefix: str) -> Iterator[tuple[str, str]]:
    """A fresh PostgreSQL schema and a URL whose search path is it; dropped afterwards.

    Skips (locally) or fails (in CI) when PostgreSQL is unreachable.
    """
    import psycopg

    try:
        psycopg.connect(POSTGRES_URL, connect_timeout=3).close()
    except psycopg.Error as exc:
        service_missing("PostgreSQL", str(exc).strip() or type(exc).__name__)
    schema = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as con:
        con.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield schema, schema_url(POSTGRES_URL, schema)
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as con:
            con.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The PostgreSQL URL, checked to be reachable."""
    import psycopg

    try:
        psycopg.connect(POSTGRES_URL, connect_timeout=3).close()
    except psycopg.Error as exc:
        service_missing("PostgreSQL", str(exc).strip() or type(exc).__name__)
    return POSTGRES_URL


@pytest.fixture(scope="session")
def pg_session_schema(postgres_url: str) -> Iterator[str]:
    """A schema prefix unique to this test session, dropped at the end."""
    prefix = f"t_{uuid.uuid4().hex[:10]}"
    yield prefix
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as con:
        rows = con.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE %s", [prefix + "%"]
        ).fetchall()
        for (name,) in rows:
            con.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@pytest.fixture
def pg_store(postgres_url: str, pg_session_schema: str) -> Iterator[Store]:
    """A PostgreSQL store in a fresh schema of its own."""
    from segmint.store.postgres import PostgresStore

    store = PostgresStore(postgres_url, schema=f"{pg_session_schema}_{uuid.uuid4().hex[:8]}")
    yield store
    store.close()


@pytest.fixture
def duck_store(tmp_path: Path) -> Iterator[Store]:
    """A DuckDB store in a fresh file."""
    store = DuckDBStore(tmp_path / "store.duckdb")
    yield store
    store.close()


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest) -> Store:
    """Each backend in turn: tests using this run once per backend."""
    name = "duck_store" if request.param == "duckdb" else "pg_store"
    result: Store = request.getfixturevalue(name)
    return result


@pytest.fixture
def redis_url() -> str:
    """The Redis URL, checked to be reachable."""
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        service_missing("Redis", str(exc))
    return REDIS_URL


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Workspace]:
    """A workspace scaffolded from the packaged example, on DuckDB."""
    ws = Workspace.init(tmp_path / "ws", name="test-shop")
    yield ws
    ws.close()


@pytest.fixture
def ws(workspace: Workspace, store: Store) -> Iterator[Workspace]:
    """The example workspace on each backend in turn (DuckDB file, PostgreSQL schema)."""
    if store.dialect == "duckdb":
        yield workspace
        return
    yield Workspace(path=workspace.path, definition=workspace.definition, _store=store)


@dataclass
class CliResult:
    """What one in-process run of the ``segmint`` command printed and returned."""

    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """Run ``segmint ARGS`` in this process, as the console script does."""

    def invoke(*args: str) -> CliResult:
        capsys.readouterr()
        try:
            code = main(list(args)) or 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
        out = capsys.readouterr()
        return CliResult(int(code), out.out, out.err)

    return invoke


def refreshed_shop(cli: Callable[..., CliResult], root: Path, as_of: str) -> Path:
    """``segmint init`` under ``root`` with its sample contacts and orders ingested and
    refreshed at ``as_of``; the workspace's folder."""
    target = root / "shop"
    assert cli("init", str(target)).returncode == 0
    for name in ("crm_contacts", "shop_orders"):
        data = str(target / "data" / f"{name}.csv")
        assert cli("-w", str(target), "ingest", data, "--mapping", name).returncode == 0
    assert cli("-w", str(target), "refresh", "--as-of", as_of).returncode == 0
    return target


def cli_now(monkeypatch: pytest.MonkeyPatch, at: str) -> None:
    """Make ``at`` the CLI's current time (``now``, relative instants, and the instant that
    commands which act now refuse to pass: a refresh at a later instant)."""
    from segmint.cli import params
    from segmint.clock import FixedClock, parse_instant

    monkeypatch.setattr(params, "SystemClock", lambda: FixedClock(parse_instant(at)))
