// Spinoff console: the data API, drawn. No framework, no build step.
// Everything from the server is written with textContent or as SVG
// elements created by name: no data is ever parsed as markup.
"use strict";

const API = "/data/v1";
const SVG = "http://www.w3.org/2000/svg";
const $ = (id) => document.getElementById(id);

// The tenant token for this tab (sessionStorage: gone with the tab). The
// admin token, when signed in with it, stays in memory only.
const state = {
  token: sessionStorage.getItem("spinoff-token"),
  admin: null,
  tenant: null,
  resources: [],
  selected: null,
  recordsAfter: null,
  streams: new Map(),
  rates: new Map(),
};

function say(text, isError) {
  const s = $("status");
  s.textContent = text;
  s.className = isError ? "error" : "";
}

// `raw`: the answer's text as is (NDJSON), not parsed.
async function api(method, path, body, token, raw) {
  const headers = { authorization: "Bearer " + (token || state.token) };
  if (body !== undefined) headers["content-type"] = "application/json";
  const r = await fetch(API + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch (_) { json = null; }
  if (r.ok && raw) return text;
  if (!r.ok) {
    const message = (json && json.message) || text || r.statusText;
    const err = new Error(r.status + ": " + message);
    err.status = r.status;
    throw err;
  }
  return json === null ? text : json;
}

function el(tag, text, attrs) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}

function svg(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = String(text);
  return e;
}

function bytes(n) {
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n : n.toFixed(1)) + " " + u[i];
}

function totals(r) {
  let records = 0, size = 0;
  for (const c of r.collections || []) { records += c.records; size += c.bytes; }
  return { records, size };
}

// ---- signing in --------------------------------------------------------

async function signIn(token) {
  try {
    const who = await api("GET", "/tokens/current", undefined, token);
    state.token = token;
    state.tenant = who.tenant;
    sessionStorage.setItem("spinoff-token", token);
    return enter();
  } catch (e) {
    if (e.status !== 401 && e.status !== 403) return say(e.message, true);
  }
  // Not a tenant token: the admin token lists tenants.
  try {
    const t = await api("GET", "/tenants", undefined, token);
    state.admin = token;
    const list = $("tenants");
    list.replaceChildren(...t.tenants.map((name) => el("option", null, { value: name })));
    $("sign-in").hidden = true;
    $("tenant-picker").hidden = false;
    $("tenant").focus();
    say("Signed in with the admin token: pick a tenant.");
  } catch (e) {
    say(e.status === 401 ? "That token is not valid." : e.message, true);
  }
}

async function pickTenant(tenant) {
  try {
    const minted = await api("POST", "/tokens", { tenant }, state.admin);
    await signIn(minted.token);
  } catch (e) {
    say(e.message, true);
  }
}

function signOut() {
  for (const s of state.streams.values()) s.abort();
  state.streams.clear();
  sessionStorage.removeItem("spinoff-token");
  state.token = state.admin = state.tenant = state.selected = null;
  $("app").hidden = true;
  $("node-panel").hidden = true;
  $("tenant-picker").hidden = true;
  $("sign-in").hidden = false;
  $("sign-out").hidden = true;
  $("who").textContent = "";
  say("Signed out.");
}

async function enter() {
  $("sign-in").hidden = true;
  $("tenant-picker").hidden = true;
  $("app").hidden = false;
  $("sign-out").hidden = false;
  $("who").textContent = "Tenant: " + state.tenant;
  say("");
  await refresh();
}

async function refresh() {
  await Promise.all([loadResources(), loadOperations()]);
  if (state.selected) await showResource(state.selected, false);
}

// ---- the tree ----------------------------------------------------------

async function loadResources() {
  const all = [];
  let after = null;
  do {
    const page = await api("GET", "/resources?limit=500" + (after ? "&after=" + after : ""));
    all.push(...page.resources);
    after = page.next;
  } while (after);
  state.resources = all;
  drawTree();
}

function badges(r) {
  const out = [];
  if (r.branch) out.push("branch " + r.branch.depth);
  else if (r.parent) out.push("own copy");
  if (r.mask) out.push("masked");
  if (r.protected) out.push("protected");
  if (r.expires_at) {
    const left = Math.max(0, Math.round((Date.parse(r.expires_at) - Date.now()) / 1000));
    out.push("expires " + left + "s");
  }
  if (r.state !== "ready") out.push(r.state);
  return out;
}

