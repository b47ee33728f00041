// The messages of the chat shown: each message's view (author, model, time, files, text,
// its versions ‹ 2/3 ›, its actions), editing a message in place, and following the stream.
//
// Long chats stay quick: only the last FIRST_BATCH messages are built when a chat opens;
// older ones are built, a batch at a time, as the view scrolls up to them. Code is
// highlighted when the page is idle (markdown.js). Untrusted text (messages,
// names, file names) reaches the page as text nodes or through the sanitizing renderer.

import { $, api, avatar, copyText, el, icon, iconButton, toast } from "./common.js";
import { actions, botName, chatPlace, currentCharacter, placeQuery, state, userName } from "./chat-state.js";
import { fillSteps } from "./chat-tools.js";
import { highlightSoon, renderMarkdown } from "./markdown.js";

// Messages built when a chat opens, and then each time the view nears the oldest one built.
const FIRST_BATCH = 16;
const BATCH = 12;

const messagesBox = $("messages");
const jumpButton = $("jump-latest");

export const views = new Map(); // place on the path -> view
let firstBuilt = 0; // the first place on the path that has a view
const sentinel = el("div", { class: "older-sentinel", "aria-hidden": "true" });

// --- Names, pictures, times -------------------------------------------------------------------

function brandPicture() {
  return el("img", { class: "avatar", src: document.querySelector(".brand img").src, alt: "" });
}

function messageAvatar(role) {
  if (role === "user") return avatar(userName(), null, "avatar me");
  if (role === "assistant") {
    if (state.mode === "instruct") return brandPicture();
    return avatar(botName(), currentCharacter()?.picture, "avatar");
  }
  return el("span", { class: "avatar initials system", "aria-hidden": "true", text: role === "tool" ? "⚙" : "i" });
}

export function authorName(role) {
  if (role === "user") return userName();
  if (role === "assistant") return botName();
  return role === "tool" ? "Tool" : "System";
}

// Formatters made once: making one per message is most of the cost of a long chat's times.
const FORMATS = {
  time: new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" }),
  day: new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric" }),
  year: new Intl.DateTimeFormat(undefined, { year: "numeric", month: "short", day: "numeric" }),
  full: new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "medium" }),
};

/** "14:03" today, "Mar 3, 14:03" this year, else with the year. */
export function shortTime(seconds) {
  const date = new Date(seconds * 1000);
  const now = new Date();
  const time = FORMATS.time.format(date);
  if (date.toDateString() === now.toDateString()) return time;
  const day = (date.getFullYear() === now.getFullYear() ? FORMATS.day : FORMATS.year).format(date);
  return `${day}, ${time}`;
}

function timeNode(seconds) {
  if (!seconds) return null;
  const date = new Date(seconds * 1000);
  return el("time", { class: "msg-time", datetime: date.toISOString(), title: FORMATS.full.format(date), text: shortTime(seconds) });
}

// --- One message ------------------------------------------------------------------------------

export function fileChips(files, removable = null) {
  return files.map((file, i) => {
    const remove = removable ? iconButton("x", `Remove ${file.name}`, () => removable(i), "icon-btn tiny") : null;
    if (file.kind === "image") return imageChip(file, remove);
    return el("li", { class: `file-chip${file.notice ? " cut" : ""}`, title: file.notice || file.name },
      icon("file"), el("span", { class: "file-name", text: file.name }),
      el("span", { class: "file-size", text: fileSize(file) }), remove);
  });
}

/** Where the chat's image `file` is served (modules/web/images.py). */
export function imageUrl(file) {
  return `/ui/api/chats/${encodeURIComponent(state.chat.id)}/images/${encodeURIComponent(file)}?${placeQuery()}`;
}

function imageChip(file, remove) {
  const src = file.preview || (file.file && state.chat ? imageUrl(file.file) : "");
  const picture = el("img", { class: "image-thumb", src: src || undefined, alt: file.name, loading: "lazy", decoding: "async" });
  const shown = remove ? picture : el("a", { href: src, target: "_blank", rel: "noopener", title: `${file.name}: open` }, picture);
  return el("li", { class: `image-chip${file.pending ? " pending" : ""}`, title: file.name }, shown, remove);
}

function fileSize(file) {
  if (file.tokens != null) return `${file.tokens.toLocaleString()} tokens`;
  return `${(file.chars || 0).toLocaleString()} characters`;
}

/** The line over a message: who wrote it, with which model and when (replies), its stats. */
function metaOf(message, stats) {
  const meta = el("div", { class: "meta" }, el("span", { class: "author", text: authorName(message.role) }));
  if (message.role === "assistant" && message.model) meta.append(el("span", { class: "model-tag", text: message.model }));
  const when = message.role === "user" ? null : timeNode(message.time);
  if (when) meta.append(when);
  meta.append(stats);
  return meta;
}

