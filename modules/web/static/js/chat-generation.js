// Writing replies over the websocket: send, regenerate (any reply: a new version), continue,
// impersonate, and edit-and-send; the streamed text, Stop, and what the server saved.

import { $, el, icon, onStatus, toast } from "./common.js";
import { Socket } from "./chat-socket.js";
import {
  actions, characterKey, chatPlace, promptChoices, state,
} from "./chat-state.js";
import {
  announceMessage, appendView, dropViewsFrom, fillContent, fillReasoning, follow, lastView, refreshActions,
  replacePathFrom, stickToBottom, views,
} from "./chat-view.js";
import { autosize, clearFiles, takeFiles } from "./composer.js";
import { chatTools, fillSteps } from "./chat-tools.js";
import { MarkdownStream, renderMarkdown } from "./markdown.js";

const input = $("input");
const sendButton = $("send");
let status = null;
onStatus((s) => (status = s));

const socket = new Socket(onServerMessage, () => {
  if (state.gen) failGeneration("The connection to the server was lost; the reply is saved as far as it got.");
});

function newGenerationId() {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  return "g" + [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function indexOfId(id) {
  return state.chat.messages.findIndex((m) => m.id === id);
}

/** An attached file as the socket takes it: a file's text, or an image's name among the chat's files. */
function attachmentOut({ name, kind, text, file }) {
  return kind === "image" ? { name, kind, file } : { name, kind, text };
}

/** Start a generation. `options.message`: the message it is about (send: edit that user
 * message; regenerate: that reply); `options.text`: the edited text. */
export function generate(action, options = {}) {
  if (state.gen || !state.chat || state.chat.read_only) return;
  const messages = state.chat.messages;
  const editing = action === "send" && options.message != null;
  const typed = editing ? options.text : input.value.trim();
  const files = action === "send" && !editing ? takeFiles() : [];
  if (action === "send" && !editing && !typed && !files.length && messages.at(-1)?.role !== "user") {
    input.focus();
    return;
  }
  const gen = {
    id: newGenerationId(), action, text: "", reasoning: "", started: false, typed, files, view: null, message: options.message,
    rounds: [], // the tool steps of the reply being written
  };
  if (action === "send") {
    if (editing) {
      const at = indexOfId(options.message);
      if (at < 0) return;
      const old = messages[at];
      messages.splice(at);
      dropViewsFrom(at);
      const edited = { role: "user", content: typed, attachments: old.attachments };
      views.set(at, appendView(edited));
      messages.push(edited);
    } else {
      if (typed || files.length) {
        const message = { role: "user", content: typed, attachments: files };
        views.set(messages.length, appendView(message));
        messages.push(message);
      }
      input.value = "";
      autosize();
      clearFiles();
    }
    gen.view = appendView({ role: "assistant", content: "" });
  } else if (action === "regenerate") {
    const at = options.message != null ? indexOfId(options.message)
      : messages.map((m) => m.role).lastIndexOf("user") + 1;
    if (at <= 0) return;
    messages.splice(at);
    dropViewsFrom(at);
    gen.view = appendView({ role: "assistant", content: "" });
  } else if (action === "continue") {
    gen.view = lastView();
    gen.text = gen.view.message.content;
  } else if (action === "impersonate") {
    gen.text = input.value.trim();
  }
  if (gen.view) {
    gen.view.article.classList.add("streaming");
    gen.view.article.setAttribute("aria-busy", "true");
    if (!gen.text) gen.view.content.replaceChildren(typingDots());
  }
  state.gen = gen;
  setBusy(true);
  stickToBottom();
  // Extensions' scripts may add per-request state for their hooks (docs/extensions.md).
  const extensions = {};
  const chatRef = { ...chatPlace(), id: state.chat.id };
  const tools = action === "send" || action === "regenerate" ? chatTools() : null;
  document.dispatchEvent(new CustomEvent("hearth:generate", {
    detail: { action, chat: { mode: chatRef.mode, character: characterKey(), id: chatRef.id }, extensions },
  }));
  try {
    socket.send({
      type: "generate", id: gen.id, action,
      chat: chatRef,
      ...(Object.keys(extensions).length ? { extensions } : {}),
      ...(options.message != null ? { message: options.message } : {}),
      ...(files.length ? { attachments: files.map(attachmentOut) } : {}),
      ...(tools ? { tools } : {}),
      text: action === "send" || action === "impersonate" ? typed : "",
      ...promptChoices(status),
    });
  } catch (error) {
    failGeneration(error.message);
  }
}

function typingDots() {
  return el("span", { class: "typing", "aria-label": "Writing" }, el("i"), el("i"), el("i"));
}

export function stopGeneration() {
  const gen = state.gen;
  if (!gen || gen.stopping) return;
  gen.stopping = true;
  sendButton.setAttribute("aria-label", "Stopping");
  try {
    socket.send({ type: "stop", id: gen.id });
  } catch {
    /* the socket is gone: the server stops it when it notices */
  }
}

function onServerMessage(message) {
  const gen = state.gen;
  if (message.type === "pong") return;
  if (!gen || message.id !== gen.id) {
    if (message.type === "error" && !message.id) toast(message.message, "error");
    return;
  }
  if (message.type === "status") {
    if (gen.view) gen.view.stats.textContent = message.message;
  } else if (message.type === "start") {
    gen.started = true;
    if (gen.view) gen.view.stats.textContent = "";
    for (const notice of message.notices || []) toast(notice, "info");
  } else if (message.type === "delta") {
    gen.text += message.text;
    scheduleRender();
  } else if (message.type === "reasoning") {
    gen.reasoning += message.text;
    scheduleRender();
  } else if (message.type === "tool_round") {
    // the text so far and the calls it ends with become a round; the reply's text starts again
    gen.rounds.push({ text: message.text, calls: message.calls.map((call) => ({ ...call, status: "waiting" })) });
    gen.text = "";
    gen.stream = null;
    gen.view.content.replaceChildren(typingDots());
    paintSteps(gen);
  } else if (message.type === "tool_ask" || message.type === "tool_result") {
    for (const round of gen.rounds) {
      const at = round.calls.findIndex((call) => call.id === (message.call.id ?? message.call));
      if (at < 0) continue;
      round.calls[at] = message.type === "tool_ask" ? { ...round.calls[at], status: "asking" } : message.call;
    }
    // nothing is being written while a call waits for the user
    const asking = gen.rounds.some((round) => round.calls.some((call) => call.status === "asking"));
    if (!gen.text) gen.view.content.replaceChildren(...(asking ? [] : [typingDots()]));
    paintSteps(gen);
  } else if (message.type === "done") {
    finishGeneration(message);
  } else if (message.type === "error") {
    failGeneration(message.message);
  }
}

function paintSteps(gen) {
  fillSteps(gen.view, gen.rounds, answerCall, renderMarkdown);
  follow();
}

/** Approve or Reject a call the reply waits for. */
function answerCall(call, approve) {
  const gen = state.gen;
  if (!gen) return;
  call.status = approve ? "running" : "rejected";
  paintSteps(gen);
  try {
    socket.send({ type: "approval", id: gen.id, call: call.id, approve });
  } catch (error) {
    toast(error.message, "error");
  }
}

// Deltas can arrive thousands of times a second; the page repaints at most once a frame, and
// less often when rendering a long reply gets expensive.
let renderQueued = false;
let renderCost = 0;
let lastRender = 0;

function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(renderStream);
}

function renderStream(now) {
  renderQueued = false;
  const gen = state.gen;
  if (!gen) return;
  if (now - lastRender < renderCost * 2) {
    scheduleRender();
    return;
  }
  const started = performance.now();
  paint(gen);
  renderCost = performance.now() - started;
  lastRender = now;
}

function paint(gen) {
  if (gen.action === "impersonate") {
    input.value = gen.text;
    autosize();
    return;
  }
  if (gen.text) {
    gen.stream ??= new MarkdownStream(gen.view.content); // finished blocks are kept, not redone
    gen.stream.update(gen.text);
  }
  fillReasoning(gen.view, gen.reasoning);
  follow();
}

function finishGeneration(message) {
  const gen = state.gen;
  gen.text = message.text;
  gen.reasoning = message.reasoning || gen.reasoning;
  state.gen = null;
  let shown = null;
  if (gen.action === "impersonate") {
    input.value = message.text;
    autosize();
    input.focus();
  } else if (gen.view && message.saved && message.messages && message.at != null) {
    const last = message.at + message.messages.length - 1; // the reply: the view it streamed into
    replacePathFrom(message.at, message.messages, new Map([[last, gen.view]]));
    shown = views.get(state.chat.messages.length - 1) || null;
    if (shown) {
      fillReasoning(shown, gen.reasoning);
      shown.stats.textContent = statsText(message);
    }
  } else if (gen.view) {
    gen.view.message.content = message.text;
    fillContent(gen.view, message.text);
    fillReasoning(gen.view, gen.reasoning);
    gen.view.article.classList.remove("streaming");
    gen.view.article.removeAttribute("aria-busy");
    gen.view.stats.textContent = statsText(message);
    shown = gen.view;
  }
  setBusy(false);
  if (shown && gen.action !== "impersonate" && !message.messages) announceMessage(shown);
  document.dispatchEvent(new CustomEvent("hearth:reply", {
    detail: { action: gen.action, message, element: gen.action === "impersonate" ? null : shown?.article || null },
  }));
  if (message.chat) actions.updateSummary(message.chat);
  if (!message.saved && gen.action !== "impersonate") actions.reloadChat();
  actions.refreshContext(message.stats);
  follow();
}

function statsText(message) {
  const parts = [];
  const s = message.stats || {};
  if (s.completion_tokens) parts.push(`${s.completion_tokens} tokens`);
  if (s.tokens_per_second) parts.push(`${s.tokens_per_second} tok/s`);
  if (message.finish_reason === "cancelled") parts.push("stopped");
  if (message.finish_reason === "length") parts.push("max tokens reached");
  if (message.truncated) parts.push("older messages left out");
  if (message.notices?.length) parts.push("files cut to fit");
  return parts.join(" · ");
}

function failGeneration(text) {
  const gen = state.gen;
  if (!gen) return;
  state.gen = null;
  setBusy(false);
  toast(text, "error");
  if (gen.action === "send" && !gen.started && gen.message == null && !input.value) {
    input.value = gen.typed; // nothing was saved: give the message back
    autosize();
  }
  actions.reloadChat();
}

export function setBusy(busy) {
  sendButton.classList.toggle("stop", busy);
  sendButton.replaceChildren(icon(busy ? "stop" : "send"));
  sendButton.setAttribute("aria-label", busy ? "Stop" : "Send");
  sendButton.title = busy ? "Stop (Esc)" : "Send (Enter)";
  for (const id of ["new-chat", "new-incognito", "character-button"]) $(id).disabled = busy;
  $("mode-switch").querySelectorAll("button").forEach((b) => (b.disabled = busy));
  updateToolbar(true);
}

/** The chips over the input box, and (when the page became busy or idle) every message's
 * actions. */
export function updateToolbar(messageActions = false) {
  const messages = state.chat?.messages || [];
  const hasUser = messages.some((m) => m.role === "user");
  const busy = Boolean(state.gen);
  const readOnly = Boolean(state.chat?.read_only);
  $("regenerate").disabled = busy || readOnly || !hasUser;
  $("continue").disabled = busy || readOnly || messages.at(-1)?.role !== "assistant";
  $("impersonate").disabled = busy || !state.chat;
  $("remove-last").disabled = busy || readOnly || !hasUser;
  if (state.chat && messageActions) refreshActions();
}
