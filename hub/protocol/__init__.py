"""The c1hub wire format and its rules, free of I/O.

Importing this package loads no aiohttp, aiosqlite or zeroconf and no module of it touches a file
(tests check both): laptops, hubs and the root share it. Key files, the master file and demo data
live in ``hub.shared``. Modules:

- ``codec``     canonical msgpack
- ``identity``  Ed25519 keys, node ids, comparison codes, domain-separated signatures
- ``entry``     the C1 entry schema (JSON input) and its canonical body
- ``record``    the signed record in an origin's append-only log
- ``chain``     one origin's log checked link by link (gaps, prev, signatures, origin)
- ``rules``     validation flags R1–R11
- ``state``     derived state: single / verified / conflict, R12, R13
- ``ingest``    what a hub does with a pushed batch (accept / duplicate / fork / reject)
- ``receipt``   signed receipts (and the hub's word on its upstream's key)
- ``enroll``    enrollment requests, endorsements, hello proofs
- ``worklist``  the double-entry work list (forms to key again), without numbers
- ``outbox``    the upstream state machine: what to send next, what each answer means, when to
                wake (``hub.forwarder`` does the I/O)
- ``sender``    the laptop's decisions (which hubs, the head check, receipts, push replies)
- ``trust``     enrollment policy: roles, forward limits, approval and revocation cascades,
                endorsements and their chains
- ``pacing``    backoff with full jitter, adaptive batch size
- ``discovery_names``  DNS-SD names and TXT records
- ``clock``     the only place that reads the clock
- ``wilayah``   the polling-station master (parsed from its JSON; ``hub.shared.master`` reads it)
"""

PROTOCOL_VERSION = 1
