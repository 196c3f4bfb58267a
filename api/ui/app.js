/* MAHSM dashboard: a hash-routed page over the REST API (docs/dashboard.md).
 * Hand-written, no dependencies. Every text from the API is put in the page with
 * textContent (never as HTML). */
"use strict";

const ROOT = location.pathname.replace(/\/ui(\/.*)?$/, "");
const KEY_STORE = "mahsm.apiKey";
const TERMINAL = new Set(["completed", "failed", "cancelled", "timed_out"]);
const SUBTASK_DONE = new Set(["completed", "failed", "blocked", "cancelled"]);
const main = document.getElementById("main");
let config = null;
let leave = () => {}; // stops the current page's live updates

// ---- small helpers ----------------------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = fill(document.createElement(tag), ...children);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "text") el.textContent = value;
    else el.setAttribute(name, value === true ? "" : value);
  }
  return el;
}

/* Replace the children of `el`: nested arrays are flattened, null and false left out. */
function fill(el, ...children) {
  el.replaceChildren();
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function svg(tag, attrs) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attrs || {})) el.setAttribute(name, value);
  return el;
}

const badge = (status, prefix = "s") =>
  h("span", { class: `badge ${prefix}-${status}`, text: String(status).replace("_", " ") });

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "";
}

function seconds(from, to) {
  if (!from) return "";
  const s = ((to ? new Date(to) : new Date()) - new Date(from)) / 1000;
  return s < 60 ? `${s.toFixed(1)} s` : `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}

function tokens(usage) {
  return usage ? (usage.input_tokens || 0) + (usage.output_tokens || 0) : 0;
}

function cost(usage) {
  return usage && usage.cost_usd ? `$${usage.cost_usd.toFixed(4)}` : "$0";
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    for (const one of [].concat(v)) if (one !== "" && one !== null && one !== undefined) q.append(k, one);
  }
  const text = q.toString();
  return text ? `?${text}` : "";
}

// ---- API calls and errors ---------------------------------------------------------------

class ApiError extends Error {
  constructor(status, body) {
    const message = body && body.message ? body.message : `The API answered HTTP ${status}.`;
    super(message);
    this.status = status;
    this.code = body && body.code;
    this.details = body && body.details;
  }
}

function authHeaders() {
  const key = sessionStorage.getItem(KEY_STORE);
  return key ? { Authorization: `Bearer ${key}` } : {};
}

async function api(path, options = {}) {
  const headers = { ...authHeaders(), ...(options.headers || {}) };
  if (options.json !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(ROOT + path, {
      method: options.method || "GET",
      headers,
      body: options.json !== undefined ? JSON.stringify(options.json) : undefined,
    });
  } catch (error) {
    throw new ApiError(0, { message: "The API cannot be reached; is the server running?" });
  }
  let body = null;
  try { body = await response.json(); } catch (_) { body = null; }
  if (response.status === 401) {
    askForKey(body && body.message);
    throw new ApiError(401, body);
  }
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

function showError(where, error) {
  const box = h("div", { class: "error", role: "alert" }, error.message);
  if (error.code) box.append(h("span", { class: "muted", text: ` (${error.code})` }));
  fill(where, box);
}

function askForKey(reason) {
  leave();
  const input = h("input", { type: "password", id: "api-key", autocomplete: "off", required: true });
  const form = h("form", { class: "card", "aria-labelledby": "key-title" },
    h("h1", { id: "key-title", text: "API key needed" }),
    h("p", { text: "This server has API keys configured. Enter yours; it is kept for this"
      + " browser tab only (session storage)." }),
    reason && sessionStorage.getItem(KEY_STORE) ? h("p", { class: "error", text: reason }) : null,
    h("label", { for: "api-key", text: "API key" }), input,
    h("div", { class: "actions" }, h("button", { type: "submit", text: "Use this key" })));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY_STORE, input.value.trim());
    config = null;
    route();
  });
  fill(main, form);
  input.focus();
}

// ---- pages ------------------------------------------------------------------------------

async function loadConfig() {
  if (!config) config = await api("/ui/config");
  document.getElementById("forget-key").hidden = !config.auth_required;
  return config;
}

async function pageSubmit() {
  const cfg = await loadConfig();
  const models = [...new Set([cfg.default_model, ...cfg.models])];
  const errors = {};
  const field = (id, label, control, hint) => {
    errors[id] = h("p", { class: "field-error", id: `${id}-error`, "aria-live": "polite" });
    control.setAttribute("aria-describedby", `${id}-error`);
    return h("div", {}, h("label", { for: id, text: label }), control,
      hint ? h("p", { class: "muted", text: hint }) : null, errors[id]);
  };
  const description = h("textarea", { id: "description", rows: 4, maxlength: 5000 });
  const model = h("select", { id: "model" },
    models.map((m) => h("option", { value: m, selected: m === cfg.default_model, text: m })));
  const maxParallel = h("input", { type: "number", id: "max_parallel", min: 1, max: 64 });
  const approval = h("input", { type: "checkbox", id: "require_approval" });
  const budget = h("input", { type: "number", id: "max_cost_usd", min: 0, step: "0.01" });
  const kind = h("select", { id: "definition-kind" },
    h("option", { value: "", text: "none (the planner makes the plan)" }),
    h("option", { value: "plan", text: "plan" }),
    h("option", { value: "pipeline", text: "pipeline" }));
  const definition = h("textarea", { id: "definition", rows: 10, spellcheck: "false" });
  const inputs = h("textarea", { id: "inputs", rows: 3, spellcheck: "false" });
  const summary = h("div", { "aria-live": "polite" });
  const submit = h("button", { type: "submit", text: "Submit task" });
  const form = h("form", { class: "card", novalidate: true },
    field("description", "Description", description, "10 to 5000 characters; optional for a pipeline."),
    h("div", { class: "row" },
      field("model", "Model", model),
      field("max_parallel", "Max parallel subtasks", maxParallel, "empty: every ready subtask"),
      field("max_cost_usd", "Budget (USD)", budget, "empty: no limit"),
      h("div", {}, h("label", { class: "inline", for: "require_approval" }, approval,
        "Require approval of the plan"), (errors.require_approval = h("p", { class: "field-error" })))),
    field("definition-kind", "Plan or pipeline", kind),
    field("definition", "Plan or pipeline definition (YAML or JSON)", definition),
    field("inputs", "Pipeline inputs (YAML or JSON object)", inputs),
    h("div", { class: "actions" }, submit), summary);
  fill(main, h("h1", { text: "Submit a task" }), form);

  const parse = async (text, id) => {
    const trimmed = text.trim();
    if (!trimmed) return undefined;
    if (/^[{[]/.test(trimmed)) {
      try { return JSON.parse(trimmed); } catch (error) {
        throw Object.assign(new Error(`${id}: not valid JSON: ${error.message}`), { field: id });
      }
    }
    try { return (await api("/ui/yaml", { method: "POST", json: { text } })).value; } catch (error) {
      error.field = id;
      throw error;
    }
  };

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    Object.values(errors).forEach((e) => fill(e));
    fill(summary);
    submit.disabled = true;
    try {
      const options = { model: model.value, require_approval: approval.checked };
      if (maxParallel.value) options.max_parallel = Number(maxParallel.value);
      if (budget.value) options.budget = { max_cost_usd: Number(budget.value) };
      const body = { options };
      if (description.value.trim()) body.description = description.value;
      const value = await parse(definition.value, "definition");
      if (kind.value && value !== undefined) body[kind.value] = value;
      if (kind.value === "pipeline") {
        const given = await parse(inputs.value, "inputs");
        body.inputs = given === undefined ? {} : given;
      }
      const accepted = await api("/tasks", { method: "POST", json: body });
      location.hash = `#/task/${accepted.task_id}`;
    } catch (error) {
      showFieldErrors(error, errors, summary);
    } finally {
      submit.disabled = false;
    }
  });
}

