// The chat page: the sidebar of chats, the messages, the composer, the parameters panel, and
// the websocket that streams replies. Untrusted text (messages, names, titles) only ever
// reaches the page as text nodes or through the sanitizing Markdown renderer.

import {
  $, api, avatar, boot, confirmAction, copyText, el, icon, iconButton, store, timeAgo, toast,
} from "./common.js";
import { Socket } from "./chat-socket.js";
import { renderMarkdown } from "./markdown.js";
import { FALLBACK_SAMPLING, initParams, presetByName, setParamsOpen } from "./params.js";

const STORE_KEY = "hearth.ui";
const MODES = ["chat", "chat-instruct", "instruct"];
// --- State ------------------------------------------------------------------------------------

const saved = store.load(STORE_KEY);
const choices = boot.choices;
const state = {
  characters: boot.characters || [],
  presets: boot.presets || [],
  templates: boot.templates || [],
  mode: MODES.includes(saved.mode) ? saved.mode : choices.mode,
  character: saved.character ?? choices.character,
  preset: saved.preset ?? choices.preset,
  sampling: null,
  template: saved.template ?? choices.instruction_template,
  userName: saved.userName ?? choices.user_name,
  userBio: saved.userBio ?? choices.user_bio,
  lastChats: saved.lastChats ?? {},
  paramsOpen: saved.paramsOpen ?? window.matchMedia("(min-width: 1200px)").matches,
  chats: [],
  chat: null, // {id, mode, character, title, messages: [{role, content}]}
  gen: null, // the reply being written
};
state.sampling = { ...FALLBACK_SAMPLING, ...(presetByName(state.presets, state.preset)?.sampling || {}), ...(saved.sampling || {}) };

function remember() {
  store.save(STORE_KEY, {
    mode: state.mode, character: state.character, preset: state.preset, sampling: state.sampling,
    template: state.template, userName: state.userName, userBio: state.userBio,
    lastChats: state.lastChats, paramsOpen: state.paramsOpen,
  });
}

function currentCharacter() {
  return state.characters.find((c) => c.key === state.character) || null;
}

function characterKey() {
  return state.mode === "instruct" ? null : state.character;
}

function placeKey() {
  return state.mode === "instruct" ? "instruct" : `chat|${state.character}`;
}

function userName() {
  return state.userName || currentCharacter()?.user_name || "You";
}

function botName() {
  if (state.mode === "instruct") return "Assistant";
  return currentCharacter()?.name || state.character;
}

// --- Elements ---------------------------------------------------------------------------------

const messagesBox = $("messages");
const input = $("input");
const sendButton = $("send");
const jumpButton = $("jump-latest");
const layout = $("chat-layout");

// --- Rendering messages ------------------------------------------------------------------------

function messageAvatar(role) {
  if (role === "user") return avatar(userName(), null, "avatar me");
  if (role === "assistant") {
    if (state.mode === "instruct") {
      return el("img", { class: "avatar", src: document.querySelector(".brand img").src, alt: "" });
    }
    const character = currentCharacter();
    return avatar(botName(), character?.picture, "avatar");
  }
  return el("span", { class: "avatar initials system", "aria-hidden": "true", text: role === "tool" ? "⚙" : "i" });
}

function authorName(role) {
  if (role === "user") return userName();
  if (role === "assistant") return botName();
  return role === "tool" ? "Tool" : "System";
}

function messageView(message) {
  const content = el("div", { class: message.role === "assistant" ? "content markdown" : "content plain" });
  const reasoning = el("details", { class: "reasoning", hidden: true },
    el("summary", { text: "Thinking" }), el("div", { class: "reasoning-body" }));
  const stats = el("span", { class: "stats" });
  const copy = iconButton("copy", "Copy message", async () => {
    const ok = await copyText(view.message.content);
    copy.replaceChildren(icon(ok ? "check" : "alert"));
    setTimeout(() => copy.replaceChildren(icon("copy")), 1500);
  }, "icon-btn small");
  const actions = el("div", { class: "message-actions" }, copy);
  const article = el("article", { class: `message ${message.role}`, "aria-label": authorName(message.role) },
    messageAvatar(message.role),
    el("div", { class: "message-body" },
      el("div", { class: "bubble" },
        el("div", { class: "meta" }, el("span", { class: "author", text: authorName(message.role) }), stats),
        reasoning, content),
      actions));
  const view = { article, content, reasoning, stats, actions, message };
  fillContent(view, message.content);
  return view;
}

function fillContent(view, text) {
  if (view.message.role === "assistant") view.content.replaceChildren(renderMarkdown(text));
  else view.content.textContent = text;
}

