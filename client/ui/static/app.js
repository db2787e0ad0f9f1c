// The station's page: screens, global keys, the start of a form, saving, lists.
// Keys: F2 form, F4 entries, F8 work list, F9 connection, F10 pace; Ctrl+Shift+L language;
// Ctrl+Shift+Q change operator. Keys typed while the page waits for the server (starting or
// saving a form) are kept and replayed, so a fast keyer never loses one.

import { W, ApiError, Offline, el, fmt, get, lang, msg, post, time, watchConnection } from "./api.js";
import { FormView, renderFlags } from "./form.js";
import { ScanViewer, pickFromInbox, uploadFiles } from "./scan.js";

const $ = (s, r = document) => r.querySelector(s);
const $$ = (s, r = document) => [...r.querySelectorAll(s)];

const S = {
  st: null, // /api/state
  screen: null,
  busy: 0, // >0 while waiting for the server: keys are queued
  queue: [],
  form: null, // FormView of the open draft
  viewer: null,
  saving: false,
  lastCell: null,
  force: null, // TPS for which "already entered" was shown: Enter again starts anyway
  timers: {},
  entrySel: 0,
  entries: [],
  work: [],
  workSel: 0,
  entry: null,
};

// -- small helpers ---------------------------------------------------------------------------

function setError(field, text) {
  for (const p of $$(`[data-error-for="${field}"]`)) p.textContent = text || "";
}

function clearErrors() {
  for (const p of $$("[data-error-for]")) p.textContent = "";
}

function banner(text) {
  const b = $("#banner");
  b.textContent = text || "";
  b.hidden = !text;
}

watchConnection(
  () => banner(W.offline),
  () => { if ($("#banner").textContent === W.offline) banner(""); },
);

function show(name) {
  S.screen = name;
  for (const s of $$("main > .screen")) s.hidden = s.id !== `screen-${name}`;
  for (const n of $$("#nav [data-screen]")) n.classList.toggle("on", n.dataset.screen === name);
  for (const t of Object.values(S.timers)) clearInterval(t);
  S.timers = {};
}

function busy(on) {
  S.busy += on ? 1 : -1;
  if (S.busy <= 0) {
    S.busy = 0;
    const q = S.queue.splice(0);
    for (const k of q) replay(k);
  }
}

// Replay a key typed while the page was busy, into whatever has focus now.
function replay(k) {
  const t = document.activeElement;
  if (!t || t === document.body) return;
  if (k.key.length === 1 && !k.ctrlKey && !k.altKey && !k.metaKey && t.tagName === "INPUT") {
    const ev = new KeyboardEvent("keydown", { key: k.key, bubbles: true, cancelable: true });
    if (!t.dispatchEvent(ev)) return; // refused (e.g. not a digit)
    const a = t.selectionStart ?? t.value.length;
    const b = t.selectionEnd ?? t.value.length;
    t.value = t.value.slice(0, a) + k.key + t.value.slice(b);
    t.setSelectionRange(a + 1, a + 1);
    t.dispatchEvent(new Event("input", { bubbles: true }));
    return;
  }
  t.dispatchEvent(new KeyboardEvent("keydown", {
    key: k.key, shiftKey: k.shiftKey, ctrlKey: k.ctrlKey, altKey: k.altKey, bubbles: true,
    cancelable: true,
  }));
}

window.addEventListener("keydown", (e) => {
  if (S.busy > 0 && !["Shift", "Control", "Alt", "Meta"].includes(e.key)) {
    e.preventDefault();
    e.stopPropagation();
    S.queue.push({ key: e.key, shiftKey: e.shiftKey, ctrlKey: e.ctrlKey || e.metaKey,
                   altKey: e.altKey });
  }
}, true);

// -- sign-in ---------------------------------------------------------------------------------

function showSignin() {
  show("signin");
  const i = $('#screen-signin input[name="operator"]');
  i.value = "";
  i.focus();
}

$('#screen-signin input[name="operator"]').addEventListener("keydown", async (e) => {
  if (e.key !== "Enter") return;
  e.preventDefault();
  busy(true);
  try {
    S.st = await post("/api/operator", { name: e.target.value });
    setError("operator", "");
    drawWho();
    await resume();
  } catch (err) {
    setError("operator", msg(err));
  } finally {
    busy(false);
  }
});