// Depth-first order with each node's depth: roots are resources without a
// parent among this tenant's resources.
function layout() {
  const byRef = new Map(state.resources.map((r) => [r.ref, r]));
  const kids = new Map();
  const roots = [];
  for (const r of state.resources) {
    if (r.parent && byRef.has(r.parent)) {
      if (!kids.has(r.parent)) kids.set(r.parent, []);
      kids.get(r.parent).push(r);
    } else {
      roots.push(r);
    }
  }
  const rows = [];
  const walk = (r, depth) => {
    rows.push({ r, depth });
    for (const k of kids.get(r.ref) || []) walk(k, depth + 1);
  };
  roots.forEach((r) => walk(r, 0));
  return rows;
}

function drawTree() {
  const rows = layout();
  const box = $("tree");
  // A redraw keeps the keyboard where it was.
  const focused = document.activeElement && document.activeElement.getAttribute
    ? document.activeElement.getAttribute("data-ref") : null;
  if (rows.length === 0) {
    box.replaceChildren(el("p", "No resources yet: create one, or import data through the API."));
    return;
  }
  const rowH = 56, indent = 28, width = 520;
  const pic = svg("svg", {
    viewBox: `0 0 ${width} ${rows.length * rowH + 8}`,
    width: "100%",
    role: "presentation",
  });
  const y = new Map();
  rows.forEach(({ r, depth }, i) => y.set(r.ref, { y: i * rowH + 4, x: depth * indent + 4 }));
  // Edges first, under the nodes.
  for (const { r } of rows) {
    if (!r.parent || !y.has(r.parent)) continue;
    const p = y.get(r.parent), c = y.get(r.ref);
    pic.append(svg("path", {
      d: `M${p.x + 10} ${p.y + 40} V${c.y + 22} H${c.x}`,
      class: "edge",
    }));
  }
  rows.forEach(({ r, depth }) => {
    const { x, y: top } = y.get(r.ref);
    const t = totals(r);
    const b = badges(r);
    const g = svg("g", {
      class: "node" + (state.selected === r.ref ? " selected" : ""),
      tabindex: "0",
      role: "treeitem",
      "aria-level": String(depth + 1),
      "aria-selected": String(state.selected === r.ref),
      "aria-label": `${r.ref}, ${t.records} records, ${bytes(t.size)}${b.length ? ", " + b.join(", ") : ""}`,
      "data-ref": r.ref,
    });
    g.append(svg("rect", { x, y: top, width: width - x - 4, height: 44, rx: 6 }));
    g.append(svg("text", { x: x + 10, y: top + 18, class: "ref" }, r.ref));
    g.append(svg("text", { x: x + 10, y: top + 36, class: "facts" },
      `${t.records} records · ${bytes(t.size)}${b.length ? " · " + b.join(" · ") : ""}`));
    const open = () => showResource(r.ref, true);
    g.addEventListener("click", open);
    g.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); open(); }
    });
    pic.append(g);
  });
  box.replaceChildren(pic);
  if (focused) {
    const again = box.querySelector(`g[data-ref="${CSS.escape(focused)}"]`);
    if (again) again.focus();
  }
}

// ---- one resource ------------------------------------------------------

function selected() {
  return state.resources.find((r) => r.ref === state.selected);
}

async function showResource(ref, focus) {
  state.selected = ref;
  drawTree();
  let r;
  try {
    r = await api("GET", "/resources/" + encodeURIComponent(ref));
  } catch (e) {
    if (e.status === 404) {
      state.selected = null;
      $("node-panel").hidden = true;
    }
    return say(e.message, true);
  }
  const i = state.resources.findIndex((x) => x.ref === ref);
  if (i >= 0) state.resources[i] = r;
  $("node-panel").hidden = false;
  $("node-title").textContent = r.ref;
  const t = totals(r);
  const facts = [
    `${t.records} records, ${bytes(t.size)}`,
    r.parent ? "cloned from " + r.parent : "not a clone",
    ...badges(r),
    "head LSN " + r.head_lsn,
  ];
  $("node-facts").replaceChildren(el("p", facts.join(" · ")));
  const body = $("collections").tBodies[0];
  body.replaceChildren(...(r.collections || []).map((c) => {
    const tr = el("tr");
    tr.append(el("td", c.name), el("td", c.records), el("td", bytes(c.bytes)));
    return tr;
  }));
  const sel = $("records-collection");
  const keep = sel.value;
  sel.replaceChildren(...(r.collections || []).map((c) => el("option", c.name, { value: c.name })));
  if (keep && [...sel.options].some((o) => o.value === keep)) sel.value = keep;
  for (const a of ["diff", "reset", "merge"]) {
    document.querySelector(`[data-action="${a}"]`).disabled = !r.parent;
  }
  $("diff-panel").hidden = true;
  $("history-panel").hidden = true;
  state.recordsAfter = null;
  $("records").replaceChildren();
  $("records-next").hidden = true;
  if (sel.value) await loadRecords(false);
  if (focus) $("node-title").focus();
}

