// The coordinator's console: live counts (server-sent events, polling as the fallback),
// approve/revoke with a confirmation that repeats the role, conflict resolution, keys.
// No rule is computed here: the hub derives everything; this file only shows it.
"use strict";
(function () {
  const body = document.body;
  const W = JSON.parse(document.getElementById("words").textContent);
  const lang = body.dataset.lang;
  const token = body.dataset.token;
  const admin = body.dataset.admin === "1";
  let devicesRev = body.dataset.devicesRev;
  let entriesRev = body.dataset.entriesRev;
  let devicesAt = Date.now();
  let devicesTimer = null;
  const ENTRIES_EVERY_MS = 10000; // the device table's entry counts: at most this often
  let conflictsRev = body.dataset.conflictsRev;
  let version = Number(body.dataset.version);
  let epoch = body.dataset.epoch;
  const live = document.getElementById("live");

  function fmt(key, vals) {
    return (W[key] || key).replace(/\{(\w+)\}/g, (_, k) => (k in vals ? vals[k] : ""));
  }
  function flash(text, bad) {
    const el = document.getElementById("flash");
    el.textContent = text;
    el.className = bad ? "alert bad" : "alert ok";
  }
  function setLive(state) {
    live.dataset.live = state;
    live.textContent = W["live_" + state] || state;
  }
  function withLang(path) {
    const u = new URL(path, location.href);
    if (lang === "en") u.searchParams.set("lang", "en");
    return u.pathname + u.search;
  }

  async function refreshPart(id, path) {
    const el = document.getElementById(id);
    if (!el) return;
    const q = new URLSearchParams(location.search);
    const r = await fetch(withLang(path + "?" + q.toString()), { headers: { Accept: "text/html" } });
    if (!r.ok) return;
    const holder = document.createElement("div");
    holder.innerHTML = await r.text();
    const fresh = holder.firstElementChild;
    const focused = document.activeElement && el.contains(document.activeElement)
      ? document.activeElement.closest("tr") : null;
    const keep = focused ? focused.dataset.deviceId : null;
    el.replaceWith(fresh);
    if (keep) {
      const again = fresh.querySelector(`tr[data-device-id="${keep}"]`);
      if (again) again.focus();
    }
  }

  function devicesNow() {
    if (devicesTimer) { clearTimeout(devicesTimer); devicesTimer = null; }
    devicesAt = Date.now();
    refreshPart("devices-part", "/console/part/devices");
  }

  function apply(room) {
    if (room.epoch !== epoch) { // the hub restarted: its counts start again, old tokens are void
      epoch = room.epoch;
      version = -1;
      if (admin) flash(W.restarted, true);
    }
    if (room.v <= version) return;
    version = room.v;
    for (const [k, v] of Object.entries(room.counts)) {
      const text = v === null ? "…" : String(v);
      document.querySelectorAll(`[data-count="${k}"], [data-nav-count="${k}"]`)
        .forEach((el) => { if (el.textContent !== text) el.textContent = text; });
    }
    const pend = document.getElementById("pending-alert");
    if (pend) {
      pend.hidden = !room.devices.pending;
      const n = pend.querySelector("[data-pending]");
      if (n) n.textContent = room.devices.pending;
    }
    if (room.devices_rev !== devicesRev) { // a device came, or was approved, revoked, forked
      devicesRev = room.devices_rev;
      entriesRev = room.entries_rev;
      devicesNow();
    } else if (room.entries_rev !== entriesRev) { // only entry counts: not every second
      entriesRev = room.entries_rev;
      if (!devicesTimer) {
        const wait = Math.max(0, devicesAt + ENTRIES_EVERY_MS - Date.now());
        devicesTimer = setTimeout(devicesNow, wait);
      }
    }
    if (room.conflicts_rev !== conflictsRev) {
      conflictsRev = room.conflicts_rev;
      refreshPart("conflicts-part", "/console/part/conflicts");
    }
  }

  let polling = null;
  function poll() {
    if (polling) return;
    setLive("poll");
    polling = setInterval(async () => {
      try {
        const r = await fetch("/console/state.json", { cache: "no-store" });
        if (r.ok) { apply(await r.json()); setLive("poll"); } else setLive("off");
      } catch (e) { setLive("off"); }
    }, 2000);
  }
  function listen() {
    if (!window.EventSource) { poll(); return; }
    const es = new EventSource("/console/events");
    let opened = false;
    es.onopen = () => { opened = true; setLive("on"); };
    es.onmessage = (ev) => { setLive("on"); apply(JSON.parse(ev.data)); };
    es.onerror = () => {
      if (!opened) { es.close(); poll(); } else { setLive("off"); }
    };
  }

  // -- admin actions -------------------------------------------------------------------------
  const dialog = document.getElementById("confirm");
  let pending = null;
  function ask(text, run) {
    document.getElementById("confirm-text").textContent = text;
    pending = run;
    dialog.showModal();
    dialog.querySelector('[data-action="confirm"]').focus();
  }
  dialog.addEventListener("click", async (ev) => {
    const b = ev.target.closest("button");
    if (!b) return;
    const run = pending;
    pending = null;
    dialog.close();
    if (b.dataset.action === "confirm" && run) await run();
  });
  async function post(path, form) {
    flash(W.working, false);
    const r = await fetch(path, {
      method: "POST",
      headers: { "X-Console-Token": token },
      body: form || new URLSearchParams(),
    });
    const obj = await r.json().catch(() => ({}));
    if (!r.ok) {
      const err = obj.error || {};
      flash(fmt("refused", { why: (lang === "id" && err.pesan) || err.reason || r.status }), true);
      return null;
    }
    flash(W.done, false);
    return obj;
  }
  function roleWord(role) { return W["role_" + role] || role; }
  function deviceAction(row, action) {
    const d = row.dataset;
    const vals = { name: d.name, id: d.deviceId, code: d.code, role: roleWord(d.role) };
    const text = action === "approve"
      ? fmt(d.role === "hub" ? "confirm_approve_hub" : "confirm_approve_laptop", vals)
      : fmt("confirm_revoke", vals);
    ask(text, async () => {
      await post(`/console/devices/${encodeURIComponent(d.deviceId)}/${action}`);
      refreshPart("devices-part", "/console/part/devices");
    });
  }
  document.addEventListener("click", (ev) => {
    const b = ev.target.closest("button[data-action]");
    if (!b || !admin) return;
    const a = b.dataset.action;
    if (a === "approve" || a === "revoke") deviceAction(b.closest("tr"), a);
    if (a === "choose") {
      const th = document.querySelector(`th[data-reading="${b.dataset.chosen}"]`);
      ask(`${b.textContent.trim()} — ${th ? th.innerText.replace(/\s+/g, " ") : ""}`, async () => {
        const f = new URLSearchParams({
          e: b.dataset.election, f: b.dataset.form, t: b.dataset.tps, chosen: b.dataset.chosen,
        });
        const out = await post("/console/resolve", f);
        if (out) {
          const u = new URL(location.href);
          u.searchParams.set("done", out.made.length);
          location.replace(u.toString());
        }
      });
    }
  });

  // -- keys ------------------------------------------------------------------------------------
  let g = false;
  function rows() { return Array.from(document.querySelectorAll("tr[data-device-id]")); }
  document.addEventListener("keydown", (ev) => {
    const typing = ev.target.closest("input, select, textarea") || dialog.open;
    if (typing || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const k = ev.key;
    if (g) {
      g = false;
      const to = { r: "/", c: "/#conflicts", f: "/console/flags", p: "/console/progress",
        k: "/console/forks", e: "/console/exports" }[k];
      if (to) { ev.preventDefault(); location.href = withLang(to); }
      return;
    }
    if (k === "g") { g = true; return; }
    if (k === "/") {
      const s = document.querySelector("[data-search]");
      if (s) { ev.preventDefault(); s.focus(); }
      return;
    }
    const all = rows();
    const cur = document.activeElement && document.activeElement.closest("tr[data-device-id]");
    if (k === "j" || k === "k") {
      ev.preventDefault();
      let i = cur ? all.indexOf(cur) : -1;
      i = k === "j" ? Math.min(i + 1, all.length - 1) : Math.max(i - 1, 0);
      if (all[i]) all[i].focus();
      return;
    }
    if (cur && admin && (k === "a" || k === "x")) {
      const action = k === "a" ? "approve" : "revoke";
      if (cur.querySelector(`[data-action="${action}"]`)) { ev.preventDefault(); deviceAction(cur, action); }
    }
  });

  listen();
})();
