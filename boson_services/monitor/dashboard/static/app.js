// Boson dashboard: reads /api, listens to /api/events, refreshes in place.
// The API token (only needed beyond loopback, and for actions) lives in
// sessionStorage: this tab only, never a cookie.
"use strict";

const TOKEN_KEY = "boson-api-token";
const page = document.body.dataset.page;
const live = document.getElementById("live");

function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }

function headers(extra) {
  const given = Object.assign({ Accept: "application/json" }, extra || {});
  if (token()) given.Authorization = "Bearer " + token();
  return given;
}

function askForToken() {
  const form = document.getElementById("token-form");
  form.hidden = false;
  document.getElementById("token-input").focus();
}

document.getElementById("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, document.getElementById("token-input").value.trim());
  document.getElementById("token-form").hidden = true;
  start();
});

async function api(path, options) {
  const init = Object.assign({ cache: "no-store", credentials: "omit" }, options || {});
  init.headers = headers(init.headers);
  const answer = await fetch(path, init);
  if (answer.status === 401) { askForToken(); }
  const body = await answer.json().catch(() => ({ detail: answer.statusText }));
  if (!answer.ok) { throw new Error(body.detail || answer.statusText); }
  return body;
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value; else node.setAttribute(key, value);
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const pct = (x) => (x === null || x === undefined ? "–" : Math.round(x * 100) + "%");
const num = (x, d) => (x === null || x === undefined ? "–" : Number(x).toFixed(d === undefined ? 0 : d));
const clock = (t) => new Date(t * 1000).toLocaleTimeString();

function bar(allocated, measured) {
  const box = el("div", { class: "bar", title: `allocated ${pct(allocated)}, measured ${pct(measured)}` });
  const fill = el("div", { class: "allocated" });
  fill.style.width = Math.min(100, allocated * 100) + "%";
  box.append(fill);
  if (measured !== null && measured !== undefined) {
    const mark = el("div", { class: "measured" });
    mark.style.left = Math.min(99, measured * 100) + "%";
    box.append(mark);
  }
  return box;
}

function card(label, value) {
  return el("div", { class: "card" }, el("div", { class: "value" }, value), el("div", { class: "label" }, label));
}

// -- charts ------------------------------------------------------------------

const charts = {};

function chart(id, series, data) {
  const box = document.getElementById(id);
  if (!box) return;
  if (!charts[id]) {
    charts[id] = new uPlot({
      width: Math.max(300, box.clientWidth - 10), height: 200,
      series: [{}].concat(series.map(([label, stroke]) => ({ label, stroke, width: 2 }))),
      axes: [{}, {}],
    }, data, box);
  } else {
    charts[id].setData(data);
  }
}

function columns(samples, fields) {
  const at = samples.map((s) => s.at);
  return [at].concat(fields.map((f) => samples.map((s) => (s[f] === null ? null : s[f]))));
}

// -- pages -------------------------------------------------------------------

const nodeQuery = { offset: 0, limit: 50 };

async function refreshCluster(summary) {
  const c = summary ? summary.cluster : await api("/api/cluster");
  const totals = document.getElementById("totals");
  totals.replaceChildren(
    card("nodes up", c.up), card("down", c.down), card("on probation", c.probation),
    card("running / slots", `${c.running} / ${c.slots}`), card("free slots", c.free_slots),
    card("backlog", c.backlog));
  const resources = document.getElementById("resources");
  resources.replaceChildren(...Object.entries(c.resources).map(([name, r]) =>
    el("div", { class: "resource" }, el("strong", {}, name),
      bar(r.allocated_share, r.measured_share),
      el("div", { class: "label" },
        `allocated ${num(r.allocated, 1)} of ${num(r.capacity, 1)} (${pct(r.allocated_share)})` +
        (r.measured_share === null ? "" : ` · measured ${pct(r.measured_share)}`)))));
  const params = new URLSearchParams({ offset: nodeQuery.offset, limit: nodeQuery.limit,
    sort: document.getElementById("sort").value });
  const status = document.getElementById("filter-status").value;
  if (status) params.set("status", status);
  const search = document.getElementById("search").value.trim();
  if (search) params.set("search", search);
  const nodes = await api("/api/nodes?" + params);
  document.getElementById("nodes-count").textContent = `${nodes.total} matching of ${c.nodes}`;
  const last = Math.min(nodes.total, nodes.offset + nodes.nodes.length);
  document.getElementById("page-label").textContent =
    nodes.total ? `${nodes.offset + 1}–${last} of ${nodes.total}` : "none";
  document.getElementById("prev").disabled = nodes.offset === 0;
  document.getElementById("next").disabled = last >= nodes.total;
  document.getElementById("nodes").replaceChildren(...nodes.nodes.map((n) =>
    el("tr", { "data-node": n.node_id },
      el("td", {}, n.node_id),
      el("td", {}, el("span", { class: "state " + n.status }, n.status === "probation" ? "on probation" : n.status)),
      el("td", { class: "num" }, `${n.running ?? "-"} / ${n.slots}`),
      ...["cpu", "memory", "gpu"].map((r) => el("td", {},
        n.resources[r].capacity > 0 ? bar(n.resources[r].allocated_share, n.resources[r].measured_share) : "–")))));
  const history = await api("/api/throughput");
  chart("utilisation-chart",
    [["allocated cpu", "#4f7cd8"], ["allocated memory", "#2e9d5b"], ["allocated gpu", "#9b59b6"],
     ["measured cpu", "#d9921c"], ["measured memory", "#d64545"]],
    columns(history.samples, ["allocated_cpu", "allocated_memory", "allocated_gpu", "measured_cpu", "measured_memory"]));
}

// Why an acknowledgement was refused, by alert: the rows are rebuilt on every
// live update, so the message lives here until the next attempt, not in a row.
const ackFailures = new Map();

async function refreshAlerts() {
  const alerts = await api("/api/alerts");
  const active = document.getElementById("active");
  active.replaceChildren(...(alerts.active.length ? alerts.active.map((a) =>
    el("li", { class: a.severity, "data-reason": a.reason }, `${a.reason}: ${a.detail}`))
    : [el("li", { class: "none" }, "nothing wrong now")]));
  document.getElementById("recent").replaceChildren(...alerts.recent.map((a) => {
    const button = el("button", { type: "button", "data-ack": a.alert_id }, "acknowledge");
    button.disabled = a.acknowledged;
    button.addEventListener("click", () => acknowledge(a.alert_id));
    const failure = a.acknowledged ? undefined : ackFailures.get(a.alert_id);
    return el("tr", { class: a.acknowledged ? "acknowledged" : "", "data-reason": a.reason },
      el("td", {}, clock(a.raised_at)), el("td", { class: "severity " + a.severity }, a.severity),
      el("td", {}, a.reason), el("td", {}, a.node_id || ""), el("td", {}, a.detail),
      el("td", {}, button, failure ? el("span", { class: "error" }, failure) : ""));
  }));
}

async function acknowledge(alertId) {
  ackFailures.delete(alertId);
  try {
    await api(`/api/alerts/${encodeURIComponent(alertId)}/acknowledge`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: "{}" });
  } catch (error) {
    ackFailures.set(alertId, error.message);
  }
  await refreshAlerts();
}

