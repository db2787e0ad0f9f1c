"""The PostgreSQL schema of a hub's store, as numbered migrations.

The tables mirror the SQLite store's (``hub.schema.MIGRATIONS``): devices, records with
``PRIMARY KEY (dev, seq)``, forks kept as immutable evidence, endorsements, meta and upstream
bookkeeping. Three kinds of row are new, so that a root holds no per-entry state in memory:

- ``devices.head_seq / head_hash / records``: each origin's head and record count, moved in the
  same transaction as its records (a trigger refuses a head that goes backwards);
- ``tps_state``: the derived state of every (election, form, TPS) that has an entry (status,
  the votes of its counted entry, its live entries' flags), recomputed in the ingest
  transaction for the keys it touches with the one implementation ``hub.protocol.state``;
- ``kec_votes`` / ``kec_counts``: national results per kecamatan (votes per candidate or party
  over single + verified TPS; TPS per status; flags), moved by the same transaction by the
  difference between a key's old and new state. A province, kabupaten/kota or the whole
  country is a sum over at most ~7,300 kecamatan rows, whatever the number of entries;
- ``kab_votes`` / ``kab_counts`` (migration 3): the same per kabupaten/kota (~514 rows per
  form and number for the country), so the country and a province read those, and a
  kabupaten/kota its kecamatan rows: every results call reads a few thousand rows at most;
- ``scan_tps`` / ``r12`` and ``r13`` (migration 2): the hub-level rules R12 (one scan under two
  TPS) and R13 (users totals differing between the forms of a TPS), moved by the same
  transaction for the scans and TPS whose keys changed.
- ``devices.held_bytes`` and ``quota_lock`` (migration 4): the quotas on devices never approved
  (``hub.protocol.quota``). A device never approved holds ``records`` records of
  ``held_bytes`` bytes (both moved with its records; approval stops counting them); the
  totals and the pending count are sums over the devices never approved (a partial index).
  The one row of ``quota_lock`` is locked by every transaction that may add to them, so
  quota decisions run one after the other across receivers.
- ``devices_listed`` (migration 5): the device list in pages, oldest first, so the status and
  ``GET /v1/devices?limit=`` read one page of a root's tens of thousands of devices.
- ``scans`` / ``scan_entries`` / ``scan_waiting`` / ``scan_totals`` (migration 6): every page
  hash the entries held name (its size and kind once the blob is held), one row per (hash,
  entry), the entries whose scans are not all held, and the status counts; filled by a trigger
  on ``records`` in the ingest transaction itself. ``hub.pg.scans`` reads them and marks a blob
  held. Shared by every receiver: a blob taken by one is held for all.
- ``scan_cursor`` (migration 7): per device, the seq up to which the scans of its entries are
  known to be held upstream; the forwarder's scan book starts there after a restart.

``migrate`` applies what is missing, each migration in its own transaction, recorded in
``schema_migrations``, under a session advisory lock: several receivers starting at once
migrate once (the others wait, then find nothing to do).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, TypeAlias

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    import asyncpg
    import asyncpg.pool

    # A connection, or the pool's proxy of one (what ``pool.acquire()`` gives).
    Conn: TypeAlias = (
        asyncpg.Connection[asyncpg.Record] | asyncpg.pool.PoolConnectionProxy[asyncpg.Record]
    )
else:
    Conn = Any

# pg_advisory_lock key for schema changes: "c1hub" in ASCII.
MIGRATION_LOCK = 0x6331687562

MIGRATIONS: list[str] = [
    # 1: the first schema
    r"""
    CREATE TABLE meta (key text PRIMARY KEY, value bytea NOT NULL);

    CREATE TABLE devices (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        public bytea NOT NULL UNIQUE CHECK (length(public) = 32),
        node_id text NOT NULL,
        name text NOT NULL DEFAULT '',
        role text NOT NULL DEFAULT 'laptop' CHECK (role IN ('laptop', 'hub')),
        state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'approved', 'revoked')),
        first_seen bigint NOT NULL,
        last_seen bigint NOT NULL,
        approved_at bigint,
        revoked_at bigint,
        revoked_after_seq bigint NOT NULL DEFAULT 0,
        forked boolean NOT NULL DEFAULT false,
        endorsement bytea,
        head_seq bigint NOT NULL DEFAULT 0,
        head_hash bytea NOT NULL DEFAULT decode(repeat('00', 32), 'hex'),
        records bigint NOT NULL DEFAULT 0
    );

    CREATE FUNCTION c1hub_head_forward() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF NEW.head_seq < OLD.head_seq THEN
            RAISE EXCEPTION 'head of device % would go back from % to %',
                OLD.id, OLD.head_seq, NEW.head_seq;
        END IF;
        IF OLD.forked AND NOT NEW.forked THEN
            RAISE EXCEPTION 'a fork is evidence: device % stays forked', OLD.id;
        END IF;
        RETURN NEW;
    END $$;
    CREATE TRIGGER devices_head_forward BEFORE UPDATE ON devices
        FOR EACH ROW EXECUTE FUNCTION c1hub_head_forward();

    -- No foreign key to devices: a record is inserted only by the transaction holding its
    -- device's row lock, and devices are never deleted (trigger below). The check per row
    -- cost ~20% of an ingest batch.
    CREATE TABLE records (
        dev bigint NOT NULL,
        seq bigint NOT NULL CHECK (seq >= 1),
        hash bytea NOT NULL,
        raw bytea NOT NULL,
        received_at bigint NOT NULL,
        election text NOT NULL,
        form text NOT NULL,
        tps text NOT NULL,
        flags text NOT NULL,
        users_j integer NOT NULL,
        numbers bytea NOT NULL,
        supersedes bytea,
        scans text NOT NULL DEFAULT '',
        votes text NOT NULL DEFAULT '',
        PRIMARY KEY (dev, seq)
    );
    CREATE INDEX records_key ON records (election, form, tps);

    CREATE TABLE forks (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        dev bigint NOT NULL REFERENCES devices(id),
        seq bigint NOT NULL,
        raw bytea NOT NULL,
        held_raw bytea,
        detected_at bigint NOT NULL,
        hash bytea GENERATED ALWAYS AS (sha256(raw)) STORED,
        UNIQUE (dev, seq, hash)
    );

    CREATE FUNCTION c1hub_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '% are immutable', TG_TABLE_NAME;
    END $$;
    CREATE TRIGGER records_immutable BEFORE UPDATE OR DELETE ON records
        FOR EACH ROW EXECUTE FUNCTION c1hub_immutable();
    CREATE TRIGGER forks_immutable BEFORE UPDATE OR DELETE ON forks
        FOR EACH ROW EXECUTE FUNCTION c1hub_immutable();
    CREATE TRIGGER records_no_truncate BEFORE TRUNCATE ON records
        FOR EACH STATEMENT EXECUTE FUNCTION c1hub_immutable();
    CREATE TRIGGER forks_no_truncate BEFORE TRUNCATE ON forks
        FOR EACH STATEMENT EXECUTE FUNCTION c1hub_immutable();
    CREATE TRIGGER devices_no_delete BEFORE DELETE ON devices
        FOR EACH ROW EXECUTE FUNCTION c1hub_immutable();

    CREATE TABLE endorsements (
        device bytea NOT NULL,
        hub bytea NOT NULL,
        raw bytea NOT NULL,
        received_at bigint NOT NULL,
        PRIMARY KEY (device, hub)
    );
    CREATE INDEX endorsements_hub ON endorsements (hub);

    CREATE TABLE upstream (
        dev bigint PRIMARY KEY REFERENCES devices(id),
        seq bigint NOT NULL,
        hash bytea NOT NULL,
        receipt bytea NOT NULL,
        at bigint NOT NULL
    );
    CREATE TABLE upstream_rejections (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        dev bigint NOT NULL REFERENCES devices(id),
        seq bigint,
        code text NOT NULL,
        reason text NOT NULL,
        at bigint NOT NULL
    );

    CREATE TABLE tps_state (
        election text NOT NULL,
        form text NOT NULL,
        tps text NOT NULL,
        status text NOT NULL DEFAULT '',  -- '' while no entry of it is counted (held only)
        entries integer NOT NULL DEFAULT 0,  -- counted entries
        live bytea NOT NULL DEFAULT '',  -- hashes of the live counted entries, sorted, joined
        votes text NOT NULL DEFAULT '',  -- of the counted entry when single or verified
        flags text NOT NULL DEFAULT '',  -- of every live counted entry, repeated, joined by ,
        PRIMARY KEY (election, form, tps)
    );
    CREATE INDEX tps_state_conflicts ON tps_state (election, form, tps)
        WHERE status = 'conflict';

    CREATE TABLE kec_votes (
        election text NOT NULL,
        form text NOT NULL,
        kec text NOT NULL,
        no text NOT NULL,
        votes bigint NOT NULL,
        PRIMARY KEY (election, form, kec, no)
    );
    CREATE TABLE kec_counts (
        election text NOT NULL,
        form text NOT NULL,
        kec text NOT NULL,
        what text NOT NULL,  -- single | verified | conflict | a flag id (R1..R11)
        n bigint NOT NULL,
        PRIMARY KEY (election, form, kec, what)
    );
    """,
    # 2: the hub-level rules R12 and R13, kept in the ingest transaction like tps_state
    r"""
    ALTER TABLE tps_state ADD COLUMN users text NOT NULL DEFAULT '';  -- live users totals J
    ALTER TABLE tps_state ADD COLUMN scans text NOT NULL DEFAULT '';  -- of counted entries
    CREATE INDEX tps_state_tps ON tps_state (election, tps);

    -- R12: per scan hash, the TPS whose counted entries name it (n: how many keys)
    CREATE TABLE scan_tps (
        scan text NOT NULL,
        tps text NOT NULL,
        n integer NOT NULL,
        PRIMARY KEY (scan, tps)
    );
    CREATE TABLE r12 (scan text PRIMARY KEY, tps text[] NOT NULL);
    -- R13: TPS whose live entries of different forms disagree on users total J
    CREATE TABLE r13 (
        election text NOT NULL,
        tps text NOT NULL,
        forms jsonb NOT NULL,
        PRIMARY KEY (election, tps)
    );
    """,
    # 3: results per kabupaten/kota too, so the country and a province sum ~514 areas' rows
    r"""
    CREATE TABLE kab_votes (
        election text NOT NULL,
        form text NOT NULL,
        kab text NOT NULL,
        no text NOT NULL,
        votes bigint NOT NULL,
        PRIMARY KEY (election, form, kab, no)
    );
    CREATE TABLE kab_counts (
        election text NOT NULL,
        form text NOT NULL,
        kab text NOT NULL,
        what text NOT NULL,
        n bigint NOT NULL,
        PRIMARY KEY (election, form, kab, what)
    );
    INSERT INTO kab_votes SELECT election, form, substr(kec, 1, 4), no, sum(votes)
        FROM kec_votes GROUP BY 1, 2, 3, 4;
    INSERT INTO kab_counts SELECT election, form, substr(kec, 1, 4), what, sum(n)
        FROM kec_counts GROUP BY 1, 2, 3, 4;
    CREATE INDEX kec_votes_region ON kec_votes (election, kec);
    CREATE INDEX kec_counts_region ON kec_counts (election, kec);
    CREATE INDEX kab_votes_region ON kab_votes (election, kab);
    CREATE INDEX kab_counts_region ON kab_counts (election, kab);
    """,
    # 4: the quotas on devices never approved (hub.protocol.quota): what each holds, and one
    # row whose lock orders the transactions that decide them
    r"""
    ALTER TABLE devices ADD COLUMN held_bytes bigint NOT NULL DEFAULT 0;
    UPDATE devices d SET held_bytes = (SELECT coalesce(sum(length(r.raw)), 0) FROM records r
        WHERE r.dev = d.id) WHERE approved_at IS NULL;
    CREATE INDEX devices_never_approved ON devices (state) WHERE approved_at IS NULL;
    CREATE TABLE quota_lock (one boolean PRIMARY KEY DEFAULT true CHECK (one));
    INSERT INTO quota_lock VALUES (true);
    """,
    # 5: the device list in pages, oldest first (GET /v1/devices?limit=&after=, the status)
    r"""
    CREATE INDEX devices_listed ON devices (first_seen, node_id);
    """,
    # 6: the scans (hub.pg.scans): which hashes the entries name, which blobs are held
    r"""
    CREATE TABLE scans (
        hash text PRIMARY KEY,
        size bigint,  -- NULL while named but not held
        kind text,
        held_at bigint
    );
    -- one row per (scan, entry naming it)
    CREATE TABLE scan_entries (
        scan text NOT NULL,
        dev bigint NOT NULL,
        seq bigint NOT NULL,
        PRIMARY KEY (scan, dev, seq)
    );
    CREATE INDEX scan_entries_entry ON scan_entries (dev, seq);
    -- the entries whose scans are not all held: how many are missing
    CREATE TABLE scan_waiting (
        dev bigint NOT NULL,
        seq bigint NOT NULL,
        election text NOT NULL,
        form text NOT NULL,
        tps text NOT NULL,
        missing integer NOT NULL,
        PRIMARY KEY (dev, seq)
    );
    -- the status counts, in 16 rows (one per backend, pid mod 16) summed on reading, so that
    -- receivers committing at once do not queue on one row
    CREATE TABLE scan_totals (
        shard integer PRIMARY KEY,
        expected bigint NOT NULL DEFAULT 0,
        held bigint NOT NULL DEFAULT 0,
        held_bytes bigint NOT NULL DEFAULT 0,
        waiting bigint NOT NULL DEFAULT 0
    );

    CREATE FUNCTION c1hub_scans_named() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        n_new bigint;
        n_wait bigint;
    BEGIN
        -- Every scan named is created or, if known, locked (DO UPDATE ... WHERE false locks
        -- without writing): a blob marked held by another transaction meanwhile waits for
        -- this one, and the entries' waiting counts below see the scans as they stay.
        INSERT INTO scans(hash)
            SELECT DISTINCT u.s FROM new_records n
            CROSS JOIN LATERAL unnest(string_to_array(n.scans, ',')) u(s)
            WHERE n.scans <> '' ORDER BY 1
            ON CONFLICT (hash) DO UPDATE SET hash = EXCLUDED.hash WHERE false;
        GET DIAGNOSTICS n_new = ROW_COUNT;
        INSERT INTO scan_entries(scan, dev, seq)
            SELECT DISTINCT u.s, n.dev, n.seq FROM new_records n
            CROSS JOIN LATERAL unnest(string_to_array(n.scans, ',')) u(s)
            WHERE n.scans <> '' ON CONFLICT DO NOTHING;
        INSERT INTO scan_waiting(dev, seq, election, form, tps, missing)
            SELECT n.dev, n.seq, n.election, n.form, n.tps, count(DISTINCT u.s)
            FROM new_records n
            CROSS JOIN LATERAL unnest(string_to_array(n.scans, ',')) u(s)
            JOIN scans c ON c.hash = u.s
            WHERE n.scans <> '' AND c.size IS NULL
            GROUP BY n.dev, n.seq, n.election, n.form, n.tps;
        GET DIAGNOSTICS n_wait = ROW_COUNT;
        IF n_new > 0 OR n_wait > 0 THEN
            INSERT INTO scan_totals(shard, expected, waiting)
                VALUES (pg_backend_pid() % 16, n_new, n_wait)
                ON CONFLICT (shard) DO UPDATE SET
                    expected = scan_totals.expected + EXCLUDED.expected,
                    waiting = scan_totals.waiting + EXCLUDED.waiting;
        END IF;
        RETURN NULL;
    END $$;
    CREATE TRIGGER records_scans AFTER INSERT ON records
        REFERENCING NEW TABLE AS new_records
        FOR EACH STATEMENT EXECUTE FUNCTION c1hub_scans_named();

    -- the entries stored before this migration (no scan is held yet)
    INSERT INTO scans(hash)
        SELECT DISTINCT u.s FROM records r
        CROSS JOIN LATERAL unnest(string_to_array(r.scans, ',')) u(s) WHERE r.scans <> '';
    INSERT INTO scan_entries(scan, dev, seq)
        SELECT DISTINCT u.s, r.dev, r.seq FROM records r
        CROSS JOIN LATERAL unnest(string_to_array(r.scans, ',')) u(s) WHERE r.scans <> '';
    INSERT INTO scan_waiting(dev, seq, election, form, tps, missing)
        SELECT r.dev, r.seq, r.election, r.form, r.tps, count(DISTINCT u.s) FROM records r
        CROSS JOIN LATERAL unnest(string_to_array(r.scans, ',')) u(s) WHERE r.scans <> ''
        GROUP BY r.dev, r.seq, r.election, r.form, r.tps;
    INSERT INTO scan_totals(shard, expected, waiting)
        SELECT 0, (SELECT count(*) FROM scans), (SELECT count(*) FROM scan_waiting);
    """,
    # 7: the forwarder's scan cursor (hub.pg.scans): per device, the seq up to which the scans
    # of its entries are known to be held upstream
    r"""
    CREATE TABLE scan_cursor (
        dev bigint PRIMARY KEY REFERENCES devices(id),
        seq bigint NOT NULL CHECK (seq >= 0)
    );
    """,
]


async def migrate(con: Conn) -> int:
    """Apply missing migrations; returns the schema version. Safe to call from many
    processes at once (one migrates under the advisory lock; the others wait for it)."""
    await con.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
    try:
        await con.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        version = await con.fetchval("SELECT COALESCE(max(version), 0) FROM schema_migrations")
        if version > len(MIGRATIONS):
            raise RuntimeError(
                f"the database is at schema version {version}, newer than this c1hub knows "
                f"({len(MIGRATIONS)}); upgrade c1hub"
            )
        for n in range(version, len(MIGRATIONS)):
            async with con.transaction():
                await con.execute(MIGRATIONS[n])
                await con.execute("INSERT INTO schema_migrations(version) VALUES ($1)", n + 1)
            log.info("database schema migrated to version %d", n + 1)
        return len(MIGRATIONS)
    finally:
        await con.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)
