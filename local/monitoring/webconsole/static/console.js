// The local console: polls the stack's /_local JSON API and draws it. No framework, no build.
"use strict";

const $ = (sel) => document.querySelector(sel);
const COLORS = ["#0972d3", "#e07941", "#2ea597", "#8456ce", "#c33d69", "#688ae8", "#7d8998"];
const state = { config: null, logCursor: 0, logKey: "", sockets: [], loadedAt: 0 };

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") node.textContent = v; else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child);
  return node;
}

async function getJson(path) {
  const response = await fetch(path, { cache: "no-store" });
  const doc = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(doc.message || `${path}: HTTP ${response.status}`);
  return doc;
}

const ago = (ms) => {
  const s = Math.max(0, Math.round(ms / 1000));
  return s < 90 ? `${s}s` : s < 5400 ? `${Math.round(s / 60)}m` : `${(s / 3600).toFixed(1)}h`;
};
const clock = (t) => new Date(t).toLocaleTimeString([], { hour12: false });

// ---------------------------------------------------------------- alarms
function renderAlarms(doc) {
  const alarms = Array.isArray(doc) ? doc : doc.alarms || [];
  const box = $("#alarms");
  box.replaceChildren();
  const counts = { OK: 0, ALARM: 0, INSUFFICIENT_DATA: 0 };
  const prefix = `session-management-${state.config.stack}-`;
  for (const alarm of alarms) {
    counts[alarm.state] = (counts[alarm.state] || 0) + 1;
    const history = alarm.transitions || [];
    const last = history.length ? history[history.length - 1] : null;
    const trail = history.slice(-3).map((t) => `${clock(t.at)} ${t.to}`).join(" · ");
    const tile = el("div", { class: "alarm", "data-name": alarm.name, "data-state": alarm.state, title: alarm.reason || "" },
      el("div", { class: "head" }, el("span", { class: "state", "data-state": alarm.state, text: alarm.state === "INSUFFICIENT_DATA" ? "NO DATA" : alarm.state }),
        el("span", { class: "name", text: alarm.name.replace(prefix, "") })),
      el("div", { class: "when", text: last ? `since ${clock(last.at)}${history.length > 1 ? ` · ${history.length} transitions` : ""}` : "" }));
    if (alarm.state === "ALARM") tile.append(el("div", { class: "reason", text: alarm.reason || "" }));
    if (history.length > 1) tile.append(el("div", { class: "trail", text: trail }));
    box.append(tile);
  }
  if (!alarms.length) box.append(el("p", { class: "empty", text: "no alarms reported" }));
  $("#alarm-summary").textContent = `${alarms.length} alarms · ${counts.ALARM} in ALARM · ${counts.OK} OK`;
}

// ---------------------------------------------------------------- charts
function chart(widget) {
  const W = 480, H = 150, L = 44, R = 8, T = 8, B = 20;
  const svgNs = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(svgNs, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("preserveAspectRatio", "none");
  const add = (tag, attrs, text) => {
    const n = document.createElementNS(svgNs, tag);
    for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
    if (text !== undefined) n.textContent = text;
    svg.append(n);
  };
  const points = widget.series.flatMap((s) => s.points);
  // Scale to the data; a threshold far above it is named at the top instead of flattening it.
  const dataTop = Math.max(1, ...points.map((p) => p[1])) * 1.15;
  const near = (widget.thresholds || []).filter((t) => t.value <= dataTop * 1.6);
  const far = (widget.thresholds || []).filter((t) => t.value > dataTop * 1.6);
  const top = Math.max(dataTop, ...near.map((t) => t.value * 1.1));
  const [t0, t1] = [widget.start, widget.end];
  const x = (t) => L + (Math.min(Math.max(t, t0), t1) - t0) / Math.max(1, t1 - t0) * (W - L - R);
  const y = (v) => T + (1 - v / top) * (H - T - B);
  for (const f of [0, 0.5, 1]) {
    add("line", { class: "axis", x1: L, x2: W - R, y1: y(top * f), y2: y(top * f) });
    add("text", { x: L - 4, y: y(top * f) + 3, "text-anchor": "end" }, +(top * f).toPrecision(3));
  }
  add("text", { x: L, y: H - 4 }, clock(t0));
  add("text", { x: W - R, y: H - 4, "text-anchor": "end" }, clock(t1));
  for (const t of near) {
    add("line", { class: "threshold", x1: L, x2: W - R, y1: y(t.value), y2: y(t.value), ...(t.color ? { stroke: t.color } : {}) });
    add("text", { x: W - R - 2, y: y(t.value) - 3, "text-anchor": "end" }, `${t.label} ${+t.value.toPrecision(4)}`);
  }
  far.forEach((t, i) => add("text", { x: W - R - 2, y: T + 9 + 12 * i, "text-anchor": "end", class: "far" },
    `${t.label} ${+t.value.toPrecision(4)} ↑`));
  widget.series.forEach((s, i) => {
    const d = s.points.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" ");
    if (s.points.length > 1) add("polyline", { class: "series", points: d, stroke: COLORS[i % 7] });
    for (const p of s.points.length === 1 ? s.points : []) {
      add("circle", { cx: x(p[0]), cy: y(p[1]), r: 2.5, fill: COLORS[i % 7] });
    }
  });
  const legend = el("div", { class: "legend" });
  widget.series.forEach((s, i) => {
    const last = s.points.length ? s.points[s.points.length - 1][1] : null;
    const span = el("span", { text: `${s.label}${last === null ? "" : ` ${+last.toPrecision(4)}`}  ` });
    span.style.setProperty("--c", COLORS[i % 7]);
    legend.append(span);
  });
  if (!widget.series.length) {
    return el("div", { class: "chart nodata", "data-title": widget.title }, el("h3", { text: widget.title }),
      el("p", { class: "empty", text: "no data in this window" }));
  }
  return el("div", { class: "chart", "data-title": widget.title }, el("h3", { text: widget.title }), svg, legend);
}

