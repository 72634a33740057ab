// flowkit console: a small hand-written single-page app over the REST API (no framework, no CDN).
// Views by URL fragment: "#/" (jobs, fleet and flows, with filters and keyset paging) and
// "#/flows/UUID" (the flow's DAG coloured by atom state, live over server-sent events).
"use strict";

const API = "/api/v1";
const FLOW_STATES = ["PENDING", "RUNNING", "SUCCESS", "FAILURE", "REVERTING", "REVERTED", "SUSPENDED", "RESUMING"];
const ATOM_STATES = ["PENDING", "RUNNING", "SUCCESS", "FAILURE", "REVERTING", "REVERTED", "REVERT_FAILURE",
  "RETRYING", "IGNORE"];
const FINISHED = new Set(["SUCCESS", "REVERTED", "FAILURE"]);
let live = null; // the running event stream of the flow page, aborted when leaving it

// ---- small helpers ---------------------------------------------------------------------------------

function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const kid of kids.flat()) {
    if (kid === null || kid === undefined || kid === false) continue;
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
}

function headers() {
  const token = localStorage.getItem("flowkit-token");
  return token ? { Authorization: "Bearer " + token } : {};
}

async function api(path, options) {
  const res = await fetch(API + path, { ...(options || {}), headers: { ...headers(), ...((options || {}).headers || {}) } });
  let body = null;
  try { body = await res.json(); } catch (e) { body = null; }
  if (!res.ok) {
    const detail = body && body.detail ? (typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail)) : res.statusText;
    const err = new Error(detail);
    err.status = res.status;
    throw err;
  }
  return body;
}

function toast(text) {
  const t = document.getElementById("toast");
  t.textContent = text;
  t.classList.add("show");
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => t.classList.remove("show"), 5000);
}

const badge = (state) => h("span", { class: "badge st-" + state }, state);
const short = (uuid) => (uuid || "").slice(0, 8);
// ISO 8601 text (flows) or seconds since the epoch (jobs, fleet)
const when = (t) => (t === null || t === undefined ? "–" : new Date(typeof t === "number" ? t * 1000 : t).toLocaleString());
function secs(s) {
  if (s === null || s === undefined) return "";
  if (s < 1) return (s * 1000).toFixed(0) + " ms";
  if (s < 120) return s.toFixed(2) + " s";
  return (s / 60).toFixed(1) + " min";
}

// ---- router ----------------------------------------------------------------------------------------

