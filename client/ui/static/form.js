// The C.Hasil form: digit-only cells, heads-down keying, live checks from the server.
//
// Keys in a cell: digits (at most three: 0..999), Enter or Tab = next cell, Shift+Tab or
// Shift+Enter = previous, Esc = clear the cell, Ctrl+Enter = save. Other keys are refused
// with a visible cue. An empty cell is not a zero: the operator types 0.
// Rows added by number (candidates; a party's candidates): the dim "+" row after the last
// one takes the next number when a digit is typed into it; Enter on the empty "+" row goes
// on to the next cell; ArrowDown from the last row reaches it.
//
// Every change is sent to the server (at most one request in flight; a response is applied
// only if nothing was typed since it was asked), which keeps the draft and answers with the
// flags R1–R11 computed by the project's own rules. The page never computes a rule.

import { W, ApiError, Offline, el, fmt, msg, post } from "./api.js";

export class FormView {
  constructor(root, opts) {
    this.root = root;
    this.opts = opts; // {onFlags, onCue, onState, onSaveKey, onViewerKey, onCellFocus}
    this.draft = null;
    this.readOnly = !!opts.readOnly;
    this.version = 0;
    this.sent = 0;
    this.inflight = false;
    this.pending = false;
    this.keystrokes = 0;
    this.refused = 0;
    this.adding = new Set(); // lists whose "+" row is in the Enter order
    this.retry = 0;
  }

  // -- building ------------------------------------------------------------------------------

  load(draft) {
    this.draft = draft;
    this.rows = JSON.parse(JSON.stringify(draft.rows));
    this.version = draft.rev || 0;
    this.keystrokes = draft.keystrokes || 0;
    this.refused = draft.refused || 0;
    this.adding = new Set();
    const saved = this.readOnly ? null : localStorage.getItem(this.storeKey());
    let cells = draft.cells || {};
    if (saved) {
      try {
        const s = JSON.parse(saved);
        if (s.rev > this.version) {
          // Typed after the last answer the server gave (a crash, a lost request): keep it.
          cells = s.cells;
          this.rows = s.rows || this.rows;
          this.version = s.rev;
          this.keystrokes = Math.max(this.keystrokes, s.keystrokes || 0);
        }
      } catch (_) { /* a damaged backup: the server's copy stands */ }
    }
    if (this.rows.suara && this.rows.suara.length === 0) this.adding.add("suara");
    if (this.rows.partai)
      for (const [p, c] of Object.entries(this.rows.partai))
        if (c.length === 0) this.adding.add(`partai.${p}`);
    this.build(cells);
    this.root._flagsKey = null;
    if (!this.readOnly && this.version > (draft.rev || 0)) this.changed(false);
  }

  storeKey() {
    return `c1draft:${this.draft.id}`;
  }

  build(cells) {
    const spec = this.layoutFor();
    const root = el("div", { class: "sheet" });
    for (const sec of spec.sections) {
      const box = el("section", { class: "sec", "data-section": sec.id });
      const title = el("h2", { text: sec.title });
      if (sec.optional) title.append(el("small", { text: ` (${sec.optional})` }));
      box.append(title);
      const table = el("table", { class: "cells" });
      if (sec.rows) {
        const cols = sec.rows[0].cols;
        if (cols.length > 1) {
          table.append(el("thead", {}, el("tr", {}, el("th"),
            ...cols.map((c) => el("th", { text: c })), el("th"))));
        }
        const tb = el("tbody");
        for (const r of sec.rows) tb.append(this.row(r.row, r.label, r.cells, cells));
        table.append(tb);
      } else if (sec.kind === "candidates") {
        const tb = el("tbody", { "data-list": "suara" });
        for (const no of this.rows.suara)
          tb.append(this.row(`suara.${no}`, fmt(sec.row_label, { no }), [`suara.${no}`], cells));
        tb.append(this.phantom("suara", sec.row_label));
        table.append(tb);
        this.candLabel = sec.row_label;
      } else if (sec.kind === "parties") {
        this.calegLabel = sec.caleg_label;
        for (const p of sec.parties) {
          const tb = el("tbody", { class: "party", "data-list": `partai.${p.no}` });
          tb.append(el("tr", { class: "party-title" }, el("th", { colSpan: 3, text: p.title })));
          tb.append(this.row(`partai.${p.no}.partai`, sec.party_only,
            [`partai.${p.no}.partai`], cells));
          for (const c of this.rows.partai[p.no] || [])
            tb.append(this.row(`partai.${p.no}.caleg.${c}`, fmt(sec.caleg_label, { no: c }),
              [`partai.${p.no}.caleg.${c}`], cells));
          tb.append(this.phantom(`partai.${p.no}`, sec.caleg_label));
          tb.append(this.row(`partai.${p.no}.jumlah`, fmt(sec.jumlah_label, { no: p.no }),
            [`partai.${p.no}.jumlah`], cells, "total-row"));
          table.append(tb);
        }
      }
      box.append(table);
      root.append(box);
    }
    this.root.replaceChildren(root);
    for (const input of this.root.querySelectorAll("input.cell")) this.wire(input);
  }

