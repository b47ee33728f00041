// The Notebook page: pages of text the model continues (no template, no character), kept on
// the server. The text is saved as you type; Generate (Ctrl+Enter) saves it and streams the
// model's text into it; Stop keeps what was written; Undo puts back the text from before the
// last generation. The parameters are the chat's (one preset and sampling for both pages).

import { $, api, boot, confirmAction, el, iconButton, onStatus, store, timeAgo, toast, icon } from "./common.js";
import { Socket } from "./chat-socket.js";
import { FALLBACK_SAMPLING, initParams, presetByName, setParamsOpen } from "./params.js";

const STORE_KEY = "hearth.ui";
const saved = store.load(STORE_KEY);
const choices = boot.choices || {};
const state = {
  presets: boot.presets || [],
  templates: [],
  preset: saved.preset ?? choices.preset,
  sampling: null,
  paramsOpen: saved.paramsOpen ?? window.matchMedia("(min-width: 1200px)").matches,
  notebooks: boot.notebooks || [],
  notebook: null, // {id, title, named, text, can_undo}
  gen: null,
};
state.sampling = {
  ...FALLBACK_SAMPLING, ...(presetByName(state.presets, state.preset)?.sampling || {}), ...(saved.sampling || {}),
};

function remember() {
  store.save(STORE_KEY, {
    ...store.load(STORE_KEY), preset: state.preset, sampling: state.sampling, paramsOpen: state.paramsOpen,
    notebook: state.notebook?.id,
  });
}

const text = $("notebook-text");
const title = $("notebook-title");
const generateButton = $("generate");
const info = $("notebook-info");
let status = null;
let lastRun = ""; // what the last generation said (tokens, speed, why it ended), until the text changes

// --- The list ---------------------------------------------------------------------------------

function renderList() {
  const list = $("notebook-list");
  if (!state.notebooks.length) {
    list.replaceChildren(el("li", { class: "chat-empty muted", text: "No notebooks yet" }));
    return;
  }
  list.replaceChildren(...state.notebooks.map((n) => {
    const active = n.id === state.notebook?.id;
    return el("li", { class: `chat-item${active ? " active" : ""}`, dataset: { id: n.id } },
      el("button", { type: "button", class: "chat-link", "aria-current": active ? "true" : null, onclick: () => open(n.id) },
        el("span", { class: "chat-name", text: n.title }), el("time", { class: "chat-time", text: timeAgo(n.updated) })),
      el("div", { class: "chat-item-actions" }, iconButton("trash", "Delete notebook", () => remove(n), "icon-btn small")));
  }));
}

function summarize(notebook) {
  const { text: _, ...summary } = notebook;
  state.notebooks = [summary, ...state.notebooks.filter((n) => n.id !== notebook.id)];
  renderList();
}

async function open(id) {
  if (state.gen) return;
  await flush();
  try {
    show(await api(`/ui/api/notebooks/${id}`));
    closeSidebar();
  } catch (error) {
    toast(error.message, "error");
  }
}

function show(notebook) {
  state.notebook = notebook;
  lastRun = "";
  remember();
  text.value = notebook.text;
  title.value = notebook.named ? notebook.title : "";
  title.placeholder = notebook.named ? "Untitled" : notebook.title;
  const url = new URL(location.href);
  url.searchParams.set("notebook", notebook.id);
  history.replaceState(null, "", url);
  renderList();
  updateButtons();
  countSoon();
}

async function create() {
  if (state.gen) return;
  await flush();
  try {
    const notebook = await api("/ui/api/notebooks", { method: "POST", json: {} });
    summarize(notebook);
    show(notebook);
    text.focus();
  } catch (error) {
    toast(error.message, "error");
  }
}

async function remove(notebook) {
  if (!(await confirmAction(`“${notebook.title}” will be deleted for good.`, { title: "Delete this notebook?" }))) return;
  try {
    await api(`/ui/api/notebooks/${notebook.id}`, { method: "DELETE" });
  } catch (error) {
    toast(error.message, "error");
    return;
  }
  state.notebooks = state.notebooks.filter((n) => n.id !== notebook.id);
  if (state.notebook?.id === notebook.id) {
    if (state.notebooks.length) await open(state.notebooks[0].id);
    else await create();
  }
  renderList();
}

