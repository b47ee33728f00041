// The chat page: opening chats, mode and character, the chat bar's menu (export, import, the
// prompt), incognito chats, the drawers on narrow screens, and the start. The messages are
// chat-view.js's, replies chat-generation.js's, the sidebar chat-list.js's, the input box
// composer.js's, the parameters panel params.js's.

import { $, api, avatar, boot, el, onStatus, toast } from "./common.js";
import {
  MODES, actions, botName, characterKey, chatPlace, currentCharacter, placeKey, placeQuery,
  promptChoices, remember, state, templateSwitches,
} from "./chat-state.js";
import { clearSearch, loadChats, renderChatList, updateSummary } from "./chat-list.js";
import { generate, setBusy, stopGeneration, updateToolbar } from "./chat-generation.js";
import { renderMessages } from "./chat-view.js";
import { autosize, refreshContext, resetComposer } from "./composer.js";
import { initParams, setParamsOpen } from "./params.js";
import { initTools } from "./chat-tools.js";

const input = $("input");
const layout = $("chat-layout");
let status = null;

// --- Opening chats ----------------------------------------------------------------------------

function showChat(chat) {
  state.chat = chat;
  if (!chat.incognito) {
    state.lastChats[placeKey()] = chat.id;
    if (!state.chats.some((c) => c.id === chat.id)) {
      const { messages: _, ...summary } = chat;
      state.chats.unshift(summary); // a new, branched or imported chat
    }
  }
  remember();
  $("chat-title").textContent = chat.title;
  $("incognito-badge").hidden = !chat.incognito;
  $("incognito-bar").hidden = !chat.incognito;
  const url = new URL(location.href);
  if (chat.incognito) url.searchParams.delete("chat");
  else url.searchParams.set("chat", chat.id);
  url.searchParams.delete("character");
  history.replaceState(null, "", url);
  renderChatList();
  renderMessages();
  updateToolbar();
  resetComposer();
  refreshContext();
  if (chat.read_only) toast("This chat was saved by a newer Hearth: it is shown here but cannot be changed.", "info");
  document.dispatchEvent(new CustomEvent("hearth:chat", { detail: { mode: state.mode, character: characterKey(), id: chat.id } }));
}

async function openChat(id, known = null) {
  await leaveIncognito(id);
  const chat = known || await api(`/ui/api/chats/${id}?${placeQuery()}`);
  showChat(chat);
}

async function reloadChat() {
  if (!state.chat) return;
  try {
    const chat = await api(`/ui/api/chats/${state.chat.id}?${placeQuery()}`);
    if (state.gen) return;
    state.chat = chat;
    renderMessages();
    updateToolbar();
  } catch (error) {
    toast(error.message, "error"); // an incognito chat the server forgot: its text stays shown
  }
}

/** Leaving an incognito chat forgets it on the server too. */
async function leaveIncognito(nextId = null) {
  const chat = state.chat;
  if (!chat?.incognito || chat.id === nextId) return;
  try {
    await api(`/ui/api/chats/${chat.id}?${placeQuery()}`, { method: "DELETE" });
  } catch {
    /* already gone */
  }
}

async function newChat(asIncognito = false) {
  try {
    await leaveIncognito();
    const chat = await api("/ui/api/chats", {
      method: "POST",
      json: { mode: state.mode, character: characterKey(), user_name: state.userName || "", incognito: asIncognito },
    });
    showChat(chat);
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
    const data = await api(`/ui/api/chats/${state.chat.id}/remove-last`, { method: "POST", json: chatPlace() });
    state.chat = data.chat;
    renderMessages();
    updateToolbar();
    updateSummary(data.chat);
    refreshContext();
    if (!input.value.trim()) {
      input.value = data.text;
      autosize();
    }
    input.focus();
  } catch (error) {
    toast(error.message, "error");
  }
}

// --- The chat bar's menu: export, import, the prompt -------------------------------------------

const menu = $("chat-menu");
const menuButton = $("chat-menu-button");

function setMenuOpen(open) {
  menu.hidden = !open;
  menuButton.setAttribute("aria-expanded", String(open));
  if (open) menu.querySelector("button")?.focus();
}

menuButton.addEventListener("click", () => setMenuOpen(menu.hidden));
document.addEventListener("click", (event) => {
  if (!menu.hidden && !event.target.closest(".menu-wrap")) setMenuOpen(false);
});
menu.addEventListener("keydown", (event) => {
  const items = [...menu.querySelectorAll("button")];
  const step = { ArrowDown: 1, ArrowUp: -1 }[event.key];
  if (step) {
    event.preventDefault();
    items[(items.indexOf(document.activeElement) + step + items.length) % items.length].focus();
  } else if (event.key === "Escape") {
    event.stopPropagation();
    setMenuOpen(false);
    menuButton.focus();
  }
});
menu.addEventListener("click", (event) => {
  const item = event.target.closest("button[data-action]");
  if (!item) return;
  setMenuOpen(false);
  const run = { "export-markdown": () => exportChat("markdown"), "export-json": () => exportChat("json"),
    import: () => $("import-input").click(), prompt: showPrompt }[item.dataset.action];
  run?.();
});

function exportChat(format) {
  if (!state.chat) return;
  const query = new URLSearchParams(placeQuery());
  query.set("format", format);
  if (format === "markdown" && state.userName) query.set("user_name", state.userName);
  const link = el("a", { href: `/ui/api/chats/${state.chat.id}/export?${query}`, download: "" });
  document.body.append(link);
  link.click();
  link.remove();
}