function renderCharts(doc) {
  const box = $("#charts");
  // Charts with data first, in the dashboard's order; the empty ones after them, small.
  const drawn = doc.widgets.map(chart);
  box.replaceChildren(...drawn.filter((c) => !c.classList.contains("nodata")),
    ...drawn.filter((c) => c.classList.contains("nodata")));
  if (!doc.widgets.length) box.append(el("p", { class: "empty", text: "no metric widgets" }));
}

// ---------------------------------------------------------------- sessions
function renderSessions(doc) {
  const body = $("#sessions tbody");
  body.replaceChildren();
  for (const s of doc.sessions) {
    const langs = el("td");
    for (const [lang, n] of Object.entries(s.listenersByLanguage)) {
      langs.append(el("span", { class: "chip", text: `${lang} ${n}` }));
    }
    body.append(el("tr", { "data-session-id": s.sessionId, "data-listeners": s.listenerCount },
      el("td", {}, el("code", { text: s.sessionId })),
      el("td", { text: `${s.sourceLanguage} · ${s.qualityTier}` }),
      el("td", { class: "listeners", text: String(s.listenerCount) }),
      langs,
      el("td", { text: ago(s.ageSeconds * 1000) })));
  }
  if (!doc.sessions.length) body.append(el("tr", {}, el("td", { colspan: 5, class: "empty", text: "no active session" })));
  $("#session-count").textContent = `${doc.sessions.length} active`;
}

// ---------------------------------------------------------------- logs
function logQuery() {
  const q = new URLSearchParams();
  const level = $("#log-level").value, op = $("#log-operation").value, sid = $("#log-session").value.trim();
  if (level) q.set("level", level);
  if (op) q.set("operation", op);
  if (sid) q.set("session", sid);
  return q;
}

async function refreshLogs() {
  const q = logQuery();
  const key = q.toString();
  const body = $("#logs tbody");
  const changed = key !== state.logKey;
  if (!changed && !$("#log-follow").checked) return; // paused: keep the lines on screen
  if (changed) { state.logKey = key; state.logCursor = 0; body.replaceChildren(); }
  q.set("since", state.logCursor);
  const doc = await getJson(`${state.config.logsPath}?${q}`);
  state.logCursor = doc.cursor;
  const ops = $("#log-operation");
  const known = new Set([...ops.options].map((o) => o.value));
  for (const op of doc.operations) if (!known.has(op)) ops.append(el("option", { text: op }));
  for (const r of doc.records) {
    body.prepend(el("tr", { "data-level": r.level },
      el("td", { class: "mono", text: (r.timestamp || "").slice(11, 23) }),
      el("td", { text: r.level }), el("td", { text: (r.function || "").replace(state.functionPrefix, "") }),
      el("td", { text: r.operation || "" }),
      el("td", { class: "msg", text: r.errorCode ? `${r.message} [${r.errorCode}]` : r.message }),
      el("td", { class: "mono", text: r.sessionId || r.correlationId || "" }),
      el("td", { text: r.durationMs === undefined ? "" : String(r.durationMs) })));
  }
  while (body.rows.length > 300) body.deleteRow(-1);
  $("#log-count").textContent = `${body.rows.length} shown`;
}

// ---------------------------------------------------------------- try it
function note(text, cls = "") {
  const list = $("#try-messages");
  list.append(el("li", { class: cls, text: `${clock(Date.now())} ${text}` }));
  list.scrollTop = list.scrollHeight;
}

function renderSockets() {
  $("#try-sockets").replaceChildren(...state.sockets.map((s) =>
    el("li", { "data-role": s.role, "data-open": String(s.ws.readyState === 1) },
      `${s.role} ${s.detail} — ${["connecting", "open", "closing", "closed"][s.ws.readyState]}`)));
}

