// Calls to the station's own server. Every call carries this page's session token; the
// server refuses anything else (docs/ui.md). No rule is computed here: the server checks.

const TOKEN = document.querySelector('meta[name="c1-token"]').content;
export const W = JSON.parse(document.getElementById("words").textContent);

export class ApiError extends Error {
  constructor(status, err) {
    super(err.reason || `HTTP ${status}`);
    this.status = status;
    this.code = err.code || "error";
    this.field = err.field || null;
    this.err = err;
  }
  text(lang) {
    return (lang === "id" ? this.err.reason_id : this.err.reason) || this.message;
  }
}

export class Offline extends Error {}

let onOffline = () => {};
let onOnline = () => {};
export function watchConnection(down, up) {
  onOffline = down;
  onOnline = up;
}

export async function call(method, path, body) {
  const opts = { method, headers: { "X-C1-Token": TOKEN }, credentials: "same-origin" };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  let r;
  try {
    r = await fetch(path, opts);
  } catch (e) {
    onOffline();
    throw new Offline(String(e));
  }
  onOnline();
  const data = await r.json().catch(() => ({}));
  if (!r.ok) {
    const err = new ApiError(r.status, data.error || {});
    if (err.code === "bad_token") {
      // The station was restarted: this page's token is old. Reload (the draft is kept).
      location.reload();
    }
    throw err;
  }
  return data;
}

export const get = (path) => call("GET", path);
export const post = (path, body) => call("POST", path, body || {});

export async function upload(file) {
  let r;
  try {
    r = await fetch("/api/scans", {
      method: "POST",
      headers: { "X-C1-Token": TOKEN, "Content-Type": "application/octet-stream",
                 "X-File-Name": encodeURIComponent(file.name || "") },
      body: file,
    });
  } catch (e) {
    onOffline();
    throw new Offline(String(e));
  }
  const data = await r.json().catch(() => ({}));
  if (!r.ok) throw new ApiError(r.status, data.error || {});
  return data;
}

export function scanUrl(hash) {
  return `/scan/${hash}?t=${encodeURIComponent(TOKEN)}`;
}

export function lang() {
  return document.documentElement.lang;
}

export function msg(e) {
  if (e instanceof ApiError) return e.text(lang());
  if (e instanceof Offline) return W.offline;
  return String(e);
}

export function fmt(text, values) {
  return text.replace(/\{(\w+)\}/g, (_, k) => (k in values ? values[k] : `{${k}}`));
}

export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("data-") || k.startsWith("aria-") || k === "name" || k === "role")
      e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

export function time(unix) {
  if (!unix) return "-";
  const d = new Date(unix * 1000);
  return d.toLocaleString(lang() === "id" ? "id-ID" : "en-GB", { hour12: false });
}