function fillReasoning(view, text) {
  view.reasoning.hidden = !text;
  if (text) view.reasoning.querySelector(".reasoning-body").textContent = text;
}

let views = [];

/** Tell extension scripts a message is shown whole, with its saved `extras`. */
function announceMessage(view) {
  document.dispatchEvent(new CustomEvent("hearth:message", { detail: { message: view.message, element: view.article } }));
}

function renderMessages() {
  views = (state.chat?.messages || []).map(messageView);
  const nodes = views.map((v) => v.article);
  if (!nodes.length) nodes.push(emptyState());
  messagesBox.replaceChildren(...nodes);
  views.forEach(announceMessage);
  updateLastActions();
  stick = true;
  follow();
}

function emptyState() {
  const character = state.mode === "instruct" ? null : currentCharacter();
  return el("div", { class: "empty-chat" },
    state.mode === "instruct"
      ? el("img", { class: "avatar xl", src: document.querySelector(".brand img").src, alt: "" })
      : avatar(botName(), character?.picture, "avatar xl"),
    el("h2", { text: state.mode === "instruct" ? "How can I help?" : botName() }),
    el("p", { class: "muted", text: "Write a message below to start." }));
}

function appendView(message) {
  messagesBox.querySelector(".empty-chat")?.remove();
  const view = messageView(message);
  views.push(view);
  messagesBox.append(view.article);
  return view;
}

/** Regenerate and continue buttons on the last reply (and nowhere else). */
function updateLastActions() {
  for (const view of views) view.actions.querySelectorAll(".last-only").forEach((b) => b.remove());
  const last = views.at(-1);
  if (last && last.message.role === "assistant" && !state.gen) {
    last.actions.append(
      iconButton("regenerate", "Regenerate", () => generate("regenerate"), "icon-btn small last-only"),
      iconButton("continue", "Continue", () => generate("continue"), "icon-btn small last-only"));
  }
  const messages = state.chat?.messages || [];
  const hasUser = messages.some((m) => m.role === "user");
  const busy = Boolean(state.gen);
  $("regenerate").disabled = busy || !hasUser;
  $("continue").disabled = busy || messages.at(-1)?.role !== "assistant";
  $("impersonate").disabled = busy || !state.chat;
  $("remove-last").disabled = busy || !hasUser;
}

// --- Following the stream ----------------------------------------------------------------------

let stick = true;

function distanceFromBottom() {
  return messagesBox.scrollHeight - messagesBox.scrollTop - messagesBox.clientHeight;
}

function follow() {
  if (stick) messagesBox.scrollTop = messagesBox.scrollHeight;
  jumpButton.hidden = stick || distanceFromBottom() < 48;
}

messagesBox.addEventListener("scroll", () => {
  stick = distanceFromBottom() < 48;
  jumpButton.hidden = stick;
});
messagesBox.addEventListener("wheel", (event) => {
  if (event.deltaY < 0) stick = false;
}, { passive: true });
jumpButton.addEventListener("click", () => {
  stick = true;
  follow();
});

// --- Generation over the websocket -------------------------------------------------------------

const socket = new Socket(onServerMessage, () => {
  if (state.gen) failGeneration("The connection to the server was lost; the reply is saved as far as it got.");
});