function drawAutoAdvance() {
  const a = $("#auto-advance");
  a.dataset.on = S.st?.auto_advance ? "1" : "0";
  a.textContent = `${W.auto_advance}: ${S.st?.auto_advance ? W.auto_on : W.auto_off}`;
}

function drawWho() {
  $("#who").textContent = S.st?.operator || "";
  $("#who").title = S.st?.operator ? `${W.operator}: ${S.st.operator}` : "";
}

// -- start a form ----------------------------------------------------------------------------

const tpsInput = $('#screen-start input[name="tps"]');
let suggestions = [];
let suggestSel = -1;

function formType() {
  return $('input[name="form"]:checked')?.value || "";
}

function showStart(next) {
  show("start");
  clearErrors();
  S.force = null;
  const form = next?.form || formType() || "PPWP";
  for (const r of $$('input[name="form"]')) r.checked = r.value === form;
  if (next?.tps) tpsInput.value = next.tps;
  drawOpenDraft();
  lookupTps();
  if (next?.tps) {
    tpsInput.focus();
    tpsInput.setSelectionRange(10, 13); // the TPS number: type another, or Enter
  } else {
    $('input[name="form"]:checked').focus(); // one key picks the form type
  }
}

function drawOpenDraft() {
  const p = $("#open-draft");
  const d = S.form?.draft;
  if (d && d.state === "open" && Object.keys(S.form.cells()).length) {
    p.hidden = false;
    p.textContent = fmt(W.open_draft, { form: d.form, tps: d.tps });
  } else {
    p.hidden = true;
  }
}

$("#form-types").addEventListener("keydown", (e) => {
  const r = $$('input[name="form"]').find((x) => x.dataset.key === e.key);
  if (r) {
    e.preventDefault();
    r.checked = true;
    setError("form", "");
    tpsInput.focus();
    tpsInput.select();
    lookupTps();
  } else if (e.key === "Enter") {
    e.preventDefault();
    if (!formType()) e.target.checked = true;
    tpsInput.focus();
  }
});

tpsInput.addEventListener("input", () => {
  S.force = null;
  setError("tps", "");
  lookupTps();
});

let tpsAsked = 0;
async function lookupTps() {
  const q = tpsInput.value.trim();
  const n = ++tpsAsked;
  const place = $("#tps-place");
  if (!q) {
    place.textContent = "";
    drawSuggestions([]);
    return;
  }
  if (/^\d+$/.test(q) && (q.length < 4 || (q.length > 10 && q.length !== 13))) {
    drawSuggestions([]);
    place.textContent = fmt(W.tps_digits, { n: q.length }); // nothing to ask yet
    return;
  }
  try {
    const r = await get(`/api/tps?q=${encodeURIComponent(q)}&form=${formType()}`);
    if (n !== tpsAsked) return; // typed on meanwhile
    if (/^\d+$/.test(q)) {
      drawSuggestions(q.length >= 4 && q.length < 10 ? r.matches : []);
      if (r.info) {
        place.textContent = r.info.place;
        place.classList.toggle("missing", r.info.exists === false);
        if (r.info.exists === false) setError("tps", W.tps_unknown);
        else if (r.existing?.length) place.textContent += " · " + fmt(W.already_here,
          { seq: r.existing[r.existing.length - 1] });
      } else if (q.length === 10 && r.matches[0]?.desa === q) {
        const m = r.matches[0];
        place.textContent = `${m.province} / ${m.kabko} / ${m.kecamatan} / ${m.kelurahan}` +
          " / " + fmt(W.tps_count, { n: m.tps_count });
      } else {
        place.textContent = fmt(W.tps_digits, { n: q.length });
      }
    } else {
      place.textContent = "";
      drawSuggestions(r.matches);
    }
  } catch (e) {
    if (n === tpsAsked) setError("tps", msg(e));
  }
}

function drawSuggestions(list) {
  suggestions = list || [];
  suggestSel = suggestions.length ? 0 : -1;
  const ul = $("#tps-suggest");
  ul.hidden = !suggestions.length;
  ul.replaceChildren(...suggestions.map((m, i) => el("li", {
    role: "option", "aria-selected": i === suggestSel ? "true" : "false",
    class: i === suggestSel ? "sel" : "", "data-desa": m.desa,
    text: `${m.kelurahan} — ${m.kecamatan}, ${m.kabko}, ${m.province} (${m.desa}, ` +
      fmt(W.tps_count, { n: m.tps_count }) + ")",
  })));
}

