// The input box: its height, files attached to the next message, the token counter (the
// typed text, and how much of the model's context the chat uses), and the keyboard.

import { $, api, formatBytes, onStatus, toast } from "./common.js";
import { actions, chatPlace, placeQuery, promptChoices, state } from "./chat-state.js";
import { fileChips, lastView, showVersion, startEdit, views } from "./chat-view.js";

const input = $("input");
const fileInput = $("file-input");
const list = $("attachments");
const counter = $("token-count");
// What /ui/api/files takes (modules/web/files.py): a bigger file is refused here, unsent.
export const MAX_FILE_BYTES = 25 * 1024 * 1024;
const MAX_FILES = 10;

let status = null;

export function autosize() {
  input.style.height = "auto";
  input.style.height = `${Math.min(input.scrollHeight, window.innerHeight * 0.4)}px`;
}

// --- Files ------------------------------------------------------------------------------------

function renderFiles() {
  list.hidden = !state.files.length;
  list.replaceChildren(...fileChips(state.files, (i) => {
    state.files.splice(i, 1);
    renderFiles();
    showCount();
  }));
}

/** The files waiting for the next message, taken (the caller sends them). */
export function takeFiles() {
  return state.files.slice();
}

export function clearFiles() {
  state.files = [];
  renderFiles();
  showCount();
}

// What /ui/api/chats/<id>/images takes (modules/image_input.py's limits).
const MAX_IMAGE_BYTES = 20 * 1024 * 1024;
const IMAGE_TYPES = ["image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp"];

function isImage(file) {
  return IMAGE_TYPES.includes(file.type);
}

/** Files become chips over the input box: a document is read into text on the server, an
 * image is saved with the chat (the model gets its pixels if it reads images). */
export async function attachFiles(files) {
  for (const file of files) {
    if (state.files.length >= MAX_FILES) {
      toast(`At most ${MAX_FILES} files go with one message.`, "error");
      return;
    }
    const image = isImage(file);
    const limit = image ? MAX_IMAGE_BYTES : MAX_FILE_BYTES;
    if (file.size > limit) {
      toast(`“${file.name}” is ${formatBytes(file.size)}: ${image ? "images" : "files"} of up to ${formatBytes(limit)} can be attached.`, "error");
      continue;
    }
    if (image && !state.chat) continue;
    const form = new FormData();
    form.append("file", file, file.name);
    const pending = image
      ? { name: file.name, kind: "image", preview: URL.createObjectURL(file), pending: true }
      : { name: file.name, chars: 0, tokens: null, pending: true };
    state.files.push(pending);
    renderFiles();
    try {
      const url = image ? `/ui/api/chats/${encodeURIComponent(state.chat.id)}/images?${placeQuery()}` : "/ui/api/files";
      const read = await api(url, { method: "POST", form });
      Object.assign(pending, read, { pending: false });
      if (read.notice) toast(`${read.name}: ${read.notice}`, "info");
      if (image && status?.model && !status.model.vision) {
        toast(`${status.model.id} reads text only: the image is kept with the chat, but this model does not see it.`, "info");
      }
    } catch (error) {
      state.files.splice(state.files.indexOf(pending), 1);
      toast(error.message, "error");
    }
    renderFiles();
    showCount();
  }
}

$("attach").addEventListener("click", () => fileInput.click());
fileInput.addEventListener("change", () => {
  const files = [...fileInput.files];
  fileInput.value = "";
  attachFiles(files);
});
const box = $("composer-box");
box.addEventListener("dragover", (event) => {
  if ([...event.dataTransfer.types].includes("Files")) {
    event.preventDefault();
    box.classList.add("dropping");
  }
});
box.addEventListener("dragleave", () => box.classList.remove("dropping"));
// A pasted picture (a screenshot, an image copied from a page) is attached like a picked one.
input.addEventListener("paste", (event) => {
  const files = [...(event.clipboardData?.files || [])];
  if (!files.length) return;
  event.preventDefault();
  attachFiles(files);
});
box.addEventListener("drop", (event) => {
  box.classList.remove("dropping");
  if (!event.dataTransfer.files.length) return;
  event.preventDefault();
  attachFiles([...event.dataTransfer.files]);
});

