"""The logical schema: the events Arrow schema and versioned migrations for both backends.

DDL is written once with a few placeholders that each backend fills in:
``{json}`` (DuckDB ``JSON``, PostgreSQL ``JSONB``), ``{blob}`` (``BLOB`` / ``BYTEA``) and
``{serial:NAME}`` (an auto-incrementing BIGINT; DuckDB needs a named sequence).

All timestamps are stored as UTC without a zone (``TIMESTAMP``); segmint converts to aware UTC
datetimes at the edges. This keeps DuckDB's session time zone out of every comparison.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import pyarrow as pa

EVENT_COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    ("message_id", pa.string()),
    ("type", pa.string()),
    ("event", pa.string()),
    ("profile_id", pa.string()),
    ("user_id", pa.string()),
    ("anonymous_id", pa.string()),
    ("timestamp", pa.timestamp("us")),
    ("received_at", pa.timestamp("us")),
    ("source", pa.string()),
    ("properties", pa.string()),
    ("traits", pa.string()),
    ("context", pa.string()),
)
EVENT_SCHEMA = pa.schema([pa.field(n, t) for n, t in EVENT_COLUMNS])
"""The Arrow schema of an event batch given to ``Store.append_events``.

``properties``, ``traits`` and ``context`` are JSON text; timestamps are naive UTC.
"""

Migration = str | Mapping[str, str]
"""A migration's DDL: one text for every dialect, or a text per dialect (missing: none)."""