// --- Saving as you type -----------------------------------------------------------------------

let saveTimer = 0;
let dirty = null; // {text?, title?} not saved yet

function changed(part) {
  dirty = { ...(dirty || {}), ...part };
  clearTimeout(saveTimer);
  saveTimer = setTimeout(flush, 600);
}

async function flush() {
  clearTimeout(saveTimer);
  if (!dirty || !state.notebook) return;
  const body = dirty;
  dirty = null;
  try {
    summarize(await api(`/ui/api/notebooks/${state.notebook.id}`, { method: "PUT", json: body }));
  } catch (error) {
    toast(`Not saved: ${error.message}`, "error");
  }
}

text.addEventListener("input", () => {
  if (state.gen) return;
  state.notebook.text = text.value;
  lastRun = "";
  changed({ text: text.value });
  countSoon();
});
title.addEventListener("input", () => changed({ title: title.value }));
window.addEventListener("pagehide", () => {
  if (dirty && state.notebook) {
    fetch(`/ui/api/notebooks/${state.notebook.id}`, {
      method: "PUT", keepalive: true, credentials: "same-origin",
      headers: { "Content-Type": "application/json" }, body: JSON.stringify(dirty),
    });
  }
});

// --- Tokens -----------------------------------------------------------------------------------

let countTimer = 0;
let tokens = null;

function countSoon() {
  clearTimeout(countTimer);
  countTimer = setTimeout(count, 400);
}

async function count() {
  try {
    const data = await api("/ui/api/tokens", { method: "POST", json: { text: text.value.slice(-400000) } });
    tokens = data.tokens == null ? null : { n: data.tokens, ctx: data.n_ctx };
  } catch {
    tokens = null;
  }
  showInfo();
}

function showInfo(extra = lastRun) {
  const parts = [];
  if (tokens) {
    const room = tokens.ctx - Math.min(state.sampling.max_tokens, Math.floor(tokens.ctx / 2));
    parts.push(`${tokens.n.toLocaleString()} tokens · context ${tokens.ctx.toLocaleString()}`);
    info.classList.toggle("full", tokens.n >= room);
    info.title = tokens.n >= room ? "Longer than the context leaves room for: the model sees only the end of the text." : "";
  } else {
    parts.push(`${text.value.length.toLocaleString()} characters`);
  }
  if (extra) parts.push(extra);
  info.textContent = parts.join(" · ");
}

onStatus((s) => {
  const loadedNow = !status?.model && s?.model;
  status = s;
  if (loadedNow) countSoon();
});

// --- Generating -------------------------------------------------------------------------------

const socket = new Socket(onMessage, () => {
  if (state.gen) fail("The connection to the server was lost; the text is saved as far as it got.");
});