function showFieldErrors(error, errors, summary) {
  showError(summary, error);
  if (error.field && errors[error.field]) {
    errors[error.field].textContent = error.message;
    return;
  }
  for (const problem of Array.isArray(error.details) ? error.details : []) {
    const loc = (problem.loc || []).slice(1).map(String);
    let target = "definition";
    if (loc[0] === "description") target = "description";
    else if (loc[0] === "options") target = loc[1] === "budget" ? "max_cost_usd" : loc[1];
    else if (loc[0] === "inputs") target = "inputs";
    const box = errors[target] || errors.definition;
    box.append(h("span", { text: `${loc.join(".")}: ${problem.msg}` }), h("br"));
  }
}

async function pageTasks(params) {
  const status = params.get("status") || "";
  const text = params.get("q") || "";
  const cursors = (params.get("trail") || "").split(",").filter(Boolean);
  const statusSelect = h("select", { id: "filter-status" }, h("option", { value: "", text: "any" }),
    ["pending", "planning", "awaiting_approval", "running", "completed", "failed", "cancelled",
      "timed_out"].map((s) => h("option", { value: s, selected: s === status, text: s })));
  const textInput = h("input", { type: "text", id: "filter-text", value: text });
  const form = h("form", { class: "card row", role: "search" },
    h("div", {}, h("label", { for: "filter-status", text: "Status" }), statusSelect),
    h("div", {}, h("label", { for: "filter-text", text: "Text" }), textInput),
    h("div", { class: "actions" }, h("button", { type: "submit", text: "Filter" })));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    location.hash = `#/tasks${query({ status: statusSelect.value, q: textInput.value })}`;
  });
  const body = h("div", { text: "Loading…" });
  fill(main, h("h1", { text: "Tasks" }), form, body);
  try {
    const cursor = cursors[cursors.length - 1];
    const page = await api(`/tasks${query({ status, q: text, cursor, limit: 20 })}`);
    const rows = page.tasks.map((t) => h("tr", { "data-task": t.id },
      h("td", {}, h("a", { href: `#/task/${t.id}`, text: t.description || t.pipeline || t.id }),
        h("div", { class: "muted", text: t.id })),
      h("td", {}, badge(t.status)),
      h("td", { text: t.user_id || "" }),
      h("td", { text: when(t.created_at) }),
      h("td", { class: "num", text: seconds(t.created_at, TERMINAL.has(t.status) ? t.updated_at : null) }),
      h("td", { class: "num", text: tokens(t.usage) }),
      h("td", { class: "num", text: cost(t.usage) })));
    const nav = h("div", { class: "actions" });
    if (cursors.length) {
      nav.append(h("a", { href: `#/tasks${query({ status, q: text, trail: cursors.slice(0, -1).join(",") })}`,
        text: "Newer" }));
    }
    if (page.next_cursor) {
      nav.append(h("a", { href: `#/tasks${query({ status, q: text,
        trail: [...cursors, page.next_cursor].join(",") })}`, text: "Older" }));
    }
    fill(body, rows.length ? h("div", { class: "table-wrap" }, h("table", {},
      h("caption", { class: "muted", text: "Newest first" }),
      h("thead", {}, h("tr", {}, ["Task", "Status", "User", "Created", "Duration", "Tokens", "Cost"]
        .map((c) => h("th", { scope: "col", text: c })))), h("tbody", {}, rows)))
      : h("p", { class: "muted", text: "No tasks match." }), nav);
  } catch (error) {
    showError(body, error);
  }
}

// ---- the task page ----------------------------------------------------------------------

function layout(subtasks) {
  const depth = {};
  const byId = Object.fromEntries(subtasks.map((s) => [s.id, s]));
  const visit = (id, seen) => {
    if (depth[id] !== undefined) return depth[id];
    if (seen.has(id)) return 0;
    seen.add(id);
    const deps = (byId[id] ? byId[id].depends_on : []).filter((d) => byId[d]);
    depth[id] = deps.length ? 1 + Math.max(...deps.map((d) => visit(d, seen))) : 0;
    return depth[id];
  };
  subtasks.forEach((s) => visit(s.id, new Set()));
  const columns = [];
  subtasks.forEach((s) => (columns[depth[s.id]] = columns[depth[s.id]] || []).push(s.id));
  const W = 170, H = 34, GX = 60, GY = 12, PAD = 10;
  const pos = {};
  columns.forEach((col, x) => col.forEach((id, y) => {
    pos[id] = { x: PAD + x * (W + GX), y: PAD + y * (H + GY) };
  }));
  const width = PAD * 2 + columns.length * (W + GX) - GX;
  const height = PAD * 2 + Math.max(1, ...columns.map((c) => c.length)) * (H + GY) - GY;
  return { pos, width, height, W, H };
}

function drawGraph(subtasks, onSelect) {
  const { pos, width, height, W, H } = layout(subtasks);
  const root = svg("svg", { class: "graph", width, height, viewBox: `0 0 ${width} ${height}`,
    role: "group", "aria-label": "Plan graph: subtasks and their dependencies" });
  const nodes = {};
  for (const s of subtasks) {
    for (const dep of s.depends_on) {
      if (!pos[dep]) continue;
      const a = pos[dep], b = pos[s.id];
      const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2, mid = (x1 + x2) / 2;
      root.append(svg("path", { class: "edge", d: `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}`,
        "data-from": dep, "data-to": s.id }));
    }
  }
  for (const s of subtasks) {
    const g = svg("g", { class: `node s-${s.status}`, tabindex: "0", role: "button",
      "data-id": s.id, transform: `translate(${pos[s.id].x},${pos[s.id].y})` });
    g.append(svg("rect", { width: W, height: H }));
    const label = svg("text", { x: 10, y: H / 2 + 4 });
    label.textContent = s.id.length > 22 ? `${s.id.slice(0, 21)}…` : s.id;
    const title = svg("title", {});
    title.textContent = `${s.id}: ${s.status}`;
    g.append(label, title);
    g.setAttribute("aria-label", `Subtask ${s.id}: ${s.status}`);
    g.addEventListener("click", () => onSelect(s.id));
    g.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") { event.preventDefault(); onSelect(s.id); }
    });
    nodes[s.id] = g;
    root.append(g);
  }
  return { root, nodes };
}