$("import-input").addEventListener("change", async (event) => {
  const file = event.target.files[0];
  event.target.value = "";
  if (!file) return;
  const form = new FormData();
  form.append("file", file, file.name);
  form.append("mode", state.mode);
  if (characterKey()) form.append("character", characterKey());
  try {
    const chat = await api("/ui/api/chats/import", { method: "POST", form });
    await leaveIncognito();
    showChat(chat);
    toast(`Imported “${chat.title}”.`, "success");
  } catch (error) {
    toast(error.message, "error");
  }
});

async function showPrompt() {
  if (!state.chat) return;
  try {
    const data = await api(`/ui/api/chats/${state.chat.id}/prompt`, {
      method: "POST",
      json: {
        ...chatPlace(), ...promptChoices(status), text: input.value.trim(),
        attachments: state.files.filter((f) => !f.pending).map(({ name, kind, text }) => ({ name, kind, text })),
      },
    });
    if (!data.model) {
      toast("No model is loaded yet: the prompt is built when one is (send a message, or load one on the Model page).", "info");
      return;
    }
    const facts = [`${data.tokens.toLocaleString()} of ${data.n_ctx.toLocaleString()} tokens`,
      `${data.reply_room.toLocaleString()} kept for the reply`, data.model];
    if (data.template) facts.push(`template: ${data.template === "model" ? "the model's own" : data.template}`);
    if (data.dropped_messages) facts.push(`${data.dropped_messages} older messages left out`);
    $("prompt-facts").textContent = facts.join(" · ");
    $("prompt-text").textContent = data.prompt;
    $("prompt-dialog").showModal();
  } catch (error) {
    toast(error.message, "error");
  }
}

// --- Mode and character -----------------------------------------------------------------------

function renderPlace() {
  for (const button of $("mode-switch").querySelectorAll("button")) {
    button.setAttribute("aria-checked", String(button.dataset.mode === state.mode));
    button.tabIndex = button.dataset.mode === state.mode ? 0 : -1;
  }
  const character = currentCharacter();
  $("character-button").classList.toggle("muted-out", state.mode === "instruct");
  $("character-name").textContent = state.mode === "instruct" ? "None (instruct)" : botName();
  $("character-avatar").replaceChildren(
    state.mode === "instruct"
      ? el("img", { class: "avatar", src: document.querySelector(".brand img").src, alt: "" })
      : avatar(botName(), character?.picture, "avatar"));
  input.placeholder = state.mode === "instruct" ? "Ask anything" : `Message ${botName()}`;
  renderSwitches();
}

async function setMode(mode) {
  if (mode === state.mode || state.gen) return;
  await leaveIncognito();
  state.mode = mode;
  remember();
  await enterPlace();
}

async function setCharacter(key) {
  if (state.gen) return;
  await leaveIncognito();
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

// --- The reasoning switches, where the template reads them ---------------------------------

function renderSwitches() {
  const switches = templateSwitches(status);
  $("thinking-field").hidden = !switches.includes("enable_thinking");
  $("effort-field").hidden = !switches.includes("reasoning_effort");
}

$("thinking").value = state.thinking;
$("effort").value = state.effort;
$("thinking").addEventListener("change", (event) => {
  state.thinking = event.target.value;
  remember();
  refreshContext();
});
$("effort").addEventListener("change", (event) => {
  state.effort = event.target.value;
  remember();
  refreshContext();
});
$("template").addEventListener("change", () => setTimeout(() => { // after params.js took the choice
  renderSwitches();
  refreshContext();
}));
onStatus((s) => {
  const loadedNow = !status?.model && s?.model;
  status = s;
  renderSwitches();
  if (loadedNow) refreshContext();
});

// --- Composer buttons and keys ----------------------------------------------------------------

$("composer").addEventListener("submit", (event) => {
  event.preventDefault();
  if (state.gen) stopGeneration();
  else generate("send");
});
$("regenerate").addEventListener("click", () => generate("regenerate"));
$("continue").addEventListener("click", () => generate("continue"));
$("impersonate").addEventListener("click", () => generate("impersonate"));
$("remove-last").addEventListener("click", removeLast);
$("new-chat").addEventListener("click", () => newChat(false));
$("new-incognito").addEventListener("click", () => newChat(true));
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && state.gen && !document.querySelector("dialog[open]")) stopGeneration();
  if (event.key === "Escape") {
    closeSidebar();
    setMenuOpen(false);
    if (!window.matchMedia("(min-width: 1200px)").matches && state.paramsOpen) setParamsOpen(false);
  }
});
window.addEventListener("pagehide", () => {
  // an incognito chat ends with the page (keepalive: the request outlives the page)
  if (state.chat?.incognito) {
    fetch(`/ui/api/chats/${state.chat.id}?${placeQuery()}`, { method: "DELETE", keepalive: true, credentials: "same-origin" });
  }
});

// --- The drawer on narrow screens ---------------------------------------------------------------

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

// --- Start ------------------------------------------------------------------------------------

Object.assign(actions, {
  openChat, reloadChat, enterPlace, generate, updateSummary, switchChat, newChat, closeSidebar,
});

function start() {
  const params = new URLSearchParams(location.search);
  const asked = params.get("character");
  if (asked && state.characters.some((c) => c.key === asked)) {
    state.character = asked;
    if (state.mode === "instruct") state.mode = "chat";
  }
  if (!state.characters.some((c) => c.key === state.character)) {
    state.character = state.characters.some((c) => c.key === boot.choices?.character)
      ? boot.choices.character : state.characters[0]?.key || "Assistant";
  }
  remember(); // a newcomer's first mode is now their choice, until they make another
  initParams(state, remember);
  initTools();
  setBusy(false);
  clearSearch();
  enterPlace(params.get("chat"));
}

start();
