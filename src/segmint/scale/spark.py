"""``segmint refresh --engine spark``: traits and memberships computed on Spark.

The statements are the ones DuckDB and PostgreSQL run, rendered for Spark SQL:
:func:`segmint.traits.sqlgen.trait_query` over the events (a Parquet file written by
``segmint export events --parquet``, or a table of the Spark catalog, columns mapped as for
``segments sql --from events``), cached, then the segment booleans of
:func:`segmint.membership.segsql.segment_columns_query` (the layers of
:func:`~segmint.membership.segsql.membership_query`) over the cached traits, exploded into
``(profile_id, segment)`` pairs. The members come
back to the store as a refresh records them (:func:`segmint.membership.batch.apply_memberships`)
and, when asked, go to Parquet with the traits.

The session runs with the UTC time zone (the store's timestamps are naive UTC) and without
ANSI mode (a cast that fails is NULL, as the coercion rule expects). On a cluster, pass its
master URL (``--master spark://host:7077``, ``yarn``, ``k8s://…``) and read the events from
storage every executor reaches (``s3a://…/events.parquet`` or a catalog table); the driver
then collects only the ``(profile_id, segment)`` pairs it writes to the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlglot import exp

from segmint.errors import SegmintError
from segmint.membership.batch import apply_memberships
from segmint.membership.compiled import CompiledSegments
from segmint.membership.segsql import segment_columns_query
from segmint.traits.source import EventSource, check_columns
from segmint.traits.sqlgen import trait_query

if TYPE_CHECKING:
    from segmint.workspace import Workspace

DIALECT = "spark"
EVENTS_VIEW = "segmint_events"
TRAITS_VIEW = "segmint_traits"
SESSION_CONFIG = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.ansi.enabled": "false",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
}
"""Settings every segmint session gets (the time zone and ANSI mode matter for exactness)."""
LOCAL_CONFIG = {"spark.sql.shuffle.partitions": "4"}
"""Added in local mode, where Spark's default of 200 shuffle partitions is mostly overhead."""


class SparkUnavailable(SegmintError):
    """pyspark (the ``spark`` extra) or a Java runtime is missing."""


class SparkEventsError(SegmintError, LookupError):
    """The events given to Spark cannot be read (no such file, folder or table)."""


@dataclass(frozen=True)
class SparkReport:
    """What a Spark refresh did.

    Attributes:
        as_of: The evaluation instant.
        profiles: Profiles with traits (profiles with events up to ``as_of``).
        members: ``(profile, segment)`` memberships decided.
        entered: Memberships entered in the store (0 when the store was not written).
        exited: Memberships exited in the store.
        output: The Parquet folder written (``traits/`` and ``memberships/``), if any.
    """

    as_of: datetime
    profiles: int
    members: int
    entered: int
    exited: int
    output: str | None = None


