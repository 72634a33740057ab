// flowkit console: the flow's DAG as SVG (layout, drawing, colouring by state). Loaded before
// console.js, which calls drawDag() once per flow page and updateDag()/setNode() as the flow changes.
// Hand-written, no library: layers by longest path, each chain kept on one row, nested flows as boxes.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";

function svg(tag, attrs, ...kids) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== null && v !== undefined) el.setAttribute(k, String(v));
  for (const kid of kids.flat()) if (kid) el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  return el;
}

// ---- DAG layout: layers by longest path, order by the predecessors' mean, groups kept together ----------

const NODE_W = 180, NODE_H = 42, GAP_X = 70, GAP_Y = 36, PAD = 14;

function layout(graph) {
  const names = graph.nodes.map((n) => n.name);
  const preds = new Map(names.map((n) => [n, []]));
  for (const e of graph.edges) if (preds.has(e.target) && preds.has(e.source)) preds.get(e.target).push(e.source);
  // layer = longest path from a root, by one Kahn pass (no recursion: flows can be long chains)
  const index = new Map(names.map((n, i) => [n, i]));
  const succs = new Map(names.map((n) => [n, []]));
  const indegree = new Map(names.map((n) => [n, preds.get(n).length]));
  for (const [n, ps] of preds) for (const p of ps) succs.get(p).push(n);
  const layer = new Map(names.map((n) => [n, 0]));
  const queue = names.filter((n) => indegree.get(n) === 0);
  for (let i = 0; i < queue.length; i++) {
    const n = queue[i];
    for (const s of succs.get(n)) {
      layer.set(s, Math.max(layer.get(s), layer.get(n) + 1));
      indegree.set(s, indegree.get(s) - 1);
      if (indegree.get(s) === 0) queue.push(s);
    }
  }
  const pos = {};
  if (!graph.edges.length) { // no links known: the saved order, in columns of ten
    names.forEach((n, i) => { pos[n] = { x: PAD * 4 + Math.floor(i / 10) * (NODE_W + GAP_X), y: PAD * 4 + (i % 10) * (NODE_H + GAP_Y) }; });
    return pos;
  }
  const groupOrder = new Map(graph.groups.map((g, i) => [g.id, i]));
  const nodeGroup = new Map(graph.nodes.map((n) => [n.name, n.group]));
  const layers = [];
  for (const n of names) (layers[layer.get(n)] = layers[layer.get(n)] || []).push(n);
  const row = new Map();
  layers.forEach((col, x) => {
    // where the predecessors sit (their mean row): a chain stays on one row, so a subflow's box
    // does not spill over its neighbours; ties keep the groups together, then the compiled order
    const want = (n) => {
      const ps = preds.get(n).filter((p) => row.has(p));
      return ps.length ? ps.reduce((s, p) => s + row.get(p), 0) / ps.length : 0;
    };
    col.sort((a, b) => want(a) - want(b) || (groupOrder.get(nodeGroup.get(a)) ?? 0) - (groupOrder.get(nodeGroup.get(b)) ?? 0)
      || index.get(a) - index.get(b));
    let last = -1;
    for (const n of col) {
      const y = Math.max(last + 1, Math.round(want(n)));
      last = y;
      row.set(n, y);
      pos[n] = { x: PAD * 4 + x * (NODE_W + GAP_X), y: PAD * 4 + y * (NODE_H + GAP_Y) };
    }
  });
  return pos;
}