function setNodeStatus(node, id, status) {
  node.setAttribute("class", `node s-${status}${node.classList.contains("selected") ? " selected" : ""}`);
  node.setAttribute("aria-label", `Subtask ${id}: ${status}`);
  node.querySelector("title").textContent = `${id}: ${status}`;
}

/* One server-sent event (the text between two blank lines): its name, data and id. */
function sseBlock(block) {
  let name = "message", data = "", id = null;
  for (const line of block.split("\n")) {
    if (line.startsWith(":")) continue;
    const [field, ...rest] = line.split(":");
    const text = rest.join(":").replace(/^ /, "");
    if (field === "event") name = text;
    else if (field === "data") data += (data ? "\n" : "") + text;
    else if (field === "id") id = text;
  }
  return { name, data, id };
}

/* The events of a server-sent-events body, parsed (sseBlock) as they arrive. */
async function* readSse(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n/g, "\n");
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      yield sseBlock(block);
    }
  }
}

/* Follows the event stream at `url` until onEvent({name, data, id}) returns true, the server
   answers 204 (nothing more to send), 401 or 404, or `signal` aborts. HTTP errors go to
   onError. A stream that closes early (server restart, database down for 60 s) is resumed
   after the last event id seen, without hammering the server: 2 s after a network error,
   3 s after an HTTP error, 1 s after a close. */
async function followSse(url, { onEvent, onError, signal }) {
  const pause = (ms) => new Promise((r) => setTimeout(r, ms));
  let lastId = null;
  while (!signal.aborted) {
    const headers = authHeaders();
    if (lastId) headers["Last-Event-ID"] = lastId;
    let response;
    try {
      response = await fetch(url, { headers, signal });
    } catch (error) {
      if (signal.aborted) return;
      await pause(2000);
      continue;
    }
    if (response.status === 204) return;
    if (!response.ok) {
      let body = null;
      try { body = await response.json(); } catch (_) { body = null; }
      onError(new ApiError(response.status, body));
      if (response.status === 401 || response.status === 404) return;
      await pause(3000);
      continue;
    }
    try {
      for await (const event of readSse(response.body)) {
        if (event.id) lastId = event.id;
        if (onEvent(event)) return;
      }
    } catch (error) {
      if (signal.aborted) return;
    }
    await pause(1000);
  }
}

/* Follows GET /tasks/{id}/events (docs/api.md) until `task_ended`; HTTP errors arrive as
   `stream_error` events. */
function followEvents(taskId, onEvent, signal, tokens = false) {
  return followSse(`${ROOT}/tasks/${taskId}/events${tokens ? "?tokens=true" : ""}`, {
    onEvent: ({ name, data }) => {
      if (!data) return false;
      onEvent(name, JSON.parse(data));
      return name === "task_ended";
    },
    onError: (error) => onEvent("stream_error", error),
    signal,
  });
}

/* Live text of running LLM calls (`llm_tokens` events, docs/api.md): per call, the newest
   attempt's text; a chunk of a higher attempt replaces what an older attempt streamed. */
function addTokens(calls, chunk) {
  let call = calls[chunk.call];
  if (!call || chunk.attempt > call.attempt) {
    call = calls[chunk.call] = { subtask: chunk.subtask_id, attempt: chunk.attempt, text: "", next: 0 };
  } else if (chunk.attempt < call.attempt || chunk.seq < call.next) {
    return;
  }
  call.text += chunk.text;
  call.next = chunk.seq + 1;
  call.done = chunk.done;
}