async function refreshThroughput() {
  const t = await api("/api/throughput");
  const last = t.samples.length ? t.samples[t.samples.length - 1] : null;
  document.getElementById("throughput-totals").replaceChildren(
    card("succeeded (total)", num(t.completed_total)), card("failed (total)", num(t.failed_total)),
    card("tasks/s now", last ? num(last.succeeded_per_s + last.failed_per_s, 2) : "–"),
    card("p99 latency now", last && last.latency_p99_s !== null ? num(last.latency_p99_s, 3) + " s" : "–"));
  chart("rate-chart", [["succeeded/s", "#2e9d5b"], ["failed/s", "#d64545"]],
    columns(t.samples, ["succeeded_per_s", "failed_per_s"]));
  chart("latency-chart", [["p50", "#4f7cd8"], ["p99", "#d9921c"]],
    columns(t.samples, ["latency_p50_s", "latency_p99_s"]));
}

// -- tasks ---------------------------------------------------------------------

const when = (t) => (t === null || t === undefined ? "–" : new Date(t * 1000).toLocaleString());
const taskPages = { cursors: [null], index: 0 };

function taskFilters() {
  const params = new URLSearchParams({ limit: 50 });
  const state = document.getElementById("task-state").value;
  if (state) params.set("state", state);
  for (const [id, name] of [["task-handler", "handler"], ["task-node", "node"]]) {
    const value = document.getElementById(id).value.trim();
    if (value) params.set(name, value);
  }
  const since = document.getElementById("task-since").value;
  if (since) params.set("since", (Date.now() / 1000 - Number(since)).toFixed(3));
  const cursor = taskPages.cursors[taskPages.index];
  if (cursor) params.set("cursor", cursor);
  return params;
}