function drawDag(graph, page) {
  const pos = layout(graph);
  const xs = Object.values(pos);
  page.items = new Map();
  const root = svg("svg", { class: "dag", id: "dag" },
    svg("defs", {}, svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto" },
      svg("path", { d: "M0,0 L10,5 L0,10 z", fill: "#8a94a6" }))));
  // groups: the box around every node inside the (sub)flow, deeper ones drawn later (on top), padded less
  const depthOf = (g) => (g.parent ? 1 + depthOf(graph.groups.find((x) => x.id === g.parent) || {}) : 0);
  const within = (gid, nodeGroupId) => nodeGroupId === gid || (nodeGroupId || "").startsWith(gid + "/");
  const groups = graph.groups.filter((g) => g.parent !== null).sort((a, b) => depthOf(a) - depthOf(b));
  for (const g of groups) {
    const inside = graph.nodes.filter((n) => within(g.id, n.group)).map((n) => pos[n.name]);
    if (!inside.length) continue;
    const pad = Math.max(6, 22 - (depthOf(g) - 1) * 8);
    const x0 = Math.min(...inside.map((p) => p.x)) - pad, y0 = Math.min(...inside.map((p) => p.y)) - pad - 12;
    const x1 = Math.max(...inside.map((p) => p.x)) + NODE_W + pad, y1 = Math.max(...inside.map((p) => p.y)) + NODE_H + pad;
    root.append(svg("g", { class: "group", "data-group": g.id },
      svg("rect", { x: x0, y: y0, width: x1 - x0, height: y1 - y0 }),
      svg("text", { x: x0 + 6, y: y0 + 12 }, g.name + " · " + g.pattern.replace("Flow", "") + (g.retry ? " · retry " + g.retry : ""))));
  }
  for (const e of graph.edges) {
    const a = pos[e.source], b = pos[e.target];
    if (!a || !b) continue;
    const x0 = a.x + NODE_W, y0 = a.y + NODE_H / 2, x1 = b.x, y1 = b.y + NODE_H / 2, mx = (x0 + x1) / 2;
    root.append(svg("path", { class: "edge" + (e.decider ? " decider" : ""), "marker-end": "url(#arrow)",
      d: `M${x0},${y0} C${mx},${y0} ${mx},${y1} ${x1},${y1}` }, e.decider ? svg("title", {}, "decider: " + e.decider) : null));
  }
  for (const n of graph.nodes) {
    const p = pos[n.name];
    const label = n.name.length > 22 ? n.name.slice(0, 21) + "…" : n.name;
    const time = svg("text", { class: "time", x: p.x + 10, y: p.y + 34 }, "");
    const order = svg("text", { class: "order", x: p.x + NODE_W - 4, y: p.y - 3, "text-anchor": "end" }, "");
    const g = svg("g", { class: "node" + (n.kind === "retry" ? " retry" : ""), "data-name": n.name, "data-state": "PENDING" },
      svg("title", {}, n.name), svg("rect", { x: p.x, y: p.y, width: NODE_W, height: NODE_H }),
      svg("text", { class: "label", x: p.x + 10, y: p.y + 18 }, label), time, order);
    page.nodes.set(n.name, { g, time, order });
    root.append(g);
  }
  // a Map's items: below the DAG, one box per Map joined to its node by a dashed line
  let bottom = Math.max(...xs.map((p) => p.y), 0) + NODE_H + PAD * 2, right = Math.max(...xs.map((p) => p.x), 0) + NODE_W;
  for (const a of page.flow.atoms) {
    const at = pos[a.name];
    if (!a.map || !at) continue;
    const x = at.x, y = bottom + PAD * 2;
    root.append(svg("path", { class: "edge map-link", d: `M${at.x + NODE_W / 2},${at.y + NODE_H} L${at.x + NODE_W / 2},${y}` }));
    const size = drawMapBox(root, page, a.name, a.map, x, y);
    bottom = y + size.h;
    right = Math.max(right, x + size.w);
  }
  const width = right + PAD * 5, height = bottom + PAD * 3;
  root.setAttribute("width", width);
  root.setAttribute("height", height);
  root.setAttribute("viewBox", `0 0 ${width} ${height}`);
  return root;
}

// ---- Map items: one row per item (a state marker, then its atoms in order); a nested Map's items in a
// box of their own under its item's row. Item atoms are nodes like the others (coloured live by name).

const ITEM_W = 150, ITEM_H = 30, ITEM_GAP = 8, MARK_W = 44;

