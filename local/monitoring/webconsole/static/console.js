// The local console: polls the stack's /_local JSON API and draws it. No framework, no build.
"use strict";

const $ = (sel) => document.querySelector(sel);
const COLORS = ["#0972d3", "#e07941", "#2ea597", "#8456ce", "#c33d69", "#688ae8", "#7d8998"];
const state = { config: null, logCursor: 0, logKey: "", sockets: [], loadedAt: 0, alarmStates: undefined, chartSeq: 0, chartShown: 0 };

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
// The runbook section of an alarm: its address as configured (runbookBaseUrl), or, for the
// default path inside the repository, the copy this stack serves.
function runbookHref(alarm) {
  const address = alarm.runbook || "";
  if (/^https?:\/\//.test(address)) return address;
  const anchor = address.includes("#") ? address.slice(address.indexOf("#")) : "";
  return `${state.config.runbooksPath}${anchor}`;
}

function renderAlarms(alarms) {
  const box = $("#alarms");
  box.replaceChildren();
  const counts = { OK: 0, ALARM: 0, INSUFFICIENT_DATA: 0 };
  const prefix = `session-management-${state.config.stack}-`;
  for (const alarm of alarms) {
    counts[alarm.state] = (counts[alarm.state] || 0) + 1;
    const history = alarm.transitions || [];
    const last = history.length ? history[history.length - 1] : null;
    const trail = history.slice(-3).map((t) => `${clock(t.at)} ${t.to}`).join(" · ");
    const tile = el("div", { class: "alarm", "data-name": alarm.name, "data-state": alarm.state, "data-metric": alarm.metricName || "", title: alarm.reason || "" },
      el("div", { class: "head" }, el("span", { class: "state", "data-state": alarm.state, text: alarm.state === "INSUFFICIENT_DATA" ? "NO DATA" : alarm.state }),
        el("span", { class: "name", text: alarm.name.replace(prefix, "") }),
        el("a", { class: "runbook", href: runbookHref(alarm), target: "_blank", rel: "noopener", title: alarm.runbook || "", text: "runbook" })),
      el("div", { class: "when", text: last ? `since ${clock(last.at)}${history.length > 1 ? ` · ${history.length} transitions` : ""}` : "" }));
    if (alarm.state === "ALARM") tile.append(el("div", { class: "reason", text: alarm.reason || "" }));
    if (history.length > 1) tile.append(el("div", { class: "trail", text: trail }));
    box.append(tile);
  }
  if (!alarms.length) box.append(el("p", { class: "empty", text: "no alarms reported" }));
  $("#alarm-summary").textContent = `${alarms.length} alarms · ${counts.ALARM} in ALARM · ${counts.OK} OK`;
}

// ---------------------------------------------------------------- charts
const fmt = (v) => String(+v.toPrecision(4));

// A series' points cut where a period has no datapoint: CloudWatch draws gaps, not lines.
function runs(points, periodMs) {
  const out = [];
  for (const p of points) {
    const run = out[out.length - 1];
    if (run && p[0] - run[run.length - 1][0] <= periodMs) run.push(p); else out.push([p]);
  }
  return out;
}

// The legend: the window's totals for counts (Sum), else one instant — the latest period
// with a datapoint, the same period for every series. It says which.
function legendOf(widget) {
  const additive = widget.series.length > 0 && widget.series.every((s) => s.stat === "Sum" || s.stat === "SampleCount");
  if (additive) {
    return { mode: "totals", note: "window totals", values: widget.series.map((s) => s.points.reduce((a, p) => a + p[1], 0)) };
  }
  const latest = Math.max(...widget.series.flatMap((s) => s.points.map((p) => p[0])));
  return {
    mode: "latest", at: latest, note: Number.isFinite(latest) ? `at ${clock(latest)}` : "",
    values: widget.series.map((s) => { const p = s.points.find((q) => q[0] === latest); return p ? p[1] : null; }),
  };
}

function chart(widget) {
  const W = 480, H = 150, L = 44, R = 8, T = 8, B = 20;
  const svgNs = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(svgNs, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  const add = (tag, attrs, text) => {
    const n = document.createElementNS(svgNs, tag);
    for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
    if (text !== undefined) n.textContent = text;
    svg.append(n);
    return n;
  };
  const points = widget.series.flatMap((s) => s.points);
  // Scale to the data; a threshold far above it is named above the chart, not drawn.
  const dataTop = Math.max(1, ...points.map((p) => p[1])) * 1.15;
  const thresholds = widget.thresholds || [];
  const near = thresholds.filter((t) => t.value <= dataTop * 1.6);
  const top = Math.max(dataTop, ...near.map((t) => t.value * 1.1));
  const [t0, t1] = [widget.start, widget.end];
  const x = (t) => L + (Math.min(Math.max(t, t0), t1) - t0) / Math.max(1, t1 - t0) * (W - L - R);
  const y = (v) => T + (1 - v / top) * (H - T - B);
  add("rect", { class: "plot", x: L, y: T, width: W - L - R, height: H - T - B });
  for (const f of [0, 0.5, 1]) {
    add("line", { class: "axis", x1: L, x2: W - R, y1: y(top * f), y2: y(top * f) });
    add("text", { class: "tick", x: L - 4, y: y(top * f) + 3, "text-anchor": "end" }, fmt(top * f));
  }
  add("text", { class: "tick", x: L, y: H - 4 }, clock(t0));
  add("text", { class: "tick", x: W - R, y: H - 4, "text-anchor": "end" }, clock(t1));
  for (const t of near) {
    add("line", { class: "threshold", "data-value": t.value, x1: L, x2: W - R, y1: y(t.value), y2: y(t.value), ...(t.color ? { stroke: t.color } : {}) });
  }
  const periodMs = widget.periodSeconds * 1000;
  widget.series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length];
    for (const run of runs(s.points, periodMs)) {
      const times = run.map((p) => p[0]).join(",");
      if (run.length === 1) {
        add("circle", { class: "point", "data-series": s.label, "data-times": times, cx: x(run[0][0]), cy: y(run[0][1]), r: 2.5, fill: color });
      } else {
        add("polyline", { class: "series", "data-series": s.label, "data-times": times, stroke: color,
          points: run.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" ") });
      }
    }
  });
  // Threshold labels sit above the plot, never on it: a dashed swatch, the label, the value.
  const limits = el("div", { class: "limits" });
  for (const t of thresholds) {
    const span = el("span", { class: "limit", "data-value": String(t.value), text: `${t.label} ${fmt(t.value)}${near.includes(t) ? "" : " (above the chart)"}` });
    if (t.color) span.style.setProperty("--c", t.color);
    limits.append(span);
  }
  const legend = el("div", { class: "legend" });
  if (!widget.series.length) legend.append(el("span", { class: "empty", text: "no data in this window" }));
  else {
    const { mode, note, values, at } = legendOf(widget);
    legend.dataset.mode = mode;
    if (at !== undefined) legend.dataset.at = String(at);
    legend.append(el("span", { class: "mode", text: note }));
    widget.series.forEach((s, i) => {
      const v = values[i];
      const span = el("span", { class: "item", "data-label": s.label, "data-value": v === null ? "" : String(v), text: `${s.label} ${v === null ? "–" : fmt(v)}` });
      span.style.setProperty("--c", COLORS[i % COLORS.length]);
      legend.append(span);
    });
  }
  const box = el("div", { class: widget.series.length ? "chart" : "chart nodata", "data-title": widget.title,
    "data-metrics": (widget.metrics || []).join(" "), "data-period": String(widget.periodSeconds) },
  el("h3", { text: widget.title }), limits, svg, legend);
  return box;
}