function moveSuggestion(step) {
  if (!suggestions.length) return;
  suggestSel = (suggestSel + step + suggestions.length) % suggestions.length;
  $$("#tps-suggest li").forEach((li, i) => {
    li.classList.toggle("sel", i === suggestSel);
    li.setAttribute("aria-selected", i === suggestSel ? "true" : "false");
  });
}

tpsInput.addEventListener("keydown", async (e) => {
  if (e.key === "ArrowDown" || e.key === "ArrowUp") {
    e.preventDefault();
    moveSuggestion(e.key === "ArrowDown" ? 1 : -1);
    return;
  }
  if (e.key === "Escape") {
    e.preventDefault();
    if (suggestions.length) return drawSuggestions([]);
    if (S.form?.draft?.state === "open") return showForm();
    tpsInput.value = "";
    lookupTps();
    return;
  }
  if ((e.ctrlKey || e.metaKey) && e.key === "Delete") {
    e.preventDefault();
    return discardDraft();
  }
  if (e.key !== "Enter") return;
  e.preventDefault();
  const q = tpsInput.value.trim();
  if (!/^\d+$/.test(q) && suggestions[suggestSel]) {
    tpsInput.value = suggestions[suggestSel].desa;
    drawSuggestions([]);
    lookupTps();
    return;
  }
  await startForm(formType(), q);
});

async function startForm(form, tps) {
  clearErrors();
  if (!form) {
    setError("form", W.pick_form);
    $$('input[name="form"]')[0].focus();
    return;
  }
  const d = S.form?.draft;
  if (d && d.state === "open" && Object.keys(S.form.cells()).length) {
    setError("tps", fmt(W.open_draft, { form: d.form, tps: d.tps }));
    return;
  }
  busy(true);
  try {
    const draft = await post("/api/drafts", { form, tps, force: S.force === tps });
    openDraft(draft);
  } catch (e) {
    if (e instanceof ApiError && e.code === "already_entered") S.force = tps;
    setError(e.field || "tps", msg(e));
    (e.field === "form" ? $('input[name="form"]:checked') : tpsInput)?.focus();
  } finally {
    busy(false);
  }
}

async function discardDraft() {
  const d = S.form?.draft;
  if (!d || d.state !== "open") return;
  try {
    await post(`/api/drafts/${d.id}/discard`);
    S.form.forget();
    S.form.draft = { ...d, state: "discarded" };
    drawOpenDraft();
    setError("tps", fmt(W.draft_discarded, { form: d.form, tps: d.tps }));
  } catch (e) {
    setError("tps", msg(e));
  }
}

// -- the form --------------------------------------------------------------------------------

const MODE_LABEL = { second: "mode_second", correction: "mode_correction", koreksi: "mode_koreksi" };

function openDraft(draft) {
  S.form = new FormView($("#grid"), {
    onFlags: (flags) => drawFlags(flags),
    onCue: (text) => hint(text, true),
    onEnd: () => hint(W.at_end),
    onState: (st, r) => drawDraftState(st, r),
    onSaveKey: () => save(false),
    onViewerKey: (e) => viewerKey(e),
    onCellFocus: (input) => { S.lastCell = input; hint(""); },
    autoAdvance: () => !!S.st?.auto_advance,
  });
  S.form.load(draft);
  showForm();
  drawFlags(draft.flags);
  S.form.first();
}

function showForm() {
  const d = S.form.draft;
  show("form");
  $("#form-title").textContent = `${W["form_" + d.form] || d.form} · TPS ${d.tps}`;
  $("#form-title").dataset.form = d.form;
  const mode = $("#form-mode");
  mode.textContent = MODE_LABEL[d.mode] ? fmt(W[MODE_LABEL[d.mode]], { seq: d.supersedes_seq })
    : "";
  mode.hidden = !mode.textContent;
  $("#form-place").textContent = d.place?.place || d.tps;
  S.viewer = S.viewer || new ScanViewer($("#scan-view"), $("#scan-pos"));
  S.viewer.set(d.scans);
  drawDraftState("kept");
  (S.lastCell && document.contains(S.lastCell) ? S.lastCell : null)?.focus() || S.form.first();
}