// --- Counting tokens --------------------------------------------------------------------------

let typedTokens = 0;
let countTimer = 0;
let countSeq = 0;

/** Ask the server how large the chat's prompt is now (after opening it, after a reply). */
export async function refreshContext() {
  if (!state.chat) return;
  const seq = ++countSeq;
  try {
    const data = await api(`/ui/api/chats/${state.chat.id}/prompt`, {
      method: "POST", json: { ...chatPlace(), ...promptChoices(status), text: "" },
    });
    if (seq !== countSeq) return;
    state.context = data.model ? { tokens: data.tokens, n_ctx: data.n_ctx, room: data.reply_room } : null;
  } catch {
    state.context = null;
  }
  showCount();
}

async function countTyped() {
  const text = input.value;
  if (!text.trim()) {
    typedTokens = 0;
    showCount();
    return;
  }
  try {
    const data = await api("/ui/api/tokens", { method: "POST", json: { text: text.slice(0, 400000) } });
    typedTokens = data.tokens || 0;
  } catch {
    typedTokens = 0;
  }
  showCount();
}

function showCount() {
  const context = state.context;
  const files = state.files.reduce((sum, f) => sum + (f.tokens || 0), 0);
  if (!context || !status?.model) {
    counter.textContent = typedTokens ? `${typedTokens.toLocaleString()} tokens` : "";
    counter.classList.remove("full");
    return;
  }
  const used = context.tokens + typedTokens + files;
  const parts = [];
  if (typedTokens || files) parts.push(`${(typedTokens + files).toLocaleString()} tokens`);
  parts.push(`context ${used.toLocaleString()} / ${context.n_ctx.toLocaleString()}`);
  counter.textContent = parts.join(" · ");
  const full = used + context.room > context.n_ctx;
  counter.classList.toggle("full", full);
  counter.title = full
    ? "With the room kept for the reply, this is more than the model's context: older messages are left out, and files are cut to fit."
    : `The prompt would take ${used.toLocaleString()} of the model's ${context.n_ctx.toLocaleString()} tokens; ${context.room.toLocaleString()} are kept for the reply.`;
}

input.addEventListener("input", () => {
  autosize();
  clearTimeout(countTimer);
  countTimer = setTimeout(countTyped, 300);
});

// --- Keyboard ---------------------------------------------------------------------------------

function lastOf(role) {
  let best = null;
  for (const view of views.values()) if (view.message.role === role && (!best || view.index > best.index)) best = view;
  return best;
}

function typing(target) {
  return target instanceof HTMLElement && (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName));
}

input.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    if (!state.gen) actions.generate("send");
  } else if (event.key === "ArrowUp" && !input.value && !state.gen && !event.shiftKey) {
    const mine = lastOf("user"); // ↑ in an empty box edits your last message
    if (mine?.message.id) {
      event.preventDefault();
      startEdit(mine);
    }
  }
});

// ←/→ move between the versions of the last reply, when no text field has the keys.
document.addEventListener("keydown", (event) => {
  if (event.key !== "ArrowLeft" && event.key !== "ArrowRight") return;
  if (event.altKey || event.ctrlKey || event.metaKey || event.shiftKey || state.gen) return;
  if (document.querySelector("dialog[open]")) return;
  const target = event.target;
  if (typing(target) && !(target === input && !input.value)) return;
  if (target instanceof HTMLElement && target.closest("[role=radiogroup], [role=menu]")) return;
  const last = lastView();
  if (!last || last.message.role !== "assistant" || !(last.message.versions > 1)) return;
  event.preventDefault();
  showVersion(last, last.message.version + (event.key === "ArrowRight" ? 1 : -1));
});

export function resetComposer() {
  typedTokens = 0;
  state.context = null;
  showCount();
}

actions.refreshContext = refreshContext;
onStatus((s) => {
  status = s;
  showCount();
});
