// Tools in the chat: the parameters panel's Tools section (on or off for this chat, which MCP
// servers and tools, what the model must do first), kept per chat in the browser; and the
// tool steps of a reply (a folding step per call: arguments, result, time; Approve and
// Reject while the reply waits). The server runs the loop (modules/web/tool_turns.py).

import { $, APPROVAL_TEXT, api, el, icon, store } from "./common.js";
import { state } from "./chat-state.js";

const STORE_KEY = "hearth.tools";
const MAX_CHATS = 500; // the choices of the newest chats are kept

let catalog = null; // /ui/api/tools: {servers, local, builtin}

function chatKey() {
  const chat = state.chat;
  return chat ? `${chat.mode}|${chat.character ?? ""}|${chat.id}` : null;
}

/** This chat's choice: {on, servers: [...labels], tools: [...names], choice}. */
function choiceOf(key = chatKey()) {
  const saved = key ? store.load(STORE_KEY)[key] : null;
  return { on: false, servers: [], tools: [], choice: "auto", ...(saved || {}) };
}

function saveChoice(choice) {
  const key = chatKey();
  if (!key) return;
  const all = store.load(STORE_KEY);
  delete all[key];
  all[key] = choice;
  const keys = Object.keys(all);
  for (const old of keys.slice(0, Math.max(0, keys.length - MAX_CHATS))) delete all[old];
  store.save(STORE_KEY, all);
}

/** The generate message's `tools`, or null when this chat uses none. */
export function chatTools() {
  const choice = choiceOf();
  if (!choice.on || (!choice.servers.length && !choice.tools.length)) return null;
  const names = toolNames(choice);
  return {
    servers: choice.servers,
    tools: choice.tools,
    choice: choice.choice === "auto" || choice.choice === "required" || names.includes(choice.choice) ? choice.choice : "auto",
  };
}

function toolNames(choice) {
  const names = [...choice.tools];
  for (const server of catalog?.servers || []) {
    if (choice.servers.includes(server.label)) names.push(...server.tools.map((t) => t.name));
  }
  return names;
}

// --- The panel ----------------------------------------------------------------------------------

function checkbox(label, checked, hint, onchange) {
  return el("label", { class: "check tool-option" },
    el("input", { type: "checkbox", checked, onchange: (event) => onchange(event.target.checked) }),
    el("span", { text: label }), hint ? el("small", { class: "muted", text: hint }) : null);
}

function renderPanel() {
  const box = $("tools-list");
  const choice = choiceOf();
  $("tools-on").checked = choice.on;
  $("tools-on").disabled = !state.chat;
  box.hidden = !choice.on;
  $("tools-choice-field").hidden = !choice.on;
  if (!catalog) {
    box.replaceChildren(el("p", { class: "muted small", text: "Loading the tools…" }));
    return;
  }
  const update = (change) => {
    const next = choiceOf();
    change(next);
    saveChoice(next);
    renderPanel();
  };
  const toggle = (list, name, on) => (next) => {
    next[list] = next[list].filter((n) => n !== name);
    if (on) next[list].push(name);
  };
  const servers = catalog.servers.map((server) => {
    const tools = server.tools.map((t) => t.name).join(", ");
    const hint = server.state === "failed" ? `failed: ${server.error || "see the log"}`
      : tools ? tools : server.state === "running" ? "no tools" : "starts on first use";
    return el("div", { class: `tool-server ${server.state}`, dataset: { server: server.label } },
      checkbox(`${server.label} (MCP)`, choice.servers.includes(server.label), hint,
        (on) => update(toggle("servers", server.label, on))));
  });
  const tools = [...catalog.local, ...catalog.builtin].map((tool) =>
    el("div", { class: "tool-single", dataset: { tool: tool.name } },
      checkbox(tool.name, choice.tools.includes(tool.name), `${tool.source === "local" ? "your tool" : "built in"}, ${APPROVAL_TEXT[tool.approval] || ""}`,
        (on) => update(toggle("tools", tool.name, on)))));
  box.replaceChildren(
    ...(servers.length ? servers : [el("p", { class: "muted small", text: "No MCP servers in user_data/mcp.json." })]),
    ...tools,
  );
  const select = $("tools-choice");
  const names = toolNames(choice);
  select.replaceChildren(
    el("option", { value: "auto", text: "decides when to call a tool" }),
    el("option", { value: "required", text: "must call a tool first" }),
    ...names.map((name) => el("option", { value: name, text: `must call ${name} first` })),
  );
  select.value = ["auto", "required", ...names].includes(choice.choice) ? choice.choice : "auto";
}