function drawFlags(flags) {
  S.flags = flags;
  renderFlags($("#grid"), $("#flag-summary ul"), flags, lang(), (f) => S.form.focusField(f));
}

function drawDraftState(st, r) {
  const t = $("#draft-state");
  if (t.dataset.state === st && st !== "error" && st !== "closed") return; // nothing new
  if (st === "offline") t.textContent = W.draft_offline;
  else if (st === "typing") t.textContent = W.draft_typing;
  else if (st === "error") t.textContent = msg(r);
  else if (st === "closed") t.textContent = fmt(W.draft_closed, { seq: r?.seq ?? "-" });
  else t.textContent = W.draft_kept;
  t.dataset.state = st;
}

let hintTimer = null;
function hint(text, warn) {
  const h = $("#key-hint");
  h.textContent = text || "";
  h.classList.toggle("warn", !!warn);
  clearTimeout(hintTimer);
  if (text) hintTimer = setTimeout(() => { h.textContent = ""; }, 2500);
}

function viewerKey(e) {
  if (!S.viewer || S.screen !== "form") return false;
  if ((e.ctrlKey || e.metaKey) && (e.key === "o" || e.key === "O")) {
    $("#file-picker").click();
    return true;
  }
  if ((e.ctrlKey || e.metaKey) && (e.key === "i" || e.key === "I")) {
    inbox();
    return true;
  }
  if ((e.ctrlKey || e.metaKey) && e.key === "Delete") {
    removePage();
    return true;
  }
  return S.viewer.key(e);
}

async function setScans(hashes) {
  const d = S.form.draft;
  const r = await post(`/api/drafts/${d.id}/scans`, { scans: hashes });
  d.scans = r.scans;
  S.viewer.set(d.scans, true);
}

async function addPages(pages) {
  if (!pages.length) return;
  const d = S.form.draft;
  const hashes = [...d.scans.map((p) => p.hash), ...pages.map((p) => p.hash)];
  await setScans(hashes);
  S.viewer.i = d.scans.length - 1;
  S.viewer.reset();
  S.viewer.render();
  setError("scans", "");
}

async function removePage() {
  const d = S.form.draft;
  const p = d.scans[S.viewer.i];
  if (!p) return;
  await setScans(d.scans.filter((x) => x.hash !== p.hash).map((x) => x.hash));
}

async function uploadAndAdd(files) {
  setError("scans", "");
  const back = S.lastCell;
  try {
    hint(W.uploading);
    await addPages(await uploadFiles(files));
    hint("");
  } catch (e) {
    setError("scans", msg(e));
  } finally {
    back?.focus();
  }
}

$("#file-picker").addEventListener("change", async (e) => {
  const files = [...e.target.files];
  e.target.value = "";
  await uploadAndAdd(files);
});

const pane = $("#scan-pane");
pane.addEventListener("dragover", (e) => { e.preventDefault(); pane.classList.add("drop"); });
pane.addEventListener("dragleave", () => pane.classList.remove("drop"));
pane.addEventListener("drop", async (e) => {
  e.preventDefault();
  pane.classList.remove("drop");
  if (S.screen === "form") await uploadAndAdd([...e.dataTransfer.files]);
});

async function inbox() {
  const back = S.lastCell;
  const page = await pickFromInbox($("#inbox"));
  if (page) await addPages([page]).catch((e) => setError("scans", msg(e)));
  back?.focus();
}

// -- saving ----------------------------------------------------------------------------------

async function save(confirm, note = "") {
  if (S.saving || !S.form?.draft) return;
  const fv = S.form;
  const d = fv.draft;
  S.saving = true;
  busy(true);
  let confirming = false;
  try {
    clearErrors();
    const r = await post(`/api/drafts/${d.id}/save`, { ...fv.snapshot(), confirm, note });
    if (r.need_confirm) {
      confirming = true;
      openConfirm(r);
      return;
    }
    saved(r);
  } catch (e) {
    if (e instanceof Offline) {
      hint(W.save_offline, true);
    } else if (e.field && e.field !== "scans") {
      const input = fv.focusField(e.field);
      setError(input ? "form" : e.field, msg(e));
      if (input) markError(input, msg(e));
    } else {
      setError(e.field || "form", msg(e));
    }
  } finally {
    S.saving = false;
    if (!confirming) busy(false);
  }
}

