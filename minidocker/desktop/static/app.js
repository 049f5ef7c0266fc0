// minidocker desktop: the page. It draws what /api/overview returns, and redraws when /api/events
// says the daemon changed something. Every change goes through api(), which adds the X-Desktop
// header the server asks for (a cross-site form cannot send it).
"use strict";

const $ = (selector, root = document) => root.querySelector(selector);
const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
};
const SVG = "http://www.w3.org/2000/svg";
const svg = (tag, attrs = {}) => {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  return node;
};
const short = (id) => (id || "").replace(/^sha256:/, "").slice(0, 12);
const size = (bytes) => {
  const units = ["B", "kB", "MB", "GB"];
  let i = 0;
  while (bytes >= 1000 && i < units.length - 1) { bytes /= 1000; i++; }
  return `${bytes.toFixed(i ? 1 : 0)}${units[i]}`;
};

// Docker's own confirmation wording, for each prune.
const PRUNE_WARNINGS = {
  containers: "WARNING! This will remove all stopped containers.",
  images: "WARNING! This will remove all images without at least one container associated to them.",
  volumes: "WARNING! This will remove anonymous local volumes not used by at least one container.",
  networks: "WARNING! This will remove all custom networks not used by at least one container.",
};

const state = { overview: null, stats: {}, started: {}, latencies: [], detail: null, term: null, socket: null };
window.desktop = state; // for the curious (and the tests): the page's state