  layoutFor() {
    return this.draft.layout;
  }

  row(rowName, label, names, cells, cls) {
    const tr = el("tr", { "data-row": rowName, class: cls || null });
    tr.append(el("th", { text: label, scope: "row" }));
    for (const n of names) {
      const input = el("input", {
        name: n, class: "cell", inputMode: "numeric", autocomplete: "off",
        spellcheck: false, maxLength: 3, "aria-label": `${label} ${n.split(".").pop()}`,
      });
      input.value = cells[n] || "";
      input.placeholder = "–";
      if (this.readOnly) input.readOnly = true;
      tr.append(el("td", {}, input));
    }
    tr.append(el("td", { class: "gutter", "data-flags-for": rowName }));
    return tr;
  }

  phantom(list, labelTpl) {
    const next = this.nextNumber(list);
    const tr = el("tr", { class: "phantom-row", "data-phantom-row": list });
    tr.append(el("th", { text: "+ " + fmt(labelTpl, { no: next }), scope: "row" }));
    const input = el("input", {
      class: "cell phantom", inputMode: "numeric", autocomplete: "off", spellcheck: false,
      maxLength: 3, "data-phantom": list, "aria-label": fmt(labelTpl, { no: next }),
    });
    input.placeholder = "+";
    if (this.readOnly) { input.readOnly = true; tr.hidden = true; }
    tr.append(el("td", {}, input), el("td", { class: "gutter" }));
    return tr;
  }

  listRows(list) {
    if (list === "suara") return this.rows.suara;
    return this.rows.partai[list.split(".")[1]];
  }

  nextNumber(list) {
    const rows = this.listRows(list) || [];
    return rows.length ? String(Math.max(...rows.map(Number)) + 1) : "1";
  }

  wire(input) {
    input.addEventListener("keydown", (e) => this.onKey(e, input));
    input.addEventListener("input", () => this.onInput(input));
    input.addEventListener("paste", (e) => this.onPaste(e, input));
    input.addEventListener("focus", () => {
      input.select();
      this.opts.onCellFocus?.(input);
    });
  }

  // -- navigation ----------------------------------------------------------------------------

  order() {
    return [...this.root.querySelectorAll("input.cell")].filter(
      (i) => !i.dataset.phantom || this.adding.has(i.dataset.phantom));
  }

  all() {
    return [...this.root.querySelectorAll("input.cell")];
  }

  move(from, step, list = this.order()) {
    let to;
    const i = list.indexOf(from);
    if (i >= 0) {
      to = list[i + step];
    } else {
      const every = this.all();
      const at = every.indexOf(from);
      to = step > 0 ? list.find((x) => every.indexOf(x) > at)
        : [...list].reverse().find((x) => every.indexOf(x) < at);
    }
    if (to) to.focus();
    else if (step > 0) this.opts.onEnd?.();
    return to;
  }

  first() {
    const empty = this.order().find((i) => !i.value);
    (empty || this.order()[0])?.focus();
  }