function markError(input, text) {
  const tr = input.closest("tr");
  const g = tr?.querySelector(".gutter");
  if (g) g.append(el("span", { class: "cell-error", role: "alert", text }));
  input.classList.add("error");
  input.addEventListener("input", () => {
    input.classList.remove("error");
    for (const x of $$(".cell-error", tr)) x.remove();
  }, { once: true });
}

function openConfirm(r) {
  const dlg = $("#confirm");
  const list = $("#confirm-flags");
  list.replaceChildren(...r.flags.map((f) => el("li", {
    class: `flag ${f.level}`, "data-flag": f.rule, "data-field": f.field,
  }, el("b", { text: f.rule }), " ", lang() === "id" ? f.id : f.en)));
  const v = $("#confirm-verify");
  v.hidden = !r.verify?.differs;
  v.textContent = r.verify?.differs ? W[`differs_${r.verify.mode}`] : "";
  if (r.verify?.differs) v.dataset.verify = "differs";
  const note = $('#confirm input[name="note"]');
  note.value = "";
  dlg.showModal();
  S.queue = []; // keys typed before the question was shown do not answer it
  busy(false);
  note.focus();
}

function closeConfirm(ok) {
  const dlg = $("#confirm");
  if (!dlg.open) return;
  const note = $('#confirm input[name="note"]').value;
  dlg.close();
  if (ok) {
    save(true, note);
  } else {
    const first = S.flags?.[0];
    (first && S.form.focusField(first.field)) || S.lastCell?.focus();
  }
}

$("#confirm").addEventListener("keydown", (e) => {
  if (e.key === "Enter") {
    e.preventDefault();
    closeConfirm(true);
  } else if (e.key === "Escape") {
    e.preventDefault();
    closeConfirm(false);
  }
});
$('#confirm [data-action="confirm"]').addEventListener("click", () => closeConfirm(true));
$('#confirm [data-action="cancel"]').addEventListener("click", () => closeConfirm(false));
$("#confirm").addEventListener("cancel", (e) => { e.preventDefault(); closeConfirm(false); });

function saved(r) {
  S.form.forget();
  S.form.draft = { ...S.form.draft, state: "saved", seq: r.seq };
  S.lastCell = null;
  const note = $("#saved-note");
  note.dataset.savedSeq = String(r.seq);
  note.dataset.flags = String(r.flags.length);
  let text = fmt(r.again ? W.saved_again : W.saved, { seq: r.seq, form: r.form, tps: r.tps });
  if (r.flags.length) text += " · " + fmt(W.saved_flags, { n: r.flags.length });
  if (r.verify?.mode) {
    text += " · " + (r.verify.differs ? W[`after_differs_${r.verify.mode}`]
      : W[`after_agrees_${r.verify.mode}`]);
    watchKey(r);
  }
  note.textContent = text;
  note.classList.remove("flash");
  void note.offsetWidth;
  note.classList.add("flash");
  showStart(r.next);
}

// After a double-entry save: ask the hub (through the station) until it holds the entry.
function watchKey(r) {
  let tries = 0;
  const note = $("#saved-note");
  const tick = async () => {
    tries++;
    try {
      const s = await get(`/api/work/status?form=${r.form}&tps=${r.tps}&seq=${r.seq}`);
      if (s.held) {
        note.dataset.hubStatus = s.status;
        note.textContent = fmt(W.saved, { seq: r.seq, form: r.form, tps: r.tps }) + " · " +
          (W[`hub_${s.status}`] || s.status);
        return;
      }
    } catch (_) { /* the hub may be away: keep the prediction shown */ }
    if (tries < 30 && note.dataset.savedSeq === String(r.seq)) setTimeout(tick, 2000);
  };
  setTimeout(tick, 1500);
}

// -- entries ---------------------------------------------------------------------------------

const qInput = $('#screen-entries input[name="q"]');

async function showEntries() {
  show("entries");
  qInput.focus();
  qInput.select();
  await loadEntries();
  // states move on by themselves (at the hub, confirmed, scans complete): keep the list true
  S.timers.entries = setInterval(() => loadEntries({ keep: true }), 3000);
}