function asOfQuery() {
  const v = $("as-of").value.trim();
  return v ? "&as_of=" + encodeURIComponent(v) : "";
}

async function loadRecords(more) {
  const ref = state.selected, coll = $("records-collection").value;
  if (!coll) return;
  const after = more && state.recordsAfter ? "&after=" + encodeURIComponent(state.recordsAfter) : "";
  let page;
  try {
    page = await api("GET", `/resources/${encodeURIComponent(ref)}/collections/${encodeURIComponent(coll)}/records?limit=20${after}${asOfQuery()}`);
  } catch (e) {
    return say(e.message, true);
  }
  const list = $("records");
  if (!more) list.replaceChildren();
  const records = page.records || [];
  for (const rec of records) {
    const li = el("li");
    li.append(el("span", rec.key, { class: "key" }));
    li.append(el("pre", JSON.stringify(rec.body, null, 1), { class: "body" }));
    const h = el("button", "History", { type: "button", "aria-label": "History of " + rec.key });
    h.addEventListener("click", () => loadHistory(coll, rec.key));
    li.append(h);
    list.append(li);
  }
  state.recordsAfter = page.next_after || null;
  $("records-next").hidden = !state.recordsAfter;
}

async function loadHistory(coll, key) {
  try {
    const h = await api("GET", `/resources/${encodeURIComponent(state.selected)}/collections/${encodeURIComponent(coll)}/records/${encodeURIComponent(key)}/history`);
    $("history-title").textContent = `History of ${coll}/${key}`;
    $("history").replaceChildren(...(h.versions || []).map((v) => {
      const li = el("li");
      li.append(el("span", `LSN ${v.lsn}${v.committed_at ? " · " + v.committed_at : ""}${v.deleted ? " · deleted" : ""}`));
      li.append(el("pre", v.deleted ? "" : JSON.stringify(v.body, null, 1), { class: "body" }));
      return li;
    }));
    $("history-panel").hidden = false;
  } catch (e) {
    say(e.message, true);
  }
}

async function showDiff() {
  const ref = state.selected;
  let text;
  try {
    text = await api("GET", `/resources/${encodeURIComponent(ref)}/diff`, undefined, undefined, true);
  } catch (e) {
    return say(e.message, true);
  }
  let lines;
  try {
    lines = text.split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l));
  } catch (e) {
    return say("The diff could not be read: " + e.message, true);
  }
  // A stream cut short ends without its summary line: say so.
  if (!lines.some((l) => l.summary)) return say("The diff was cut short; try again.", true);
  const summary = lines.find((l) => l.summary) || {};
  const changes = lines.filter((l) => !l.summary);
  const body = $("diff").tBodies[0];
  body.replaceChildren(...changes.map((c) => {
    const tr = el("tr");
    tr.append(
      el("td", c.op), el("td", c.collection), el("td", c.key),
      el("td", c.ours === undefined || c.ours === null ? "" : JSON.stringify(c.ours)),
      el("td", c.theirs === undefined || c.theirs === null ? "" : JSON.stringify(c.theirs)),
    );
    return tr;
  }));
  $("diff-summary").textContent = changes.length === 0
    ? "No differences."
    : `${changes.length} difference(s)` + (summary.summary && summary.summary.scan ? " (scanned)" : "");
  $("diff-panel").hidden = false;
}

// ---- actions -----------------------------------------------------------

// An action that loses data asks first, in the page (not a browser dialog).
function confirmThen(text, run) {
  $("confirm-text").textContent = text;
  $("confirm").hidden = false;
  $("confirm-yes").focus();
  $("confirm-yes").onclick = async () => { $("confirm").hidden = true; await run(); };
  $("confirm-no").onclick = () => { $("confirm").hidden = true; say("Nothing done."); };
}

function targetRef(ref) {
  const name = $("target-name").value.trim();
  if (!name) return null;
  return name.includes(":") ? name : ref.split(":")[0] + ":" + name;
}