MIGRATIONS: tuple[tuple[int, Migration], ...] = (
    (
        1,
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE events (
            message_id TEXT PRIMARY KEY,
            type TEXT NOT NULL,
            event TEXT,
            profile_id TEXT,
            user_id TEXT,
            anonymous_id TEXT,
            timestamp TIMESTAMP NOT NULL,
            received_at TIMESTAMP NOT NULL,
            source TEXT,
            properties {json},
            traits {json},
            context {json},
            seq {serial:events}
        );
        CREATE TABLE profiles (
            profile_id TEXT PRIMARY KEY,
            created_at TIMESTAMP NOT NULL,
            updated_at TIMESTAMP NOT NULL,
            merged_into TEXT
        );
        CREATE TABLE identities (
            kind TEXT NOT NULL,
            value TEXT NOT NULL,
            profile_id TEXT NOT NULL,
            first_seen_at TIMESTAMP NOT NULL,
            PRIMARY KEY (kind, value)
        );
        CREATE TABLE profile_merges (
            id {serial:profile_merges},
            from_profile TEXT NOT NULL,
            into_profile TEXT NOT NULL,
            occurred_at TIMESTAMP NOT NULL,
            reason TEXT NOT NULL
        );
        CREATE TABLE trait_values (
            profile_id TEXT PRIMARY KEY,
            "values" {json} NOT NULL,
            as_of TIMESTAMP NOT NULL
        );
        CREATE TABLE trait_state (
            profile_id TEXT PRIMARY KEY,
            state {blob} NOT NULL,
            updated_at TIMESTAMP NOT NULL
        );
        CREATE TABLE memberships (
            segment TEXT NOT NULL,
            profile_id TEXT NOT NULL,
            entered_at TIMESTAMP NOT NULL,
            PRIMARY KEY (segment, profile_id)
        );
        CREATE TABLE membership_changes (
            id {serial:membership_changes},
            segment TEXT NOT NULL,
            profile_id TEXT NOT NULL,
            change TEXT NOT NULL,
            occurred_at TIMESTAMP NOT NULL,
            cause {json}
        );
        CREATE TABLE schedule (
            profile_id TEXT PRIMARY KEY,
            due_at TIMESTAMP NOT NULL
        );
        CREATE TABLE quarantine (
            id {serial:quarantine},
            received_at TIMESTAMP NOT NULL,
            source TEXT,
            payload TEXT NOT NULL,
            reason TEXT NOT NULL,
            field TEXT,
            replayed_at TIMESTAMP
        );
        CREATE TABLE consents (
            id {serial:consents},
            profile_id TEXT NOT NULL,
            topic TEXT NOT NULL,
            status TEXT NOT NULL,
            source TEXT NOT NULL,
            occurred_at TIMESTAMP NOT NULL
        );
        CREATE TABLE suppressions (
            address TEXT PRIMARY KEY,
            reason TEXT NOT NULL,
            source TEXT,
            occurred_at TIMESTAMP NOT NULL
        );
        CREATE TABLE sends (
            send_key TEXT PRIMARY KEY,
            campaign TEXT NOT NULL,
            profile_id TEXT NOT NULL,
            address TEXT,
            status TEXT NOT NULL,
            reason TEXT,
            message_id TEXT,
            attempts INTEGER NOT NULL DEFAULT 0,
            created_at TIMESTAMP NOT NULL,
            updated_at TIMESTAMP NOT NULL
        );
        CREATE TABLE audit_log (
            id {serial:audit_log},
            occurred_at TIMESTAMP NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            subject TEXT,
            details {json}
        );
        CREATE TABLE api_keys (
            key_id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            key_hash TEXT NOT NULL,
            scopes TEXT NOT NULL,
            created_at TIMESTAMP NOT NULL,
            revoked_at TIMESTAMP
        );
        CREATE TABLE webhook_outbox (
            id {serial:webhook_outbox},
            webhook TEXT NOT NULL,
            payload TEXT NOT NULL,
            status TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at TIMESTAMP NOT NULL,
            last_error TEXT,
            created_at TIMESTAMP NOT NULL
        );
        CREATE INDEX events_profile ON events (profile_id);
        CREATE INDEX changes_segment ON membership_changes (segment, occurred_at);
        """,
    ),
    (
        2,
        """
        ALTER TABLE quarantine ADD COLUMN message_id TEXT;
        CREATE INDEX identities_profile ON identities (profile_id);
        CREATE TABLE identity_conflicts (
            id {serial:identity_conflicts},
            kind TEXT NOT NULL,
            value TEXT NOT NULL,
            owner_profile TEXT NOT NULL,
            claimant_profile TEXT NOT NULL,
            message_id TEXT,
            occurred_at TIMESTAMP NOT NULL
        );
        INSERT INTO meta VALUES ('intake_generation', '0');
        """,
    ),
    (
        4,
        """
        ALTER TABLE webhook_outbox ADD COLUMN delivered_at TIMESTAMP;
        CREATE INDEX webhook_outbox_due ON webhook_outbox (status, next_attempt_at);
        CREATE INDEX memberships_profile ON memberships (profile_id);
        CREATE INDEX schedule_due ON schedule (due_at);
        """,
    ),
    (
        5,
        """
        ALTER TABLE sends ADD COLUMN sent_at TIMESTAMP;
        ALTER TABLE sends ADD COLUMN announced BOOLEAN DEFAULT FALSE;
        ALTER TABLE consents ADD COLUMN event_id TEXT;
        CREATE INDEX consents_topic ON consents (topic, occurred_at);
        CREATE INDEX consents_event ON consents (event_id);
        """,
    ),
    (
        6,
        {
            # DuckDB: memberships without a primary key. Deleting rows under a unique index
            # cost about 25 µs per row at commit (measured: 51 ms for 2,000 exits), and exits
            # are most of what real time writes. The writers keep (segment, profile_id)
            # unique: real time deletes the keys it inserts, refresh inserts only pairs not
            # present. Only profile_id is indexed (profile lookups: 0.5 ms instead of 4.6 ms
            # at 600k rows); every index costs each exit at commit.
            "duckdb": """
            CREATE TABLE memberships_v6 (
                segment TEXT NOT NULL,
                profile_id TEXT NOT NULL,
                entered_at TIMESTAMP NOT NULL
            );
            INSERT INTO memberships_v6 SELECT segment, profile_id, entered_at FROM memberships;
            DROP INDEX memberships_profile;
            DROP TABLE memberships;
            ALTER TABLE memberships_v6 RENAME TO memberships;
            CREATE INDEX memberships_profile ON memberships (profile_id);
            """,
        },
    ),
    (
        7,
        {
            # DuckDB: no index on schedule.due_at. Updating an indexed column is a delete and
            # an insert in the index, and the real-time engine moves due instants on every
            # event: 61 ms per 1,000 upserts with it, 6.5 ms without (measured). Reading
            # what is due scans the column, which DuckDB does fast.
            "duckdb": "DROP INDEX schedule_due",
        },
    ),
    (
        8,
        # Consent stated for an address no profile has yet (``consent set email:a@b denied``):
        # kept by normalised address, honoured by the gate once a profile has that address.
        """
        CREATE TABLE address_consents (
            id {serial:address_consents},
            address TEXT NOT NULL,
            topic TEXT NOT NULL,
            status TEXT NOT NULL,
            source TEXT NOT NULL,
            occurred_at TIMESTAMP NOT NULL
        );
        CREATE INDEX address_consents_address ON address_consents (address);
        """,
    ),
    (
        10,
        # The real-time engine's failures for one profile: the rest of its batch is applied,
        # the profile's events are named here (segmint status counts them).
        """
        CREATE TABLE realtime_failures (
            id {serial:realtime_failures},
            profile_id TEXT NOT NULL,
            message_id TEXT,
            failed_at TIMESTAMP NOT NULL,
            error TEXT NOT NULL
        );
        """,
    ),
    (
        11,
        # A hard bounce is recorded on its ledger row, with the suppression, so its
        # ``Email Bounced`` event is announced from the ledger even if the run dies.
        """
        ALTER TABLE sends ADD COLUMN bounced_at TIMESTAMP;
        ALTER TABLE sends ADD COLUMN bounce_code INTEGER;
        ALTER TABLE sends ADD COLUMN bounce_announced BOOLEAN DEFAULT FALSE;
        """,
    ),
    (
        12,
        # Browser (public) keys: the origins a browser may send from, newline separated
        # (NULL for a server key), the per-IP request rate allowed (requests/s, 0: none) and
        # the consent category whose refusal keeps a visitor's events out.
        """
        ALTER TABLE api_keys ADD COLUMN origins TEXT;
        ALTER TABLE api_keys ADD COLUMN ip_rate DOUBLE PRECISION;
        ALTER TABLE api_keys ADD COLUMN consent_category TEXT;
        """,
    ),
    (
        20,
        # Journeys: one row per (journey, profile, entry) with its current step and the
        # instant it is due; every step taken, skip, delay and exit is a history row (the
        # counts of `journeys show` are GROUP BYs over it). The send ledger records each
        # message's consent topic and priority: frequency caps count from the ledger.
        """
        CREATE TABLE journey_instances (
            instance_id TEXT PRIMARY KEY,
            journey TEXT NOT NULL,
            profile_id TEXT NOT NULL,
            entry INTEGER NOT NULL,
            step TEXT,
            status TEXT NOT NULL,
            due_at TIMESTAMP,
            step_since TIMESTAMP,
            entered_at TIMESTAMP NOT NULL,
            exit_reason TEXT
        );
        CREATE INDEX journey_instances_profile ON journey_instances (profile_id);
        CREATE TABLE journey_history (
            id {serial:journey_history},
            instance_id TEXT NOT NULL,
            journey TEXT NOT NULL,
            step TEXT,
            outcome TEXT NOT NULL,
            reason TEXT,
            occurred_at TIMESTAMP NOT NULL
        );
        CREATE INDEX journey_history_instance ON journey_history (instance_id);
        ALTER TABLE sends ADD COLUMN topic TEXT;
        ALTER TABLE sends ADD COLUMN priority INTEGER;
        CREATE INDEX sends_profile ON sends (profile_id);
        """,
    ),
    (
        25,
        # Measurement: conversions attributed to the send that earned them (rebuilt from
        # events and the ledger by ``segmint measure rebuild``), and experiment arms, each
        # profile's recorded once and kept (sticky) even if the weights change later.
        """
        CREATE TABLE attributions (
            conversion_id TEXT PRIMARY KEY,
            profile_id TEXT NOT NULL,
            campaign TEXT NOT NULL,
            touch TEXT NOT NULL,
            touched_at TIMESTAMP NOT NULL,
            converted_at TIMESTAMP NOT NULL,
            revenue DOUBLE PRECISION
        );
        CREATE INDEX attributions_campaign ON attributions (campaign, converted_at);
        CREATE TABLE experiment_assignments (
            experiment TEXT NOT NULL,
            profile_id TEXT NOT NULL,
            arm TEXT NOT NULL,
            assigned_at TIMESTAMP NOT NULL,
            PRIMARY KEY (experiment, profile_id)
        );
        """,
    ),
    (
        30,
        # The model registry (segmint.models): every trained version with what it was
        # trained on (features, data window), its metrics and its fitted parameters.
        """
        CREATE TABLE model_versions (
            model TEXT NOT NULL,
            version INTEGER NOT NULL,
            kind TEXT NOT NULL,
            trained_at TIMESTAMP NOT NULL,
            as_of TIMESTAMP NOT NULL,
            definition {json} NOT NULL,
            features {json} NOT NULL,
            data_window {json} NOT NULL,
            metrics {json} NOT NULL,
            report {json} NOT NULL,
            params {blob} NOT NULL,
            PRIMARY KEY (model, version)
        );
        CREATE TABLE model_scorings (
            model TEXT NOT NULL,
            version INTEGER NOT NULL,
            as_of TIMESTAMP NOT NULL,
            scored_at TIMESTAMP NOT NULL,
            profiles INTEGER NOT NULL,
            written INTEGER NOT NULL
        );
        """,
    ),
    (
        41,
        # The commit-ordered change feed (segmint.membership.feed) on PostgreSQL: each
        # event and merge row carries the id of the transaction that wrote it, so a reader
        # can tell which rows may still appear below a position (a transaction that commits
        # late) from those that never will (pg_snapshot_xmin). DuckDB needs none: its
        # writers are serialised by the one process holding the file.
        {
            "postgres": """
            ALTER TABLE events ADD COLUMN xid xid8 DEFAULT pg_current_xact_id();
            CREATE INDEX events_xid ON events (xid);
            ALTER TABLE profile_merges ADD COLUMN xid xid8 DEFAULT pg_current_xact_id();
            CREATE INDEX profile_merges_xid ON profile_merges (xid);
            """
        },
    ),
    (
        43,
        # Partitioned real-time workers (segmint worker, scale/worker.py): each profile's
        # events up to ``seq`` are applied to its real-time state (the idempotence watermark,
        # written in the transaction that writes the state).
        """
        CREATE TABLE worker_applied (profile_id TEXT PRIMARY KEY, seq BIGINT NOT NULL);
        """,
    ),
    (
        50,
        # Privacy (segmint.privacy): the audit log becomes a hash chain (each entry's hash
        # covers the previous one's); erased people are remembered only by a salted hash of
        # their identifiers, so a later import of the same address is held back, never
        # silently re-added; each erasure leaves a receipt without personal data.
        """
        ALTER TABLE audit_log ADD COLUMN prev_hash TEXT;
        ALTER TABLE audit_log ADD COLUMN hash TEXT;
        CREATE TABLE erased_subjects (
            hash TEXT PRIMARY KEY,
            receipt_id TEXT NOT NULL,
            erased_at TIMESTAMP NOT NULL
        );
        CREATE TABLE erasure_receipts (
            receipt_id TEXT PRIMARY KEY,
            erased_at TIMESTAMP NOT NULL,
            receipt {json} NOT NULL
        );
        """,
    ),
    (
        51,
        # Privacy (segmint.privacy.subjects): with a master key a quarantined payload is
        # stored sealed under the identities it names; the row keeps their subject names
        # (so erasure finds it) and, in the clear, only its call type and event name.
        """
        ALTER TABLE quarantine ADD COLUMN type TEXT;
        ALTER TABLE quarantine ADD COLUMN event TEXT;
        ALTER TABLE quarantine ADD COLUMN subjects TEXT;
        """,
    ),
    (
        55,
        # The template a message was sent with, when it is not its campaign's or journey
        # step's own (an experiment arm's template, a step's template split); NULL: the
        # campaign's. ``Email Delivered`` and the KPIs by template read it.
        """
        ALTER TABLE sends ADD COLUMN template TEXT;
        """,
    ),
    (
        59,
        # Partitioned workers (scale/worker.py): a profile's watermark is the snapshot of
        # the batch that applied it (pg_current_snapshot() as text), so an event whose
        # transaction took a lower ``seq`` and committed later is still applied.
        """
        ALTER TABLE worker_applied ADD COLUMN snap TEXT;
        """,
    ),
    (
        63,
        {
            # DuckDB: no index on membership_changes (segment, occurred_at). DuckDB never
            # plans an index scan for what reads the log by segment (a few dozen distinct
            # keys; its reads are sequential scans of a few ms either way), while every
            # change written fills the index at commit: 0.25 s for a first refresh's 1.8M
            # changes at 300k profiles, on one thread. PostgreSQL keeps its B-tree.
            "duckdb": "DROP INDEX changes_segment",
        },
    ),
    (
        69,
        # PostgreSQL: a transaction that writes what a server's real-time engine caches
        # (memberships, the schedule, trait state and values) notifies the schema's derived
        # channel (segmint.store.postgres.DERIVED_CHANNEL) at its commit. A server hearing
        # it from another connection (``segmint refresh``, ``rebuild``, ``privacy erase``)
        # forgets its cache, as a DuckDB server does when the writers run through it.
        {
            "postgres": """
            CREATE FUNCTION segmint_derived_written() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                PERFORM pg_notify('segmint_derived_' || md5(current_schema()), '');
                RETURN NULL;
            END
            $$;
            CREATE TRIGGER memberships_written AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
                ON memberships FOR EACH STATEMENT EXECUTE FUNCTION segmint_derived_written();
            CREATE TRIGGER schedule_written AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
                ON schedule FOR EACH STATEMENT EXECUTE FUNCTION segmint_derived_written();
            CREATE TRIGGER trait_state_written AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
                ON trait_state FOR EACH STATEMENT EXECUTE FUNCTION segmint_derived_written();
            CREATE TRIGGER trait_values_written AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
                ON trait_values FOR EACH STATEMENT EXECUTE FUNCTION segmint_derived_written();
            """
        },
    ),
    (
        70,
        # Privacy (segmint.privacy.erase): the vault keys an erasure is to destroy, written
        # in the transaction that commits its receipt and deleted once the vault has
        # destroyed them. A process stopped between the two leaves its rows here, and the
        # next erasure or opening of the vault destroys those keys (finish_erasures).
        """
        CREATE TABLE erasure_keys (
            receipt_id TEXT NOT NULL,
            key_name TEXT NOT NULL,
            PRIMARY KEY (receipt_id, key_name)
        );
        """,
    ),
)
"""Versioned migrations, applied in order on open. Append; never edit a released one."""

LATEST_VERSION = MIGRATIONS[-1][0]

_SERIAL = re.compile(r"\{serial:(\w+)\}")


def render(migration: Migration, dialect: str) -> tuple[list[str], list[str]]:
    """Fill a migration's placeholders for ``dialect``.

    Returns:
        The statements to run first (DuckDB sequences) and the migration's statements.
    """
    ddl = migration if isinstance(migration, str) else migration.get(dialect, "")
    sequences = _SERIAL.findall(ddl)
    if dialect == "duckdb":
        pre = [f"CREATE SEQUENCE IF NOT EXISTS seq_{name}" for name in sequences]
        ddl = _SERIAL.sub(lambda m: f"BIGINT DEFAULT nextval('seq_{m.group(1)}')", ddl)
        ddl = ddl.replace("{json}", "JSON").replace("{blob}", "BLOB")
    else:
        pre = []
        ddl = _SERIAL.sub("BIGSERIAL", ddl).replace("{json}", "JSONB").replace("{blob}", "BYTEA")
    return pre, _statements(ddl)


def _statements(ddl: str) -> list[str]:
    """Split ``ddl`` at each ``;`` outside ``$$``-quoted bodies (a function's statements)."""
    found: list[str] = []
    current = ""
    for index, part in enumerate(ddl.split("$$")):
        if index % 2:  # inside a $$ body
            current += f"$${part}$$"
            continue
        first, *rest = part.split(";")
        current += first
        for piece in rest:
            found.append(current)
            current = piece
    found.append(current)
    return [s.strip() for s in found if s.strip()]