function openSocket(role, detail, url, first) {
  return new Promise((resolve) => {
    const ws = new WebSocket(url);
    const entry = { role, detail, ws, beat: null };
    state.sockets.push(entry);
    renderSockets();
    ws.onopen = () => {
      ws.send(JSON.stringify(first));
      note(`${role} → ${first.action}`);
      entry.beat = setInterval(() => ws.send(JSON.stringify({ action: "heartbeat" })), 30000);
      renderSockets();
    };
    ws.onmessage = (event) => {
      const msg = JSON.parse(event.data);
      if (msg.type !== "heartbeatAck") note(`${role} ← ${msg.type} ${msg.sessionId || msg.code || ""}`, msg.type === "error" ? "err" : "in");
      resolve(msg);
    };
    ws.onclose = (event) => {
      clearInterval(entry.beat);
      note(`${role} closed (${event.code})`, event.code === 1000 ? "" : "err");
      renderSockets();
      resolve({ type: "closed", code: event.code });
    };
  });
}

async function createSession() {
  const user = $("#try-user").value.trim() || "console-user";
  try {
    const { token } = await getJson(`${state.config.tokenPath}?user=${encodeURIComponent(user)}`);
    const lang = $("#try-source").value;
    const url = `${state.config.websocketUrl}?token=${encodeURIComponent(token)}`;
    const reply = await openSocket("speaker", `(${user}, ${lang})`, url, { action: "createSession", sourceLanguage: lang });
    if (reply.type === "sessionCreated") {
      $("#try-session-id").value = reply.sessionId;
      state.sockets[state.sockets.length - 1].detail = `${reply.sessionId} (${lang})`;
      renderSockets();
    }
  } catch (error) { note(`create failed: ${error.message}`, "err"); }
  refreshSoon();
}

async function joinSession() {
  const sessionId = $("#try-session-id").value.trim();
  const lang = $("#try-target").value;
  if (!sessionId) { note("enter a session ID first", "err"); return; }
  await openSocket("listener", `${sessionId} (${lang})`, state.config.websocketUrl, { action: "joinSession", sessionId, targetLanguage: lang });
  refreshSoon();
}

function closeAll() {
  for (const s of state.sockets) s.ws.close(1000);
  state.sockets = [];
  renderSockets();
  refreshSoon();
}

// ---------------------------------------------------------------- polling
// A panel whose source fails says so in its heading; the others keep refreshing.
async function guarded(fn, note) {
  try { await fn(); note.classList.remove("error"); return true; } catch (error) {
    note.classList.add("error");
    note.textContent = `unavailable: ${error.message}`;
    return false;
  }
}

async function refreshFast() {
  const c = state.config;
  const results = await Promise.all([
    guarded(async () => renderAlarms(await getJson(c.alarmsPath)), $("#alarm-summary")),
    guarded(async () => renderSessions(await getJson(c.sessionsPath)), $("#session-count")),
    guarded(refreshLogs, $("#log-count")),
  ]);
  return results.every(Boolean);
}

const refreshCharts = () => guarded(async () => {
  renderCharts(await getJson(`${state.config.metricsPath}?minutes=${$("#window").value}`));
  $("#chart-note").textContent = "metric widgets, embedded CloudWatch";
}, $("#chart-note"));

let soon = null;
function refreshSoon() { clearTimeout(soon); soon = setTimeout(refreshFast, 300); }

async function tick() {
  const ok = await refreshFast();
  $("#status").dataset.state = ok ? "live" : "error";
  $("#status").textContent = `${ok ? "live" : "partly unavailable"} · ${clock(Date.now())}`;
}

async function start() {
  state.config = await getJson("/_local/console/config");
  const c = state.config;
  $("#stack").textContent = `stack ${c.stack}` + (c.alarmTimeScale > 1 ? ` · alarm time ×${c.alarmTimeScale}` : "");
  state.functionPrefix = `session-management-${c.stack}-`;
  for (const code of c.sourceLanguages) $("#try-source").append(el("option", { text: code }));
  for (const code of c.targetLanguages) $("#try-target").append(el("option", { text: code }));
  $("#try-source").value = "en";
  $("#try-target").value = "es";
  $("#try-create").onclick = createSession;
  $("#try-join").onclick = joinSession;
  $("#try-close").onclick = closeAll;
  for (const id of ["#log-level", "#log-operation", "#log-session"]) $(id).onchange = refreshLogs;
  $("#window").onchange = refreshCharts;
  await Promise.all([tick(), refreshCharts()]);
  // Milliseconds from navigation start to everything drawn once with data (performance.now()
  // counts from the navigation): read by the browser test and the load-time measurement.
  state.loadedAt = performance.now();
  document.body.dataset.loaded = String(Math.round(state.loadedAt));
  setInterval(tick, 2000);
  setInterval(refreshCharts, 5000);
}

start().catch((error) => {
  $("#status").dataset.state = "error";
  $("#status").textContent = `cannot start: ${error.message}`;
});
