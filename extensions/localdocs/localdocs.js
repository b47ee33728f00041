// LocalDocs in the browser UI: a panel in the chat page's parameters (collections, folders,
// indexing with progress, and which collections this chat searches), and the sources under
// each reply. It uses the chat page's events (docs/extensions.md): hearth:chat when a chat is
// opened, hearth:generate to add {"localdocs": [...]} to a request, hearth:message when a
// message is shown whole (loaded with its chat, or finished streaming).
(() => {
  "use strict";
  const BASE = "/ui/api/localdocs";

  // --- Sources under replies, new or saved (any page that shows chats) --------------------------
  document.addEventListener("hearth:message", (event) => {
    const { message, element } = event.detail;
    const sources = message.extras?.localdocs?.sources || [];
    if (!sources.length) return;
    element.querySelector(".localdocs-sources")?.remove();
    const box = make("details", { class: "localdocs-sources" });
    box.append(make("summary", { text: `Sources (${sources.length})` }));
    const list = make("ol");
    for (const s of sources) {
      const item = make("li");
      item.append(make("code", { text: s.path, title: s.collection }),
        make("span", { class: "muted", text: ` ${s.location} · ${s.score.toFixed(2)}` }));
      list.append(item);
    }
    box.append(list);
    element.append(box);
  });

  const mount = document.getElementById("extension-panels");
  if (!mount) return;

  let collections = [];
  let chatId = null;
  let polling = null;

  const selectionKey = () => `hearth.localdocs.${chatId || "none"}`;
  const selected = () => {
    try {
      const names = JSON.parse(localStorage.getItem(selectionKey()) || "[]");
      return names.filter((n) => collections.some((c) => c.name === n));
    } catch {
      return [];
    }
  };
  const select = (names) => localStorage.setItem(selectionKey(), JSON.stringify(names));

  document.addEventListener("hearth:chat", (event) => {
    chatId = event.detail.id;
    render();
  });
  document.addEventListener("hearth:generate", (event) => {
    const names = selected();
    if (names.length) event.detail.extensions.localdocs = names;
  });

  function make(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props)) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "text") node.textContent = value;
      else if (key === "class") node.className = value;
      else if (key === "checked" || key === "disabled") node[key] = Boolean(value);
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    node.append(...children);
    return node;
  }

  async function call(path, method = "GET", json) {
    const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
    if (json !== undefined) {
      init.body = JSON.stringify(json);
      init.headers["Content-Type"] = "application/json";
    }
    const response = await fetch(BASE + path, init);
    const data = await response.json().catch(() => null);
    if (!response.ok) throw new Error(data?.error?.message || `The server answered ${response.status}.`);
    return data;
  }

  const panel = make("section", { class: "param-group localdocs-panel", "aria-labelledby": "localdocs-title" });
  const list = make("ul", { class: "localdocs-list" });
  const note = make("p", { class: "muted small localdocs-note", role: "status" });
  const name = make("input", { placeholder: "Collection name", maxlength: "100", "aria-label": "New collection name" });
  const folder = make("input", { placeholder: "/absolute/path/to/folder", "aria-label": "Folder of the new collection" });
  const create = make("form", { class: "localdocs-create" }, name, folder,
    make("button", { type: "submit", class: "btn", text: "Create and index" }));
  panel.append(make("h3", { id: "localdocs-title", text: "LocalDocs" }),
    make("p", { class: "muted small", text: "Switch on the collections this chat searches." }), list, create, note);
  mount.append(panel);

  create.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await call("", "POST", { name: name.value.trim(), folders: folder.value.trim() ? [folder.value.trim()] : [] });
      select([...selected(), name.value.trim()]);
      name.value = folder.value = "";
      say("");
      await refresh();
    } catch (error) {
      say(error.message);
    }
  });

  function say(text) {
    note.textContent = text;
  }

  function statusText(c) {
    const run = c.index;
    if (run && (run.state === "scanning" || run.state === "indexing")) {
      return run.files_total ? `Indexing ${run.files_done}/${run.files_total} files…` : "Scanning…";
    }
    if (run?.state === "failed") return `Indexing failed: ${run.error}`;
    const files = `${c.files} files · ${c.chunks} chunks`;
    return c.needs_index ? `${files} · needs indexing` : files;
  }

  function render() {
    const on = new Set(selected());
    list.replaceChildren(...collections.map((c) => {
      const box = make("input", { type: "checkbox", checked: on.has(c.name), "aria-label": `Search ${c.name} in this chat` });
      box.addEventListener("change", () => {
        const names = selected().filter((n) => n !== c.name);
        select(box.checked ? [...names, c.name] : names);
      });
      const run = c.index;
      const busy = run && (run.state === "scanning" || run.state === "indexing");
      const progress = busy ? make("progress", { max: String(run.files_total || 1), value: String(run.files_done) }) : "";
      const add = make("input", { placeholder: "Add a folder", "aria-label": `Add a folder to ${c.name}` });
      add.addEventListener("keydown", async (event) => {
        if (event.key !== "Enter" || !add.value.trim()) return;
        event.preventDefault();
        try {
          await call(`/${encodeURIComponent(c.name)}`, "PUT", { folders: [...c.folders, add.value.trim()] });
          await call(`/${encodeURIComponent(c.name)}/index`, "POST");
          await refresh();
        } catch (error) {
          say(error.message);
        }
      });
      const folders = make("ul", { class: "localdocs-folders" }, ...c.folders.map((f) => make("li", {},
        make("code", { text: f }),
        make("button", { type: "button", class: "btn btn-ghost small", text: "×", "aria-label": `Remove ${f}`,
          onclick: async () => {
            try {
              await call(`/${encodeURIComponent(c.name)}`, "PUT", { folders: c.folders.filter((x) => x !== f) });
              await call(`/${encodeURIComponent(c.name)}/index`, "POST");
              await refresh();
            } catch (error) {
              say(error.message);
            }
          } }))));
      const actions = make("div", { class: "localdocs-actions" },
        make("button", { type: "button", class: "btn small", text: "Index", disabled: busy, onclick: async () => {
          try {
            await call(`/${encodeURIComponent(c.name)}/index`, "POST");
            await refresh();
          } catch (error) {
            say(error.message);
          }
        } }),
        make("button", { type: "button", class: "btn btn-ghost small", text: "Delete", onclick: async () => {
          const { confirmAction } = await import("/ui/static/js/common.js");
          const text = `The collection and its index are deleted; your files stay where they are.`;
          if (!(await confirmAction(text, { title: `Delete ${c.name}?` }))) return;
          try {
            await call(`/${encodeURIComponent(c.name)}`, "DELETE");
            await refresh();
          } catch (error) {
            say(error.message);
          }
        } }));
      const head = make("label", { class: "localdocs-name" }, box, make("strong", { text: c.name }));
      return make("li", { class: "localdocs-collection", "data-collection": c.name }, head,
        make("span", { class: "muted small localdocs-status", text: statusText(c) }), progress, folders, add, actions);
    }));
    if (!collections.length) list.append(make("li", { class: "muted small", text: "No collections yet." }));
  }

  async function refresh() {
    try {
      collections = (await call("")).data;
    } catch (error) {
      say(error.message);
      return;
    }
    render();
    const busy = collections.some((c) => c.index && (c.index.state === "scanning" || c.index.state === "indexing"));
    clearTimeout(polling);
    if (busy) polling = setTimeout(refresh, 1000);
  }

  refresh();
})();
