// The sidebar: the chats of the mode and character shown, rename and delete, and searching
// every saved chat by its title and its messages.

import { $, api, confirmAction, el, iconButton, timeAgo, toast } from "./common.js";
import { actions, characterKey, placeQuery, state } from "./chat-state.js";

const list = $("chat-list");
const search = $("chat-search");

export async function loadChats() {
  const data = await api(`/ui/api/chats?${placeQuery().replace(/&?incognito=1/, "")}`);
  state.chats = data.chats;
  renderChatList();
}

export function renderChatList() {
  if (search.value.trim()) return; // the search results stay until the search is cleared
  $("chats-title").textContent = "Chats";
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
    onclick: () => actions.switchChat(summary.id),
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
    const query = new URLSearchParams({ mode: state.mode });
    if (characterKey()) query.set("character", characterKey());
    await api(`/ui/api/chats/${summary.id}?${query}`, { method: "DELETE" });
  } catch (error) {
    toast(error.message, "error");
    return;
  }
  state.chats = state.chats.filter((c) => c.id !== summary.id);
  if (state.chat?.id === summary.id) {
    if (state.chats.length) await actions.openChat(state.chats[0].id);
    else await actions.newChat();
  } else {
    renderChatList();
  }
}

/** A chat's new title and time: moved to the top of the list (incognito chats are not listed). */
export function updateSummary(summary) {
  if (state.chat?.id === summary.id) {
    state.chat.title = summary.title;
    $("chat-title").textContent = summary.title;
  }
  if (summary.incognito) return;
  if (summary.mode === "instruct" ? state.mode !== "instruct" : summary.character !== characterKey()) return;
  state.chats = [summary, ...state.chats.filter((c) => c.id !== summary.id)];
  state.chats.sort((a, b) => b.updated - a.updated);
  renderChatList();
}

// --- Search -----------------------------------------------------------------------------------

let searchTimer = 0;
let searchSeq = 0;

function characterName(key) {
  return state.characters.find((c) => c.key === key)?.name || key;
}

/** Text with every word of the query marked (as text nodes and <mark>s, never HTML). */
function marked(text, words) {
  if (!words.length) return [text];
  const lower = text.toLocaleLowerCase();
  const parts = [];
  let at = 0;
  while (at < text.length) {
    let best = -1;
    let length = 0;
    for (const word of words) {
      const found = lower.indexOf(word, at);
      if (found >= 0 && (best < 0 || found < best)) [best, length] = [found, word.length];
    }
    if (best < 0) break;
    if (best > at) parts.push(text.slice(at, best));
    parts.push(el("mark", { text: text.slice(best, best + length) }));
    at = best + length;
  }
  if (at < text.length) parts.push(text.slice(at));
  return parts;
}

function resultItem(result, words) {
  const where = result.mode === "instruct" ? "Instruct" : `${characterName(result.character)} · ${result.mode}`;
  return el("li", { class: "chat-item search-hit", dataset: { id: result.id } },
    el("button", { type: "button", class: "chat-link", onclick: () => openResult(result) },
      el("span", { class: "chat-name" }, ...marked(result.title, words)),
      el("span", { class: "hit-place", text: `${where} · ${timeAgo(result.updated)}` }),
      result.where === "message" ? el("span", { class: "hit-snippet" }, ...marked(result.snippet, words)) : null));
}

async function runSearch() {
  const query = search.value.trim();
  if (!query) {
    renderChatList();
    return;
  }
  const seq = ++searchSeq;
  try {
    const data = await api(`/ui/api/search?q=${encodeURIComponent(query)}`);
    if (seq !== searchSeq || search.value.trim() !== query) return;
    const words = query.toLocaleLowerCase().split(/\s+/).filter(Boolean);
    $("chats-title").textContent = data.results.length
      ? `${data.results.length} found` : "Nothing found";
    list.replaceChildren(...data.results.map((r) => resultItem(r, words)));
  } catch (error) {
    toast(error.message, "error");
  }
}

async function openResult(result) {
  const mode = result.mode;
  const place = mode === "instruct" ? "instruct" : `chat|${result.character}`;
  state.lastChats[place] = result.id;
  if (mode !== "instruct") state.character = result.character;
  state.mode = mode;
  await actions.enterPlace(result.id);
  actions.closeSidebar();
}

export function clearSearch() {
  if (!search.value) return;
  search.value = "";
  renderChatList();
}

search.addEventListener("input", () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(runSearch, 200);
});
search.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && search.value) {
    event.stopPropagation();
    clearSearch();
  }
});