async function api(method, path, body) {
  const answer = await fetch(path, {
    method, credentials: "same-origin",
    headers: { "X-Desktop": "1", "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!answer.ok) {
    const text = await answer.text();
    let message = text;
    try { message = JSON.parse(text).message; } catch (e) { /* a plain-text refusal */ }
    throw new Error(message);
  }
  return answer;
}

function report(error) { alert(error.message || String(error)); }

// ---- the lists ----
let refreshing = null;
let again = false;
async function refresh() {
  if (refreshing) { again = true; return refreshing; }
  refreshing = (async () => {
    do {
      again = false;
      state.overview = await (await api("GET", "/api/overview")).json();
      draw();
    } while (again);
  })().finally(() => { refreshing = null; });
  return refreshing;
}

function draw() {
  drawContainers(); drawImages(); drawVolumes(); drawNetworks(); drawProjects();
  const now = Date.now();
  for (const c of state.overview.containers) { // time from a start event to its row, running
    if (state.started[c.Id] && c.State === "running") {
      state.latencies.push(now - state.started[c.Id]);
      delete state.started[c.Id];
    }
  }
}

function spark(points, max) {
  const box = svg("svg", { class: "spark", viewBox: "0 0 60 20", preserveAspectRatio: "none" });
  const top = Math.max(max || 0, ...points, 1e-9);
  const line = points.map((v, i) => `${60 - (points.length - 1 - i)},${20 - (v / top) * 19}`).join(" ");
  box.append(svg("polyline", { points: line }));
  return box;
}

function portLinks(c) {
  const seen = new Set();
  return (c.Ports || []).filter((p) => p.PublicPort).filter((p) => {
    const key = `${p.PublicPort}/${p.Type}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  }).map((p) => p.Type === "tcp"
    ? el("a", { href: `http://${location.hostname}:${p.PublicPort}/`, target: "_blank", rel: "noopener",
      text: `${p.PublicPort}→${p.PrivatePort}/${p.Type} ` })
    : el("span", { text: `${p.PublicPort}→${p.PrivatePort}/${p.Type} ` }));
}

function drawContainers() {
  const body = $("#containers tbody");
  const groups = new Map();
  for (const c of state.overview.containers) {
    if (!groups.has(c.Project)) groups.set(c.Project, []);
    groups.get(c.Project).push(c);
  }
  const rows = [];
  for (const project of [...groups.keys()].sort()) {
    if (project) rows.push(el("tr", { class: "project" }, el("td", { colspan: 8, text: `▾ ${project} (Compose)` })));
    for (const c of groups.get(project).sort((a, b) => a.Name.localeCompare(b.Name))) {
      const running = c.State === "running";
      const stats = state.stats[c.Id] || { cpu: [], memory: [] };
      const last = stats.memory.length ? stats.memory[stats.memory.length - 1] : 0;
      const action = (name, label = name) => el("button", {
        "data-action": name, text: label,
        onclick: () => api(name === "remove" ? "DELETE" : "POST",
          name === "remove" ? `/api/containers/${c.Id}` : `/api/containers/${c.Id}/${name}`).catch(report),
      });
      rows.push(el("tr", { class: "container", "data-name": c.Name, "data-id": c.Id },
        el("td", { text: c.Name }),
        el("td", { text: c.Image }),
        el("td", {}, el("span", { class: `state ${c.State}`, text: c.State }),
          c.Health ? el("span", { class: `health ${c.Health}`, text: c.Health }) : null),
        el("td", { class: "uptime", text: c.Status }),
        el("td", {}, ...portLinks(c)),
        el("td", {}, running ? spark(stats.cpu, 100) : null,
          running && stats.cpu.length ? ` ${stats.cpu[stats.cpu.length - 1].toFixed(1)}%` : null),
        el("td", {}, running ? spark(stats.memory) : null, running && last ? ` ${size(last)}` : null),
        el("td", {}, running ? action("stop") : action("start"), action("restart"),
          el("button", { "data-action": "logs", text: "logs", onclick: () => openDetail(c, "logs") }),
          running ? el("button", { "data-action": "terminal", text: "terminal", onclick: () => openDetail(c, "terminal") }) : null,
          action("remove")),
      ));
    }
  }
  body.replaceChildren(...rows);
}

const COLOURS = ["#1d63ed", "#5b8def", "#8fb2f5", "#2e9d52", "#7cc28f", "#b7791f", "#e0a84f"];
function drawImages() {
  const body = $("#images tbody");
  body.replaceChildren(...state.overview.images.map((image) => {
    const total = image.Layers.reduce((sum, l) => sum + l.Size, 0) || 1;
    const bar = el("div", { class: "layers", title: `${image.Layers.length} layers` },
      ...image.Layers.map((l, i) => el("span", {
        style: `width:${(100 * l.Size) / total}%;background:${COLOURS[i % COLOURS.length]}`,
        title: `${size(l.Size)}: ${l.CreatedBy}`,
      })));
    return el("tr", { class: "image", "data-id": image.Id },
      el("td", { text: image.Tags.join(", ") || "<none>" }),
      el("td", { text: short(image.Id) }),
      el("td", { text: size(image.Size || 0) }),
      el("td", {}, bar, ` ${image.Layers.length}`),
      el("td", { text: image.UsedBy.join(", ") }),
      el("td", {}, el("button", { "data-action": "remove", text: "remove",
        onclick: () => api("DELETE", `/api/images/${encodeURIComponent(image.Id)}`).catch(report) })));
  }));
}

function drawVolumes() {
  $("#volumes tbody").replaceChildren(...state.overview.volumes.map((v) => el("tr", { class: "volume" },
    el("td", { text: v.Name }), el("td", { text: v.Driver }), el("td", { text: v.Mountpoint || "" }),
    el("td", { text: (v.Labels || {})["com.docker.compose.project"] || "" }))));
}

// A drawing of each network as a line, and the containers on it hanging from it.
function drawNetworks() {
  const map = $("#network-map");
  const networks = state.overview.networks.slice().sort((a, b) => a.Name.localeCompare(b.Name));
  const rowHeight = 90;
  map.setAttribute("height", Math.max(1, networks.length) * rowHeight + 10);
  const nodes = [];
  networks.forEach((n, row) => {
    const y = row * rowHeight + 25;
    const subnet = ((n.IPAM || {}).Config || []).map((c) => c.Subnet).filter(Boolean).join(" ");
    nodes.push(svg("line", { x1: 10, y1: y, x2: 1200, y2: y, stroke: "#1d63ed", "stroke-width": 4 }));
    const label = svg("text", { x: 12, y: y - 8 });
    label.textContent = `${n.Name} (${n.Driver}) ${subnet}`;
    nodes.push(label);
    const members = state.overview.containers.filter((c) => c.NetworkNames.includes(n.Name));
    members.forEach((c, i) => {
      const x = 40 + i * 150;
      nodes.push(svg("line", { x1: x + 60, y1: y, x2: x + 60, y2: y + 22, stroke: "#888" }));
      nodes.push(svg("rect", { x, y: y + 22, width: 130, height: 30, rx: 5,
        fill: c.State === "running" ? "#d4f3dd" : "#eee", stroke: "#888", class: "net-container" }));
      const name = svg("text", { x: x + 6, y: y + 41 });
      name.textContent = c.Name.slice(0, 19);
      nodes.push(name);
    });
  });
  map.replaceChildren(...nodes);
}

function drawProjects() {
  const rows = state.overview.containers.filter((c) => c.Project).sort((a, b) => a.Name.localeCompare(b.Name))
    .map((c) => el("tr", { class: "service", "data-name": c.Name },
      el("td", { text: c.Project }), el("td", { text: c.Labels["com.docker.compose.service"] || "" }),
      el("td", { text: c.Name }), el("td", { class: `state ${c.State}`, text: c.State }),
      el("td", { class: "health", text: c.Health || "-" })));
  $("#projects tbody").replaceChildren(...rows);
}

// ---- live: one server-sent event stream ----
function drawCall(call) {
  const body = $("#calls tbody");
  const at = new Date(call.at * 1000).toLocaleTimeString();
  body.prepend(el("tr", {}, el("td", { text: at }), el("td", { text: call.via }), el("td", { text: call.method }),
    el("td", { text: call.path }),
    el("td", { class: call.status >= 400 || call.status === 0 ? "status-err" : "", text: call.status }),
    el("td", { text: call.ms.toFixed(1) })));
  while (body.children.length > 60) body.lastChild.remove();
}

function connect() {
  const events = new EventSource("/api/events");
  events.addEventListener("hello", (e) => {
    const hello = JSON.parse(e.data);
    $("#daemon").textContent = `${hello.host} · API ${hello.version}`;
    $("#live").textContent = "live";
    $("#live").classList.remove("off");
    refresh().catch(report);
  });
  events.addEventListener("event", (e) => {
    const event = JSON.parse(e.data);
    if (event.Type === "container" && event.Action === "start") {
      state.started[event.id || event.Actor.ID] = event.timeNano / 1e6;
    }
    if (event.Type !== "container" || !event.Action.startsWith("exec_")) refresh().catch(() => {});
  });
  events.addEventListener("call", (e) => drawCall(JSON.parse(e.data)));
  events.addEventListener("stats", (e) => {
    const point = JSON.parse(e.data);
    const series = state.stats[point.id] || (state.stats[point.id] = { cpu: [], memory: [] });
    series.cpu.push(point.cpu); series.memory.push(point.memory);
    if (series.cpu.length > 60) { series.cpu.shift(); series.memory.shift(); }
    if (!state.drawPending) {
      state.drawPending = true;
      requestAnimationFrame(() => { state.drawPending = false; if (state.overview) drawContainers(); });
    }
  });
  events.onerror = () => { $("#live").textContent = "reconnecting"; $("#live").classList.add("off"); };
}

// ---- a container's logs and terminal ----
function closeDetail() {
  if (state.logs) { state.logs.close(); state.logs = null; }
  if (state.socket) { state.socket.close(); state.socket = null; }
  if (state.term) { state.term.dispose(); state.term = null; }
  $("#detail").hidden = true;
  state.detail = null;
}

function openLogs(c) {
  if (state.logs) state.logs.close();
  const pre = $("#logs");
  pre.replaceChildren();
  const follow = $("#logs-follow").checked ? 1 : 0;
  const stamps = $("#logs-timestamps").checked ? 1 : 0;
  const logs = new EventSource(`/api/containers/${c.Id}/logs?follow=${follow}&timestamps=${stamps}`);
  logs.addEventListener("line", (e) => {
    const line = JSON.parse(e.data);
    const row = el("div", { class: line.stream, text: line.line });
    const wanted = $("#logs-search").value;
    if (wanted && !line.line.includes(wanted)) row.classList.add("hidden");
    const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    pre.append(row);
    while (pre.children.length > 5000) pre.firstChild.remove();
    if (atEnd) pre.scrollTop = pre.scrollHeight;
  });
  logs.addEventListener("end", () => logs.close());
  state.logs = logs;
}

function openTerminal(c) {
  const term = new Terminal({ convertEol: false, fontSize: 13, cursorBlink: true });
  const fit = new FitAddon.FitAddon();
  term.loadAddon(fit);
  $("#terminal").replaceChildren();
  term.open($("#terminal"));
  fit.fit();
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/api/containers/${c.Id}/terminal`);
  socket.binaryType = "arraybuffer";
  const resize = () => {
    fit.fit();
    if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ resize: [term.cols, term.rows] }));
  };
  socket.onopen = resize;
  socket.onmessage = (e) => term.write(new Uint8Array(e.data));
  socket.onclose = () => term.write("\r\n[the shell ended]\r\n");
  term.onData((data) => socket.readyState === WebSocket.OPEN && socket.send(JSON.stringify({ input: data })));
  window.addEventListener("resize", resize);
  term.focus();
  state.term = term;
  state.socket = socket;
}

function openDetail(c, what) {
  closeDetail();
  state.detail = c;
  $("#detail").hidden = false;
  $("#detail-title").textContent = `${c.Name}: ${what}`;
  $("#logs-pane").hidden = what !== "logs";
  $("#terminal-pane").hidden = what !== "terminal";
  if (what === "logs") openLogs(c); else openTerminal(c);
}

// ---- pull, prune, compose ----
async function pull(image) {
  const layers = {};
  const box = $("#pull-layers");
  box.replaceChildren();
  $("#pull-status").textContent = `pulling ${image}…`;
  $("#pull-percent").textContent = "0%";
  const answer = await api("POST", "/api/images/pull", { image });
  const reader = answer.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let failed = null;
  const done = new Set(["Pull complete", "Already exists", "Download complete"]);
  const show = (message) => {
    if (message.error) { failed = message.error; return; }
    if (!message.id || !message.progressDetail) { $("#pull-status").textContent = message.status; return; }
    let layer = layers[message.id];
    if (!layer) {
      layer = layers[message.id] = { row: el("div", { class: "layer", "data-id": message.id }), bar: el("progress", { max: 100, value: 0 }),
        status: el("span"), percent: el("span") };
      layer.row.append(el("span", { text: message.id }), layer.status, layer.bar, layer.percent);
      box.append(layer.row);
    }
    layer.status.textContent = message.status;
    const detail = message.progressDetail;
    let value = layer.bar.value;
    if (done.has(message.status)) value = 100;
    else if (detail.total) value = Math.max(value, (100 * detail.current) / detail.total);
    layer.bar.value = value;
    layer.percent.textContent = `${Math.floor(value)}%`;
    const all = Object.values(layers);
    const overall = all.reduce((sum, l) => sum + l.bar.value, 0) / all.length;
    $("#pull-percent").textContent = `${Math.floor(overall)}%`;
  };
  for (;;) {
    const { value, done: end } = await reader.read();
    if (end) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, cut).trim();
      buffer = buffer.slice(cut + 1);
      if (line) show(JSON.parse(line));
    }
  }
  if (failed) { $("#pull-status").textContent = `failed: ${failed}`; return; }
  if (!Object.keys(layers).length) $("#pull-percent").textContent = "100%";
}

async function prune(kind) {
  if (!confirm(`${PRUNE_WARNINGS[kind]}\nAre you sure you want to continue?`)) return;
  const result = await (await api("POST", `/api/prune/${kind}`)).json();
  const gone = result.ContainersDeleted || result.ImagesDeleted || result.VolumesDeleted || result.NetworksDeleted || [];
  alert(`Deleted: ${gone.length}\nTotal reclaimed space: ${size(result.SpaceReclaimed || 0)}`);
}

async function composeUp() {
  const out = $("#compose-out");
  out.textContent = "";
  const answer = await api("POST", "/api/compose", { name: $("#compose-name").value, yaml: $("#compose-yaml").value });
  const text = await answer.text(); // Compose's lines come as it goes; shown at the end
  for (const line of text.split("\n").filter(Boolean)) {
    const message = JSON.parse(line);
    out.textContent += message.line ? `${message.line}\n` : message.error ? `error: ${message.error}\n` : "done\n";
  }
}

// ---- wiring ----
for (const button of document.querySelectorAll("nav button")) {
  button.addEventListener("click", () => {
    for (const b of document.querySelectorAll("nav button")) b.classList.toggle("active", b === button);
    for (const view of document.querySelectorAll(".view")) view.hidden = view.id !== `view-${button.dataset.view}`;
  });
}
for (const button of document.querySelectorAll("button.prune")) {
  button.addEventListener("click", () => prune(button.dataset.kind).catch(report));
}
$("#pull").addEventListener("submit", (e) => { e.preventDefault(); pull($("#pull-image").value.trim()).catch(report); });
$("#compose").addEventListener("submit", (e) => { e.preventDefault(); composeUp().catch(report); });
$("#compose-file").addEventListener("change", async (e) => {
  const file = e.target.files[0];
  if (file) $("#compose-yaml").value = await file.text();
});
$("#detail-close").addEventListener("click", closeDetail);
$("#logs-search").addEventListener("input", () => {
  const wanted = $("#logs-search").value;
  for (const row of $("#logs").children) row.classList.toggle("hidden", !!wanted && !row.textContent.includes(wanted));
});
for (const box of ["#logs-follow", "#logs-timestamps"]) {
  $(box).addEventListener("change", () => state.detail && openLogs(state.detail));
}
fetch("/api/calls", { credentials: "same-origin" }).then((a) => a.json()).then((calls) => calls.forEach(drawCall));
connect();