function newId() {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  return "n" + [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function generate() {
  if (state.gen || !state.notebook) return;
  clearTimeout(saveTimer);
  dirty = null; // the completion saves the text first
  const gen = { id: newId(), pending: "", stopping: false };
  state.gen = gen;
  lastRun = "";
  setBusy(true);
  try {
    socket.send({ type: "complete", id: gen.id, notebook: state.notebook.id, text: text.value, sampling: state.sampling });
  } catch (error) {
    fail(error.message);
  }
}

function stop() {
  const gen = state.gen;
  if (!gen || gen.stopping) return;
  gen.stopping = true;
  try {
    socket.send({ type: "stop", id: gen.id });
  } catch {
    /* the server stops it when the socket closes */
  }
}

let frame = 0;

function onMessage(message) {
  const gen = state.gen;
  if (message.type === "pong" || !gen || message.id !== gen.id) return;
  if (message.type === "status") showInfo(message.message);
  else if (message.type === "start") {
    if (message.cut) toast("The text is longer than the model's context leaves room for: the model sees only its end.", "info");
  } else if (message.type === "delta") {
    gen.pending += message.text;
    if (!frame) frame = requestAnimationFrame(paint);
  } else if (message.type === "done") {
    paint();
    state.gen = null;
    if (message.notebook) {
      state.notebook = { ...state.notebook, ...message.notebook };
      text.value = message.notebook.text;
      summarize(message.notebook);
    }
    setBusy(false);
    const s = message.stats || {};
    const said = [s.completion_tokens ? `${s.completion_tokens} new tokens` : "", s.tokens_per_second ? `${s.tokens_per_second} tok/s` : "",
      message.finish_reason === "cancelled" ? "stopped" : message.finish_reason === "length" ? "max tokens reached" : ""];
    lastRun = said.filter(Boolean).join(" · ");
    countSoon(); // the count that follows keeps lastRun
    showInfo();
  } else if (message.type === "error") {
    fail(message.message);
  }
}

/** Append what arrived since the last frame, keeping the view at the end if it was there. */
function paint() {
  frame = 0;
  const gen = state.gen;
  if (!gen || !gen.pending) return;
  const atEnd = text.scrollHeight - text.scrollTop - text.clientHeight < 40;
  text.setRangeText(gen.pending, text.value.length, text.value.length, "end");
  gen.pending = "";
  if (atEnd) text.scrollTop = text.scrollHeight;
}

async function fail(message) {
  state.gen = null;
  setBusy(false);
  toast(message, "error");
  if (state.notebook) show(await api(`/ui/api/notebooks/${state.notebook.id}`).catch(() => state.notebook));
}

function setBusy(busy) {
  text.readOnly = busy;
  text.classList.toggle("generating", busy);
  generateButton.classList.toggle("stop", busy);
  generateButton.replaceChildren(icon(busy ? "stop" : "continue"), el("span", { text: busy ? "Stop" : "Generate" }));
  generateButton.title = busy ? "Stop (Esc)" : "Generate (Ctrl+Enter)";
  updateButtons();
}

function updateButtons() {
  const busy = Boolean(state.gen);
  $("undo").disabled = busy || !state.notebook?.can_undo;
  $("regenerate").disabled = busy || !state.notebook?.can_undo;
  $("new-notebook").disabled = busy;
}

async function undo(thenGenerate = false) {
  if (state.gen || !state.notebook) return;
  await flush();
  try {
    const notebook = await api(`/ui/api/notebooks/${state.notebook.id}/undo`, { method: "POST" });
    show(notebook);
    summarize(notebook);
    if (thenGenerate) generate();
  } catch (error) {
    toast(error.message, "error");
  }
}

generateButton.addEventListener("click", () => (state.gen ? stop() : generate()));
$("undo").addEventListener("click", () => undo(false));
$("regenerate").addEventListener("click", () => undo(true));
$("new-notebook").addEventListener("click", create);
document.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && !event.isComposing) {
    event.preventDefault();
    if (!state.gen) generate();
  } else if (event.key === "Escape") {
    if (state.gen && !document.querySelector("dialog[open]")) stop();
    closeSidebar();
  }
});

// --- The drawer on narrow screens ---------------------------------------------------------------

const layout = $("chat-layout");

function closeSidebar() {
  layout.classList.remove("sidebar-open");
  $("scrim").hidden = true;
  $("sidebar-toggle")?.setAttribute("aria-expanded", "false");
}

$("sidebar-toggle")?.addEventListener("click", () => {
  const isOpen = !layout.classList.contains("sidebar-open");
  layout.classList.toggle("sidebar-open", isOpen);
  $("scrim").hidden = !isOpen;
  $("sidebar-toggle").setAttribute("aria-expanded", String(isOpen));
});
$("scrim").addEventListener("click", () => {
  closeSidebar();
  if (!window.matchMedia("(min-width: 1200px)").matches) setParamsOpen(false);
});

// --- Start ------------------------------------------------------------------------------------

async function start() {
  initParams(state, remember);
  renderList();
  const asked = new URLSearchParams(location.search).get("notebook");
  const ids = new Set(state.notebooks.map((n) => n.id));
  const id = [asked, saved.notebook, state.notebooks[0]?.id].find((x) => x && ids.has(x));
  if (id) await open(id);
  else await create();
}

start();