export function messageView(message, index) {
  const role = message.role;
  const content = el("div", { class: role === "assistant" ? "content markdown" : "content plain" });
  const reasoning = el("details", { class: "reasoning", hidden: true },
    el("summary", { text: "Thinking" }), el("div", { class: "reasoning-body" }));
  const stats = el("span", { class: "stats" });
  const meta = metaOf(message, stats);
  const files = message.attachments?.length ? el("ul", { class: "attachments in-message" }, ...fileChips(message.attachments)) : null;
  const actionsRow = el("div", { class: "message-actions" });
  const article = el("article", {
    class: `message ${role}`, "aria-label": authorName(role), dataset: { index: String(index), id: String(message.id ?? "") },
  }, messageAvatar(role),
  el("div", { class: "message-body" }, el("div", { class: "bubble" }, meta, files, reasoning, content), actionsRow));
  const when = role === "user" ? timeNode(message.time) : null; // a reply's time is in its meta
  const view = { article, meta, content, reasoning, stats, actions: actionsRow, message, index, when };
  if (message.tool_rounds?.length) fillSteps(view, message.tool_rounds, null, renderMarkdown);
  fillContent(view, message.content);
  if (state.chat) fillActions(view);
  return view;
}

/** A view the page already shows (the reply that was streamed into it) as the saved message. */
function adoptView(view, message, index) {
  view.message = message;
  view.index = index;
  Object.assign(view.article.dataset, { index: String(index), id: String(message.id ?? "") });
  view.article.classList.remove("streaming");
  view.article.removeAttribute("aria-busy");
  const meta = metaOf(message, view.stats);
  view.meta.replaceWith(meta);
  view.meta = meta;
  if (message.tool_rounds?.length || view.steps) fillSteps(view, message.tool_rounds, null, renderMarkdown);
  fillContent(view, message.content);
  return view;
}

export function fillContent(view, text) {
  if (view.message.role === "assistant") {
    view.content.replaceChildren(renderMarkdown(text));
    highlightSoon(view.content);
  } else {
    view.content.textContent = text;
  }
}

export function fillReasoning(view, text) {
  view.reasoning.hidden = !text;
  if (text) view.reasoning.querySelector(".reasoning-body").textContent = text;
}

/** The actions under a message: versions, copy, edit, branch, and for replies regenerate
 * (and continue on the last one). */
export function fillActions(view) {
  const { message, index } = view;
  const busy = Boolean(state.gen);
  const last = index === state.chat.messages.length - 1;
  const row = [];
  view.article.classList.toggle("has-versions", message.versions > 1); // its ‹ › always shown
  if (message.versions > 1) row.push(versionSwitch(view));
  const copy = iconButton("copy", "Copy message", async () => {
    const ok = await copyText(view.message.content);
    copy.replaceChildren(icon(ok ? "check" : "alert"));
    setTimeout(() => copy.replaceChildren(icon("copy")), 1500);
  }, "icon-btn small");
  row.push(copy);
  const readOnly = state.chat.read_only;
  if (!readOnly && message.id && ["user", "assistant", "system"].includes(message.role)) {
    row.push(iconButton("edit", "Edit message", () => startEdit(view), "icon-btn small"));
  }
  if (!readOnly && message.id) {
    row.push(iconButton("branch", "Branch here: a new chat up to this message", () => branchHere(view), "icon-btn small"));
  }
  if (!readOnly && message.role === "assistant" && index > 0 && !busy) {
    row.push(iconButton("regenerate", last ? "Regenerate" : "Regenerate from here (a new version)",
      () => actions.generate("regenerate", last ? {} : { message: message.id }), "icon-btn small"));
    if (last) row.push(iconButton("continue", "Continue", () => actions.generate("continue"), "icon-btn small"));
  }
  if (message.role === "user" && view.when) row.push(view.when);
  view.actions.replaceChildren(...row);
}

function versionSwitch(view) {
  const { message } = view;
  const busy = Boolean(state.gen);
  const previous = iconButton("chevron-left", "Previous version", () => showVersion(view, message.version - 1), "icon-btn tiny");
  const next = iconButton("chevron-right", "Next version", () => showVersion(view, message.version + 1), "icon-btn tiny");
  previous.disabled = busy || message.version <= 1;
  next.disabled = busy || message.version >= message.versions;
  return el("span", { class: "versions", role: "group", "aria-label": "Versions" }, previous,
    el("span", { class: "version-count", text: `${message.version}/${message.versions}` }), next);
}

