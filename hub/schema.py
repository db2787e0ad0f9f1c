"""The hub's SQLite schema (``hub.db``): numbered migrations, run by ``hub.shared.db.Database``
under the write lock (``PRAGMA user_version``). A migration is never edited once released;
a change is a new one at the end of the list.

Signed records and fork evidence are immutable in the database too: triggers refuse UPDATE and
DELETE on ``records`` and ``forks``.
"""

from __future__ import annotations

DB_FILE = "hub.db"

MIGRATIONS: list[str] = [
    # 1: the whole first schema
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
    CREATE TABLE devices (
        id INTEGER PRIMARY KEY,
        public BLOB NOT NULL UNIQUE,
        node_id TEXT NOT NULL,
        name TEXT NOT NULL DEFAULT '',
        role TEXT NOT NULL DEFAULT 'laptop',
        state TEXT NOT NULL DEFAULT 'pending',
        first_seen INTEGER NOT NULL,
        last_seen INTEGER NOT NULL,
        approved_at INTEGER,
        revoked_at INTEGER,
        revoked_after_seq INTEGER NOT NULL DEFAULT 0,
        forked INTEGER NOT NULL DEFAULT 0,
        endorsement BLOB
    );
    CREATE TABLE records (
        id INTEGER PRIMARY KEY,
        dev INTEGER NOT NULL REFERENCES devices(id),
        seq INTEGER NOT NULL,
        hash BLOB NOT NULL,
        raw BLOB NOT NULL,
        received_at INTEGER NOT NULL,
        election TEXT NOT NULL,
        form TEXT NOT NULL,
        tps TEXT NOT NULL,
        flags TEXT NOT NULL,
        users_j INTEGER NOT NULL,
        numbers BLOB NOT NULL,
        supersedes BLOB,
        scans TEXT NOT NULL DEFAULT '',
        votes TEXT NOT NULL DEFAULT '',
        UNIQUE (dev, seq)
    );
    CREATE TABLE forks (
        id INTEGER PRIMARY KEY,
        dev INTEGER NOT NULL REFERENCES devices(id),
        seq INTEGER NOT NULL,
        raw BLOB NOT NULL,
        held_raw BLOB,
        detected_at INTEGER NOT NULL
    );
    CREATE TABLE endorsements (
        device BLOB NOT NULL,
        hub BLOB NOT NULL,
        raw BLOB NOT NULL,
        received_at INTEGER NOT NULL,
        PRIMARY KEY (device, hub)
    );
    CREATE TABLE upstream (
        dev INTEGER PRIMARY KEY REFERENCES devices(id),
        seq INTEGER NOT NULL,
        hash BLOB NOT NULL,
        receipt BLOB NOT NULL,
        at INTEGER NOT NULL
    );
    CREATE TRIGGER records_no_update BEFORE UPDATE ON records
        BEGIN SELECT RAISE(ABORT, 'records are immutable'); END;
    CREATE TRIGGER records_no_delete BEFORE DELETE ON records
        BEGIN SELECT RAISE(ABORT, 'records are immutable'); END;
    CREATE TRIGGER forks_no_change BEFORE UPDATE ON forks
        BEGIN SELECT RAISE(ABORT, 'fork evidence is immutable'); END;
    CREATE TRIGGER forks_no_delete BEFORE DELETE ON forks
        BEGIN SELECT RAISE(ABORT, 'fork evidence is immutable'); END;
    CREATE TABLE upstream_rejections (
        id INTEGER PRIMARY KEY,
        dev INTEGER NOT NULL REFERENCES devices(id),
        seq INTEGER,
        code TEXT NOT NULL,
        reason TEXT NOT NULL,
        at INTEGER NOT NULL
    );
    """,
    # 2: the scans held (hub.scanbook): a blob is listed once it is durable in the blob store
    """
    CREATE TABLE blobs (
        hash TEXT PRIMARY KEY,
        size INTEGER NOT NULL,
        kind TEXT NOT NULL,
        at INTEGER NOT NULL
    );
    """,
]