async function refreshTasks() {
  const error = document.getElementById("task-error");
  let page;
  try {
    page = await api("/api/tasks?" + taskFilters());
    error.textContent = "";
  } catch (failure) {
    error.textContent = failure.message;
    return;
  }
  taskPages.cursors.length = taskPages.index + 1;
  if (page.next_cursor) taskPages.cursors.push(page.next_cursor);
  const first = taskPages.index * page.limit;
  document.getElementById("tasks-count").textContent =
    page.tasks.length ? `${first + 1}–${first + page.tasks.length}` : "none";
  document.getElementById("task-page-label").textContent = `page ${taskPages.index + 1}`;
  document.getElementById("task-prev").disabled = taskPages.index === 0;
  document.getElementById("task-next").disabled = !page.next_cursor;
  document.getElementById("tasks").replaceChildren(...page.tasks.map((t) =>
    el("tr", { "data-task": t.task_id, "data-state": t.state },
      el("td", {}, el("a", { href: "/tasks/" + encodeURIComponent(t.task_id) }, t.task_id)),
      el("td", {}, el("span", { class: "state " + t.state }, t.state)),
      el("td", {}, t.handler || "–"), el("td", {}, t.node_id || "–"),
      el("td", {}, when(t.submitted_at)),
      el("td", { class: "num" }, t.finished_at ? num(t.finished_at - t.submitted_at, 3) + " s" : "–"),
      el("td", {}, t.error ? `${t.error.error_type}: ${t.error.message}`.slice(0, 120) : ""))));
}

const taskId = page === "task" ? decodeURIComponent(location.pathname.split("/").pop()) : null;

function useBar(demand, measured) {
  if (demand === null || measured === null || !(demand > 0)) return "";
  return bar(Math.min(1, measured / demand), null);
}