export async function showVersion(view, number) {
  if (state.gen || number < 1 || number > (view.message.versions || 1)) return;
  try {
    const data = await api(`/ui/api/chats/${state.chat.id}/messages/${view.message.id}/version`, {
      method: "POST", json: { ...chatPlace(), version: number },
    });
    replacePathFrom(data.at, data.messages);
    actions.refreshContext();
  } catch (error) {
    toast(error.message, "error");
  }
}

async function branchHere(view) {
  try {
    const chat = await api(`/ui/api/chats/${state.chat.id}/branch`, {
      method: "POST", json: { ...chatPlace(), message: view.message.id },
    });
    toast("Branched: a new chat with the messages up to here. The old chat is in the list too.", "success");
    await actions.openChat(chat.id, chat);
  } catch (error) {
    toast(error.message, "error");
  }
}

// --- Editing a message in place ---------------------------------------------------------------

export function startEdit(view) {
  if (state.gen || view.editing) return;
  view.editing = true;
  const { message } = view;
  const field = el("textarea", { class: "edit-input", "aria-label": "Edit the message", rows: "3" });
  field.value = message.content;
  const cancel = el("button", { type: "button", class: "btn", text: "Cancel" });
  const save = el("button", { type: "button", class: message.role === "user" ? "btn" : "btn btn-primary", text: "Save" });
  const buttons = [cancel, save];
  let send = null;
  if (message.role === "user") {
    send = el("button", { type: "button", class: "btn btn-primary", text: "Send", title: "Send as a new version of this message: the model answers it again; the old version keeps its replies" });
    buttons.push(send);
  }
  const form = el("div", { class: "edit-form" }, field, el("div", { class: "edit-actions" },
    el("span", { class: "muted small", text: message.role === "user"
      ? "Save keeps the replies; Send writes a new reply. The old text stays as a version."
      : "The old text stays as a version." }), ...buttons));
  view.content.hidden = true;
  view.actions.hidden = true;
  view.content.after(form);
  const fit = () => {
    field.style.height = "auto";
    field.style.height = `${Math.min(field.scrollHeight + 4, window.innerHeight * 0.5)}px`;
  };
  field.addEventListener("input", fit);
  const close = () => {
    form.remove();
    view.content.hidden = false;
    view.actions.hidden = false;
    view.editing = false;
  };
  cancel.addEventListener("click", close);
  save.addEventListener("click", async () => {
    const text = field.value;
    if (text === message.content) return close();
    try {
      const data = await api(`/ui/api/chats/${state.chat.id}/messages/${message.id}`, {
        method: "PUT", json: { ...chatPlace(), text },
      });
      close();
      replacePathFrom(data.at, data.messages);
      actions.refreshContext();
    } catch (error) {
      toast(error.message, "error");
    }
  });
  send?.addEventListener("click", () => {
    const text = field.value.trim();
    if (!text && !message.attachments?.length) return;
    close();
    actions.generate("send", { message: message.id, text });
  });
  field.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      event.preventDefault();
      event.stopPropagation();
      close();
    } else if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      (send || save).click();
    }
  });
  // The caret goes to the end now, not in the next frame: a later move would drop whatever
  // the user (or a test) selected or typed meanwhile, and typing would append to the old text.
  field.focus();
  field.setSelectionRange(field.value.length, field.value.length);
  requestAnimationFrame(() => {
    fit();
    field.scrollIntoView({ block: "nearest" });
  });
}

// --- The list of messages ---------------------------------------------------------------------

/** Tell extension scripts a message is shown whole, with its saved `extras`. */
export function announceMessage(view) {
  document.dispatchEvent(new CustomEvent("hearth:message", { detail: { message: view.message, element: view.article } }));
}

function shownAt(index) {
  const message = state.chat.messages[index];
  return message && !message.hidden;
}

function build(from, to, settled = true) {
  const built = [];
  for (let i = from; i < to; i += 1) {
    if (!shownAt(i)) continue;
    const view = messageView(state.chat.messages[i], i);
    if (settled) view.article.classList.add("settled"); // shown at once, without the rise
    views.set(i, view);
    built.push(view);
  }
  return built;
}

export function renderMessages() {
  views.clear();
  const messages = state.chat?.messages || [];
  firstBuilt = Math.max(0, messages.length - FIRST_BATCH);
  const built = build(firstBuilt, messages.length);
  const nodes = built.map((v) => v.article);
  if (!nodes.length) nodes.push(emptyState());
  if (firstBuilt > 0) nodes.unshift(sentinel);
  messagesBox.replaceChildren(...nodes);
  built.forEach(announceMessage);
  stick = true;
  follow();
}