async function pageTask(taskId) {
  const cfg = await loadConfig();
  const controller = new AbortController();
  leave = () => controller.abort();
  let detail;
  try {
    detail = await api(`/tasks/${encodeURIComponent(taskId)}`);
  } catch (error) {
    fill(main, h("h1", { text: "Task" }));
    showError(main.appendChild(h("div")), error);
    return;
  }
  const started = performance.now();
  const statuses = {};
  let selected = null;
  let transcript = null;
  let graph = null;
  const heading = h("h1", {});
  const statusBox = h("span", {});
  const progressBar = h("div");
  const progress = h("div", { class: "progress", role: "progressbar", "aria-label": "Subtasks done",
    "aria-valuemin": 0 }, progressBar);
  const progressText = h("span", { class: "muted", id: "progress-text" });
  const actionsBox = h("div", { class: "actions" });
  const actionError = h("div", { "aria-live": "polite" });
  const facts = h("dl", { class: "facts" });
  const graphBox = h("div", { class: "graph-wrap" });
  const tableBox = h("div", { class: "table-wrap" });
  const sideBox = h("section", { class: "card", "aria-label": "Subtask details", id: "subtask-panel" },
    h("p", { class: "muted", text: "Select a subtask in the graph or the table." }));
  const resultBox = h("section", { class: "card", "aria-label": "Result" });
  const liveCalls = {};
  const liveBox = h("pre", { id: "live-text", "aria-label": "Live output of the running call" });
  Object.assign(liveBox.style, { maxHeight: "16em", overflow: "auto" });  // CSSOM: allowed by the CSP
  const showLive = () => {  // the newest running call of the selected subtask, its last 4000 chars
    const running = Object.values(liveCalls).filter((c) => c.subtask === selected && !c.done);
    const call = running[running.length - 1];
    liveBox.hidden = !call;
    liveBox.textContent = call ? call.text.slice(-4000) : "";
    liveBox.scrollTop = liveBox.scrollHeight;
  };
  fill(main, heading,
    h("div", { class: "card" }, h("div", { class: "actions" }, statusBox, progressText), progress,
      actionsBox, actionError, facts),
    h("div", { class: "layout-task" },
      h("div", {}, h("h2", { text: "Plan" }),
        h("div", { class: "legend", "aria-hidden": "true" },
          ["pending", "running", "completed", "failed", "blocked", "cancelled"].map((s) => badge(s))),
        graphBox, h("h2", { text: "Subtasks" }), tableBox),
      h("div", {}, h("h2", { text: "Details" }), sideBox, h("h2", { text: "Result" }), resultBox)));

  const temporalLink = (id) =>
    `${cfg.temporal_ui_url}/namespaces/${encodeURIComponent(cfg.temporal_namespace)}/workflows/${encodeURIComponent(id)}`;

  const updateProgress = () => {
    const ids = Object.keys(statuses);
    const done = ids.filter((id) => SUBTASK_DONE.has(statuses[id])).length;
    progressBar.style.width = ids.length ? `${(100 * done) / ids.length}%` : "0%";
    progress.setAttribute("aria-valuemax", ids.length);
    progress.setAttribute("aria-valuenow", done);
    progressText.textContent = `${done} / ${ids.length} subtasks done`;
  };

  let actionsFor = null;
  const decision = (approved, comment) => (comment.trim() ? { approved, comment } : { approved });
  const renderActions = (task) => {
    // Rebuilt only when the status changes, so a comment being typed survives re-reads.
    if (actionsFor === task.status) return;
    actionsFor = task.status;
    fill(actionsBox);
    const act = async (button, path, json) => {
      button.disabled = true;
      fill(actionError);
      try {
        await api(path, { method: "POST", json });
        await refresh();
      } catch (error) {
        showError(actionError, error);
      } finally {
        button.disabled = false;
      }
    };
    if (task.status === "awaiting_approval") {
      const comment = h("input", { type: "text", id: "approval-comment", maxlength: 2000 });
      const approve = h("button", { type: "button", text: "Approve" });
      const reject = h("button", { type: "button", class: "danger", text: "Reject" });
      approve.addEventListener("click", () => act(approve, `/tasks/${taskId}/approve`,
        decision(true, comment.value)));
      reject.addEventListener("click", () => act(reject, `/tasks/${taskId}/approve`,
        decision(false, comment.value)));
      actionsBox.append(h("label", { for: "approval-comment", text: "Comment" }), comment,
        approve, reject);
    }
    if (!TERMINAL.has(task.status)) {
      const cancel = h("button", { type: "button", class: "secondary", text: "Cancel task" });
      cancel.addEventListener("click", () => act(cancel, `/tasks/${taskId}/cancel`));
      actionsBox.append(cancel);
    }
  };

  const renderTable = (subtasks) => {
    fill(tableBox, h("table", {},
      h("thead", {}, h("tr", {}, ["Subtask", "Status", "Agent", "Time", "Tokens"]
        .map((c) => h("th", { scope: "col", text: c })))),
      h("tbody", {}, subtasks.map((s) => h("tr", { "data-subtask": s.id },
        h("td", {}, h("button", { type: "button", class: "secondary", text: s.id,
          "aria-label": `Details of subtask ${s.id}`, onclick: () => select(s.id) })),
        h("td", { class: "status-cell" }, badge(s.status)),
        h("td", { text: s.agent || "" }),
        h("td", { class: "num", text: seconds(s.started_at, s.finished_at) }),
        h("td", { class: "num", text: tokens(s.usage) }))))));
  };

  const renderSide = () => {
    const s = detail.subtask_results.find((x) => x.id === selected);
    if (!s) return;
    // The transcript stays open while the task is re-read (it is fetched on demand only).
    if (!transcript || transcript.dataset.subtask !== s.id) {
      transcript = h("div", { id: "transcript", "data-subtask": s.id });
    }
    const transcriptBox = transcript;
    const show = h("button", { type: "button", text: "Show transcript" });
    show.addEventListener("click", () => loadTranscript(taskId, s.id, transcriptBox));
    fill(sideBox, h("h3", { text: s.id }), h("p", { text: s.description }),
      h("dl", { class: "facts" },
        h("dt", { text: "Status" }), h("dd", {}, badge(s.status)),
        h("dt", { text: "Kind" }), h("dd", { text: s.kind || "agent" }),
        h("dt", { text: "Pool" }), h("dd", { text: (s.required_capabilities || []).join(" + ") }),
        h("dt", { text: "Agent" }), h("dd", { text: s.agent || "—" }),
        h("dt", { text: "Model" }), h("dd", { text: s.model || "—" }),
        h("dt", { text: "Depends on" }), h("dd", { text: s.depends_on.join(", ") || "—" }),
        h("dt", { text: "Started" }), h("dd", { text: when(s.started_at) || "—" }),
        h("dt", { text: "Finished" }), h("dd", { text: when(s.finished_at) || "—" }),
        h("dt", { text: "Duration" }), h("dd", { text: seconds(s.started_at, s.finished_at) || "—" }),
        h("dt", { text: "Attempts" }), h("dd", { text: s.attempts ?? "—" }),
        h("dt", { text: "Usage" }), h("dd", { text: `${s.usage.input_tokens} in, ${s.usage.output_tokens} out, ${cost(s.usage)}` }),
        s.waiting_for ? [h("dt", { text: "Waiting for" }), h("dd", { text: s.waiting_for })] : null,
        // An agent that ran in a child workflow: link to that workflow in the Temporal Web UI.
        detail.links && detail.links.subtask_workflows[s.id] ? [h("dt", { text: "Workflow" }),
          h("dd", {}, h("a", { href: temporalLink(detail.links.subtask_workflows[s.id]),
            target: "_blank", rel: "noopener", class: "subtask-workflow-link",
            text: "Open its child workflow in the Temporal Web UI" }))] : null),
      s.error ? h("div", { class: "error", text: s.error }) : null,
      s.output ? [h("h4", { text: "Output" }), h("pre", { text: s.output })] : null,
      liveBox, h("div", { class: "actions" }, show), transcriptBox);
    showLive();
  };

  const select = (id) => {
    selected = id;
    if (graph) {
      for (const [nid, node] of Object.entries(graph.nodes)) node.classList.toggle("selected", nid === id);
    }
    renderSide();
    sideBox.scrollIntoView({ block: "nearest" });
  };

  const render = () => {
    const task = detail.task;
    heading.textContent = task.description || task.pipeline || task.id;
    fill(statusBox, badge(task.status));
    fill(facts,
      h("dt", { text: "Task" }), h("dd", { text: task.id }),
      h("dt", { text: "User" }), h("dd", { text: task.user_id || "—" }),
      h("dt", { text: "Model" }), h("dd", { text: task.model || "—" }),
      h("dt", { text: "Created" }), h("dd", { text: when(task.created_at) }),
      h("dt", { text: "Duration" }), h("dd", { text: seconds(task.created_at, TERMINAL.has(task.status) ? task.updated_at : null) }),
      h("dt", { text: "Usage" }), h("dd", { text: `${tokens(task.usage)} tokens, ${cost(task.usage)}` }),
      // Replanning: the latest revision and why (docs/replanning.md).
      task.revisions && task.revisions.length ? [h("dt", { text: "Plan" }), h("dd", { id: "task-revised",
        text: `plan revised (${task.revisions.length}): ${task.revisions[task.revisions.length - 1].reason}` })] : null,
      h("dt", { text: "Workflow" }), h("dd", {}, h("a", { href: temporalLink(task.id), target: "_blank",
        rel: "noopener", text: "Open in the Temporal Web UI" })),
      // The task's trace in Langfuse, when the API has LANGFUSE_HOST and the task was traced.
      detail.links && detail.links.trace_url ? [h("dt", { text: "Trace" }), h("dd", {},
        h("a", { href: detail.links.trace_url, target: "_blank", rel: "noopener", id: "trace-link",
          text: "Open the trace in Langfuse" }))] : null);
    renderActions(task);
    const subtasks = detail.subtask_results;
    const sameShape = graph && subtasks.length === Object.keys(graph.nodes).length
      && subtasks.every((s) => graph.nodes[s.id]);
    if (!sameShape) {
      graph = drawGraph(subtasks, select);
      fill(graphBox, subtasks.length ? graph.root
        : h("p", { class: "muted", text: "No plan yet." }));
    }
    for (const s of subtasks) {
      statuses[s.id] = s.status;
      setNodeStatus(graph.nodes[s.id], s.id, s.status);
    }
    renderTable(subtasks);
    updateProgress();
    if (selected) renderSide();
    fill(resultBox,
      task.error ? h("div", { class: "error", text: task.error }) : null,
      task.result ? h("pre", { id: "task-result", text: task.result })
        : task.outputs ? h("pre", { id: "task-result", text: JSON.stringify(task.outputs, null, 2) })
          : h("p", { class: "muted", text: TERMINAL.has(task.status) ? "No result." : "Not finished yet." }));
  };

  let pending = null;
  const refresh = async () => {
    try {
      detail = await api(`/tasks/${encodeURIComponent(taskId)}`);
      render();
    } catch (error) {
      showError(actionError, error);
    }
  };
  const refreshSoon = () => {  // at most one read of the task per second while events pour in
    if (pending) return;
    pending = setTimeout(async () => { await refresh(); pending = null; }, 1000);
  };

  render();
  // Read by the browser test: how long drawing took, and when (ms since navigation start).
  window.mahsmTaskRender = { firstRenderMs: performance.now() - started, at: performance.now() };
  followEvents(taskId, (name, data) => {
    if (name === "subtask_status" && data.subtask_id && graph && graph.nodes[data.subtask_id]) {
      statuses[data.subtask_id] = data.status;
      setNodeStatus(graph.nodes[data.subtask_id], data.subtask_id, data.status);
      const cell = tableBox.querySelector(`tr[data-subtask="${CSS.escape(data.subtask_id)}"] .status-cell`);
      if (cell) fill(cell, badge(data.status));
      updateProgress();
      refreshSoon();
    } else if (name === "task_status") {
      fill(statusBox, badge(data.status));
      refreshSoon();
    } else if (name === "plan_ready" || name === "task_ended") {
      refresh();
    } else if (name === "llm_tokens") {
      addTokens(liveCalls, data);
      if (data.subtask_id === selected) showLive();
    } else if (name === "stream_error") {
      showError(actionError, data);
    }
  }, controller.signal, true);
}