let entriesAsked = 0;
async function loadEntries({ keep = false } = {}) {
  const n = ++entriesAsked;
  try {
    const r = await get(`/api/entries?q=${encodeURIComponent(qInput.value.trim())}`);
    if (n !== entriesAsked) return;
    const selSeq = keep ? S.entries[S.entrySel]?.seq : undefined;
    S.entries = r.entries;
    const i = selSeq === undefined ? -1 : S.entries.findIndex((e) => e.seq === selSeq);
    S.entrySel = i < 0 ? 0 : i;
    $("#entries-count").textContent = fmt(W.entries_count, { n: r.entries.length, total: r.total });
    drawEntries(r.pending);
  } catch (e) {
    $("#entries-count").textContent = msg(e);
  }
}

function stateLabel(e) {
  let s = W[`state_${e.state}`] || e.state;
  if (e.pending) s += " · " + W.state_pending;
  if (e.scans_state) s += " · " + W[`scans_${e.scans_state}`];
  return s;
}

function drawEntries() {
  const tb = $("#entries-table tbody");
  tb.replaceChildren(...S.entries.map((e, i) => el("tr", {
    class: (i === S.entrySel ? "sel " : "") + (e.superseded_by ? "superseded" : ""),
    "data-seq": String(e.seq), "data-state": e.state, "data-scans": e.scans_state || "",
  },
  el("td", { text: `#${e.seq}` }),
  el("td", { text: e.form }),
  el("td", { text: `${e.tps} · ${e.place}` }),
  el("td", { text: e.flags.join(" ") || "-" }),
  el("td", { text: stateLabel(e) + (e.superseded_by ? " · " + fmt(W.superseded_by,
    { seq: e.superseded_by }) : "") + (e.supersedes ? " · " + W.is_correction : "") }),
  el("td", { text: e.operator }),
  el("td", { text: time(e.entered_at) }))));
  tb.children[S.entrySel]?.scrollIntoView({ block: "nearest" });
}

let qTimer = null;
qInput.addEventListener("input", () => {
  clearTimeout(qTimer);
  qTimer = setTimeout(loadEntries, 120);
});
qInput.addEventListener("keydown", (e) => {
  if (e.key === "ArrowDown" || e.key === "ArrowUp") {
    e.preventDefault();
    const n = S.entries.length;
    if (!n) return;
    S.entrySel = Math.min(Math.max(S.entrySel + (e.key === "ArrowDown" ? 1 : -1), 0), n - 1);
    drawEntries();
  } else if (e.key === "Enter") {
    e.preventDefault();
    const en = S.entries[S.entrySel];
    if (en) showEntry(en.seq);
  }
});

async function showEntry(seq) {
  let r;
  try {
    r = await get(`/api/entries/${seq}`);
  } catch (e) {
    $("#entries-count").textContent = msg(e);
    return;
  }
  S.entry = r;
  show("entry");
  $("#entry-title").textContent = `#${r.seq} · ${W["form_" + r.entry.form] || r.entry.form}` +
    ` · TPS ${r.entry.tps}`;
  $("#entry-title").dataset.seq = String(r.seq);
  $("#entry-place").textContent = r.place.place || r.entry.tps;
  $("#entry-state").textContent = `${W[`state_${r.state}`] || r.state} · ${W.operator}: ` +
    `${r.entry.operator} · ${time(r.entry.entered_at)}` +
    (r.entry.note ? ` · ${W.note}: ${r.entry.note}` : "");
  const ro = new FormView($("#entry-grid"), { readOnly: true });
  ro.draft = { id: "ro", rows: r.rows, layout: r.layout };
  ro.rows = r.rows;
  ro.build(r.cells);
  renderFlags($("#entry-grid"), $("#entry-flags"), r.flags, lang());
  const v = new ScanViewer($("#entry-scans .scan-view-ro"), null, { readOnly: true });
  v.set(r.scans);
  S.entryViewer = v;
  document.activeElement?.blur();
  $("#screen-entry").tabIndex = -1;
  $("#screen-entry").focus();
}

async function correct(seq) {
  busy(true);
  try {
    openDraft(await post(`/api/entries/${seq}/correct`));
  } catch (e) {
    if (e instanceof ApiError && e.code === "open_draft") {
      showStart();
      setError("tps", msg(e));
    } else {
      $("#entry-state").textContent = msg(e);
    }
  } finally {
    busy(false);
  }
}

// -- work list -------------------------------------------------------------------------------

async function showWork() {
  show("work");
  setError("work", "");
  const box = $("#screen-work");
  box.tabIndex = -1;
  box.focus();
  try {
    const r = await get("/api/work");
    S.work = [...r.correction, ...r.second];
    S.workSel = 0;
    drawWork(r);
  } catch (e) {
    S.work = [];
    drawWork({ second: [], correction: [] });
    setError("work", msg(e));
  }
}

