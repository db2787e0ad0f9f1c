"""``c1client ui``: the operator's entry station, a local web application on 127.0.0.1.

Modules:

- ``config``   the station's settings (declared once) and its frozen ``UiConfig``
- ``layout``   the paper C.Hasil layout of each form type: sections, rows, cells (pure)
- ``cells``    cells typed in the page -> the entry JSON; live flags from ``hub.protocol.rules``
- ``drafts``   ``ui.db``: unsigned drafts, row memory, scan folder, pace statistics
- ``station``  what the pages ask for: sign-in, drafts, checks, saving
               (``client.intake.enter_items``, the code ``c1client enter`` runs); it holds:
- ``places``   TPS codes and names, the type-ahead, the next TPS, the start check
- ``scans``    uploaded pages and the scanner's folder
- ``entries``  this laptop's signed entries as the page shows them
- ``doubleentry``  the hub's work list, a form's status, a blind keying against the readings
- ``connection``  the connection panel (sync, hub, upstream) and the operator's pace
- ``server``   the aiohttp application: Host/Origin/token checks, thin handlers
- ``command``  the click command and its lifecycle (server + ``client.sync.sync_forever``)
- ``i18n``     the page's words in Indonesian and English

The page (``templates/app.html``, ``static/*.js``) holds no rule logic: it asks the server.
See docs/ui.md.
"""