async function loadTranscript(taskId, subtaskId, box) {
  fill(box, h("p", { class: "muted", text: "Loading transcript…" }));
  try {
    const t = await api(`/tasks/${taskId}/subtasks/${encodeURIComponent(subtaskId)}/transcript`);
    if (!t.available) {
      fill(box, h("p", { class: "muted", text: "Temporal no longer has this task's history." }));
      return;
    }
    if (!t.entries.length) {
      fill(box, h("p", { class: "muted", text: "No calls yet." }));
      return;
    }
    fill(box, h("h4", { text: "Transcript" }), ...t.entries.map((m) => h("div", {
      class: `msg role-${m.role}${m.is_error ? " is-error" : ""}` },
    h("div", { class: "role", text: m.role === "tool" ? `tool result${m.name ? ` (${m.name})` : ""}${m.is_error ? " — error" : ""}` : m.role }),
    m.content ? h("pre", { text: m.content }) : null,
    m.tool_calls.map((c) => h("div", { class: "toolcall" },
      h("strong", { text: `Tool call: ${c.name}` }), h("pre", { text: c.arguments }))))));
  } catch (error) {
    showError(box, error);
  }
}

// ---- agents, logs, pipelines, artifacts -------------------------------------------------

function table(columns, rows) {
  return h("div", { class: "table-wrap" }, h("table", {},
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col", text: c })))),
    h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((c) =>
      h("td", {}, c instanceof Node ? c : String(c ?? ""))))))));
}

async function pageAgents() {
  const body = h("div", { text: "Loading…" });
  fill(main, h("h1", { text: "Agents" }), body);
  try {
    const hourAgo = new Date(Date.now() - 3600 * 1000).toISOString();
    const [agents, running, recent] = await Promise.all([
      api("/agents"), api(`/tasks${query({ status: "running", limit: 20 })}`),
      api(`/tasks${query({ status: "completed", created_after: hourAgo, limit: 100 })}`)]);
    // What each pool is running: the running subtasks whose capabilities it serves (routing
    // sends a subtask to a live pool that has all of them; the worker is known only later).
    const details = await Promise.all(running.tasks.map((t) =>
      api(`/tasks/${t.id}`).catch(() => null)));
    const runningSubtasks = details.filter(Boolean).flatMap((d) => d.subtask_results
      .filter((x) => x.status === "running").map((x) => ({ task: d.task.id, subtask: x })));
    const servedBy = (pool) => runningSubtasks.filter(({ subtask }) =>
      subtask.required_capabilities.every((c) => pool.capabilities.includes(c)));
    const worker = (w) => h("li", { text: `${w.identity} (last seen ${when(w.last_seen)})` });
    const done = recent.tasks.length + (recent.next_cursor ? "+" : "");
    fill(body,
      h("p", {}, `Throughput: ${done} tasks created in the last hour have completed;`
        + ` ${running.tasks.length}${running.next_cursor ? "+" : ""} running now.`),
      h("h2", { text: "Orchestrators (task queue)" }), h("p", { class: "muted", text: agents.task_queue }),
      table(["Worker", "Last seen"], agents.orchestrators.map((w) => [w.identity, when(w.last_seen)])),
      h("h2", { text: "Pools" }),
      agents.pools.length ? table(["Capabilities", "Queue", "Workers", "Running subtasks it serves"],
        agents.pools.map((p) => [
          p.capabilities.join(" + "), p.task_queue, h("ul", {}, p.workers.map(worker)),
          h("ul", {}, servedBy(p).map((x) => h("li", {}, h("a", { href: `#/task/${x.task}`,
            text: `${x.subtask.id} of ${x.task}` }))))]))
        : h("p", { class: "muted", text: "No pool has a live worker." }),
      agents.unserved_capabilities.length ? h("p", { class: "error",
        text: `No worker serves: ${agents.unserved_capabilities.join(", ")}` }) : null,
      h("h2", { text: "Running now" }),
      running.tasks.length ? table(["Task", "Created", "Tokens"], running.tasks.map((t) => [
        h("a", { href: `#/task/${t.id}`, text: t.description || t.id }), when(t.created_at), tokens(t.usage)]))
        : h("p", { class: "muted", text: "No task is running." }));
  } catch (error) {
    showError(body, error);
  }
}