function drawWork() {
  const row = (w) => el("tr", {
    class: S.work.indexOf(w) === S.workSel ? "sel" : "",
    "data-need": w.need, "data-form": w.form, "data-tps": w.tps,
  }, el("td", { text: w.form }), el("td", { text: `${w.tps} · ${w.place}` }),
  el("td", { text: w.need === "second" ? W.work_needs_second
    : fmt(W.work_needs_correction, { n: w.readings }) + (w.mine ? " · " + W.work_mine : "") }));
  const fill = (id, items) => {
    const tb = $(`${id} tbody`);
    tb.replaceChildren(...items.map(row));
    if (!items.length) tb.append(el("tr", {}, el("td", { text: W.work_none })));
  };
  fill("#work-correction", S.work.filter((w) => w.need === "correction"));
  fill("#work-second", S.work.filter((w) => w.need === "second"));
  $("tr.sel", $("#screen-work"))?.scrollIntoView({ block: "nearest" });
}

$("#screen-work").addEventListener("keydown", async (e) => {
  if (e.key === "ArrowDown" || e.key === "ArrowUp") {
    e.preventDefault();
    const n = S.work.length;
    if (!n) return;
    S.workSel = Math.min(Math.max(S.workSel + (e.key === "ArrowDown" ? 1 : -1), 0), n - 1);
    drawWork();
  } else if (e.key === "Enter") {
    e.preventDefault();
    const w = S.work[S.workSel];
    if (!w) return;
    busy(true);
    try {
      openDraft(await post("/api/work/start", { form: w.form, tps: w.tps, need: w.need }));
    } catch (err) {
      setError("work", msg(err));
    } finally {
      busy(false);
    }
  }
});

// -- connection and pace ---------------------------------------------------------------------

function kv(label, value, attrs = {}) {
  return el("div", { class: "kv", ...attrs }, el("span", { text: label }),
    el("b", { text: value ?? "-" }));
}

async function drawConnection() {
  let c;
  try {
    c = await get("/api/connection");
  } catch (e) {
    $("#conn-body").replaceChildren(el("p", { class: "err", text: msg(e) }));
    return;
  }
  drawBadge(c);
  const body = [];
  const hub = c.hub;
  if (!hub) {
    body.push(el("p", { class: "warn big", text: W.conn_no_hub }));
  } else {
    body.push(kv(W.conn_hub, `${hub.id} · ${hub.url}`, { "data-hub": hub.id }));
    body.push(kv(W.conn_found, W[`found_${hub.found_by}`] || W.found_unknown));
    body.push(kv(W.conn_state, W[`hubstate_${hub.state}`] || hub.state || "-",
      { "data-hub-state": hub.state || "" }));
    if (hub.state === "pending") {
      body.push(el("div", { class: "code-box" },
        el("p", { text: W.conn_code_say }),
        el("div", { class: "code", "data-code": hub.code || "", text: hub.code || "-" }),
        el("p", { text: fmt(W.conn_node, { id: c.node_id }) })));
    }
    body.push(kv(W.conn_last_ok, time(hub.last_ok_at)));
  }
  body.push(kv(W.conn_counts, fmt(W.conn_counts_v, c.counts), { "data-counts": JSON.stringify(c.counts) }));
  if (c.sync.last_error)
    body.push(el("p", { class: "warn", text: `${W.conn_error}: ${c.sync.last_error}` }));
  if (c.upstream)
    body.push(kv(W.conn_upstream, fmt(W.conn_upstream_v, {
      state: W[`up_${c.upstream.state}`] || c.upstream.state, backlog: c.upstream.backlog ?? "-",
      confirmed: c.upstream.confirmed ?? "-",
    })));
  body.push(kv(W.conn_laptop, `${c.laptop} · ${c.node_id}`));
  $("#conn-body").replaceChildren(...body);
}

function drawBadge(c) {
  const b = $("#conn-badge");
  const st = c.hub?.state;
  b.textContent = !c.hub ? W.badge_no_hub : st === "pending"
    ? W.badge_pending
    : fmt(W.badge_ok, { local: c.counts.local, at_hub: c.counts.at_hub });
  b.className = "badge " + (!c.hub || c.sync.last_error ? "warn" : st === "pending" ? "warn" : "ok");
}

