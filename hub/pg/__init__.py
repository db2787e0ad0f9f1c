"""PostgreSQL storage for the root and big provincial hubs (DESIGN §4b; docs/scaling.md).

- ``schema``: numbered migrations, applied once under an advisory lock;
- ``store``: ``PgStore``, the hub's store (``hub.storage.HubStorage``) for receivers that share
  one database, one transaction per call; trust cascades decided by ``hub.protocol.trust``;
- ``derived``: derived state per (election, form, TPS), national results per kecamatan and
  kabupaten/kota, R12/R13, moved in the transaction that changes the records or devices they
  derive from;
- ``status``: the status dict from those rows; ``forwarding``: the per-device view a PostgreSQL
  hub's forwarder reads.

Needs the ``national`` extra (``pip install 'c1hub[national]'``: asyncpg). Rooms never import
this package.
"""
