"""PostgreSQL storage for the root and big provincial hubs (DESIGN §4b; docs/scaling.md).

- ``schema``: numbered migrations, applied once under an advisory lock;
- ``store``: ``PgStore``, the hub's store (``hub.storage.HubStorage``) for receivers that share
  one database, one transaction per call: the writes, over
  - ``pool``: ``Db``, one-statement calls, transactions run again on serialization failures
    and deadlocks, a database away as ``PgUnavailable``;
  - ``ingest``: the push transaction (row locks, ``hub.protocol.ingest.plan``, the INSERTs);
  - ``enrollment``: enroll and the trust cascades, decided by ``hub.protocol.trust``;
  - ``reads``: ``PgReads``, the read side (heads, devices, records, forks, status, results);
  - ``rows``: the device row and head as read back;
- ``scans``: ``PgScanBook``, the scan book and the forwarder's scan cursor;
- ``derived``: derived state per (election, form, TPS), national results per kecamatan and
  kabupaten/kota, R12/R13, moved in the transaction that changes the records or devices they
  derive from;
- ``status``: the status dict from those rows; ``forwarding``: the per-device view a PostgreSQL
  hub's forwarder reads.

Needs the ``national`` extra (``pip install 'c1hub[national]'``: asyncpg). Rooms never import
this package.
"""
