// Shared by every page: DOM helpers (text only, never HTML), the JSON API client, toasts,
// dialogs, the theme toggle, and the header's model status.

export const boot = JSON.parse(document.getElementById("boot")?.textContent || "{}");
const ICONS = document.body.dataset.icons;

/** An element with properties and children. Strings become text nodes: never parsed as HTML. */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else if (key === "hidden" || key === "disabled" || key === "checked" || key === "selected") node[key] = Boolean(value);
    else if (key === "value") node.value = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

const iconPrototypes = new Map(); // cloning one is much cheaper than building it (long chats)

export function icon(name, cls = "icon") {
  const key = `${name} ${cls}`;
  let svg = iconPrototypes.get(key);
  if (!svg) {
    svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("class", cls);
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    const use = document.createElementNS("http://www.w3.org/2000/svg", "use");
    use.setAttribute("href", `${ICONS}#${name}`);
    svg.append(use);
    iconPrototypes.set(key, svg);
  }
  return svg.cloneNode(true);
}

export function iconButton(name, label, onclick, cls = "icon-btn") {
  return el("button", { type: "button", class: cls, "aria-label": label, title: label, onclick }, icon(name));
}

export const $ = (id) => document.getElementById(id);

// --- The UI's JSON API --------------------------------------------------------------------------

export async function api(path, { method = "GET", json, form } = {}) {
  const init = { method, headers: { Accept: "application/json" }, credentials: "same-origin" };
  if (json !== undefined) {
    init.body = JSON.stringify(json);
    init.headers["Content-Type"] = "application/json";
  } else if (form) {
    init.body = form;
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new Error("The server cannot be reached. Is Hearth still running?");
  }
  if (response.status === 401 && boot.auth) {
    location.assign(`/login?next=${encodeURIComponent(location.pathname + location.search)}`);
    throw new Error("Please log in again.");
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    /* not JSON: handled below */
  }
  if (!response.ok) throw new Error(data?.error?.message || `The server answered ${response.status}.`);
  return data;
}

// --- Toasts and dialogs --------------------------------------------------------------------------

export function toast(message, kind = "info") {
  const box = $("toasts");
  if (!box) return;
  const item = el("div", { class: `toast toast-${kind}`, role: kind === "error" ? "alert" : "status" },
    icon(kind === "error" ? "alert" : "check"), el("span", { class: "toast-text", text: message }),
    iconButton("x", "Dismiss", () => item.remove(), "icon-btn small"));
  box.append(item);
  setTimeout(() => item.remove(), kind === "error" ? 9000 : 4000);
}

export function confirmAction(text, { title = "Are you sure?", ok = "Delete" } = {}) {
  const dialog = $("confirm-dialog");
  $("confirm-title").textContent = title;
  $("confirm-text").textContent = text;
  $("confirm-ok").textContent = ok;
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
  });
}

/** Close buttons (`data-close`) and clicks on the backdrop close a dialog. */
export function wireDialog(dialog) {
  dialog.addEventListener("click", (event) => {
    if (event.target === dialog || event.target.closest("[data-close]")) dialog.close();
  });
}

// --- Small things ------------------------------------------------------------------------------

/** What a tool's approval policy means, as the chat and settings pages say it. */
export const APPROVAL_TEXT = { always: "asks first", once: "asks once per chat", never: "runs without asking" };

export const store = {
  load(key, fallback = {}) {
    try {
      return JSON.parse(localStorage.getItem(key)) ?? fallback;
    } catch {
      return fallback;
    }
  },
  save(key, value) {
    try {
      localStorage.setItem(key, JSON.stringify(value));
    } catch {
      /* full or disabled: the choice lasts for this page only */
    }
  },
};

export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    // Not a secure context (e.g. http:// on the network): the old way still works.
    const area = el("textarea", { class: "visually-hidden", "aria-hidden": "true" });
    area.value = text;
    document.body.append(area);
    area.select();
    const ok = document.execCommand("copy");
    area.remove();
    return ok;
  }
}

export function formatBytes(bytes) {
  if (bytes == null) return "";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (bytes >= 1024 && i < units.length - 1) {
    bytes /= 1024;
    i += 1;
  }
  return `${bytes.toFixed(bytes >= 10 || i === 0 ? 0 : 1)} ${units[i]}`;
}