  focusField(name) {
    let input = this.root.querySelector(`input[name="${CSS.escape(name)}"]`);
    if (!input) {
      const tr = this.root.querySelector(`tr[data-row="${CSS.escape(name)}"]`);
      input = tr?.querySelector("input.cell");
    }
    if (!input && name.includes(".")) return this.focusField(name.split(".").slice(0, -1).join("."));
    input?.focus();
    return input;
  }

  // -- keys ----------------------------------------------------------------------------------

  onKey(e, input) {
    const k = e.key;
    if (k === "Shift" || k === "Control" || k === "Alt" || k === "Meta") return;
    if (this.readOnly) return;
    this.keystrokes++;
    if ((e.ctrlKey || e.metaKey) && k === "Enter") {
      e.preventDefault();
      this.opts.onSaveKey?.();
      return;
    }
    if (this.opts.onViewerKey?.(e)) {
      e.preventDefault();
      return;
    }
    if (k === "Enter" || k === "Tab") {
      e.preventDefault();
      if (input.dataset.phantom && !input.value) {
        this.adding.delete(input.dataset.phantom);
        this.move(input, 1);
        return;
      }
      this.move(input, e.shiftKey ? -1 : 1);
      return;
    }
    if (k === "ArrowDown" || k === "ArrowUp") {
      e.preventDefault();
      this.move(input, k === "ArrowDown" ? 1 : -1, this.all());
      return;
    }
    if (k === "Escape") {
      e.preventDefault();
      if (input.value) {
        input.value = "";
        this.changed();
      } else {
        this.removeRow(input);
      }
      return;
    }
    if (e.ctrlKey || e.metaKey || e.altKey) return; // browser editing keys (copy, undo, ...)
    if (k.length === 1) {
      if (!/[0-9]/.test(k)) {
        e.preventDefault();
        this.cue(input, W.only_digits);
        return;
      }
      const selected = input.selectionEnd - input.selectionStart;
      if (input.value.length >= 3 && selected === 0) {
        e.preventDefault();
        this.cue(input, W.max_three);
      }
    }
  }

  onPaste(e, input) {
    const text = (e.clipboardData?.getData("text") || "").trim();
    if (!/^[0-9]{1,3}$/.test(text)) {
      e.preventDefault();
      this.cue(input, W.only_digits);
    }
  }

  onInput(input) {
    const clean = input.value.replace(/[^0-9]/g, "").slice(0, 3);
    if (clean !== input.value) input.value = clean;
    if (input.dataset.phantom && clean) {
      this.promote(input);
      return;
    }
    this.changed();
    if (this.opts.autoAdvance?.() && clean.length === 3) this.move(input, 1);
  }

  cue(input, text) {
    this.refused++;
    input.classList.remove("refused");
    void input.offsetWidth; // restart the animation
    input.classList.add("refused");
    this.opts.onCue?.(text, input);
  }

  // A digit typed into the "+" row: it becomes the next numbered row, a new "+" row follows.
  promote(input) {
    const list = input.dataset.phantom;
    const no = this.nextNumber(list);
    const rows = this.listRows(list);
    rows.push(no);
    const name = list === "suara" ? `suara.${no}` : `${list}.caleg.${no}`;
    const label = list === "suara" ? this.candLabel : this.calegLabel;
    const tr = input.closest("tr");
    tr.className = "";
    tr.removeAttribute("data-phantom-row");
    tr.dataset.row = name;
    tr.querySelector("th").textContent = fmt(label, { no });
    input.name = name;
    input.classList.remove("phantom");
    delete input.dataset.phantom;
    input.placeholder = "–";
    input.setAttribute("aria-label", fmt(label, { no }));
    tr.querySelector(".gutter").dataset.flagsFor = name;
    const ph = this.phantom(list, label);
    tr.after(ph);
    this.wire(ph.querySelector("input"));
    this.adding.add(list);
    this.changed();
  }