function newGenerationId() {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  return "g" + [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function generate(action) {
  if (state.gen || !state.chat) return;
  const messages = state.chat.messages;
  const typed = input.value.trim();
  if (action === "send" && !typed && messages.at(-1)?.role !== "user") {
    input.focus();
    return;
  }
  const gen = { id: newGenerationId(), action, text: "", reasoning: "", started: false, typed, view: null };
  if (action === "send") {
    if (typed) {
      const message = { role: "user", content: typed };
      messages.push(message);
      appendView(message);
    }
    input.value = "";
    autosize();
    gen.view = appendView({ role: "assistant", content: "" });
  } else if (action === "regenerate") {
    const lastUser = messages.map((m) => m.role).lastIndexOf("user");
    messages.splice(lastUser + 1);
    views.splice(lastUser + 1).forEach((v) => v.article.remove());
    gen.view = appendView({ role: "assistant", content: "" });
  } else if (action === "continue") {
    gen.view = views.at(-1);
    gen.text = gen.view.message.content;
  } else if (action === "impersonate") {
    gen.text = typed;
  }
  if (gen.view) {
    gen.view.article.classList.add("streaming");
    gen.view.article.setAttribute("aria-busy", "true");
    if (!gen.text) gen.view.content.replaceChildren(typingDots());
  }
  state.gen = gen;
  setBusy(true);
  stick = true;
  follow();
  // Extensions' scripts may add per-request state for their hooks (docs/extensions.md).
  const extensions = {};
  const chatRef = { mode: state.mode, character: characterKey(), id: state.chat.id };
  document.dispatchEvent(new CustomEvent("hearth:generate", { detail: { action, chat: chatRef, extensions } }));
  try {
    socket.send({
      type: "generate", id: gen.id, action,
      chat: chatRef,
      ...(Object.keys(extensions).length ? { extensions } : {}),
      text: action === "send" || action === "impersonate" ? typed : "",
      sampling: state.sampling,
      user_name: state.userName || "",
      user_bio: state.userBio || "",
      instruction_template: state.template || "",
    });
  } catch (error) {
    failGeneration(error.message);
  }
}

function typingDots() {
  return el("span", { class: "typing", "aria-label": "Writing" }, el("i"), el("i"), el("i"));
}

function stopGeneration() {
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
  } else if (message.type === "delta") {
    gen.text += message.text;
    scheduleRender();
  } else if (message.type === "reasoning") {
    gen.reasoning += message.text;
    scheduleRender();
  } else if (message.type === "done") {
    finishGeneration(message);
  } else if (message.type === "error") {
    failGeneration(message.message);
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
  if (gen.text) fillContent(gen.view, gen.text);
  fillReasoning(gen.view, gen.reasoning);
  follow();
}

function finishGeneration(message) {
  const gen = state.gen;
  gen.text = message.text;
  gen.reasoning = message.reasoning || gen.reasoning;
  state.gen = null;
  if (gen.action === "impersonate") {
    input.value = message.text;
    autosize();
    input.focus();
  } else if (gen.view) {
    gen.view.message.content = message.text;
    // A continued reply keeps the extras it was saved with; a new one gets this turn's.
    if (Object.keys(message.extras || {}).length) gen.view.message.extras = message.extras;
    if (gen.action === "send" || gen.action === "regenerate") state.chat.messages.push(gen.view.message);
    fillContent(gen.view, message.text);
    fillReasoning(gen.view, gen.reasoning);
    gen.view.article.classList.remove("streaming");
    gen.view.article.removeAttribute("aria-busy");
    gen.view.stats.textContent = statsText(message);
  }
  setBusy(false);
  if (gen.view && gen.action !== "impersonate") announceMessage(gen.view);
  document.dispatchEvent(new CustomEvent("hearth:reply", {
    detail: { action: gen.action, message, element: gen.action === "impersonate" ? null : gen.view?.article || null },
  }));
  if (message.chat) updateSummary(message.chat);
  if (!message.saved && gen.action !== "impersonate") reloadChat();
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
  return parts.join(" · ");
}

function failGeneration(text) {
  const gen = state.gen;
  if (!gen) return;
  state.gen = null;
  setBusy(false);
  toast(text, "error");
  if (gen.action === "send" && !gen.started && gen.typed && !input.value) {
    input.value = gen.typed; // nothing was saved: give the message back
    autosize();
  }
  reloadChat();
}

function setBusy(busy) {
  sendButton.classList.toggle("stop", busy);
  sendButton.replaceChildren(icon(busy ? "stop" : "send"));
  sendButton.setAttribute("aria-label", busy ? "Stop" : "Send");
  sendButton.title = busy ? "Stop (Esc)" : "Send (Enter)";
  for (const id of ["new-chat", "character-button"]) $(id).disabled = busy;
  $("mode-switch").querySelectorAll("button").forEach((b) => (b.disabled = busy));
  updateLastActions();
}

// --- Chats -------------------------------------------------------------------------------------

function placeQuery() {
  const params = new URLSearchParams({ mode: state.mode });
  if (characterKey()) params.set("character", characterKey());
  return params.toString();
}

async function loadChats() {
  const data = await api(`/ui/api/chats?${placeQuery()}`);
  state.chats = data.chats;
  renderChatList();
}

function renderChatList() {
  const list = $("chat-list");
  if (!state.chats.length) {
    list.replaceChildren(el("li", { class: "chat-empty muted", text: "No chats yet" }));
    return;
  }
  list.replaceChildren(...state.chats.map(chatItem));
}

function chatItem(summary) {
  const active = summary.id === state.chat?.id;
  const link = el("button", {
    type: "button", class: "chat-link", "aria-current": active ? "true" : null,
    onclick: () => switchChat(summary.id),
  }, el("span", { class: "chat-name", text: summary.title }), el("time", { class: "chat-time", text: timeAgo(summary.updated) }));
  const item = el("li", { class: `chat-item${active ? " active" : ""}`, dataset: { id: summary.id } }, link,
    el("div", { class: "chat-item-actions" },
      iconButton("edit", "Rename chat", () => startRename(item, summary), "icon-btn small"),
      iconButton("trash", "Delete chat", () => deleteChat(summary), "icon-btn small")));
  return item;
}

function startRename(item, summary) {
  const field = el("input", { class: "rename-input", value: summary.title, maxlength: "200", "aria-label": "Chat name" });
  let done = false;
  const finish = async (save) => {
    if (done) return;
    done = true;
    const title = field.value.trim();
    if (save && title && title !== summary.title) {
      try {
        updateSummary(await api(`/ui/api/chats/${summary.id}`, {
          method: "PATCH", json: { mode: state.mode, character: characterKey(), title },
        }));
      } catch (error) {
        toast(error.message, "error");
      }
    }
    renderChatList();
  };
  field.addEventListener("keydown", (event) => {
    if (event.key === "Enter") finish(true);
    if (event.key === "Escape") finish(false);
  });
  field.addEventListener("blur", () => finish(true));
  item.replaceChildren(field);
  field.focus();
  field.select();
}

async function deleteChat(summary) {
  if (!(await confirmAction(`“${summary.title}” will be deleted for good.`, { title: "Delete this chat?" }))) return;
  try {
    await api(`/ui/api/chats/${summary.id}?${placeQuery()}`, { method: "DELETE" });
  } catch (error) {
    toast(error.message, "error");
    return;
  }
  state.chats = state.chats.filter((c) => c.id !== summary.id);
  if (state.chat?.id === summary.id) {
    if (state.chats.length) await openChat(state.chats[0].id);
    else await newChat();
  } else {
    renderChatList();
  }
}

function updateSummary(summary) {
  if (summary.mode === "instruct" ? state.mode !== "instruct" : summary.character !== characterKey()) return;
  state.chats = [summary, ...state.chats.filter((c) => c.id !== summary.id)];
  state.chats.sort((a, b) => b.updated - a.updated);
  if (state.chat?.id === summary.id) {
    state.chat.title = summary.title;
    $("chat-title").textContent = summary.title;
  }
  renderChatList();
}

async function openChat(id) {
  const chat = await api(`/ui/api/chats/${id}?${placeQuery()}`);
  state.chat = chat;
  state.lastChats[placeKey()] = id;
  remember();
  $("chat-title").textContent = chat.title;
  const url = new URL(location.href);
  url.searchParams.set("chat", id);
  url.searchParams.delete("character");
  history.replaceState(null, "", url);
  renderChatList();
  renderMessages();
  document.dispatchEvent(new CustomEvent("hearth:chat", { detail: { mode: state.mode, character: characterKey(), id } }));
}

async function reloadChat() {
  if (!state.chat) return;
  try {
    const chat = await api(`/ui/api/chats/${state.chat.id}?${placeQuery()}`);
    if (state.gen) return;
    state.chat = chat;
    renderMessages();
  } catch (error) {
    toast(error.message, "error");
  }
}

async function newChat() {
  try {
    const chat = await api("/ui/api/chats", {
      method: "POST", json: { mode: state.mode, character: characterKey(), user_name: state.userName || "" },
    });
    state.chats.unshift(chat);
    await openChat(chat.id);
    closeSidebar();
    input.focus();
  } catch (error) {
    toast(error.message, "error");
  }
}

async function switchChat(id) {
  if (state.gen) stopGeneration();
  try {
    await openChat(id);
    closeSidebar();
  } catch (error) {
    toast(error.message, "error");
  }
}

/** Show the chats of the current mode and character; open the one asked for or the latest. */
async function enterPlace(preferred) {
  renderPlace();
  try {
    await loadChats();
    const ids = new Set(state.chats.map((c) => c.id));
    const id = [preferred, state.lastChats[placeKey()], state.chats[0]?.id].find((x) => x && ids.has(x));
    if (id) await openChat(id);
    else await newChat();
  } catch (error) {
    toast(error.message, "error");
  }
}

async function removeLast() {
  if (state.gen || !state.chat) return;
  try {
    const data = await api(`/ui/api/chats/${state.chat.id}/remove-last`, {
      method: "POST", json: { mode: state.mode, character: characterKey() },
    });
    state.chat = data.chat;
    renderMessages();
    updateSummary(data.chat);
    if (!input.value.trim()) {
      input.value = data.text;
      autosize();
    }
    input.focus();
  } catch (error) {
    toast(error.message, "error");
  }
}

// --- Mode and character ------------------------------------------------------------------------

function renderPlace() {
  for (const button of $("mode-switch").querySelectorAll("button")) {
    button.setAttribute("aria-checked", String(button.dataset.mode === state.mode));
    button.tabIndex = button.dataset.mode === state.mode ? 0 : -1;
  }
  const character = currentCharacter();
  const characterButton = $("character-button");
  characterButton.classList.toggle("muted-out", state.mode === "instruct");
  $("character-name").textContent = state.mode === "instruct" ? "None (instruct)" : botName();
  $("character-avatar").replaceChildren(
    state.mode === "instruct"
      ? el("img", { class: "avatar", src: document.querySelector(".brand img").src, alt: "" })
      : avatar(botName(), character?.picture, "avatar"));
  input.placeholder = state.mode === "instruct" ? "Ask anything" : `Message ${botName()}`;
}

async function setMode(mode) {
  if (mode === state.mode || state.gen) return;
  state.mode = mode;
  remember();
  await enterPlace();
}

async function setCharacter(key) {
  if (state.gen) return;
  state.character = key;
  if (state.mode === "instruct") state.mode = "chat";
  remember();
  await enterPlace();
}

function openPicker() {
  const grid = $("picker-grid");
  grid.replaceChildren(...state.characters.map((character) => el("button", {
    type: "button", class: "picker-item", "aria-pressed": String(character.key === state.character),
    onclick: () => {
      $("character-picker").close();
      setCharacter(character.key);
    },
  }, avatar(character.name, character.picture, "avatar lg"), el("span", { class: "picker-name", text: character.name }))));
  $("character-picker").showModal();
  grid.querySelector('[aria-pressed="true"]')?.focus();
}

$("mode-switch").addEventListener("click", (event) => {
  const button = event.target.closest("button[data-mode]");
  if (button) setMode(button.dataset.mode);
});
$("mode-switch").addEventListener("keydown", (event) => {
  const step = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1 }[event.key];
  if (!step) return;
  event.preventDefault();
  const next = MODES[(MODES.indexOf(state.mode) + step + MODES.length) % MODES.length];
  setMode(next).then(() => $("mode-switch").querySelector(`[data-mode="${next}"]`).focus());
});
$("character-button").addEventListener("click", openPicker);

// --- Composer and keyboard ---------------------------------------------------------------------

function autosize() {
  input.style.height = "auto";
  input.style.height = `${Math.min(input.scrollHeight, window.innerHeight * 0.4)}px`;
}

input.addEventListener("input", autosize);
input.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    if (!state.gen) generate("send");
  }
});
$("composer").addEventListener("submit", (event) => {
  event.preventDefault();
  if (state.gen) stopGeneration();
  else generate("send");
});
$("regenerate").addEventListener("click", () => generate("regenerate"));
$("continue").addEventListener("click", () => generate("continue"));
$("impersonate").addEventListener("click", () => generate("impersonate"));
$("remove-last").addEventListener("click", removeLast);
$("new-chat").addEventListener("click", newChat);
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && state.gen && !document.querySelector("dialog[open]")) stopGeneration();
  if (event.key === "Escape") {
    closeSidebar();
    if (!window.matchMedia("(min-width: 1200px)").matches && state.paramsOpen) setParamsOpen(false);
  }
});