function route() {
  if (live) { live.abort(); live = null; }
  const hash = location.hash || "#/";
  const view = document.getElementById("view");
  const m = hash.match(/^#\/flows\/([0-9a-fA-F-]+)/);
  if (m) return flowPage(view, m[1]);
  const query = new URLSearchParams(hash.split("?")[1] || "");
  return homePage(view, query);
}

// ---- home: jobs, fleet, flows ------------------------------------------------------------------------

async function homePage(view, query) {
  const jobs = h("section", { class: "panel", id: "jobs" }, h("h2", {}, "Jobs"), h("p", { class: "muted" }, "Loading…"));
  const fleet = h("section", { class: "panel", id: "fleet" }, h("h2", {}, "Fleet"), h("p", { class: "muted" }, "Loading…"));
  const flows = h("section", { class: "panel", id: "flows" }, h("h2", {}, "Flows"));
  view.replaceChildren(jobs, fleet, flows);
  renderJobs(jobs);
  renderFleet(fleet);
  renderFlows(flows, query);
}

async function renderJobs(panel) {
  let data;
  try { data = await api("/jobs"); } catch (e) {
    panel.replaceChildren(h("h2", {}, "Jobs"), h("p", { class: "muted" }, e.status === 404 || e.status === 405
      ? "No job API on this server (start it with --board URL)." : "Jobs unavailable: " + e.message));
    return;
  }
  const list = Array.isArray(data) ? data : (data.jobs || []);
  const act = (path, what) => verb(path, what).then(() => renderJobs(panel));
  const counts = {}, owners = {};
  for (const j of list) {
    counts[j.state] = (counts[j.state] || 0) + 1;
    if (j.owner) owners[j.owner] = (owners[j.owner] || 0) + 1;
  }
  const rows = list.map((j) => h("tr", { "data-uuid": j.uuid },
    h("td", {}, j.name), h("td", { class: "mono" }, short(j.uuid)), h("td", {}, badge(j.state)),
    h("td", {}, j.owner || "–"), h("td", {}, when(j.created_on ?? j.created_at)),
    h("td", {}, j.flow_uuid ? h("a", { href: "#/flows/" + j.flow_uuid }, "flow") : ""),
    h("td", {}, h("div", { class: "verbs" },
      ["UNCLAIMED", "CLAIMED", "WAITING"].includes(j.state) ?
        h("button", { class: "danger", onclick: () => act("/jobs/" + j.uuid + "/cancel", "cancel job " + j.name) }, "Cancel") : null,
      j.state === "SET_ASIDE" ? h("button", { onclick: () => act("/jobs/" + j.uuid + "/requeue", "requeue job " + j.name) }, "Requeue") : null,
      ["UNCLAIMED", "SET_ASIDE"].includes(j.state) ?
        h("button", { onclick: () => act("/jobs/" + j.uuid + "/trash", "trash job " + j.name) }, "Trash") : null))));
  panel.replaceChildren(h("h2", {}, "Jobs"),
    h("div", { class: "counts", id: "job-counts" }, Object.entries(counts).map(([s, n]) => h("span", {}, badge(s), " ", n))),
    Object.keys(owners).length ? h("div", { class: "counts muted", id: "job-owners" }, "by owner: ",
      Object.entries(owners).map(([o, n]) => h("span", {}, o + " " + n))) : null,
    list.length ? h("table", {}, h("thead", {}, h("tr", {}, ["Name", "Job", "State", "Owner", "Posted", "", ""].map((c) => h("th", {}, c)))),
      h("tbody", {}, rows)) : h("p", { class: "muted" }, "No jobs."));
}

async function renderFleet(panel) {
  let data;
  try { data = await api("/fleet"); } catch (e) { panel.remove(); return; }
  const list = Array.isArray(data) ? data : (data.members || data.fleet || []);
  panel.replaceChildren(h("h2", {}, "Fleet"), list.length ? h("table", {},
    h("thead", {}, h("tr", {}, ["Name", "Kind", "Status", "Host", "Started", "Last heartbeat", "Running"].map((c) => h("th", {}, c)))),
    h("tbody", {}, list.map((f) => h("tr", {}, h("td", {}, f.name), h("td", {}, f.kind || ""),
      h("td", {}, h("span", { class: "badge st-" + (f.status === "alive" ? "SUCCESS" : "IGNORE") }, f.status || "?")),
      h("td", {}, (f.host || "") + (f.pid ? " pid " + f.pid : "")), h("td", {}, when(f.started)), h("td", {}, when(f.heartbeat)),
      h("td", { class: "mono" }, (f.running || []).map(short).join(" ") || "–")))))
    : h("p", { class: "muted" }, "No conductors or workers have announced themselves."));
}

function renderFlows(panel, query) {
  const state = query.get("state") || "", name = query.get("name") || "", since = query.get("since") || "";
  const cursor = query.get("cursor");
  const back = (query.get("back") || "").split(",").filter(Boolean);
  const form = h("form", { class: "filters", id: "flow-filters" },
    h("label", {}, "State", h("select", { name: "state" }, h("option", { value: "" }, "any"),
      FLOW_STATES.map((s) => h("option", { value: s, selected: s === state }, s)))),
    h("label", {}, "Name contains", h("input", { name: "name", value: name })),
    h("label", {}, "Created since", h("input", { name: "since", type: "datetime-local", value: since })),
    h("button", { type: "submit" }, "Filter"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const q = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (v) q.set(k, v);
    location.hash = "#/?" + q.toString();
  });
  const table = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  panel.replaceChildren(h("h2", {}, "Flows"), form, table);
  const q = new URLSearchParams({ limit: "25" });
  if (state) q.set("state", state);
  if (name) q.set("name", name);
  if (since) q.set("since", new Date(since).toISOString());
  if (cursor) q.set("cursor", cursor);
  api("/flows?" + q.toString()).then((page) => {
    const link = (c, b) => {
      const p = new URLSearchParams(query);
      if (c) p.set("cursor", c); else p.delete("cursor");
      if (b.length) p.set("back", b.join(",")); else p.delete("back");
      return "#/?" + p.toString();
    };
    const prev = back.length ? link(back[back.length - 1] === "-" ? null : back[back.length - 1], back.slice(0, -1)) : null;
    const next = page.next_cursor ? link(page.next_cursor, [...back, cursor || "-"]) : null;
    table.replaceChildren(
      page.flows.length ? h("table", { id: "flow-table" },
        h("thead", {}, h("tr", {}, ["Flow", "State", "UUID", "Logbook", "Created", "Updated"].map((c) => h("th", {}, c)))),
        h("tbody", {}, page.flows.map((f) => h("tr", { "data-uuid": f.uuid },
          h("td", {}, h("a", { href: "#/flows/" + f.uuid }, f.name)), h("td", {}, badge(f.state)),
          h("td", { class: "mono" }, short(f.uuid)), h("td", {}, f.logbook_name || ""),
          h("td", {}, when(f.created_at)), h("td", {}, when(f.updated_at))))))
        : h("p", { class: "muted" }, "No flows match."),
      h("div", { class: "pager" },
        prev !== null ? h("a", { href: prev, id: "prev-page" }, "← Newer") : null,
        next ? h("a", { href: next, id: "next-page" }, "Older →") : null));
  }).catch((e) => table.replaceChildren(h("p", {}, "Flows unavailable: " + e.message)));
}

// ---- the flow page -------------------------------------------------------------------------------------

async function verb(path, what) {
  try {
    const out = await api(path, { method: "POST" });
    toast((out && (out.message || out.detail)) || ("Asked to " + what));
  } catch (e) {
    toast(e.status === 404 || e.status === 405 ? "Not available on this server: " + what : "Failed: " + e.message);
  }
}

// A flow run by a conductor is cancelled through its job (the board tells whoever holds it); a flow with
// no job, through the flows route.
async function cancelFlow(flow) {
  let job = null;
  try {
    const data = await api("/jobs?history=false");
    job = (data.jobs || []).find((j) => j.flow_uuid === flow.uuid) || null;
  } catch (e) { job = null; }
  if (job) return verb("/jobs/" + job.uuid + "/cancel", "cancel job " + job.name);
  return verb("/flows/" + flow.uuid + "/cancel", "cancel flow " + flow.name);
}

async function flowPage(view, uuid) {
  view.replaceChildren(h("p", { class: "muted" }, "Loading…"));
  let flow;
  try { flow = await api("/flows/" + uuid); } catch (e) {
    view.replaceChildren(h("section", { class: "panel" }, h("h1", {}, "Flow " + uuid), h("p", {}, e.message)));
    return;
  }
  const page = { flow, nodes: new Map() };
  const header = h("section", { class: "panel", id: "flow-header" });
  const dag = h("section", { class: "panel" }, h("h2", {}, "Graph"));
  const atoms = h("section", { class: "panel", id: "atoms" });
  const failures = h("section", { class: "panel", id: "failures" });
  view.replaceChildren(header, dag, atoms, failures);
  const wrap = h("div", { class: "dag-wrap" });
  const draw = () => { page.nodes = new Map(); page.shape = mapShape(page.flow.atoms); wrap.replaceChildren(drawDag(page.flow.graph, page)); };
  page.render = () => {
    renderHeader(header, page.flow);
    renderAtoms(atoms, page.flow);
    renderFailures(failures, page.flow);
    if (mapShape(page.flow.atoms) !== page.shape) draw(); // a Map started (or grew): draw its items
    updateDag(page);
  };
  dag.append(h("div", { class: "legend" }, ATOM_STATES.map((s) => h("span", { style: "--c: var(--" + s + ")" }, s))));
  if (flow.graph.note) dag.append(h("p", { class: "note" }, flow.graph.note));
  dag.append(wrap);
  draw();
  page.render();
  follow(page);
}

function renderHeader(panel, flow) {
  const canRetry = flow.state === "REVERTED" || flow.state === "FAILURE";
  panel.replaceChildren(
    h("h1", {}, flow.name, " ", h("span", { id: "flow-state" }, badge(flow.state)), " ",
      h("span", { class: "live", id: "live" }, "")),
    h("div", { class: "meta" },
      h("span", { class: "muted" }, "uuid"), h("span", { class: "mono" }, flow.uuid),
      h("span", { class: "muted" }, "factory"), h("span", { class: "mono" }, flow.factory || "–"),
      h("span", { class: "muted" }, "created"), h("span", {}, when(flow.created_at)),
      h("span", { class: "muted" }, "updated"), h("span", {}, when(flow.updated_at))),
    h("div", { class: "verbs" },
      h("button", { id: "cancel", class: "danger", disabled: FINISHED.has(flow.state),
        onclick: () => cancelFlow(flow) }, "Cancel"),
      h("button", { id: "retry", disabled: !canRetry, onclick: () => verb("/flows/" + flow.uuid + "/retry", "retry flow " + flow.name) }, "Retry"),
      h("button", { id: "resume", disabled: flow.state !== "SUSPENDED",
        onclick: () => verb("/flows/" + flow.uuid + "/resume", "resume flow " + flow.name) }, "Resume")),
    flow.revert_path.length ? h("p", { id: "revert-path" }, h("strong", {}, "Revert path: "),
      flow.revert_path.join(" → ")) : "");
}

function renderAtoms(panel, flow) {
  panel.replaceChildren(h("h2", {}, "Atoms"), h("table", {},
    h("thead", {}, h("tr", {}, ["Atom", "State", "Attempts", "Execute", "Revert", "Result / failure"].map((c) => h("th", {}, c)))),
    h("tbody", {}, flow.atoms.map((a) => h("tr", { "data-atom": a.name },
      h("td", {}, a.name, a.kind === "retry" ? h("span", { class: "muted" }, " (retry)") : null),
      h("td", {}, badge(a.state), a.wait ? h("div", { class: "muted wait" }, waitText(a.wait)) : null), h("td", {}, a.attempts),
      h("td", {}, secs(a.duration) || (a.started_at && !a.finished_at ? "running…" : "")),
      h("td", {}, secs(a.revert_duration) || (a.revert_started_at && !a.revert_finished_at ? "reverting…" : "")),
      h("td", {}, failureOf(a.failure, "failed"), failureOf(a.revert_failure, "revert failed"),
        !a.failure && a.result !== null && a.result !== undefined ? h("span", { class: "mono" }, JSON.stringify(a.result).slice(0, 200)) : null))))));
}

function waitText(w) {
  const parts = [];
  if (w.event) parts.push("waiting for event " + w.event);
  if (w.deadline) parts.push((w.event ? "until " : "sleeping until ") + when(w.deadline));
  return parts.join(", ");
}

function failureOf(f, what) {
  if (!f) return null;
  return h("details", {}, h("summary", {}, what + ": " + f.exc_type_names[0] + ": " + f.exception_str),
    h("pre", { class: "tb" }, f.traceback_str || "(no traceback)"));
}

function renderFailures(panel, flow) {
  const entries = Object.entries(flow.failures);
  if (!entries.length) { panel.hidden = true; return; }
  panel.hidden = false;
  panel.replaceChildren(h("h2", {}, "Failures"), ...entries.map(([name, f]) => h("div", { class: "failure" },
    h("p", {}, h("strong", {}, name), ": " + f.exc_type_names[0] + ": " + f.exception_str),
    f.traceback_str ? h("pre", { class: "tb" }, f.traceback_str) : null)));
}

// ---- live updates: server-sent events read with fetch (so the API token goes in a header) -------------

function follow(page) {
  const ctrl = new AbortController();
  live = ctrl;
  let refetch = null;
  const refresh = () => {
    clearTimeout(refetch);
    refetch = setTimeout(async () => {
      try { page.flow = await api("/flows/" + page.flow.uuid); page.render(); } catch (e) { /* next event retries */ }
    }, 250);
  };
  const onEvent = (kind, data) => {
    if (kind === "atom") {
      const node = page.nodes.get(data.name);
      if (node) setNode(node, data.state, data.duration, data.revert_duration);
      const row = document.querySelector(`tr[data-atom="${CSS.escape(data.name)}"] td:nth-child(2)`);
      if (row) row.replaceChildren(badge(data.state));
      refresh();
    } else if (kind === "map") { // a Map's child flow moved: its items' states come with the refetch
      refresh();
    } else if (kind === "flow") {
      const el = document.getElementById("flow-state");
      if (el) el.replaceChildren(badge(data.state));
      refresh();
    }
  };
  const connect = async () => {
    const indicator = () => document.getElementById("live");
    try {
      const res = await fetch(API + "/flows/" + page.flow.uuid + "/events", { headers: headers(), signal: ctrl.signal });
      if (!res.ok || !res.body) throw new Error(res.statusText);
      if (indicator()) { indicator().textContent = "live"; indicator().classList.add("on"); }
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let cut;
        while ((cut = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, cut);
          buf = buf.slice(cut + 2);
          let kind = "message", data = "";
          for (const line of block.split("\n")) {
            if (line.startsWith("event:")) kind = line.slice(6).trim();
            else if (line.startsWith("data:")) data += line.slice(5).trim();
          }
          if (data) onEvent(kind, JSON.parse(data));
        }
      }
    } catch (e) {
      if (ctrl.signal.aborted) return;
    }
    if (indicator()) { indicator().textContent = "reconnecting"; indicator().classList.remove("on"); }
    if (!ctrl.signal.aborted) setTimeout(connect, 2000);
  };
  connect();
}

// ---- start -------------------------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  const token = document.getElementById("token");
  token.value = localStorage.getItem("flowkit-token") || "";
  token.addEventListener("change", () => {
    if (token.value) localStorage.setItem("flowkit-token", token.value); else localStorage.removeItem("flowkit-token");
    route();
  });
  window.addEventListener("hashchange", route);
  route();
});
