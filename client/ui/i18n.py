"""The station page's words: Indonesian (default) and English.

``WORDS[key] = (Indonesian, English)``; both carry the same ``{placeholders}`` (a test checks
it, and that every key the page's scripts use is here). ``words(lang)`` gives one language.
Messages about a request (errors) come with the error itself (``UiError``: message, pesan).
"""

from __future__ import annotations

WORDS: dict[str, tuple[str, str]] = {
    "title": ("C1 — Stasiun entri", "C1 — Entry station"),
    "nav": ("Layar", "Screens"),
    "nav_form": ("Formulir", "Form"),
    "nav_entries": ("Entri", "Entries"),
    "nav_work": ("Kerja", "Work"),
    "nav_conn": ("Koneksi", "Connection"),
    "nav_stats": ("Kinerja", "Pace"),
    "other_lang": ("EN", "ID"),
    "other_lang_long": ("English (Ctrl+Shift+L)", "Bahasa Indonesia (Ctrl+Shift+L)"),
    "signout": ("Ganti", "Change"),
    "signout_long": ("Ganti operator (Ctrl+Shift+Q)", "Change operator (Ctrl+Shift+Q)"),
    "operator": ("Operator", "Operator"),
    "offline": (
        "Stasiun tidak tersambung. Angka tetap di layar dan dikirim lagi begitu tersambung.",
        "The station is not answering. The numbers stay on screen and are sent again as soon "
        "as it answers.",
    ),
    "loading": ("Memuat…", "Loading…"),
    # sign-in
    "signin_title": ("Masuk", "Sign in"),
    "operator_name": ("Nama operator", "Operator name"),
    "signin_hint": (
        "Ketik nama Anda lalu Enter. Nama ini ditulis di setiap entri yang Anda simpan.",
        "Type your name and press Enter. It is written into every entry you save.",
    ),
    # start
    "start_title": ("Formulir baru", "New form"),
    "form_type": ("Jenis formulir (satu tombol)", "Form type (one key)"),
    "form_PPWP": ("PPWP — Presiden dan Wakil Presiden", "PPWP — President"),
    "form_DPR": ("DPR", "DPR"),
    "form_DPD": ("DPD", "DPD"),
    "form_DPRD_PROV": ("DPRD Provinsi", "DPRD Province"),
    "form_DPRD_KABKO": ("DPRD Kabupaten/Kota", "DPRD Regency/City"),
    "tps_code": (
        "Kode TPS (13 angka) atau nama kelurahan",
        "TPS code (13 digits) or kelurahan name",
    ),
    "start_hint": (
        "Enter: mulai · ↓↑ pilih kelurahan · Shift+Tab: jenis formulir · Esc: kembali ke draf",
        "Enter: start · ↓↑ choose a kelurahan · Shift+Tab: form type · Esc: back to the draft",
    ),
    "pick_form": ("Pilih jenis formulir dulu (tombol 1–5).", "Choose a form type (keys 1–5)."),
    "tps_unknown": (
        "TPS ini tidak terdaftar di data wilayah: periksa kode di formulir.",
        "This TPS is not in the polling-station master: check the code on the form.",
    ),
    "tps_digits": ("{n} dari 13 angka", "{n} of 13 digits"),
    "tps_count": ("{n} TPS", "{n} TPS"),
    "already_here": (
        "sudah ada di laptop ini (#{seq})",
        "already on this laptop (#{seq})",
    ),
    "open_draft": (
        "Draf {form} TPS {tps} belum disimpan. Esc: kembali ke draf · Ctrl+Delete: buang draf.",
        "Draft {form} TPS {tps} is not saved. Esc: back to the draft · Ctrl+Delete: discard it.",
    ),
    "draft_discarded": ("Draf {form} TPS {tps} dibuang.", "Draft {form} TPS {tps} discarded."),
    # form
    "scans": ("Pindaian formulir", "Scanned pages"),
    "scan_keys": (
        "+ − perbesar · * putar · / pas · Ctrl+panah geser · PgUp/PgDn halaman",
        "+ − zoom · * rotate · / fit · Ctrl+arrows pan · PgUp/PgDn page",
    ),
    "scan_actions": (
        "Ctrl+O pilih berkas · Ctrl+I folder pemindai · seret berkas ke sini · "
        "Ctrl+Delete lepas halaman",
        "Ctrl+O pick files · Ctrl+I scanner folder · drop files here · Ctrl+Delete remove page",
    ),
    "scan_empty": (
        "Belum ada pindaian. Ctrl+O untuk memilih berkas, Ctrl+I untuk folder pemindai, atau "
        "seret berkas ke sini.",
        "No scan yet. Ctrl+O to pick files, Ctrl+I for the scanner folder, or drop files here.",
    ),
    "scan_page": ("halaman formulir", "form page"),
    "scan_pos": (
        "Halaman {page}/{pages} · {zoom}% · {rot}°",
        "Page {page}/{pages} · {zoom}% · {rot}°",
    ),
    "uploading": ("Menyimpan pindaian…", "Storing the scan…"),
    "checks": ("Pemeriksaan (R1–R11)", "Checks (R1–R11)"),
    "no_flags": ("Tidak ada temuan.", "Nothing found."),
    "form_keys": (
        "Enter/Tab: kotak berikut · Shift+Tab: kembali · Esc: kosongkan · "
        "Ctrl+Enter: simpan · kosong ≠ 0 (ketik 0)",
        "Enter/Tab: next box · Shift+Tab: back · Esc: clear · Ctrl+Enter: save · "
        "empty ≠ 0 (type 0)",
    ),
    "auto_advance": (
        "Lompat otomatis setelah 3 angka (Ctrl+Shift+A)",
        "Jump on after 3 digits (Ctrl+Shift+A)",
    ),
    "auto_on": ("aktif", "on"),
    "auto_off": ("mati", "off"),
    "only_digits": ("Hanya angka 0–9.", "Digits 0–9 only."),
    "max_three": ("Paling banyak 3 angka (0–999).", "At most 3 digits (0–999)."),
    "at_end": ("Kotak terakhir. Ctrl+Enter untuk menyimpan.", "Last box. Ctrl+Enter saves."),
    "draft_kept": ("Draf tersimpan", "Draft kept"),
    "draft_typing": ("Menyimpan draf…", "Keeping the draft…"),
    "draft_offline": (
        "Stasiun tidak menjawab: angka aman di layar",
        "Station not answering: numbers safe on screen",
    ),
    "draft_closed": (
        "Formulir ini sudah disimpan (#{seq}) di tab lain",
        "This form was saved (#{seq}) in another tab",
    ),
    "mode_second": ("Entri kedua (buta)", "Second keying (blind)"),
    "mode_correction": ("Koreksi konflik", "Conflict correction"),
    "mode_koreksi": ("Koreksi dari #{seq}", "Correction of #{seq}"),
    "save_offline": (
        "Belum tersimpan: stasiun tidak menjawab. Tekan Ctrl+Enter lagi.",
        "Not saved: the station is not answering. Press Ctrl+Enter again.",
    ),
    # confirm
    "confirm_title": ("Angka sesuai formulir?", "Numbers as on the form?"),
    "note": ("Catatan (boleh kosong)", "Note (optional)"),
    "confirm_yes": ("Ya, sesuai — simpan (Enter)", "Yes, as on the form — save (Enter)"),
    "confirm_no": ("Kembali memeriksa (Esc)", "Go back and check (Esc)"),
    "differs_second": (
        "Angka Anda BERBEDA dengan entri pertama formulir ini. Periksa lagi formulirnya.",
        "Your numbers DIFFER from the first keying of this form. Check the paper again.",
    ),
    "differs_correction": (
        "Angka Anda tidak sama dengan bacaan mana pun. Periksa lagi formulirnya.",
        "Your numbers agree with none of the readings. Check the paper again.",
    ),
    # saved
    "saved": ("✓ Tersimpan #{seq} · {form} {tps}", "✓ Saved #{seq} · {form} {tps}"),
    "saved_again": (
        "Sudah tersimpan sebelumnya sebagai #{seq} · {form} TPS {tps}",
        "Already saved as #{seq} · {form} TPS {tps}",
    ),
    "saved_flags": ("{n} temuan", "{n} flags"),
    "after_agrees_second": ("sama dengan entri pertama", "agrees with the first keying"),
    "after_differs_second": ("berbeda: TPS akan konflik", "differs: the TPS will be in conflict"),
    "after_agrees_correction": ("koreksi dikirim", "correction sent"),
    "after_differs_correction": ("tidak cocok dengan bacaan mana pun", "agrees with no reading"),
    "hub_verified": ("hub: TERVERIFIKASI", "hub: VERIFIED"),
    "hub_conflict": ("hub: KONFLIK", "hub: CONFLICT"),
    "hub_single": ("hub: satu entri", "hub: single"),
    "hub_none": ("hub: belum ada", "hub: not yet"),
    # entries
    "entries_title": ("Entri di laptop ini", "Entries on this laptop"),
    "search_tps": ("Cari TPS (kode atau nama)", "Search TPS (code or name)"),
    "entries_count": ("{n} dari {total} entri", "{n} of {total} entries"),
    "entries_keys": (
        "↓↑ pilih · Enter buka · Esc kembali",
        "↓↑ choose · Enter open · Esc back",
    ),
    "entry_keys": (
        "K: Koreksi (entri baru yang menggantikan ini) · Esc: kembali ke daftar",
        "K: Correct (a new entry that supersedes this one) · Esc: back to the list",
    ),
    "col_form": ("Formulir", "Form"),
    "col_tps": ("TPS", "TPS"),
    "col_flags": ("Temuan", "Flags"),
    "col_state": ("Status", "State"),
    "col_operator": ("Operator", "Operator"),
    "col_time": ("Waktu", "Time"),
    "state_local": ("lokal", "local"),
    "state_at_hub": ("di hub", "at hub"),
    "state_confirmed": ("terkonfirmasi pusat", "confirmed upstream"),
    "state_pending": ("menunggu persetujuan", "awaiting approval"),
    "scans_complete": ("pindaian lengkap", "scans complete"),
    "scans_waiting": ("pindaian menunggu", "scans pending"),
    "superseded_by": ("diganti oleh #{seq}", "superseded by #{seq}"),
    "is_correction": ("koreksi", "correction"),
    # work list
    "work_title": ("Daftar kerja dari hub", "Work list from the hub"),
    "work_hint": (
        "Entri kedua dilakukan buta: angka entri pertama tidak pernah ditampilkan. "
        "↓↑ pilih · Enter mulai.",
        "Second keying is blind: the first keying's numbers are never shown. "
        "↓↑ choose · Enter start.",
    ),
    "work_second": ("Perlu entri kedua", "Needs a second keying"),
    "work_correction": ("Konflik menunggu koreksi", "Conflicts waiting for a correction"),
    "work_none": ("Tidak ada.", "None."),
    "work_needs_second": ("entri kedua", "second keying"),
    "work_needs_correction": ("{n} bacaan berbeda", "{n} readings differ"),
    "work_mine": ("salah satunya dari laptop ini", "one of them from this laptop"),
    # connection
    "conn_title": ("Koneksi ke hub", "Connection to the hub"),
    "conn_no_hub": (
        "Belum ada hub. Laptop mencarinya terus (mDNS, lalu alamat tersimpan).",
        "No hub yet. The laptop keeps looking (mDNS, then the last address that worked).",
    ),
    "conn_hub": ("Hub", "Hub"),
    "conn_found": ("Ditemukan lewat", "Found by"),
    "found_mdns": ("mDNS (jaringan lokal)", "mDNS (local network)"),
    "found_address": ("alamat yang diberikan (--hub)", "the address given (--hub)"),
    "found_cached": ("alamat terakhir yang berhasil", "the last address that worked"),
    "found_unknown": ("-", "-"),
    "conn_state": ("Status laptop ini", "This laptop's state"),
    "hubstate_pending": ("MENUNGGU PERSETUJUAN", "PENDING APPROVAL"),
    "hubstate_approved": ("disetujui", "approved"),
    "hubstate_revoked": ("DICABUT", "REVOKED"),
    "conn_code_say": (
        "Bacakan kode ini kepada koordinator. Ia harus melihat kode yang sama di layar hub:",
        "Read this code out to the coordinator. They must see the same code on the hub:",
    ),
    "conn_node": ("Laptop {id}", "Laptop {id}"),
    "conn_last_ok": ("Terakhir tersambung", "Last reached"),
    "conn_counts": ("Entri", "Entries"),
    "conn_counts_v": (
        "{entries} · lokal {local} · di hub {at_hub} · terkonfirmasi pusat {confirmed}",
        "{entries} · local {local} · at hub {at_hub} · confirmed upstream {confirmed}",
    ),
    "conn_error": ("Sinkronisasi terakhir gagal", "Last sync failed"),
    "conn_upstream": ("Pusat (menurut hub)", "Upstream (as the hub says)"),
    "conn_upstream_v": (
        "{state} · antrean {backlog} · terkonfirmasi {confirmed}",
        "{state} · backlog {backlog} · confirmed {confirmed}",
    ),
    "up_up": ("tersambung", "up"),
    "up_down": ("TERPUTUS", "DOWN"),
    "up_backoff": ("mencoba lagi", "retrying"),
    "up_none": ("tidak meneruskan", "forwards nowhere"),
    "up_stopped": ("berhenti", "stopped"),
    "conn_laptop": ("Laptop ini", "This laptop"),
    "badge_no_hub": ("Hub: belum ada", "Hub: none yet"),
    "badge_pending": ("Menunggu persetujuan (F9)", "Pending approval (F9)"),
    "badge_ok": ("Hub ✓ · lokal {local}", "Hub ✓ · local {local}"),
    # pace
    "stats_title": ("Kinerja sesi ini", "This session's pace"),
    "stats_operator": ("Operator", "Operator"),
    "stats_since": ("Sejak", "Since"),
    "stats_forms": ("Formulir tersimpan", "Forms saved"),
    "stats_per_hour": ("Formulir per jam", "Forms per hour"),
    "stats_keys": ("Ketukan per formulir", "Keystrokes per form"),
    "stats_keys_hour": ("Ketukan per jam", "Keystrokes per hour"),
    "stats_seconds": ("Detik per formulir", "Seconds per form"),
    "stats_flags": ("Formulir dengan temuan", "Forms with flags"),
    "stats_refused": ("Tombol ditolak per 1000 ketukan", "Refused keys per 1,000 keystrokes"),
    # scanner folder
    "inbox_title": ("Folder pemindai (terbaru di atas)", "Scanner folder (newest first)"),
    "inbox_keys": (
        "↓↑ pilih · Enter lampirkan · Esc tutup",
        "↓↑ choose · Enter attach · Esc close",
    ),
    "inbox_empty": ("Folder kosong (atau --scans tidak diberikan).", "Empty (or no --scans)."),
    "inbox_used": ("sudah dipakai #{seq}", "used in #{seq}"),
}

FORMS = ("PPWP", "DPR", "DPD", "DPRD_PROV", "DPRD_KABKO")


def words(lang: str) -> dict[str, str]:
    i = 0 if lang == "id" else 1
    return {k: v[i] for k, v in WORDS.items()}


# (key, value, label) of the form-type control, in the paper's order: one key each.
FORM_KEYS: list[tuple[str, str, str]] = [
    ("1", "PPWP", "PPWP"),
    ("2", "DPR", "DPR"),
    ("3", "DPD", "DPD"),
    ("4", "DPRD_PROV", "DPRD Provinsi"),
    ("5", "DPRD_KABKO", "DPRD Kab/Kota"),
]