async function pageLogs(params) {
  const values = Object.fromEntries(["task_id", "level", "kind", "since", "until"].map((k) => [k, params.get(k) || ""]));
  const inputs = {
    task_id: h("input", { type: "text", id: "log-task", value: values.task_id, placeholder: "task-…" }),
    level: h("select", { id: "log-level" }, ["", "info", "warning", "error"].map((l) =>
      h("option", { value: l, selected: l === values.level, text: l || "any" }))),
    kind: h("select", { id: "log-kind" }, ["", "task_status", "plan_ready", "subtask_status", "note"].map((k) =>
      h("option", { value: k, selected: k === values.kind, text: k || "any" }))),
    since: h("input", { type: "datetime-local", id: "log-since", value: values.since }),
    until: h("input", { type: "datetime-local", id: "log-until", value: values.until }),
  };
  const labels = { task_id: "Task", level: "Level", kind: "Kind", since: "From", until: "Until" };
  const form = h("form", { class: "card row", role: "search" },
    Object.entries(inputs).map(([k, el]) => h("div", {}, h("label", { for: el.id, text: labels[k] }), el)),
    h("div", { class: "actions" }, h("button", { type: "submit", text: "Filter" })));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    location.hash = `#/logs${query(Object.fromEntries(Object.entries(inputs).map(([k, el]) => [k, el.value.trim()])))}`;
  });
  const body = h("div");
  fill(main, h("h1", { text: "Logs" }), form, body);
  const iso = (v) => (v ? new Date(v).toISOString() : "");
  const load = async (cursor, into) => {
    const page = await api(`/logs${query({ task_id: values.task_id, level: values.level, kind: values.kind,
      since: iso(values.since), until: iso(values.until), cursor, limit: 100 })}`);
    into.append(...page.events.map((e) => h("tr", {},
      h("td", { text: when(e.at) }), h("td", {}, badge(e.level, "l")),
      h("td", {}, h("a", { href: `#/task/${e.task_id}`, text: e.task_id })),
      h("td", { text: e.subtask_id || "" }), h("td", { text: e.kind }),
      h("td", {}, e.status ? badge(e.status) : ""), h("td", { text: e.message || "" }))));
    return page.next_cursor;
  };
  try {
    const rows = h("tbody");
    const next = await load(undefined, rows);
    fill(body, h("div", { class: "table-wrap" }, h("table", {},
      h("thead", {}, h("tr", {}, ["Time", "Level", "Task", "Subtask", "Kind", "Status", "Message"]
        .map((c) => h("th", { scope: "col", text: c })))), rows)));
    if (!rows.children.length) body.append(h("p", { class: "muted", text: "No events match." }));
    let cursor = next;
    if (cursor) {
      const more = h("button", { type: "button", class: "secondary", text: "Load older events" });
      more.addEventListener("click", async () => {
        try { cursor = await load(cursor, rows); } catch (error) { showError(body, error); }
        if (!cursor) more.remove();
      });
      body.append(h("div", { class: "actions" }, more));
    }
  } catch (error) {
    showError(body, error);
  }
}

async function pagePipelines() {
  const body = h("div", { text: "Loading…" });
  fill(main, h("h1", { text: "Pipelines" }), body);
  try {
    const page = await api("/pipelines?limit=100");
    fill(body, page.pipelines.length ? table(["Name", "Latest version", "Versions", "Description", "Updated"],
      page.pipelines.map((p) => [p.name, p.latest_version, p.versions, p.description || "", when(p.updated_at)]))
      : h("p", { class: "muted", text: "No pipeline is registered (POST /pipelines, or mahsm pipelines register)." }));
  } catch (error) {
    showError(body, error);
  }
}

async function pageArtifacts() {
  const body = h("div", { text: "Loading…" });
  fill(main, h("h1", { text: "Artifacts" }), body);
  try {
    const list = await api("/artifacts");
    fill(body, list.length ? table(["Name", "Latest version", "Versions", "Updated"],
      list.map((a) => [a.name, a.latest, a.versions, when(a.updated_at)]))
      : h("p", { class: "muted", text: "No prompt artifact is stored yet." }));
  } catch (error) {
    showError(body, error);
  }
}

// ---- experiments ------------------------------------------------------------------------

const EXPERIMENT_PAGE = 50;

function usd(x) {
  return typeof x === "number" ? `$${x.toFixed(6)}` : "—";
}

function fixed(x, digits, unit = "") {
  return typeof x === "number" ? `${x.toFixed(digits)}${unit}` : "—";
}

async function pageExperiments(params) {
  const limit = Math.min(200, Math.max(EXPERIMENT_PAGE, Number(params.get("limit")) || EXPERIMENT_PAGE));
  const body = h("div", { text: "Loading…" });
  fill(main, h("h1", { text: "Experiments" }), body);
  try {
    const page = await api(`/experiments${query({ limit })}`);
    if (!page.experiments.length) {
      fill(body, h("p", { class: "muted", text: "No experiment yet (POST /experiments, or mahsm experiment run)." }));
      return;
    }
    fill(body, h("div", { class: "table-wrap" }, h("table", {},
      h("thead", {}, h("tr", {}, ["Experiment", "Strategy", "Status", "Created", "Configs"]
        .map((c) => h("th", { scope: "col", text: c })))),
      h("tbody", {}, page.experiments.map((e) => h("tr", { "data-experiment": e.id },
        h("td", {}, h("a", { href: `#/experiment/${encodeURIComponent(e.id)}`, text: e.name || e.id }),
          e.name ? h("div", { class: "muted small", text: e.id }) : null),
        h("td", { text: e.strategy || "—" }), h("td", {}, badge(e.status)),
        h("td", { text: when(e.started_at) }),
        h("td", { class: "num", text: e.configs ?? "—" })))))));
    // The API answers the newest `limit` (at most 200); "Show more" asks for a longer list.
    if (page.experiments.length >= limit && limit < 200) {
      body.append(h("div", { class: "actions" }, h("a", {
        href: `#/experiments${query({ limit: Math.min(200, limit + EXPERIMENT_PAGE) })}`,
        text: "Show more experiments" })));
    }
  } catch (error) {
    showError(body, error);
  }
}

/* The config's overrides as short "field=value" texts (the label is not an override). */
function overrides(config) {
  const out = [];
  for (const [k, v] of Object.entries(config || {})) {
    if (k === "label" || v === null || v === undefined) continue;
    if (k === "inputs") {
      for (const [ik, iv] of Object.entries(v)) out.push(`inputs.${ik}=${JSON.stringify(iv)}`);
    } else out.push(`${k}=${typeof v === "string" ? v : JSON.stringify(v)}`);
  }
  return out;
}

