"""PostgreSQL storage for the root and big provincial hubs (DESIGN §4b; docs/scaling.md).

- ``schema``: numbered migrations, applied once under an advisory lock;
- ``store``: ``PgStore``, the async API receivers call (``open``, ``push``, ``enroll``,
  ``set_state``, ``heads``, ``results``, ``status_counts``, ...), one transaction per call;
- ``derived``: derived state per (election, form, TPS) and national results per kecamatan,
  moved in the transaction that changes the records or devices they derive from.

Needs the ``national`` extra (``pip install 'c1hub[national]'``: asyncpg). Rooms never import
this package.
"""
