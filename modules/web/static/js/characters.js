// The character gallery: create, edit, delete, upload a picture, import cards and files.

import { $, api, avatar, confirmAction, el, icon, toast } from "./common.js";

let characters = [];
let editing = null; // the character being edited, or null for a new one
let pictureUrl = null; // object URL of a picture chosen but not yet saved

async function load() {
  try {
    characters = (await api("/ui/api/characters")).characters;
    render();
  } catch (error) {
    toast(error.message, "error");
  }
}

function render() {
  const query = $("search").value.trim().toLowerCase();
  const shown = characters.filter((c) => !query || c.name.toLowerCase().includes(query) || c.key.toLowerCase().includes(query));
  const gallery = $("gallery");
  if (!shown.length) {
    gallery.replaceChildren(el("p", { class: "gallery-empty", text: query ? "No character matches." : "No characters yet." }));
    return;
  }
  gallery.replaceChildren(...shown.map(card));
}

function card(character) {
  const picture = el("div", { class: "char-picture" },
    character.picture ? el("img", { src: character.picture, alt: "", loading: "lazy" }) : avatar(character.name, null));
  return el("article", { class: "char-card", dataset: { key: character.key } },
    picture,
    el("div", { class: "char-body" },
      el("h2", { class: "char-name" }, el("span", { text: character.name }),
        character.builtin ? el("span", { class: "badge", text: "Built-in" }) : null),
      el("p", { class: "char-blurb", text: blurb(character) })),
    el("div", { class: "char-actions" },
      el("a", { class: "btn btn-primary", href: `/?character=${encodeURIComponent(character.key)}` }, icon("chat"), "Chat"),
      el("button", { type: "button", class: "btn", onclick: () => openEditor(character), "aria-label": `Edit ${character.name}` }, icon("edit"), "Edit")));
}

/** A line about the character: its context (or greeting), with the names filled in. */
function blurb(character) {
  const text = character.context || character.greeting || "No description yet.";
  return text.replace(/\{\{char\}\}/gi, character.name).replace(/\{\{user\}\}/gi, "you").replace(/\*/g, "");
}

function setPreview(name, src) {
  $("picture-preview").replaceChildren(src ? el("img", { src, alt: "" }) : avatar(name || "?", null));
}

function openEditor(character) {
  editing = character;
  const form = $("editor-form");
  form.reset();
  if (pictureUrl) URL.revokeObjectURL(pictureUrl);
  pictureUrl = null;
  $("editor-title").textContent = character ? `Edit ${character.name}` : "New character";
  for (const name of ["name", "greeting", "context", "example_dialogue", "user_name"]) {
    form.elements[name].value = character ? character[name] || "" : "";
  }
  setPreview(character?.name, character?.picture);
  $("delete-character").hidden = !character || character.builtin;
  const exportLink = $("export-card");
  exportLink.hidden = !character;
  if (character) exportLink.href = `/ui/api/characters/${encodeURIComponent(character.key)}/card`;
  $("editor-error").hidden = true;
  $("editor").showModal();
  $("field-name").focus();
}

async function save(event) {
  event.preventDefault();
  $("editor-error").hidden = true;
  const form = $("editor-form");
  const name = form.elements.name.value.trim();
  if (!name) {
    showError("Give the character a name.");
    form.elements.name.focus();
    return;
  }
  const data = new FormData();
  for (const field of ["name", "greeting", "context", "example_dialogue", "user_name"]) {
    data.append(field, form.elements[field].value);
  }
  const file = $("picture").files[0];
  if (file) data.append("picture", file);
  const button = $("save-character");
  button.disabled = true;
  try {
    const saved = editing
      ? await api(`/ui/api/characters/${encodeURIComponent(editing.key)}`, { method: "PUT", form: data })
      : await api("/ui/api/characters", { method: "POST", form: data });
    $("editor").close();
    toast(`Saved ${saved.name}.`, "success");
    await load();
  } catch (error) {
    showError(error.message);
  } finally {
    button.disabled = false;
  }
}

function showError(text) {
  const box = $("editor-error");
  box.textContent = text;
  box.hidden = false;
}

async function remove() {
  if (!editing) return;
  const character = editing;
  if (!(await confirmAction(`${character.name} and their picture will be deleted. Their chats stay on disk.`, { title: "Delete this character?" }))) return;
  try {
    await api(`/ui/api/characters/${encodeURIComponent(character.key)}`, { method: "DELETE" });
    $("editor").close();
    toast(`Deleted ${character.name}.`, "success");
    await load();
  } catch (error) {
    showError(error.message);
  }
}

async function importFile() {
  const file = $("import-file").files[0];
  if (!file) return;
  const data = new FormData();
  data.append("file", file);
  try {
    const character = await api("/ui/api/characters/import", { method: "POST", form: data });
    toast(`Imported ${character.name}.`, "success");
    await load();
  } catch (error) {
    toast(error.message, "error");
  } finally {
    $("import-file").value = "";
  }
}

$("new-character").addEventListener("click", () => openEditor(null));
$("editor-form").addEventListener("submit", save);
$("delete-character").addEventListener("click", remove);
$("picture-button").addEventListener("click", () => $("picture").click());
$("picture").addEventListener("change", () => {
  const file = $("picture").files[0];
  if (!file) return;
  if (pictureUrl) URL.revokeObjectURL(pictureUrl);
  pictureUrl = URL.createObjectURL(file);
  setPreview("", pictureUrl);
});
$("import").addEventListener("click", () => $("import-file").click());
$("import-file").addEventListener("change", importFile);
$("search").addEventListener("input", render);
load();
