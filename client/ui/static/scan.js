// The scanned pages beside the cells: keyboard zoom, pan, rotate and page switching, upload
// by file picker or drag and drop, and the scanner's folder. Keys work while a cell has focus
// (they are not digits, so a cell never takes them): + - zoom, * rotate, / fit,
// Ctrl+arrows pan, PageUp/PageDown page, Ctrl+O pick files, Ctrl+I scanner folder,
// Ctrl+Delete remove the page shown.

import { W, ApiError, el, fmt, get, msg, post, scanUrl, upload } from "./api.js";

export class ScanViewer {
  constructor(view, pos, opts = {}) {
    this.view = view;
    this.pos = pos;
    this.pages = [];
    this.i = 0;
    this.zoom = 1;
    this.rot = 0;
    this.x = 0;
    this.y = 0;
    this.readOnly = !!opts.readOnly;
    this.onChange = opts.onChange || (() => {});
    this.onError = opts.onError || (() => {});
  }

  set(pages, keepIndex = false) {
    this.pages = pages || [];
    if (!keepIndex) this.reset();
    if (this.i >= this.pages.length) this.i = Math.max(0, this.pages.length - 1);
    this.render();
  }

  reset() {
    this.zoom = 1;
    this.rot = 0;
    this.x = 0;
    this.y = 0;
  }

  render() {
    this.view.replaceChildren();
    const p = this.pages[this.i];
    if (!p) {
      this.view.append(el("p", { id: "scan-empty", text: W.scan_empty }));
      if (this.pos) this.pos.textContent = "";
      return;
    }
    const src = scanUrl(p.hash);
    let node;
    if (p.kind === "pdf") {
      node = el("iframe", { src, title: W.scan_page, class: "scan-doc" });
    } else {
      node = el("img", { src, alt: W.scan_page, class: "scan-img", draggable: false });
    }
    node.dataset.scanHash = p.hash;
    this.node = node;
    this.view.append(node);
    this.apply();
  }

  apply() {
    if (!this.node) return;
    this.node.style.transform =
      `translate(${this.x}px, ${this.y}px) rotate(${this.rot}deg) scale(${this.zoom})`;
    if (this.pos) {
      this.pos.textContent = fmt(W.scan_pos, {
        page: this.i + 1, pages: this.pages.length,
        zoom: Math.round(this.zoom * 100), rot: this.rot,
      });
      this.pos.dataset.page = String(this.i + 1);
      this.pos.dataset.zoom = String(Math.round(this.zoom * 100));
      this.pos.dataset.rot = String(this.rot);
    }
  }

  // Returns true when the key was a viewer command (the caller then drops it).
  key(e) {
    const k = e.key;
    if (e.ctrlKey && !e.altKey && k.startsWith("Arrow")) {
      const step = 80;
      if (k === "ArrowLeft") this.x += step;
      if (k === "ArrowRight") this.x -= step;
      if (k === "ArrowUp") this.y += step;
      if (k === "ArrowDown") this.y -= step;
      this.apply();
      return true;
    }
    if (e.ctrlKey || e.altKey || e.metaKey) return false;
    if (k === "+") { this.zoom = Math.min(this.zoom * 1.25, 8); this.apply(); return true; }
    if (k === "-") { this.zoom = Math.max(this.zoom / 1.25, 0.2); this.apply(); return true; }
    if (k === "*") { this.rot = (this.rot + 90) % 360; this.apply(); return true; }
    if (k === "/") { this.reset(); this.apply(); return true; }
    if (k === "PageDown" || k === "PageUp") {
      if (this.pages.length) {
        const n = this.pages.length;
        this.i = (this.i + (k === "PageDown" ? 1 : n - 1)) % n;
        this.reset();
        this.render();
      }
      return true;
    }
    return false;
  }
}

// Upload files (picker or drop), one after the other; returns the stored pages.
export async function uploadFiles(files) {
  const out = [];
  for (const f of files) out.push(await upload(f));
  return out;
}

// The scanner's folder: a keyboard list, newest first; resolves with a stored page or null.
export function pickFromInbox(dialog) {
  return new Promise(async (resolve) => {
    const list = dialog.querySelector("#inbox-list");
    list.replaceChildren(el("li", { text: W.loading }));
    dialog.showModal();
    let files = [];
    try {
      files = (await get("/api/inbox")).files;
    } catch (e) {
      list.replaceChildren(el("li", { class: "err", text: msg(e) }));
    }
    if (!files.length && list.textContent === W.loading) {
      list.replaceChildren(el("li", { text: W.inbox_empty }));
    }
    let sel = files.findIndex((f) => !f.used);
    if (sel < 0) sel = 0;
    const draw = () => {
      if (!files.length) return;
      list.replaceChildren(...files.map((f, i) => el("li", {
        role: "option", "aria-selected": i === sel ? "true" : "false",
        class: (i === sel ? "sel " : "") + (f.used ? "used" : ""),
        "data-file": f.name,
        text: `${f.name} · ${Math.round(f.size / 1024)} KiB · ${new Date(f.mtime * 1000)
          .toLocaleTimeString()}` + (f.used ? " · " + fmt(W.inbox_used, { seq: f.used }) : ""),
      })));
      list.children[sel]?.scrollIntoView({ block: "nearest" });
    };
    draw();
    const done = (v) => {
      dialog.removeEventListener("keydown", onKey, true);
      dialog.close();
      resolve(v);
    };
    const onKey = async (e) => {
      e.preventDefault();
      e.stopPropagation();
      if (e.key === "Escape") return done(null);
      if (e.key === "ArrowDown") { sel = Math.min(sel + 1, files.length - 1); draw(); }
      if (e.key === "ArrowUp") { sel = Math.max(sel - 1, 0); draw(); }
      if (e.key === "Enter" && files[sel]) {
        try {
          done(await post("/api/inbox/take", { name: files[sel].name }));
        } catch (err) {
          list.prepend(el("li", { class: "err", text: msg(err) }));
        }
      }
    };
    dialog.addEventListener("keydown", onKey, true);
    dialog.focus();
  });
}

export { ApiError };