function percentile(values, p) {
  if (!values.length) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

const mean = (values) => (values.length ? values.reduce((a, b) => a + b, 0) / values.length : null);

/* One row per config: the workflow's summary once done; while it runs, figures so far
 * computed from the finished branches (marked provisional). */
function configRows(state) {
  const metric = state.summary.length ? null
    : state.branches.map((b) => Object.keys(b.scores || {})[0]).find(Boolean) || null;
  return state.config_ids.map((id, index) => {
    const config = state.configs[index] || {};
    const mine = state.branches.filter((b) => b.config_id === id);
    const count = (status) => mine.filter((b) => b.status === status).length;
    const row = { id, config, label: config.label || id, done: count("success"), failed: count("failed"),
      active: count("running") + count("pending"), winner: state.winner === id };
    const summary = state.summary.find((s) => s.config_id === id);
    if (summary) {
      return { ...row, label: summary.label || row.label, score: summary.mean_score, ci95: summary.ci95,
        passRate: summary.pass_rate, p50: summary.p50_latency_s, p95: summary.p95_latency_s,
        tokens: summary.tokens_per_row, cost: summary.cost_per_row, final: true };
    }
    const finished = mine.filter((b) => b.status === "success" || b.status === "failed");
    const scores = metric ? finished.map((b) => b.scores[metric]).filter((x) => typeof x === "number") : [];
    const latencies = finished.map((b) => b.duration_s).filter((x) => typeof x === "number");
    return { ...row, score: mean(scores), ci95: null,
      passRate: scores.length ? scores.filter((x) => x >= 1).length / scores.length : null,
      p50: percentile(latencies, 50), p95: percentile(latencies, 95),
      tokens: finished.length ? mean(finished.map((b) => tokens(b.usage))) : null,
      cost: finished.length ? mean(finished.map((b) => (b.usage.cost_usd || 0) + (b.judge_usage?.cost_usd || 0))) : null,
      final: false };
  });
}

function niceTicks(lo, hi, count = 5) {
  const step = (hi - lo) / count;
  return Array.from({ length: count + 1 }, (_, i) => lo + i * step);
}

/* Score against cost per row, one labelled point per config (the table has the same data). */
function scoreCostChart(rows, metric, width) {
  const points = rows.filter((r) => typeof r.score === "number" && typeof r.cost === "number");
  // Drawn at the width it gets (so its text stays readable on a phone), 320 to 640 units.
  const W = Math.round(Math.min(640, Math.max(320, width || 640))), H = 340, L = 64, R = 24, T = 28, B = 52;
  const maxCost = Math.max(0, ...points.map((r) => r.cost)) * 1.15 || 1e-6;
  const lo = Math.min(0, ...points.map((r) => r.score - (r.ci95 || 0)));
  const hi = Math.max(1, ...points.map((r) => r.score + (r.ci95 || 0)));
  const x = (v) => L + (v / maxCost) * (W - L - R);
  const y = (v) => T + (1 - (v - lo) / (hi - lo)) * (H - T - B);
  const root = svg("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img",
    "aria-labelledby": "chart-title chart-desc", id: "score-cost-chart" });
  const title = svg("title", { id: "chart-title" });
  title.textContent = "Mean score against cost per row, one point per config";
  const desc = svg("desc", { id: "chart-desc" });
  desc.textContent = points.length ? points.map((r) => `${r.label}: score ${r.score.toFixed(3)}`
    + ` at ${usd(r.cost)} per row${r.winner ? " (winner)" : ""}`).join("; ") : "No config has a score yet.";
  root.append(title, desc);
  const text = (attrs, content) => { const t = svg("text", attrs); t.textContent = content; return t; };
  for (const v of niceTicks(lo, hi)) {
    root.append(svg("line", { class: "grid", x1: L, x2: W - R, y1: y(v), y2: y(v) }),
      text({ x: L - 6, y: y(v) + 4, "text-anchor": "end", class: "tick" }, v.toFixed(2)));
  }
  for (const v of niceTicks(0, maxCost, W < 480 ? 2 : 4)) {
    root.append(svg("line", { class: "grid", x1: x(v), x2: x(v), y1: T, y2: H - B }),
      text({ x: x(v), y: H - B + 16, "text-anchor": "middle", class: "tick" },
        v === 0 ? "$0" : `$${Number(v.toPrecision(2))}`));
  }
  root.append(svg("line", { class: "axis", x1: L, x2: W - R, y1: H - B, y2: H - B }),
    svg("line", { class: "axis", x1: L, x2: L, y1: T, y2: H - B }),
    text({ x: (L + W - R) / 2, y: H - 10, "text-anchor": "middle", class: "axis-label" }, "Cost per row (USD)"),
    text({ x: -(T + H - B) / 2, y: 16, transform: "rotate(-90)", "text-anchor": "middle", class: "axis-label" },
      `Mean score${metric ? ` (${metric})` : ""}, 0 to 1`));
  for (const r of points) {
    const px = x(r.cost), py = y(r.score);
    const g = svg("g", { class: `point${r.winner ? " winner" : ""}`, "data-config": r.id });
    const tip = svg("title", {});
    tip.textContent = `${r.label}: score ${r.score.toFixed(3)}, ${usd(r.cost)} per row`;
    g.append(tip);
    if (r.ci95) g.append(svg("line", { class: "ci", x1: px, x2: px, y1: y(r.score - r.ci95), y2: y(r.score + r.ci95) }));
    g.append(svg("circle", { cx: px, cy: py, r: 6 }));
    const right = px > W * 0.7;
    g.append(text({ x: right ? px - 10 : px + 10, y: py - 8, "text-anchor": right ? "end" : "start", class: "point-label" },
      `${r.label}${r.winner ? " ★" : ""}`));
    root.append(g);
  }
  return root;
}

/* Follows GET /experiments/{id}/events (a `state` event each time it changes, then `end`);
   a stream that closes early starts again with the current state. */
function followExperiment(id, onState, onError, signal) {
  return followSse(`${ROOT}/experiments/${encodeURIComponent(id)}/events`, {
    onEvent: ({ name, data }) => {
      if (name === "end") return true;
      if (name === "state" && data) onState(JSON.parse(data));
      return false;
    },
    onError,
    signal,
  });
}