async function refreshTask() {
  let task;
  try {
    task = await api("/api/tasks/" + encodeURIComponent(taskId));
  } catch (failure) {
    document.getElementById("task-error").textContent = failure.message;
    return;
  }
  document.getElementById("task-error").textContent = "";
  const r = task.record;
  document.getElementById("task-id").textContent = r.task_id;
  const state = document.getElementById("task-state");
  state.textContent = r.state; state.className = "state " + r.state;
  document.body.dataset.taskState = r.state;
  document.getElementById("cancel").hidden = task.terminal;
  const cards = [card("handler", r.handler || "–"), card("node", r.node_id || "–"),
    card("attempts", r.attempts), card("dispatches", r.dispatches),
    card("submitted", when(r.submitted_at)),
    card("ran for", task.duration_s === null ? "–" : num(task.duration_s, 3) + " s")];
  if (r.error) cards.push(card("error", `${r.error.error_type}: ${r.error.message}`));
  document.getElementById("task-cards").replaceChildren(...cards);
  document.getElementById("timeline").replaceChildren(...r.timeline.map((e) =>
    el("tr", { "data-stage": e.stage },
      el("td", {}, el("span", { class: "state " + e.stage }, e.stage)), el("td", {}, when(e.at)),
      el("td", { class: "num" }, num(e.at - r.submitted_at, 3)),
      el("td", {}, e.node_id || "–"), el("td", {}, e.source || "–"))));
  document.getElementById("use").replaceChildren(...task.use.map((u) =>
    el("tr", { "data-resource": u.resource }, el("td", {}, u.resource),
      el("td", { class: "num" }, u.demand === null ? "–" : num(u.demand, 2)),
      el("td", { class: "num" }, u.measured === null ? "–" : num(u.measured, 3)),
      el("td", {}, useBar(u.demand, u.measured)), el("td", { class: "legend" }, u.measured_as))));
  const placement = task.placement;
  document.getElementById("placement-summary").textContent = placement.summary +
    (placement.explanation ? ` — best ${placement.explanation.nodes.length} of ${placement.explained_nodes} nodes:` : "");
  const table = document.getElementById("explanation");
  table.hidden = !placement.explanation;
  if (placement.explanation) {
    table.tBodies[0].replaceChildren(...placement.explanation.nodes.map((n) =>
      el("tr", { class: n.node_id === placement.placed_on ? "chosen" : "" }, el("td", {}, n.node_id),
        el("td", {}, n.fits ? "yes" : "no"), el("td", { class: "num" }, n.score === null ? "–" : num(n.score, 3)),
        el("td", { class: "num" }, pct(n.utilisation_before)), el("td", { class: "num" }, pct(n.utilisation_after)))));
  }
  const progress = document.getElementById("progress");
  if (r.progress === null || r.progress === undefined) {
    progress.replaceChildren(el("span", { class: "legend" }, task.terminal ? "no progress was reported" : "no progress reported yet"));
  } else {
    progress.replaceChildren(bar(r.progress, null),
      el("div", { class: "label", id: "progress-label" },
        `${pct(r.progress)}${r.progress_message ? " · " + r.progress_message : ""}` +
        (r.progress_at ? ` · at ${when(r.progress_at)}` : "")));
  }
  document.getElementById("logs").textContent = r.logs === null || r.logs === undefined
    ? (task.terminal ? "no logs kept" : "logs are kept when the task ends") : (r.logs || "(nothing printed)");
  const p = task.preview;
  document.getElementById("preview").textContent =
    p.kind === "inline" ? p.text + (p.truncated ? `\n… (${p.size_bytes} bytes in all, as compact JSON)` : "")
    : p.kind === "stored" ? `kept in the transfer store: ${p.size_bytes} bytes, digest ${p.digest} (boson result ${r.task_id})`
    : p.kind === "omitted" ? "too large to keep in the record"
    : r.state === "failed" ? "no result: the task failed"
    : r.state === "cancelled" ? "no result: the task was cancelled" : "no result yet";
}

async function cancelTask() {
  const status = document.getElementById("cancel-status");
  status.className = ""; status.textContent = "asking…";
  try {
    const answer = await api(`/api/tasks/${encodeURIComponent(taskId)}/cancel`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: "{}" });
    status.className = "requested";
    status.textContent = `cancel requested (the task was ${answer.state})`;
    refreshTask();
  } catch (error) {
    status.className = "error"; status.textContent = error.message;
  }
}

// -- tenants -------------------------------------------------------------------

const tenantQuery = { offset: 0, limit: 50 };

function quotaCell(r) {
  // Usage against quota; without a quota, the bar is empty and the numbers say it all.
  const box = el("div", { class: "bar" + (r.borrowed > 0 ? " borrowing" : "") });
  const fill = el("div", { class: "allocated" });
  fill.style.width = (r.quota > 0 ? Math.min(100, (r.usage / r.quota) * 100) : 0) + "%";
  box.append(fill);
  let text = `${num(r.usage, 1)} of ${r.quota > 0 ? num(r.quota, 1) : "no quota"}`;
  if (r.borrowed > 0) text += ` · borrowed ${num(r.borrowed, 1)}`;
  if (r.pending > 0) text += ` · pending ${num(r.pending, 1)}`;
  return el("td", { title: `guarantee ${num(r.guarantee, 1)}, borrowing limit ${r.borrowing_limit === null ? "none" : num(r.borrowing_limit, 1)}` },
    box, el("div", { class: "label" }, text));
}