/** Build the batch of older messages above the first one shown, keeping the view still. */
function buildOlder() {
  if (firstBuilt === 0 || !state.chat) return;
  const below = firstBuilt;
  const from = Math.max(0, firstBuilt - BATCH);
  const built = build(from, firstBuilt);
  firstBuilt = from;
  // Keep what is in view where it is (the browser's scroll anchoring does this too, except at
  // the very top; measuring makes it right either way).
  const anchor = views.get(below) ?? [...views.values()].find((v) => v.index > below);
  const before = anchor?.article.getBoundingClientRect().top;
  sentinel.after(...built.map((v) => v.article));
  if (firstBuilt === 0) sentinel.remove();
  if (anchor) messagesBox.scrollTop += anchor.article.getBoundingClientRect().top - before;
  built.forEach(announceMessage);
  requestAnimationFrame(() => { // a short batch may leave the top still near: one more
    if (firstBuilt > 0 && sentinel.isConnected && nearTop()) buildOlder();
  });
}

function nearTop() {
  return sentinel.getBoundingClientRect().bottom > messagesBox.getBoundingClientRect().top - 800;
}

new IntersectionObserver((entries) => {
  if (entries.some((e) => e.isIntersecting)) buildOlder();
}, { root: messagesBox, rootMargin: "800px 0px 0px 0px" }).observe(sentinel);

/** The path from place `at` on is now `messages` (after a reply, an edit, a version switch).
 * `reuse` maps places to views already on the page that show those messages (a streamed
 * reply): they are kept rather than built again. */
export function replacePathFrom(at, messages, reuse = new Map()) {
  const path = state.chat.messages;
  path.splice(at, path.length - at, ...messages);
  if (at < firstBuilt) {
    renderMessages();
    return;
  }
  for (const [i, view] of [...views]) {
    if (i >= at && ![...reuse.values()].includes(view)) {
      view.article.remove();
      views.delete(i);
    }
  }
  messagesBox.querySelector(".empty-chat")?.remove();
  const shown = [];
  // New views go before a kept one (the streamed reply is last): a kept view is never moved,
  // which would replay its animation.
  const kept = [...reuse.values()].find((v) => v.article.isConnected)?.article ?? null;
  for (let i = at; i < path.length; i += 1) {
    if (!shownAt(i)) continue;
    const view = reuse.has(i) ? adoptView(reuse.get(i), path[i], i) : messageView(path[i], i);
    views.set(i, view);
    if (!view.article.isConnected) {
      if (kept?.isConnected) kept.before(view.article);
      else messagesBox.append(view.article);
    }
    shown.push(view);
  }
  if (!views.size) messagesBox.append(emptyState());
  shown.forEach(announceMessage);
  refreshActions();
  follow();
}

/** Remove the views from place `at` on (a reply written again from there). */
export function dropViewsFrom(at) {
  for (const [i, view] of [...views]) {
    if (i >= at) {
      view.article.remove();
      views.delete(i);
    }
  }
}

/** A view at the end for a message the page adds before the server has it. */
export function appendView(message) {
  messagesBox.querySelector(".empty-chat")?.remove();
  const index = state.chat.messages.length;
  const view = messageView(message, index);
  messagesBox.append(view.article);
  return view;
}

export function refreshActions() {
  for (const view of views.values()) {
    if (!view.editing) fillActions(view);
  }
}

export function lastView() {
  let best = null;
  for (const [i, view] of views) if (!best || i > best.index) best = view;
  return best;
}

function emptyState() {
  const character = state.mode === "instruct" ? null : currentCharacter();
  return el("div", { class: "empty-chat" },
    state.mode === "instruct" ? el("img", { class: "avatar xl", src: document.querySelector(".brand img").src, alt: "" })
      : avatar(botName(), character?.picture, "avatar xl"),
    el("h2", { text: state.mode === "instruct" ? "How can I help?" : botName() }),
    el("p", { class: "muted", text: "Write a message below to start." }));
}

// --- Following the stream ---------------------------------------------------------------------

let stick = true;

function distanceFromBottom() {
  return messagesBox.scrollHeight - messagesBox.scrollTop - messagesBox.clientHeight;
}

export function follow() {
  if (stick) messagesBox.scrollTop = messagesBox.scrollHeight;
  jumpButton.hidden = stick || distanceFromBottom() < 48;
}

export function stickToBottom() {
  stick = true;
  follow();
}

messagesBox.addEventListener("scroll", () => {
  stick = distanceFromBottom() < 48;
  jumpButton.hidden = stick;
});
messagesBox.addEventListener("wheel", (event) => {
  if (event.deltaY < 0) stick = false;
}, { passive: true });
jumpButton.addEventListener("click", stickToBottom);