async function pageExperiment(id) {
  const controller = new AbortController();
  let last = null, resizing = 0;
  const onResize = () => {
    cancelAnimationFrame(resizing);
    resizing = requestAnimationFrame(() => { if (last) render(last); });
  };
  window.addEventListener("resize", onResize);
  leave = () => { controller.abort(); window.removeEventListener("resize", onResize); };
  const heading = h("h1", { text: id });
  const statusBox = h("span", { id: "experiment-status", "aria-live": "polite" });
  const errorBox = h("div", { "aria-live": "polite" });
  const facts = h("dl", { class: "facts" });
  const progressBar = h("div");
  const progressText = h("span", { id: "experiment-progress" });
  const tableBox = h("div");
  const chartBox = h("div", { class: "chart-wrap" });
  const branchesBox = h("div");
  fill(main, h("p", {}, h("a", { href: "#/experiments", text: "← All experiments" })),
    heading, h("div", { class: "card" }, h("p", {}, "Status: ", statusBox), facts,
      h("div", { class: "progress", role: "progressbar", "aria-labelledby": "experiment-progress" }, progressBar),
      progressText, errorBox),
    h("h2", { text: "Configs" }), tableBox,
    h("h2", { text: "Score against cost" }), chartBox,
    h("h2", { text: "Branches" }), branchesBox);

  const render = (state) => {
    last = state;
    heading.textContent = state.name;
    fill(statusBox, badge(state.status));
    const finished = state.branches.filter((b) => !["pending", "running"].includes(b.status)).length;
    const total = state.branches.length;
    progressBar.style.width = `${total ? (100 * finished) / total : 0}%`;
    progressBar.parentElement.setAttribute("aria-valuenow", String(finished));
    progressBar.parentElement.setAttribute("aria-valuemax", String(total));
    progressText.textContent = `${finished} / ${total} branches finished`;
    const rows = configRows(state);
    const winner = rows.find((r) => r.winner);
    const metric = Object.keys(state.summary[0]?.scores || {})[0]
      || state.branches.map((b) => Object.keys(b.scores || {})[0]).find(Boolean) || null;
    fill(facts,
      h("dt", { text: "Experiment" }), h("dd", { text: state.experiment_id }),
      h("dt", { text: "Strategy" }), h("dd", { text: state.strategy }),
      h("dt", { text: "Created" }), h("dd", { text: when(state.created_at) }),
      h("dt", { text: "Updated" }), h("dd", { text: when(state.updated_at) }),
      h("dt", { text: "Winner" }), h("dd", { id: "experiment-winner",
        text: winner ? `${winner.label} (${winner.id})` : state.status === "running" ? "not decided yet" : "none" }),
      h("dt", { text: "MLflow" }), h("dd", { text: state.mlflow.status + (state.mlflow.error ? `: ${state.mlflow.error}` : "") }),
      state.strategy === "round_robin" ? [h("dt", { text: "Requests served" }), h("dd", { text: state.served })] : null);
    fill(errorBox, state.error ? h("div", { class: "error", text: state.error }) : null);
    const final = rows.every((r) => r.final);
    const columns = ["Config", "Overrides", "Done", "Failed", "Mean score", "Pass rate",
      "p50 latency", "p95 latency", "Tokens / row", "Cost / row"];
    fill(tableBox, h("p", { class: "muted", id: "config-note", text: final
      ? `Per config; scores are the mean of ${metric || "the first metric"} with its 95% interval.`
      : "Figures so far, from the finished branches; the final summary comes when the experiment ends." }),
    h("div", { class: "table-wrap" }, h("table", { id: "config-table", "aria-describedby": "config-note" },
      h("caption", { class: "visually-hidden", text: "Configs of this experiment" }),
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col", text: c })))),
      h("tbody", {}, rows.map((r) => h("tr", { "data-config": r.id, class: r.winner ? "winner" : null },
        h("th", { scope: "row" }, h("div", { text: r.label }), h("div", { class: "muted small", text: r.id }),
          r.winner ? h("span", { class: "badge s-completed", text: "winner" }) : null),
        h("td", {}, h("ul", { class: "plain" }, overrides(r.config).map((o) => h("li", { text: o })))),
        h("td", { class: "num", text: r.done + (r.active ? ` (+${r.active} to go)` : "") }),
        h("td", { class: "num", text: r.failed }),
        h("td", { class: "num score", text: typeof r.score === "number"
          ? r.score.toFixed(3) + (typeof r.ci95 === "number" ? ` ± ${r.ci95.toFixed(3)}` : "") : "—" }),
        h("td", { class: "num", text: typeof r.passRate === "number" ? `${Math.round(r.passRate * 100)}%` : "—" }),
        h("td", { class: "num", text: fixed(r.p50, 2, " s") }),
        h("td", { class: "num", text: fixed(r.p95, 2, " s") }),
        h("td", { class: "num", text: fixed(r.tokens, 1) }),
        h("td", { class: "num cost", text: usd(r.cost) })))))));
    fill(chartBox, scoreCostChart(rows, metric, chartBox.clientWidth - 16),
      h("p", { class: "muted", text: "Up and to the left is better: a higher score for less money."
        + " Bars show the 95% interval when the summary has one." }));
    const open = Boolean(branchesBox.querySelector("details")?.open);  // kept across redraws
    fill(branchesBox, h("details", { open }, h("summary", { text: `All ${state.branches.length} branches` }),
      table(["Config", "Row", "Status", "Scores", "Duration", "Tokens", "Cost", "Error"],
        state.branches.map((b) => [b.config.label || b.config_id, b.row ?? "—", badge(b.status),
          Object.entries(b.scores || {}).map(([k, v]) => `${k}=${v.toFixed(3)}`).join(", ") || "—",
          fixed(b.duration_s, 2, " s"), tokens(b.usage), usd(b.usage.cost_usd),
          b.error ? `${b.error.type}: ${b.error.message}` : ""]))));
  };

  render(await api(`/experiments/${encodeURIComponent(id)}`));
  followExperiment(id, render, (error) => showError(errorBox, error), controller.signal);
}

// ---- routing ----------------------------------------------------------------------------

async function route() {
  leave();
  leave = () => {};
  document.getElementById("banner").hidden = true;
  const [path, search] = (location.hash.slice(1) || "/tasks").split("?");
  const params = new URLSearchParams(search || "");
  const parts = path.split("/").filter(Boolean);
  for (const link of document.querySelectorAll("header nav a")) {
    const current = link.getAttribute("href").slice(2) === (parts[0] === "task" ? "tasks"
      : parts[0] === "experiment" ? "experiments" : parts[0]);
    if (current) link.setAttribute("aria-current", "page"); else link.removeAttribute("aria-current");
  }
  fill(main, h("p", { class: "muted", text: "Loading…" }));
  try {
    await loadConfig();
    switch (parts[0]) {
      case "submit": await pageSubmit(); break;
      case "task": await pageTask(decodeURIComponent(parts[1] || "")); break;
      case "agents": await pageAgents(); break;
      case "logs": await pageLogs(params); break;
      case "pipelines": await pagePipelines(); break;
      case "artifacts": await pageArtifacts(); break;
      case "experiments": await pageExperiments(params); break;
      case "experiment": await pageExperiment(decodeURIComponent(parts[1] || "")); break;
      default: await pageTasks(params);
    }
  } catch (error) {
    if (error.status !== 401) showError(main, error);
  }
}

document.getElementById("forget-key").addEventListener("click", () => {
  sessionStorage.removeItem(KEY_STORE);
  config = null;
  askForKey();
});
window.addEventListener("hashchange", route);
route();
