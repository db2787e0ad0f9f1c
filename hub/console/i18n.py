"""The hub's page words: Indonesian (default) and English, for the console and for the
read-only page of the root and PostgreSQL hubs (``hub/dashboard.py``), one table.
``WORDS[key] = (id, en)``; both carry the same ``{placeholders}`` (tests/hub/test_console.py
checks it)."""

from __future__ import annotations

from typing import Any

WORDS: dict[str, tuple[str, str]] = {
    "title": ("Konsol koordinator — {name}", "Coordinator's console — {name}"),
    "other_lang": ("English", "Bahasa Indonesia"),
    "nav_room": ("Ruangan", "Room"),
    "nav_conflicts": ("Konflik", "Conflicts"),
    "nav_flags": ("Catatan aturan", "Rule flags"),
    "nav_progress": ("Kemajuan", "Progress"),
    "nav_forks": ("Fork", "Forks"),
    "nav_exports": ("Ekspor", "Exports"),
    "nav_address": ("Alamat hub", "Hub address"),
    "accepted": ("Entri diterima", "Entries accepted"),
    "held": ("Entri ditahan", "Entries held"),
    "single": ("TPS satu entri", "TPS single"),
    "verified": ("TPS terverifikasi", "TPS verified"),
    "conflict": ("TPS konflik", "TPS in conflict"),
    "forks": ("Fork", "Forks"),
    "backlog": ("Antrean ke pusat", "Backlog upstream"),
    "forks_unapproved": ("Fork perangkat tak disetujui", "Forks of unapproved keys"),
    "stray_note": (
        "{n} fork dari kunci yang tidak pernah disetujui: disimpan sebagai bukti, bukan "
        "perangkat ruangan ini, tidak ada entrinya yang dihitung.",
        "{n} fork(s) of keys never approved: kept as evidence; not this room's devices, "
        "nothing of theirs is counted.",
    ),
    "live_on": ("langsung", "live"),
    "live_poll": ("diperbarui tiap 2 dtk", "updated every 2 s"),
    "live_off": ("tidak tersambung ke hub", "not connected to the hub"),
    "admin_ok": (
        "Anda di mesin hub: persetujuan dan koreksi bisa dilakukan di sini.",
        "You are on the hub machine: approvals and corrections can be made here.",
    ),
    "read_only": (
        "HANYA BACA: tindakan admin hanya dari mesin hub sendiri (buka http://127.0.0.1:{port}/ "
        "di mesin hub).",
        "READ-ONLY: admin actions only from the hub machine itself (open "
        "http://127.0.0.1:{port}/ on the hub machine).",
    ),
    "why_not_hub_machine": ("peramban ini bukan di mesin hub", "this browser is not on the hub"),
    "why_not_loopback_host": (
        "alamat halaman bukan 127.0.0.1/localhost",
        "the page's address is not 127.0.0.1/localhost",
    ),
    "fork_alert": (
        "PERHATIAN: {n} perangkat menandatangani dua riwayat berbeda (folder data disalin?). "
        "Entrinya ditahan. Lihat Fork.",
        "ATTENTION: {n} device(s) signed two different histories (a copied data folder?). "
        "Their entries are held. See Forks.",
    ),
    "pending_alert": (
        "perangkat menunggu persetujuan: cocokkan kode pembandingnya dengan layar laptop, lalu "
        "Setujui.",
        "device(s) waiting for approval: compare the comparison code with the laptop's screen, "
        "then Approve.",
    ),
    "upstream": ("Pengiriman ke pusat", "Upstream"),
    "up_none": ("tidak ada (hub ini tidak meneruskan)", "none (this hub forwards nowhere)"),
    "up_pending": (
        "Hub ini belum disetujui pusat, kode {code}",
        "Not approved upstream yet, code {code}",
    ),
    "oldest": ("tertua {age}", "oldest {age}"),
    "eta": ("selesai kira-kira {eta}", "done in about {eta}"),
    "confirmed": ("terkonfirmasi {n}", "confirmed {n}"),
    "rejected": ("ditolak pusat {n}", "refused upstream {n}"),
    "devices": ("Perangkat", "Devices"),
    "id": ("ID perangkat", "Device id"),
    "role": ("Peran", "Role"),
    "name": ("Nama", "Name"),
    "state": ("Status", "State"),
    "code": ("Kode pembanding", "Comparison code"),
    "entries": ("Entri", "Entries"),
    "last_seen": ("Terakhir terlihat", "Last seen"),
    "actions": ("Tindakan", "Actions"),
    "approve": ("Setujui", "Approve"),
    "revoke": ("Cabut", "Revoke"),
    "role_laptop": ("laptop operator", "operator laptop"),
    "role_hub": ("hub", "hub"),
    "role_coordinator": ("koordinator", "coordinator"),
    "st_pending": ("menunggu", "pending"),
    "st_approved": ("disetujui", "approved"),
    "st_revoked": ("dicabut", "revoked"),
    "st_up": ("tersambung", "up"),
    "st_down": ("terputus", "down"),
    "st_backoff": ("menunggu coba lagi", "backing off"),
    "st_stopped": ("berhenti", "stopped"),
    "st_none": ("tidak ada", "none"),
    "forked": ("FORK — dihentikan", "FORK — stopped"),
    "confirm_approve_laptop": (
        "Setujui LAPTOP OPERATOR “{name}” ({id})? Kode di layar laptop harus {code}. Entrinya "
        "akan dihitung dan diteruskan ke pusat.",
        "Approve OPERATOR LAPTOP “{name}” ({id})? The laptop's screen must show {code}. Its "
        "entries will be counted and forwarded upstream.",
    ),
    "confirm_approve_hub": (
        "Setujui HUB “{name}” ({id})? Kode di layarnya harus {code}. Artinya: hub ini menerima "
        "aliran hub itu dan SEMUA laptop yang disetujui hub itu ikut dipercaya di sini.",
        "Approve HUB “{name}” ({id})? Its screen must show {code}. This means: this hub takes "
        "that hub's stream, and EVERY laptop that hub approved is trusted here too.",
    ),
    "confirm_revoke": (
        "Cabut {role} “{name}” ({id})? Entri yang sudah diterima tetap; entri berikutnya ditolak.",
        "Revoke {role} “{name}” ({id})? Entries already accepted stay; later ones are refused.",
    ),
    "confirm": ("Ya, lakukan", "Yes, do it"),
    "cancel": ("Batal (Esc)", "Cancel (Esc)"),
    "filter": ("Saring", "Filter"),
    "all": ("semua", "all"),
    "search": ("Cari", "Search"),
    "page": ("Halaman {n} dari {of}", "Page {n} of {of}"),
    "prev": ("‹ Sebelumnya", "‹ Previous"),
    "next": ("Berikutnya ›", "Next ›"),
    "none": ("tidak ada", "none"),
    "conflicts": ("Konflik: entri yang berbeda untuk satu TPS", "Conflicts: entries that disagree"),
    "form": ("Formulir", "Form"),
    "readings": ("Bacaan", "Readings"),
    "open": ("Buka", "Open"),
    "conflict_title": ("Konflik {form} TPS {tps}", "Conflict {form} TPS {tps}"),
    "field": ("Isian", "Field"),
    "reading": ("Bacaan {n}", "Reading {n}"),
    "typed_by": ("diketik oleh", "typed by"),
    "at": ("pada", "at"),
    "device": ("perangkat", "device"),
    "differs_in": ("Berbeda di", "Differs in"),
    "other_fields": ("Data rekaman", "Record data"),
    "choose": ("Formulir kertas mendukung bacaan ini", "The paper supports this reading"),
    "resolve_hint": (
        "Pilih bacaan yang sesuai dengan formulir kertas. Hub membuat entri baru yang "
        "ditandatangani kunci koordinator dan menggantikan bacaan lain; tidak ada yang diubah "
        "atau dihapus.",
        "Choose the reading the paper form supports. The hub makes a new entry, signed by the "
        "coordinator's key, that supersedes the other readings; nothing is edited or deleted.",
    ),
    "resolved": (
        "Diselesaikan: {n} entri koreksi disimpan.",
        "Resolved: {n} correcting entries stored.",
    ),
    "not_conflict": (
        "TPS ini tidak (lagi) konflik: {status}.",
        "This TPS is not (or no longer) in conflict: {status}.",
    ),
    "scans": ("Pindaian", "Scans"),
    "scan_waiting": ("pindaian menunggu", "scan pending"),
    "scan_held": ("{n} halaman", "{n} page(s)"),
    "scan_page": ("Halaman {n}", "Page {n}"),
    "scan_keys": ("+ − perbesar · 0 pas · panah geser", "+ − zoom · 0 fit · arrows pan"),
    "back_to_flags": ("Daftar catatan aturan", "Rule flags list"),
    "entry_pos": ("entri {n} dari {of}", "entry {n} of {of}"),
    "prev_entry": ("‹ sebelumnya (k)", "‹ previous (k)"),
    "next_entry": ("berikutnya (j) ›", "next (j) ›"),
    "numbers": ("Angka", "Numbers"),
    "value": ("Angka", "Number"),
    "entry_keys": (
        "j berikutnya · k sebelumnya · Esc kembali ke daftar · s pindaian · + − 0 perbesar/pas",
        "j next · k previous · Esc back to the list · s scans · + − 0 zoom/fit",
    ),
    "no_scans": ("entri ini tanpa pindaian", "this entry has no scans"),
    "flags": ("Catatan aturan (entri hidup)", "Rule flags (live entries)"),
    "rule": ("Aturan", "Rule"),
    "meaning": ("Arti", "Meaning"),
    "confirmed_on_paper": ("dikonfirmasi sesuai kertas", "confirmed as on paper"),
    "note": ("Catatan", "Note"),
    "progress": ("Kemajuan terhadap daftar TPS", "Progress against the polling-station list"),
    "no_master": (
        "Hub ini berjalan tanpa daftar TPS (--wilayah): kemajuan tidak bisa dihitung.",
        "This hub runs without a polling-station master (--wilayah): no progress to show.",
    ),
    "kecamatan": ("Kecamatan", "Kecamatan"),
    "kelurahan": ("Kelurahan/desa", "Kelurahan/village"),
    "expected": ("TPS seharusnya", "TPS expected"),
    "missing": ("Belum masuk", "Missing"),
    "print": ("Cetak", "Print"),
    "search_place": ("Kode TPS atau nama tempat", "TPS code or place name"),
    "forks_title": ("Fork: perangkat dengan dua riwayat", "Forks: devices with two histories"),
    "fork_way_back": (
        "Cara memulihkan laptop itu: jangan pakai lagi salinan folder datanya. Di laptop, "
        "buat identitas baru (c1client init di folder baru), daftarkan lagi ke hub, setujui di "
        "sini, lalu ketik ulang formulir yang entrinya ditahan. Entri lama tetap sebagai bukti.",
        "To bring that laptop back: never use the copied data folder again. On the laptop, make a "
        "new identity (c1client init in a new folder), enroll it at the hub, approve it here, "
        "and type again the forms whose entries are held. The old entries stay as evidence.",
    ),
    "seq": ("Urutan", "Seq"),
    "first": ("Rekaman pertama", "First record"),
    "second": ("Rekaman kedua", "Second record"),
    "exports": ("Ekspor", "Exports"),
    "export_csv": ("CSV (spreadsheet), entri diterima", "CSV (spreadsheet), accepted entries"),
    "export_jsonl": ("JSON lines, entri diterima", "JSON lines, accepted entries"),
    "export_bundle": (
        "Bundel bertanda tangan (.c1b), bisa diperiksa dengan c1hub verify",
        "Signed bundle (.c1b), checked with c1hub verify",
    ),
    "address_title": ("Alamat hub untuk laptop", "The hub's address for laptops"),
    "address_hint": (
        "Jika laptop tidak menemukan hub sendiri (mDNS diblokir), bacakan alamat ini:",
        "If laptops do not find the hub by themselves (mDNS blocked), read this address out:",
    ),
    "read_out": ("Bacakan: {line}", "Read out: {line}"),
    "no_lan": (
        "Hub ini hanya mendengar di {host}: laptop lain tidak bisa menjangkaunya. Jalankan "
        "dengan --host 0.0.0.0.",
        "This hub listens only on {host}: other laptops cannot reach it. Run it with "
        "--host 0.0.0.0.",
    ),
    "totals": ("Perolehan suara", "Vote totals"),
    "hubs": ("Hub pengirim", "Hubs sending"),
    "votes": ("Suara", "Votes"),
    "scans_line": (
        "Pindaian: {held} dari {expected} halaman di sini, {missing} menunggu"
        " ({entries} entri: pindaian menunggu, bukan hilang); {pending} halaman"
        " ({mb} MB) belum di pusat",
        "Scans: {held} of {expected} pages here, {missing} pending"
        " ({entries} entries: scan pending, not missing); {pending} pages"
        " ({mb} MB) not upstream yet",
    ),
    "ago": ("{s} dtk lalu", "{s} s ago"),
    "computing": (
        "Menghitung status ruangan… (halaman ini diperbarui sendiri)",
        "Deriving the room's status… (this page updates itself)",
    ),
    "restarted": (
        "Hub dimulai ulang: muat ulang halaman (F5) sebelum menyetujui atau mengoreksi.",
        "The hub restarted: reload the page (F5) before approving or correcting.",
    ),
    "refused": ("Ditolak: {why}", "Refused: {why}"),
    "working": ("Memproses…", "Working…"),
    "done": ("Selesai", "Done"),
    # The read-only page of the root and of PostgreSQL hubs (hub/dashboard.py) says some of
    # the console's things more briefly, for its own layout:
    "dash_title": ("Hub C1 — {name}", "C1 hub — {name}"),
    "dash_fork_alert": (
        "PERHATIAN: {n} perangkat menandatangani dua riwayat berbeda (folder data disalin?). "
        "Entri perangkat itu ditahan. Lihat daftar perangkat.",
        "ATTENTION: {n} device(s) signed two different histories (a copied data folder?). "
        "Their entries are held. See the device list.",
    ),
    "dash_pending_alert": (
        "{n} laptop menunggu persetujuan: cocokkan kode di layar laptop, lalu `c1hub approve ID`.",
        "{n} laptop(s) waiting for approval: compare the code with the laptop's screen, then "
        "`c1hub approve ID`.",
    ),
    "dash_conflicts": ("Konflik (perlu entri koreksi)", "Conflicts (need a correcting entry)"),
    "dash_flags": ("Catatan aturan R1–R13 (entri hidup)", "Rule flags R1–R13 (live entries)"),
    "dash_up_pending": ("Hub ini belum disetujui pusat", "This hub is not approved upstream yet"),
    "dash_progress": ("Kemajuan per kecamatan", "Progress per kecamatan"),
    "code_short": ("Kode", "Code"),
    "devices_more": (
        "{n} perangkat pertama dari {total}; semuanya: `c1hub devices` atau "
        "GET /v1/devices?limit=1000&after=ID.",
        "The first {n} of {total} devices; all of them: `c1hub devices`, or "
        "GET /v1/devices?limit=1000&after=ID.",
    ),
    "backlog_short": ("Antrean", "Backlog"),
    "oldest_label": ("Tertua", "Oldest"),
    "confirmed_label": ("Terkonfirmasi", "Confirmed"),
    "rejected_label": ("Ditolak pusat", "Refused upstream"),
    "entered": ("TPS masuk", "TPS entered"),
    "missing_short": ("Belum", "Missing"),
    "by_region": ("Hasil per wilayah", "Results per region"),
    "region": ("Wilayah", "Region"),
    "country": ("seluruh Indonesia", "the whole country"),
    "keys": (
        "Tombol: g r ruangan · g c konflik · g f catatan · g p kemajuan · / cari · j k baris · "
        "a setujui · x cabut · Enter buka",
        "Keys: g r room · g c conflicts · g f flags · g p progress · / search · j k rows · "
        "a approve · x revoke · Enter open",
    ),
}


# The words the page's script uses (console.js); only these go into the page's script data.
SCRIPT_WORDS = (
    "live_on", "live_poll", "live_off", "working", "done", "refused", "restarted",
    "confirm_approve_laptop", "confirm_approve_hub", "confirm_revoke", "role_laptop",
    "role_hub", "role_coordinator",
)  # fmt: skip


def words(lang: str) -> dict[str, str]:
    i = 0 if lang == "id" else 1
    return {k: v[i] for k, v in WORDS.items()}


def script_words(lang: str) -> dict[str, str]:
    i = 0 if lang == "id" else 1
    return {k: WORDS[k][i] for k in SCRIPT_WORDS}


def t(lang: str, key: str, **kw: Any) -> str:
    return WORDS[key][0 if lang == "id" else 1].format(**kw)


def duration(lang: str, seconds: float | None) -> str:
    if seconds is None:
        return "—"
    s = int(seconds)
    if s < 120:
        return f"{s} {'dtk' if lang == 'id' else 's'}"
    if s < 7200:
        return f"{s // 60} {'mnt' if lang == 'id' else 'min'}"
    h, m = ("jam", "mnt") if lang == "id" else ("h", "min")
    return f"{s // 3600} {h} {s % 3600 // 60} {m}"