function drawMapBox(root, page, name, map, x, y) {
  const box = svg("g", { class: "group map", "data-map": name });
  root.append(box);
  let cy = y + 22, w = MARK_W + ITEM_W + 16;
  for (const item of map.items) {
    const prefix = name + "[" + item.index + "].";
    const mark = svg("g", { class: "node map-item", "data-item": name + "[" + item.index + "]", "data-state": item.state },
      svg("title", {}, name + " item " + item.index + ": " + item.state),
      svg("rect", { x: x + 8, y: cy, width: MARK_W - 14, height: ITEM_H }),
      svg("text", { class: "label", x: x + 12, y: cy + 19 }, "[" + item.index + "]"));
    page.items.set(name + "[" + item.index + "]", mark);
    root.append(mark);
    let ax = x + MARK_W, below = cy + ITEM_H;
    for (const a of item.atoms) {
      const short = a.name.startsWith(prefix) ? a.name.slice(prefix.length) : a.name;
      const label = short.length > 18 ? short.slice(0, 17) + "…" : short;
      const time = svg("text", { class: "time", x: ax + 8, y: cy + 26 }, "");
      const order = svg("text", { class: "order", x: ax + ITEM_W - 4, y: cy - 3, "text-anchor": "end" }, "");
      const g = svg("g", { class: "node item", "data-name": a.name, "data-state": a.state },
        svg("title", {}, a.name), svg("rect", { x: ax, y: cy, width: ITEM_W, height: ITEM_H }),
        svg("text", { class: "label", x: ax + 8, y: cy + 13 }, label), time, order);
      page.nodes.set(a.name, { g, time, order });
      root.append(g);
      ax += ITEM_W + ITEM_GAP;
    }
    w = Math.max(w, ax - x + 8);
    for (const a of item.atoms) {
      if (!a.map) continue;
      const sub = drawMapBox(root, page, a.name, a.map, x + MARK_W, below + ITEM_GAP + 4);
      below += ITEM_GAP + 4 + sub.h;
      w = Math.max(w, MARK_W + sub.w + 8);
    }
    cy = below + ITEM_GAP;
  }
  const more = map.size > map.shown ? " · first " + map.shown + " shown" : "";
  const h = Math.max(cy - y, 30) + 4;
  box.prepend(svg("rect", { x, y, width: w, height: h }),
    svg("text", { x: x + 6, y: y + 14 }, name + " · Map · " + map.size + " item" + (map.size === 1 ? "" : "s") + more));
  return { w, h };
}

// What the drawn Map boxes hold: when it changes (a Map starts, an item grows), the DAG is drawn again.
function mapShape(atoms) {
  const parts = [];
  const walk = (list) => { for (const a of list) if (a.map) { parts.push(a.name + ":" + a.map.size); for (const i of a.map.items) { parts.push(i.atoms.map((x) => x.name).join(",")); walk(i.atoms); } } };
  walk(atoms);
  return parts.join("|");
}

// Every atom of the flow and of its Maps' items, by name (item atoms' names are unique in the flow).
function allAtoms(atoms, into) {
  for (const a of atoms) {
    into.set(a.name, a);
    if (a.map) for (const i of a.map.items) allAtoms(i.atoms, into);
  }
  return into;
}

function mapItems(atoms, into) {
  for (const a of atoms) if (a.map) for (const i of a.map.items) { into.set(a.name + "[" + i.index + "]", i); mapItems(i.atoms, into); }
  return into;
}

function updateDag(page) {
  const byName = allAtoms(page.flow.atoms, new Map());
  const items = mapItems(page.flow.atoms, new Map());
  for (const [key, mark] of page.items || []) {
    const item = items.get(key);
    if (item) { mark.setAttribute("data-state", item.state); mark.querySelector("title").textContent = key + ": " + item.state; }
  }
  const revertOrder = new Map(page.flow.revert_path.map((n, i) => [n, i + 1]));
  for (const [name, node] of page.nodes) {
    const a = byName.get(name);
    if (!a) continue;
    node.wait = a.wait;
    setNode(node, a.state, a.duration, a.revert_duration);
    node.g.classList.toggle("on-revert-path", revertOrder.has(name));
    node.order.textContent = revertOrder.has(name) ? "revert #" + revertOrder.get(name) : "";
  }
}

function setNode(node, state, duration, revertDuration) {
  node.g.setAttribute("data-state", state);
  const parts = [state.toLowerCase().replace("_", " ")];
  if (duration !== null && duration !== undefined) parts.push("run " + secs(duration).replace(" ", ""));
  if (revertDuration !== null && revertDuration !== undefined) parts.push("rev " + secs(revertDuration).replace(" ", ""));
  // the colour says the state; when the times need the room, they get it
  node.time.textContent = parts.join(" · ").length > 30 ? parts.slice(1).join(" · ") : parts.join(" · ");
  // a wait (Sleep, WaitForEvent) is RUNNING while it waits: say what for, in the waiting colour
  const waiting = state === "RUNNING" && node.wait;
  node.g.classList.toggle("waiting", !!waiting);
  if (waiting) node.time.textContent = node.wait.event ? "waiting: " + node.wait.event : "sleeping";
}