  // Esc on an empty numbered row at the end of its list removes the row.
  removeRow(input) {
    const name = input.name || "";
    const m = name.match(/^(suara|partai\.\d+)(?:\.caleg)?\.(\d+)$/);
    if (!m || input.dataset.phantom) return;
    const list = m[1];
    const rows = this.listRows(list);
    if (!rows || rows[rows.length - 1] !== m[2]) return;
    rows.pop();
    const tr = input.closest("tr");
    const ph = tr.nextElementSibling;
    tr.remove();
    if (ph?.dataset.phantomRow) {
      const phInput = ph.querySelector("input");
      const no = this.nextNumber(list);
      const label = list === "suara" ? this.candLabel : this.calegLabel;
      ph.querySelector("th").textContent = "+ " + fmt(label, { no });
      phInput.setAttribute("aria-label", fmt(label, { no }));
      this.adding.add(list);
      phInput.focus();
    }
    this.changed();
  }

  // -- state to the server -------------------------------------------------------------------

  cells() {
    const out = {};
    for (const i of this.root.querySelectorAll("input.cell[name]")) if (i.value) out[i.name] = i.value;
    return out;
  }

  snapshot() {
    return { rev: this.version, cells: this.cells(), rows: this.rows,
             keystrokes: this.keystrokes, refused: this.refused };
  }

  changed(bump = true) {
    if (this.readOnly || !this.draft) return;
    if (bump) this.version++;
    try {
      localStorage.setItem(this.storeKey(), JSON.stringify(this.snapshot()));
    } catch (_) { /* storage full: the server copy still goes */ }
    this.schedule();
  }

  schedule() {
    if (this.inflight) {
      this.pending = true;
      return;
    }
    this.send();
  }

  async send() {
    if (!this.draft) return;
    const draft = this.draft;
    const body = this.snapshot();
    this.inflight = true;
    this.pending = false;
    try {
      const r = await post(`/api/drafts/${draft.id}/check`, body);
      this.retry = 0;
      if (draft !== this.draft) return;
      if (r.rev === this.version) {
        this.opts.onFlags?.(r.flags);
        this.opts.onState?.(r.state === "open" ? "kept" : "closed", r);
      }
    } catch (e) {
      if (e instanceof Offline) {
        this.opts.onState?.("offline");
        this.retry = Math.min(this.retry + 1, 5);
        setTimeout(() => this.schedule(), 400 * this.retry);
      } else if (e instanceof ApiError) {
        this.opts.onState?.("error", e);
      }
    } finally {
      this.inflight = false;
      if (this.pending && draft === this.draft) this.send();
    }
  }

  forget() {
    if (this.draft) localStorage.removeItem(this.storeKey());
  }
}

// Where a flag's field is shown: the row it names (or the row of the cell it names).
export function flagRow(root, field) {
  const direct = root.querySelector(`tr[data-row="${CSS.escape(field)}"]`);
  if (direct) return direct;
  const input = root.querySelector(`input[name="${CSS.escape(field)}"]`);
  return input ? input.closest("tr") : null;
}

export function renderFlags(root, list, flags, lang, onPick) {
  // Touch the page only where something changed: no relayout while nothing moves.
  const key = JSON.stringify([lang, flags]);
  if (root._flagsKey === key) return;
  root._flagsKey = key;
  for (const g of root.querySelectorAll(".gutter:not(:empty)")) g.replaceChildren();
  for (const i of root.querySelectorAll("input.flagged")) i.classList.remove("flagged");
  for (const tr of root.querySelectorAll("tr.flagged")) tr.classList.remove("flagged");
  const items = [];
  for (const f of flags) {
    const text = lang === "id" ? f.id : f.en;
    const tr = flagRow(root, f.field);
    if (tr) {
      tr.classList.add("flagged");
      tr.querySelector(".gutter")?.append(el("span", {
        class: `flag-mark ${f.level}`, "data-flag": f.rule, title: text, text: f.rule,
      }));
      const input = root.querySelector(`input[name="${CSS.escape(f.field)}"]`);
      input?.classList.add("flagged");
    }
    const li = el("li", { class: `flag ${f.level}`, "data-flag": f.rule, "data-field": f.field },
      el("b", { text: f.rule }), " ", text);
    if (onPick) li.addEventListener("click", () => onPick(f.field));
    items.push(li);
  }
  if (list) {
    list.replaceChildren(...items);
    if (!items.length) list.append(el("li", { class: "ok", text: W.no_flags }));
  }
}

export { msg };