async function act(action) {
  const ref = state.selected;
  if (!ref) return;
  const path = "/resources/" + encodeURIComponent(ref);
  const run = async (what, f) => {
    try {
      const out = await f();
      await refresh();
      say(what);
      return out;
    } catch (e) {
      say(e.message, true);
    }
  };
  switch (action) {
    case "branch":
    case "copy": {
      const target = targetRef(ref);
      if (!target) return say("Name the new resource first (Target name).", true);
      const body = { target };
      if (action === "copy") body.mode = "copy";
      return run(`${action === "copy" ? "Copy" : "Branch"} of ${ref} into ${target} started.`,
        () => api("POST", path + "/clones", body));
    }
    case "hydrate":
      return run(`Hydration of ${ref} started.`, () => api("POST", path + "/hydrate"));
    case "diff":
      return showDiff();
    case "reset":
      return confirmThen(`Reset ${ref} to its parent? Its changes stay readable only as of earlier points.`,
        () => run(`${ref} was reset.`, () => api("POST", path + "/reset", { force: selected() && selected().protected ? true : undefined })));
    case "merge":
      return confirmThen(`Merge ${ref} into ${selected() && selected().parent}?`, async () => {
        try {
          const out = await api("POST", path + "/merge", {});
          await refresh();
          // Too large for one transaction: the worker merges it in chunks.
          say(out && out.merge
            ? `Merging ${ref} in chunks (merge ${out.merge.id}); both sides take writes again when it ends.`
            : out && out.lsn === null ? `${ref} had nothing to merge.` : `${ref} was merged at LSN ${out.lsn}: ${out.applied} key(s) written.`);
        } catch (e) {
          // 409 with conflicts: nothing merged; the message says how many.
          say(e.message, true);
        }
      });
    case "delete":
      return confirmThen(`Delete ${ref} and everything only it holds?`,
        async () => {
          await run(`${ref} was deleted.`, async () => {
            await api("DELETE", path);
            state.selected = null;
            $("node-panel").hidden = true;
          });
        });
    case "export":
      return exportResource(ref);
  }
}

async function exportResource(ref) {
  try {
    const r = await fetch(`${API}/resources/${encodeURIComponent(ref)}/export`, {
      headers: { authorization: "Bearer " + state.token },
    });
    if (!r.ok) throw new Error(r.status + ": " + (await r.text()));
    const blob = await r.blob();
    const a = $("download");
    a.href = URL.createObjectURL(blob);
    a.download = ref.replace(/[^A-Za-z0-9._-]/g, "_") + ".ndjson";
    a.textContent = "Download " + a.download;
    a.hidden = false;
    a.click();
    say(`Export of ${ref} ready (${bytes(blob.size)}).`);
  } catch (e) {
    say(e.message, true);
  }
}

// ---- operations --------------------------------------------------------

async function loadOperations() {
  let page;
  try {
    page = await api("GET", "/operations?per_page=20");
  } catch (e) {
    return say(e.message, true);
  }
  const ids = new Set();
  for (const op of page.operations) {
    ids.add(op.id);
    drawOperation(op);
    if ((op.status === "pending" || op.status === "in_progress") && !state.streams.has(op.id)) follow(op.id);
  }
  for (const li of [...$("ops").children]) if (!ids.has(li.dataset.id)) li.remove();
  // The API's order: newest first.
  const list = $("ops");
  for (const op of page.operations) {
    const li = [...list.children].find((x) => x.dataset.id === op.id);
    if (li) list.append(li);
  }
}

