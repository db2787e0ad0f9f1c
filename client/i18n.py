"""Operator-facing messages of the c1client CLI: Indonesian (default) and English.

``MESSAGES[key] = (Indonesian, English)``; both carry the same ``{placeholders}`` (a test checks
it). ``Messages(lang)(key, **values)`` formats one.
"""

from __future__ import annotations

MESSAGES: dict[str, tuple[str, str]] = {
    "sync_hub": ("Hub: {hub_id} di {url}", "Hub: {hub_id} at {url}"),
    "sync_pending": (
        "Laptop ini MENUNGGU persetujuan. Kode pembanding: {code}. Pastikan koordinator melihat "
        "kode yang sama di layarnya, lalu minta ia menyetujui laptop {node_id}. Entri tetap "
        "tersimpan di hub.",
        "This laptop is PENDING approval. Comparison code: {code}. Check that the coordinator "
        "sees the same code on the hub's screen, then ask them to approve laptop {node_id}. "
        "Entries are kept at the hub meanwhile.",
    ),
    "sync_approved": (
        "Laptop ini sudah DISETUJUI di hub {hub_id}: entri dihitung.",
        "This laptop is APPROVED at hub {hub_id}: its entries are counted.",
    ),
    "sync_revoked": (
        "Laptop ini DICABUT oleh koordinator: entri baru tidak diterima hub.",
        "This laptop was REVOKED by the coordinator: the hub refuses new entries.",
    ),
    "sync_done": (
        "Terkirim {pushed}. Di hub {at_hub} dari {entries}; terkonfirmasi pusat "
        "{confirmed}; belum terkirim {local_only}.",
        "Sent {pushed}. At hub {at_hub} of {entries}; confirmed upstream {confirmed}; "
        "not yet sent {local_only}.",
    ),
    "sync_rejected": ("DITOLAK hub: #{seq}: {reason}", "REFUSED by hub: #{seq}: {reason}"),
    "sync_retry": (
        "Sinkronisasi gagal: {reason}. Dicoba lagi dalam {delay:.1f} detik.",
        "Sync failed: {reason}. Retrying in {delay:.1f} s.",
    ),
    "error": ("Galat", "Error"),
    "interrupted": (
        "Dihentikan. Entri yang sudah tersimpan tetap tersimpan.",
        "Interrupted. Entries already saved stay saved.",
    ),
    "init_created": (
        "Laptop {name!r} siap. Data di {data_dir}.",
        "Laptop {name!r} is ready. Data in {data_dir}.",
    ),
    "init_exists": (
        "Sudah diinisialisasi sebagai {name!r} (tidak ada yang diubah). Data di {data_dir}.",
        "Already initialised as {name!r} (nothing changed). Data in {data_dir}.",
    ),
    "node_id": ("ID node laptop ini: {node_id}", "This laptop's node id: {node_id}"),
    "saved": ("#{seq}  {tps}  {form}  disimpan", "#{seq}  {tps}  {form}  saved"),
    "saved_flags": (
        "#{seq}  {tps}  {form}  disimpan dengan catatan:",
        "#{seq}  {tps}  {form}  saved with flags:",
    ),
    "rejected": ("DITOLAK  {where}{field}: {reason}", "REJECTED  {where}{field}: {reason}"),
    "where": ("{source} #{number}", "{source} #{number}"),
    "where_line": ("{source} #{number} (baris {line})", "{source} #{number} (line {line})"),
    "enter_done": (
        "Selesai: {saved} entri disimpan ({flagged} dengan catatan), {rejected} ditolak.",
        "Done: {saved} entries saved ({flagged} with flags), {rejected} rejected.",
    ),
    "enter_none_rejected": (
        "Tidak ada entri yang ditolak.",
        "No entry was rejected.",
    ),
    "enter_some_rejected": (
        "Perbaiki entri yang ditolak lalu masukkan lagi; entri lain sudah tersimpan.",
        "Fix the rejected entries and enter them again; the others are saved.",
    ),
    "progress": (
        "dibaca {read}, disimpan {saved}, ditolak {rejected}",
        "read {read}, saved {saved}, rejected {rejected}",
    ),
    "state_local": ("lokal saja", "local only"),
    "state_at_hub": ("di hub", "at hub"),
    "state_confirmed": ("terkonfirmasi pusat", "confirmed upstream"),
    "list_header": (
        "{seq:>6}  {hash:<12}  {tps:<13}  {form:<10}  {state:<19}  {flags}",
        "{seq:>6}  {hash:<12}  {tps:<13}  {form:<10}  {state:<19}  {flags}",
    ),
    "col_seq": ("no", "seq"),
    "col_hash": ("hash", "hash"),
    "col_tps": ("TPS", "TPS"),
    "col_form": ("formulir", "form"),
    "col_state": ("status", "state"),
    "col_flags": ("catatan", "flags"),
    "list_empty": ("Belum ada entri.", "No entries yet."),
    "not_found": ("Tidak ada entri nomor {seq}.", "There is no entry {seq}."),
    "show_head": ("Entri #{seq}  ({state})", "Entry #{seq}  ({state})"),
    "show_hash": ("hash: {hash}", "hash: {hash}"),
    "show_entered": (
        "dimasukkan {at} oleh {operator}",
        "entered {at} by {operator}",
    ),
    "show_supersedes": ("menggantikan: {hash}", "supersedes: {hash}"),
    "show_no_flags": ("Tanpa catatan.", "No flags."),
    "show_flags": ("Catatan:", "Flags:"),
    "status_laptop": (
        "Laptop:         {name}  (ID node {node_id})",
        "Laptop:         {name}  (node id {node_id})",
    ),
    "status_entries": (
        "Entri:          {entries} (terakhir #{last_seq}), {flagged} dengan catatan",
        "Entries:        {entries} (last #{last_seq}), {flagged} with flags",
    ),
    "status_hub": ("Hub:            {hub}", "Hub:            {hub}"),
    "status_no_hub": (
        "belum pernah terhubung (jalankan c1client sync)",
        "not connected yet (run c1client sync)",
    ),
    "status_pending": (
        "Status di hub:  MENUNGGU persetujuan koordinator (kode {code})",
        "At the hub:     PENDING the coordinator's approval (code {code})",
    ),
    "status_approved": (
        "Status di hub:  disetujui",
        "At the hub:     approved",
    ),
    "status_revoked": (
        "Status di hub:  DICABUT: entri baru ditolak; hubungi koordinator",
        "At the hub:     REVOKED: new entries are refused; see the coordinator",
    ),
    "status_local": (
        "Lokal saja:     {count}{oldest}",
        "Local only:     {count}{oldest}",
    ),
    "status_oldest": (" (tertua dimasukkan {at})", " (oldest entered {at})"),
    "status_at_hub": ("Di hub:         {count}", "At hub:         {count}"),
    "status_confirmed": ("Terkonfirmasi:  {count}", "Confirmed:      {count}"),
    "status_scans": (
        "Pindaian:       {local} lokal ({mb} MB menunggu), {at_hub} di hub, {upstream} di pusat",
        "Scans:          {local} local ({mb} MB to send), {at_hub} at hub, {upstream} upstream",
    ),
    "verify_ok": ("Semua {n} entri terverifikasi.", "All {n} entries verified."),
    "verify_bad": (
        "{count} masalah ditemukan ({n} entri diperiksa):",
        "{count} problems found ({n} entries checked):",
    ),
    "verify_problem": ("  entri #{seq}: {what}", "  entry #{seq}: {what}"),
    "verify_store_problem": ("  penyimpanan: {what}", "  store: {what}"),
}


class Messages:
    """Formats messages in one language (``"id"`` or ``"en"``)."""

    def __init__(self, lang: str):
        self.lang = lang
        self._i = 1 if lang == "en" else 0

    def __call__(self, key: str, **values: object) -> str:
        return MESSAGES[key][self._i].format(**values)

    def pick(self, indonesian: str, english: str) -> str:
        """The one of two texts in this language."""
        return english if self._i else indonesian