// --- The drawer on narrow screens --------------------------------------------------------------

function closeSidebar() {
  layout.classList.remove("sidebar-open");
  $("scrim").hidden = true;
  $("sidebar-toggle")?.setAttribute("aria-expanded", "false");
}

$("sidebar-toggle")?.addEventListener("click", () => {
  const open = !layout.classList.contains("sidebar-open");
  layout.classList.toggle("sidebar-open", open);
  $("scrim").hidden = !open;
  $("sidebar-toggle").setAttribute("aria-expanded", String(open));
  if (open) $("new-chat").focus();
});
$("scrim").addEventListener("click", () => {
  closeSidebar();
  if (!window.matchMedia("(min-width: 1200px)").matches) setParamsOpen(false);
});

// --- Start -------------------------------------------------------------------------------------

function start() {
  const params = new URLSearchParams(location.search);
  const asked = params.get("character");
  if (asked && state.characters.some((c) => c.key === asked)) {
    state.character = asked;
    if (state.mode === "instruct") state.mode = "chat";
  }
  if (!state.characters.some((c) => c.key === state.character)) {
    state.character = state.characters.some((c) => c.key === choices.character)
      ? choices.character : state.characters[0]?.key || "Assistant";
  }
  initParams(state, remember);
  setBusy(false);
  enterPlace(params.get("chat"));
}

start();