function drawOperation(op) {
  const list = $("ops");
  let li = [...list.children].find((x) => x.dataset.id === op.id);
  if (!li) {
    li = el("li", null, { "data-id": op.id });
    list.append(li);
  }
  const p = op.progress || {};
  const active = op.status === "pending" || op.status === "in_progress";
  const head = el("p");
  head.append(el("strong", `${op.kind} ${op.source} → ${op.target}`), " ", el("span", op.status, { class: "op-status " + op.status }));
  const bar = el("progress", null, {
    max: String(Math.max(1, p.records_total || 0)),
    value: String(p.records_copied || 0),
    "aria-label": `Progress of ${op.kind} into ${op.target}`,
  });
  const now = Date.now(), last = state.rates.get(op.id);
  let rate = "";
  if (active && last && now > last.at && p.records_copied >= last.copied) {
    rate = Math.round((p.records_copied - last.copied) / ((now - last.at) / 1000)) + " records/s";
  }
  state.rates.set(op.id, { at: now, copied: p.records_copied || 0 });
  const eta = active && p.eta_seconds !== null && p.eta_seconds !== undefined ? `ETA ${Math.round(p.eta_seconds)} s` : "";
  const facts = el("p", [`${p.records_copied || 0} / ${p.records_total || 0} records (${p.percent || 0}%)`, rate, eta].filter(Boolean).join(" · "), { class: "op-facts" });
  const buttons = el("p");
  if (active) {
    const c = el("button", "Cancel", { type: "button", "aria-label": `Cancel ${op.kind} into ${op.target}` });
    c.addEventListener("click", () => opAction(op, "cancel"));
    buttons.append(c);
  }
  if (op.status === "failed" || op.status === "canceled") {
    const r = el("button", "Retry", { type: "button", "aria-label": `Retry ${op.kind} into ${op.target}` });
    r.addEventListener("click", () => opAction(op, "retry"));
    buttons.append(r);
  }
  if (op.status === "succeeded") {
    const open = el("button", "Open " + op.target, { type: "button", class: "link" });
    open.addEventListener("click", () => showResource(op.target, true));
    buttons.append(open);
  }
  const parts = [head, bar, facts, buttons];
  if (op.error) parts.push(el("p", op.error, { class: "error" }));
  for (const n of op.notifications || []) {
    parts.push(el("p", `notification to ${n.destination}: ${n.status}${n.attempts ? ` after ${n.attempts} attempt(s)` : ""}${n.last_error ? " · " + n.last_error : ""}`, { class: "note" }));
  }
  li.replaceChildren(...parts);
}

async function opAction(op, what) {
  try {
    await api("POST", `/operations/${op.id}/${what}`);
    await refresh();
    say(`${what === "cancel" ? "Canceled" : "Retried"} ${op.kind} into ${op.target}.`);
  } catch (e) {
    say(e.message, true);
  }
}

// An operation's events (SSE over fetch: EventSource cannot send the
// token); each event refreshes its bar.
async function follow(id) {
  const abort = new AbortController();
  state.streams.set(id, abort);
  try {
    const r = await fetch(`${API}/operations/${id}/events`, {
      headers: { authorization: "Bearer " + state.token, accept: "text/event-stream" },
      signal: abort.signal,
    });
    if (!r.ok || !r.body) throw new Error("events: " + r.status);
    const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += value;
      let cut;
      while ((cut = buf.indexOf("\n\n")) >= 0) {
        buf = buf.slice(cut + 2);
        await updateOperation(id);
      }
    }
  } catch (e) {
    if (e.name !== "AbortError") say(e.message, true);
  } finally {
    state.streams.delete(id);
  }
  const op = await updateOperation(id);
  if (op && op.status !== "pending" && op.status !== "in_progress") await loadResources();
}

async function updateOperation(id) {
  try {
    const op = await api("GET", `/operations/${id}`);
    drawOperation(op);
    return op;
  } catch (_) {
    return null;
  }
}

// ---- wiring ------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  $("sign-in-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const t = $("token").value.trim();
    $("token").value = "";
    signIn(t);
  });
  $("tenant-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    pickTenant($("tenant").value.trim());
  });
  $("sign-out").addEventListener("click", async () => {
    // A token minted through the tenant picker goes with the sign-out.
    if (state.admin) { try { await api("DELETE", "/tokens/current"); } catch (_) { /* gone already */ } }
    signOut();
  });
  $("create-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const ref = $("create-ref").value.trim();
    try {
      await api("PUT", "/resources/" + encodeURIComponent(ref));
      $("create-ref").value = "";
      say(ref + " created.");
      await loadResources();
    } catch (e) {
      say(e.message, true);
    }
  });
  for (const b of document.querySelectorAll("[data-action]")) {
    b.addEventListener("click", () => act(b.dataset.action));
  }
  $("records-form").addEventListener("submit", (ev) => { ev.preventDefault(); loadRecords(false); });
  $("records-next").addEventListener("click", () => loadRecords(true));
  $("node-title").setAttribute("tabindex", "-1");
  // Time to live counts down; operations are followed by their streams,
  // and the list is read again now and then for operations started elsewhere.
  setInterval(() => {
    if (state.token && !$("app").hidden && state.resources.some((r) => r.expires_at)) drawTree();
  }, 1000);
  setInterval(() => { if (state.token && !$("app").hidden) loadOperations(); }, 5000);
  if (state.token) signIn(state.token);
});