// Widgets stay in the dashboard's order (runtime/dashboard.py), data or not.
function renderCharts(doc) {
  const box = $("#charts");
  box.replaceChildren(...doc.widgets.map(chart));
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
  const status = (s) => s.refused ? `refused: ${s.refused}` : ["connecting", "open", "closing", "closed"][s.ws.readyState];
  $("#try-sockets").replaceChildren(...state.sockets.map((s) =>
    el("li", { "data-role": s.role, "data-open": String(!s.refused && s.ws.readyState === 1), "data-refused": s.refused || "", class: s.refused ? "refused" : "" },
      `${s.role} ${s.detail} — ${status(s)}`)));
}

// An error reply as the protocol gives it: its code and its message.
const describeError = (msg) => `error ${msg.code}: ${msg.message || ""}`.trim();

function openSocket(role, detail, url, first) {
  return new Promise((resolve) => {
    const ws = new WebSocket(url);
    const entry = { role, detail, ws, beat: null, refused: "" };
    state.sockets.push(entry);
    renderSockets();
    let answered = false;
    ws.onopen = () => {
      ws.send(JSON.stringify(first));
      note(`${role} → ${first.action}`);
      entry.beat = setInterval(() => ws.send(JSON.stringify({ action: "heartbeat" })), 30000);
      renderSockets();
    };
    ws.onmessage = (event) => {
      const msg = JSON.parse(event.data);
      if (msg.type === "error") note(`${role} ← ${describeError(msg)}`, "err");
      else if (msg.type !== "heartbeatAck") note(`${role} ← ${msg.type} ${msg.sessionId || ""}`.trim(), "in");
      if (!answered && msg.type !== "heartbeatAck") {
        answered = true;
        if (msg.type === "error") {
          // Refused: the role was not taken. Close the socket rather than keep it "open".
          entry.refused = msg.code;
          clearInterval(entry.beat);
          ws.close(1000);
          renderSockets();
        }
        resolve(msg);
      }
    };
    ws.onclose = (event) => {
      clearInterval(entry.beat);
      if (!answered) entry.refused = entry.refused || `handshake refused (${event.code})`;
      note(`${role} closed (${event.code})`, event.code === 1000 ? "" : "err");
      renderSockets();
      answered = true;
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

const alarmStates = (alarms) => alarms.map((a) => `${a.name}=${a.state}`).join(" ");

// Chart fetches are numbered: an answer older than the one on screen is dropped, so a slow
// fetch started before an alarm changed never redraws the widgets from before the change.
async function fetchCharts() {
  const seq = ++state.chartSeq;
  const doc = await getJson(`${state.config.metricsPath}?minutes=${$("#window").value}`);
  if (seq < state.chartShown) return null;
  state.chartShown = seq;
  return doc;
}

// When an alarm changes state, its widgets are fetched first and drawn in the same frame as
// the tiles: a red tile never sits beside a widget still drawn from before the change.
async function refreshAlarms() {
  const doc = await getJson(state.config.alarmsPath);
  const alarms = Array.isArray(doc) ? doc : doc.alarms || [];
  const changed = alarmStates(alarms) !== state.alarmStates;
  const charts = changed && state.alarmStates !== undefined ? await fetchCharts().catch(() => null) : null;
  if (charts) renderCharts(charts);
  renderAlarms(alarms);
  state.alarmStates = alarmStates(alarms);
}

async function refreshFast() {
  const c = state.config;
  const results = await Promise.all([
    guarded(refreshAlarms, $("#alarm-summary")),
    guarded(async () => renderSessions(await getJson(c.sessionsPath)), $("#session-count")),
    guarded(refreshLogs, $("#log-count")),
  ]);
  return results.every(Boolean);
}

const refreshCharts = () => guarded(async () => {
  const doc = await fetchCharts();
  if (doc) renderCharts(doc);
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