async function loadCatalog() {
  try {
    catalog = await api("/ui/api/tools");
  } catch {
    catalog = { servers: [], local: [], builtin: [] };
  }
  showChat();
}

/** The panel for the chat shown; the servers it uses are started, so that their tools can be
 * listed and chosen. */
function showChat() {
  renderPanel();
  for (const label of choiceOf().servers) startServer(label);
}

async function startServer(label) {
  const server = catalog?.servers.find((s) => s.label === label);
  if (!server || server.state === "running") return;
  try {
    Object.assign(server, await api(`/ui/api/tools/servers/${encodeURIComponent(label)}/start`, { method: "POST" }));
  } catch {
    return;
  }
  renderPanel();
}

export function initTools() {
  $("tools-on").addEventListener("change", (event) => {
    const next = choiceOf();
    next.on = event.target.checked;
    saveChoice(next);
    renderPanel();
  });
  $("tools-choice").addEventListener("change", (event) => {
    const next = choiceOf();
    next.choice = event.target.value;
    saveChoice(next);
  });
  $("tools-list").addEventListener("change", (event) => {
    const label = event.target.closest("[data-server]")?.dataset.server;
    if (label && event.target.checked) startServer(label);
  });
  document.addEventListener("hearth:chat", showChat);
  loadCatalog();
}

// --- A reply's steps ----------------------------------------------------------------------------

const STATUS = {
  ok: "Done", failed: "Failed", rejected: "Rejected", stopped: "Stopped", waiting: "Waiting", asking: "Waiting for your approval", running: "Running",
};

function pretty(text) {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}

/** One call as a folding step; `answer(call, approve)` when it waits for the user. */
function stepView(call, answer) {
  const status = call.status || "waiting";
  const seconds = call.seconds != null && ["ok", "failed"].includes(status) ? ` · ${call.seconds < 1 ? call.seconds.toFixed(2) : call.seconds.toFixed(1)} s` : "";
  const summary = el("summary", {},
    icon("code"), el("span", { class: "tool-name", text: call.name }),
    call.server ? el("span", { class: "tool-server-name muted", text: call.server }) : null,
    el("span", { class: "tool-status", text: STATUS[status] + seconds }));
  const detail = el("div", { class: "tool-detail" },
    el("div", { class: "tool-label", text: "Arguments" }), el("pre", { class: "tool-arguments", text: pretty(call.arguments || "{}") }));
  if (call.output != null) {
    detail.append(el("div", { class: "tool-label", text: status === "failed" ? "Error" : "Result" }),
      el("pre", { class: "tool-output", text: call.output }));
  }
  const step = el("details", { class: "tool-step", open: status === "asking", dataset: { call: call.id, status } }, summary, detail);
  if (status === "asking" && answer) {
    step.append(el("div", { class: "tool-approval", role: "group", "aria-label": `Run ${call.name}?` },
      el("span", { class: "muted small", text: `Run ${call.name}${call.server ? ` (${call.server})` : ""} with these arguments?` }),
      el("button", { type: "button", class: "btn btn-primary tool-approve", text: "Approve", onclick: () => answer(call, true) }),
      el("button", { type: "button", class: "btn tool-reject", text: "Reject", onclick: () => answer(call, false) })));
  }
  return step;
}

/** The steps of a reply (saved rounds, or the ones of the reply being written). */
export function fillSteps(view, rounds, answer = null, renderText = null) {
  if (!view.steps) {
    view.steps = el("div", { class: "tool-steps" });
    view.content.before(view.steps);
  }
  view.steps.hidden = !rounds?.length;
  view.steps.replaceChildren(...(rounds || []).flatMap((round) => [
    round.text?.trim() && renderText ? el("div", { class: "tool-round-text markdown" }, renderText(round.text)) : null,
    ...round.calls.map((call) => stepView(call, answer)),
  ].filter(Boolean)));
}