async function refreshBadge() {
  try {
    drawBadge(await get("/api/connection"));
  } catch (_) { /* the banner says it */ }
}

async function drawStats() {
  try {
    const s = await get("/api/stats");
    const pct = (x) => (x === null || x === undefined ? "-" : `${Math.round(x * 100)}%`);
    $("#stats-body").replaceChildren(
      kv(W.stats_operator, s.operator), kv(W.stats_since, time(s.since)),
      kv(W.stats_forms, String(s.forms), { "data-forms": String(s.forms) }),
      kv(W.stats_per_hour, s.forms_per_hour), kv(W.stats_keys, s.keystrokes_per_form),
      kv(W.stats_keys_hour, s.keystrokes_per_hour), kv(W.stats_seconds, s.seconds_per_form),
      kv(W.stats_flags, pct(s.flag_rate)), kv(W.stats_refused, s.refused_per_1000));
  } catch (e) {
    $("#stats-body").replaceChildren(el("p", { class: "err", text: msg(e) }));
  }
}

// -- global keys and boot --------------------------------------------------------------------

document.addEventListener("keydown", async (e) => {
  if (e.defaultPrevented) return;
  const k = e.key;
  if (!S.st?.operator && k !== "F5") {
    if (k.startsWith("F") && k.length > 1) e.preventDefault();
    return;
  }
  const go = { F2: () => (S.screen === "start" && S.form?.draft?.state === "open" ? showForm()
      : showStart()),
    F4: showEntries, F8: showWork, F9: () => { show("conn"); drawConnection();
      S.timers.conn = setInterval(drawConnection, 3000); },
    F10: () => { show("stats"); drawStats(); S.timers.stats = setInterval(drawStats, 5000); } };
  if (go[k]) {
    e.preventDefault();
    go[k]();
    return;
  }
  if (e.ctrlKey && e.shiftKey && (k === "L" || k === "l")) {
    e.preventDefault();
    return toggleLang();
  }
  if (e.ctrlKey && e.shiftKey && (k === "A" || k === "a")) {
    e.preventDefault();
    S.st.auto_advance = !S.st.auto_advance;
    drawAutoAdvance();
    post("/api/prefs", { auto_advance: S.st.auto_advance }).catch(() => {});
    return;
  }
  if (e.ctrlKey && e.shiftKey && (k === "Q" || k === "q")) {
    e.preventDefault();
    return signOut();
  }
  if (S.screen === "form" && document.activeElement?.tagName !== "INPUT") {
    if (viewerKey(e)) e.preventDefault();
    return;
  }
  if (S.screen === "entry") {
    if (k === "Escape") { e.preventDefault(); showEntries(); }
    if ((k === "k" || k === "K") && S.entry) { e.preventDefault(); correct(S.entry.seq); }
    if (S.entryViewer?.key(e)) e.preventDefault();
  }
  if (S.screen === "entries" && k === "Escape") { e.preventDefault(); showStart(); }
});

async function toggleLang() {
  await post("/api/prefs", { lang: lang() === "id" ? "en" : "id" });
  location.reload(); // labels are drawn by the server; the draft is kept
}

async function signOut() {
  await post("/api/signout");
  S.st.operator = null;
  drawWho();
  showSignin();
}

$("#lang-toggle").addEventListener("click", toggleLang);
$("#signout").addEventListener("click", signOut);
for (const n of $$("#nav [data-screen]")) {
  n.addEventListener("click", () => {
    const key = { start: "F2", entries: "F4", work: "F8", conn: "F9", stats: "F10" }[n.dataset.screen];
    document.dispatchEvent(new KeyboardEvent("keydown", { key, bubbles: true, cancelable: true }));
  });
}

async function resume() {
  const st = S.st;
  if (st.draft && st.draft.state === "open") openDraft(st.draft);
  else showStart();
}

async function boot() {
  try {
    S.st = await get("/api/state");
  } catch (e) {
    banner(msg(e));
    setTimeout(boot, 1000);
    return;
  }
  banner("");
  drawWho();
  drawAutoAdvance();
  refreshBadge();
  setInterval(refreshBadge, 10000);
  if (!S.st.operator) showSignin();
  else await resume();
  document.body.dataset.ready = "1";
}

boot();