async function refreshTenants() {
  const params = new URLSearchParams({ offset: tenantQuery.offset, limit: tenantQuery.limit });
  const search = document.getElementById("tenant-search").value.trim();
  if (search) params.set("search", search);
  const t = await api("/api/tenants?" + params);
  document.getElementById("tenants-note").textContent = t.reported
    ? `as balancer ${t.balancer_id} reported at ${clock(t.reported_at)}; borrowed work may be preempted after ${num(t.grace_s, 0)} s`
    : "no report from the balancer yet: every task runs as the default tenant";
  document.getElementById("pool").replaceChildren(
    card("tenants", t.total), ...Object.entries(t.pool).map(([name, amount]) => card(`pool ${name}`, num(amount, 1))));
  document.getElementById("tenants-count").textContent = `${t.total} matching`;
  const last = Math.min(t.total, t.offset + t.tenants.length);
  document.getElementById("tenant-page-label").textContent = t.total ? `${t.offset + 1}–${last} of ${t.total}` : "none";
  document.getElementById("tenant-prev").disabled = t.offset === 0;
  document.getElementById("tenant-next").disabled = last >= t.total;
  document.getElementById("tenants").replaceChildren(...t.tenants.map((tenant) =>
    el("tr", { "data-tenant": tenant.name, class: tenant.borrowing ? "borrowing" : "" },
      el("td", {}, tenant.name, tenant.may_preempt ? el("div", { class: "label" }, "may preempt") : ""),
      el("td", { class: "num" }, num(tenant.weight, 1)),
      el("td", { class: "num" }, `${tenant.running} / ${tenant.waiting}`),
      el("td", { class: "num" }, tenant.preempted),
      ...["cpu", "memory", "gpu"].map((name) => quotaCell(tenant.resources[name])))));
}

const REFRESH = {
  cluster: refreshCluster, tenants: refreshTenants, alerts: refreshAlerts, throughput: refreshThroughput,
  tasks: refreshTasks, task: refreshTask,
};

function refresh(summary) {
  const fn = REFRESH[page];
  if (!fn) return;
  fn(summary).catch((error) => { live.textContent = error.message; live.className = "live off"; });
}

// -- live stream: server-sent events read with fetch (it can send the token) --

let stream = null;

async function listen() {
  if (stream) stream.abort();
  stream = new AbortController();
  try {
    const answer = await fetch("/api/events", { headers: headers({ Accept: "text/event-stream" }),
      cache: "no-store", credentials: "omit", signal: stream.signal });
    if (answer.status === 401) { askForToken(); live.textContent = "needs the token"; live.className = "live off"; return; }
    if (!answer.ok || !answer.body) throw new Error(answer.statusText);
    live.textContent = "live"; live.className = "live on";
    const reader = answer.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const chunk = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const data = chunk.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
        if (data) {
          const summary = JSON.parse(data);
          document.body.dataset.updated = String(summary.at);
          refresh(summary);
        }
      }
    }
  } catch (error) {
    if (error.name === "AbortError") return;
  }
  live.textContent = "reconnecting…"; live.className = "live off";
  setTimeout(listen, 3000);
}

function start() { refresh(null); listen(); }

if (page === "cluster") {
  for (const id of ["filter-status", "sort"]) {
    document.getElementById(id).addEventListener("change", () => { nodeQuery.offset = 0; refresh(null); });
  }
  document.getElementById("search").addEventListener("input", () => { nodeQuery.offset = 0; refresh(null); });
  document.getElementById("prev").addEventListener("click", () => {
    nodeQuery.offset = Math.max(0, nodeQuery.offset - nodeQuery.limit); refresh(null); });
  document.getElementById("next").addEventListener("click", () => {
    nodeQuery.offset += nodeQuery.limit; refresh(null); });
}

if (page === "tenants") {
  document.getElementById("tenant-search").addEventListener("input", () => { tenantQuery.offset = 0; refresh(null); });
  document.getElementById("tenant-prev").addEventListener("click", () => {
    tenantQuery.offset = Math.max(0, tenantQuery.offset - tenantQuery.limit); refresh(null); });
  document.getElementById("tenant-next").addEventListener("click", () => {
    tenantQuery.offset += tenantQuery.limit; refresh(null); });
}

if (page === "tasks") {
  const again = () => { taskPages.cursors = [null]; taskPages.index = 0; refresh(null); };
  for (const id of ["task-state", "task-since", "task-handler", "task-node"]) {
    document.getElementById(id).addEventListener("change", again);
  }
  document.getElementById("task-prev").addEventListener("click", () => {
    taskPages.index = Math.max(0, taskPages.index - 1); refresh(null); });
  document.getElementById("task-next").addEventListener("click", () => {
    if (taskPages.cursors.length > taskPages.index + 1) { taskPages.index += 1; refresh(null); } });
}

if (page === "task") {
  document.getElementById("cancel").addEventListener("click", cancelTask);
}

start();