export function timeAgo(seconds) {
  const delta = Date.now() / 1000 - seconds;
  if (delta < 60) return "just now";
  if (delta < 3600) return `${Math.floor(delta / 60)} min ago`;
  if (delta < 86400) return `${Math.floor(delta / 3600)} h ago`;
  const date = new Date(seconds * 1000);
  return date.toLocaleDateString(undefined, { month: "short", day: "numeric" });
}

function hue(text) {
  let h = 0;
  for (const ch of text) h = (h * 31 + ch.codePointAt(0)) % 360;
  return h;
}

export function initials(name) {
  const words = String(name || "?").trim().split(/\s+/).filter(Boolean);
  const letters = words.length > 1 ? [...words[0]][0] + [...words[1]][0] : [...(words[0] || "?")][0];
  return letters.toUpperCase();
}

/** A round avatar: the picture, or initials on a colour derived from the name. */
export function avatar(name, picture, cls = "avatar") {
  if (picture) return el("img", { class: cls, src: picture, alt: "", loading: "lazy", decoding: "async" });
  const node = el("span", { class: `${cls} initials`, "aria-hidden": "true", text: initials(name) });
  node.style.setProperty("--avatar-hue", hue(String(name || "")));
  return node;
}

// --- Theme ------------------------------------------------------------------------------------

const THEMES = ["auto", "light", "dark"];
const THEME_LABEL = { auto: "automatic", light: "light", dark: "dark" };

export function applyTheme(theme, remember = true) {
  document.documentElement.dataset.theme = theme;
  if (remember) {
    try {
      localStorage.setItem("hearth.theme", theme);
    } catch {
      /* storage disabled: the theme lasts for this page */
    }
  }
  const button = $("theme-toggle");
  if (button) {
    button.replaceChildren(icon(theme === "light" ? "sun" : theme === "dark" ? "moon" : "auto"));
    button.setAttribute("aria-label", `Theme: ${THEME_LABEL[theme]}. Switch theme`);
    button.title = `Theme: ${THEME_LABEL[theme]}`;
  }
}

function wireTheme() {
  const button = $("theme-toggle");
  if (!button) return;
  const current = THEMES.includes(document.documentElement.dataset.theme) ? document.documentElement.dataset.theme : "auto";
  applyTheme(current, false);
  button.addEventListener("click", () => {
    const now = document.documentElement.dataset.theme;
    applyTheme(THEMES[(THEMES.indexOf(now) + 1) % THEMES.length]);
  });
}

// --- The header's model status ----------------------------------------------------------------

let lastStatus = boot.status || null;
const statusListeners = [];

export function onStatus(listener) {
  statusListeners.push(listener);
  if (lastStatus) listener(lastStatus);
}

/** The template the chat will use: the user's choice, else the model's own or the table's. */
export function templateLabel(status, chosen) {
  if (chosen) return chosen;
  const auto = status?.model?.template;
  if (!auto) return "";
  return auto === "model" ? "template from the model" : auto;
}

export function showStatus(status) {
  lastStatus = status;
  const pill = $("model-pill");
  if (pill) {
    const loading = Object.entries(status.loading || {});
    const name = pill.querySelector(".model-name");
    const template = pill.querySelector(".template-name");
    pill.classList.toggle("loading", loading.length > 0);
    pill.classList.toggle("empty", !status.model && loading.length === 0);
    if (loading.length) {
      const [id, fraction] = loading[0];
      name.textContent = `Loading ${id} ${Math.round(fraction * 100)}%`;
      template.textContent = "";
    } else if (status.model) {
      name.textContent = status.model.id;
      const chosen = store.load("hearth.ui").template ?? boot.choices?.instruction_template;
      const label = templateLabel(status, chosen);
      template.textContent = label ? `· ${label}` : "";
    } else {
      name.textContent = "No model loaded";
      template.textContent = "";
    }
    pill.title = `${name.textContent} ${template.textContent}`.trim();  // whole, where it is cut short
  }
  for (const listener of statusListeners) listener(status);
}

export async function refreshStatus() {
  try {
    showStatus(await api("/ui/api/status"));
  } catch {
    /* shown elsewhere when it matters */
  }
}

function pollStatus() {
  setInterval(() => {
    if (document.visibilityState === "visible") refreshStatus();
  }, 15000);
}

wireTheme();
if (lastStatus) showStatus(lastStatus);
pollStatus();
document.querySelectorAll("dialog").forEach(wireDialog);
