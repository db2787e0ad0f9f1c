"""The coordinator's console at the hub's ``/`` (issue 11; docs/console.md).

- ``app``: the pages, the event stream, the admin POSTs (``setup`` adds them to the hub app);
- ``live``: one derived status shared by every viewer;
- ``locality``: who may act (loopback peer, loopback Host, per-page token, Origin);
- ``resolve``: the coordinator station key and the superseding entries it signs;
- ``views``: paging, flags, progress, the index by TPS and the cells of readings under the
  paper's sections (``hub.protocol.paper``), as pure functions;
- ``i18n``: Indonesian and English words (also the read-only page's, ``hub.dashboard``).
"""

from hub.console.app import setup

__all__ = ["setup"]