def spark_session(master: str = "local[2]", app: str = "segmint") -> Any:
    """A Spark session with :data:`SESSION_CONFIG` (``getOrCreate``: an active one is reused).

    Raises:
        SparkUnavailable: Without pyspark.
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise SparkUnavailable(
            "the Spark engine needs pyspark: pip install 'segmint[spark]' (and Java 17+)"
        ) from exc
    config = {**SESSION_CONFIG, **(LOCAL_CONFIG if master.startswith("local") else {})}
    builder = SparkSession.builder.master(master).appName(app)
    for key, value in config.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    for key, value in SESSION_CONFIG.items():  # a reused session gets them too
        if not key.startswith("spark.ui."):
            session.conf.set(key, value)
    return session


def _is_path(events: str) -> bool:
    """Whether ``events`` names Parquet by path (else a catalog table)."""
    return "/" in events or events.endswith(".parquet") or Path(events).exists()


def check_local_events(events: str) -> None:
    """Refuse a local Parquet path that does not exist (a table or a URL is left to Spark).

    Raises:
        SparkEventsError: Naming the path and how to write the events there.
    """
    if _is_path(events) and "://" not in events and not Path(events).exists():
        raise SparkEventsError(
            f"no Parquet events at '{events}': no such file or folder (write them with "
            "`segmint export events --parquet FILE`)"
        )


def read_events(session: Any, events: str) -> Any:
    """The events DataFrame: a Parquet file or folder (a path) or a catalog table.

    Raises:
        SparkEventsError: When Spark finds no such file, folder or table.
    """
    from pyspark.errors import AnalysisException

    path = _is_path(events)
    try:
        return session.read.parquet(events) if path else session.table(events)
    except AnalysisException as exc:
        what = "Parquet events" if path else "events table"
        reason = str(exc).splitlines()[0]
        raise SparkEventsError(f"cannot read the {what} '{events}' on Spark: {reason}") from exc


def spark_refresh(
    workspace: Workspace,
    as_of: datetime,
    *,
    events: str,
    mapping: dict[str, str] | None = None,
    master: str = "local[2]",
    output: Path | str | None = None,
    write_store: bool = True,
    session: Any = None,
) -> SparkReport:
    """Compute traits and memberships on Spark and write them to the store (and Parquet).

    Args:
        workspace: The workspace (its definitions and store).
        as_of: The evaluation instant.
        events: A Parquet path (``segmint export events --parquet``) or a Spark table.
        mapping: Segmint events column → source column or SQL, as for ``--from events``.
        master: The Spark master (``local[N]``, ``spark://…``, ``yarn``, ``k8s://…``).
        output: A folder for ``traits/`` and ``memberships/`` as Parquet.
        write_store: Whether to write the memberships (and their changes) to the store.
        session: A Spark session (the caller stops it); default: the active session, else
            one made for this call and stopped after it.

    Raises:
        EventColumnError: For a column the traits read that the events lack (naming them).
        UnsupportedTraitError: For a trait Spark SQL cannot compute.
        SparkUnavailable: Without pyspark.
    """
    compiled = CompiledSegments(workspace.definition)
    spark = session if session is not None else _active_session()
    own = spark is None
    if spark is None:
        if master.startswith("local"):
            check_local_events(events)  # before Spark takes half a minute to start
        spark = spark_session(master)
    try:
        frame = read_events(spark, events)
        source = EventSource(EVENTS_VIEW, mapping or {})
        check_columns(source, frame.columns, compiled.catalog, DIALECT)
        frame.createOrReplaceTempView(EVENTS_VIEW)
        traits = spark.sql(_traits_sql(compiled, as_of, source)).cache()
        traits.createOrReplaceTempView(TRAITS_VIEW)
        profiles = traits.count()
        pairs = _members(spark, compiled, as_of)
        if output is not None:
            pairs = pairs.cache()  # written and collected: computed once
            root = str(output).rstrip("/")
            traits.write.mode("overwrite").parquet(f"{root}/traits")
            pairs.write.mode("overwrite").parquet(f"{root}/memberships")
        found = [(row[0], row[1]) for row in pairs.collect()]
        pairs.unpersist()
        traits.unpersist()
    finally:
        if own:
            spark.stop()
    entered = exited = 0
    if write_store:
        entered, exited = apply_memberships(workspace.store, compiled, found, as_of, engine=DIALECT)
    shown = None if output is None else str(output)
    return SparkReport(as_of, profiles, len(found), entered, exited, shown)


def _active_session() -> Any:
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        return None
    return SparkSession.getActiveSession()


def _traits_sql(compiled: CompiledSegments, as_of: datetime, source: EventSource) -> str:
    return trait_query(compiled.catalog, DIALECT, as_of, source=source).sql(dialect=DIALECT)


def _members(spark: Any, compiled: CompiledSegments, as_of: datetime) -> Any:
    """``(profile_id, segment)`` pairs: the segment booleans of each profile, exploded.

    One pass over the cached traits (a ``UNION ALL`` per segment would plan and generate
    code for every segment again).
    """
    from pyspark.sql import functions as F  # noqa: N812 (pyspark's own convention)

    source = exp.to_table(TRAITS_VIEW)
    query, names = segment_columns_query(compiled, dialect=DIALECT, as_of=as_of, source=source)
    flags = spark.sql(query.sql(dialect=DIALECT))
    held = [F.when(F.col(f"`__segment_{n}`"), F.lit(n)) for n in names]
    if not held:
        return flags.select("profile_id", F.lit(None).cast("string").alias("segment")).limit(0)
    exploded = flags.select("profile_id", F.explode(F.array(*held)).alias("segment"))
    return exploded.where(F.col("segment").isNotNull())
