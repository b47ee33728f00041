// The model page: the catalog with each model's state (loaded, loading with its progress,
// unloaded), load with arguments (with progress), unload. Errors are shown as messages on the
// page; buttons are never left dead.

import { $, api, boot, el, formatBytes, icon, showStatus, toast } from "./common.js";

let catalog = [];
let defaults = {};
let argumentsForm = [];
let loading = false;
const FIXED = new Set(["ctx_size", "threads"]); // the form's own fields, always shown

async function load() {
  try {
    const data = await api("/ui/api/models");
    catalog = data.models;
    defaults = data.defaults;
    if (!argumentsForm.length) renderArguments(data.arguments || []);
    showStatus(data.status);
    render(data.status);
  } catch (error) {
    showError(error.message);
  }
}

function render(status) {
  renderCurrent(status);
  const select = $("load-name");
  const chosen = select.value || status.model?.id || catalog[0]?.id;
  select.replaceChildren(...catalog.map((m) => el("option", { value: m.id, text: m.id, selected: m.id === chosen })));
  if (!$("load-ctx").value) $("load-ctx").value = status.model?.n_ctx ?? defaults.ctx_size ?? "";
  if (!$("load-threads").value) $("load-threads").value = defaults.threads ?? "";
  const rows = catalog.map((m) => el("tr", {},
    el("td", {}, el("strong", { text: m.id }), m.source === "builtin" ? el("span", { class: "badge", text: "Built-in" })
      : m.source === "upstream" ? el("span", { class: "badge", text: "Remote" }) : null,
      m.vision ? el("span", { class: "badge", title: "It has a projector (mmproj): it reads images", text: "Reads images" }) : null),
    el("td", {}, m.upstreams ? el("span", { class: "muted", text: m.upstreams.join(", ") }) : el("code", { text: m.file })),
    el("td", { text: formatBytes(m.size) }),
    el("td", {}, stateBadge(m)),
    el("td", { class: "actions" }, m.loaded
      ? el("button", { type: "button", class: "btn btn-ghost", onclick: () => unload(m.id), disabled: loading }, "Unload")
      : el("button", { type: "button", class: "btn", onclick: () => startLoad(m.id, {}), disabled: loading }, icon("power"), "Load"))));
  $("model-table").tBodies[0].replaceChildren(...(rows.length ? rows
    : [el("tr", {}, el("td", { colspan: "5", class: "muted", text: "No models found. Put .gguf files in your model folder." }))]));
}

function stateBadge(model) {
  if (model.state === "loaded") return el("span", { class: "badge ok", text: "Loaded" });
  if (model.state === "loading") {
    const share = model.progress == null ? "" : ` ${Math.round(model.progress * 100)}%`;
    return el("span", { class: "badge", text: `Loading${share}` });
  }
  return el("span", { class: "muted", text: "—" });
}

// One input per load argument, from the server's description of them (name, kind, help,
// choices, and the server's value as the placeholder: an empty field leaves it be).
function renderArguments(list) {
  argumentsForm = list.filter((arg) => !FIXED.has(arg.name));
  const fields = argumentsForm.map((arg) => {
    const id = `arg-${arg.name}`;
    const label = el("span", { text: arg.name.replaceAll("_", " ") });
    if (arg.kind === "bool") {
      const select = el("select", { id, name: arg.name, title: arg.help },
        el("option", { value: "", text: `default (${arg.default ? "on" : "off"})` }),
        el("option", { value: "true", text: "on" }), el("option", { value: "false", text: "off" }));
      return el("label", { class: "field" }, label, select);
    }
    if (arg.kind === "choice") {
      const select = el("select", { id, name: arg.name, title: arg.help },
        el("option", { value: "", text: `default (${arg.default ?? "model's"})` }),
        ...arg.choices.map((choice) => el("option", { value: choice, text: choice })));
      return el("label", { class: "field" }, label, select);
    }
    const numeric = arg.kind === "int" || arg.kind === "float";
    const input = el("input", {
      id, name: arg.name, title: arg.help, type: numeric ? "number" : "text",
      step: arg.kind === "float" ? "any" : undefined,
      placeholder: arg.default == null || arg.default === "" ? "" : String(arg.default),
    });
    return el("label", { class: "field" }, label, input);
  });
  $("load-args").replaceChildren(...fields);
}

function argumentValues() {
  const values = {};
  for (const arg of argumentsForm) {
    const raw = $(`arg-${arg.name}`)?.value ?? "";
    if (raw === "") continue;
    if (arg.kind === "bool") values[arg.name] = raw === "true";
    else if (arg.kind === "int") values[arg.name] = Number.parseInt(raw, 10);
    else if (arg.kind === "float") values[arg.name] = Number(raw);
    else values[arg.name] = raw;
  }
  return values;
}

function renderCurrent(status) {
  const box = $("current-model");
  const model = status.model;
  if (!model) {
    box.replaceChildren(el("div", { class: "model-icon" }, icon("cpu")),
      el("div", { class: "grow" }, el("h2", { text: "No model loaded" }),
        el("p", { class: "muted", text: "Load one below. The chat loads the default model on the first message." })));
    return;
  }
  const chosen = JSON.parse(localStorage.getItem("hearth.ui") || "{}").template ?? boot.choices.instruction_template;
  box.replaceChildren(el("div", { class: "model-icon" }, icon("cpu")),
    el("div", { class: "grow" },
      el("h2", { text: model.id }),
      el("ul", { class: "facts-inline" },
        el("li", { text: `Context: ${model.n_ctx.toLocaleString()} tokens` }),
        el("li", { text: `KV cache: ${model.cache_type}, ${formatBytes(model.kv_cache_bytes)}` }),
        model.loras?.length ? el("li", { text: `LoRA: ${model.loras.join(", ")}` }) : null,
        el("li", { text: `Template: ${chosen || (model.template === "model" ? "the model's own" : model.template) || "none"}` }),
        el("li", { text: model.has_own_template ? "Has its own chat template" : "No chat template in the file" }))),
    el("button", { type: "button", class: "btn", onclick: () => unload(model.id), disabled: loading }, "Unload"));
}

function showError(text) {
  const box = $("model-error");
  box.textContent = text;
  box.hidden = !text;
}

function setProgress(fraction, label) {
  const box = $("load-progress");
  box.hidden = false;
  box.classList.toggle("indeterminate", fraction == null);
  $("progress-text").textContent = label;
  $("progress-value").textContent = fraction == null ? "" : `${Math.round(fraction * 100)}%`;
  $("progress-fill").style.width = fraction == null ? "" : `${Math.round(fraction * 100)}%`;
  if (fraction != null) $("progress-bar").setAttribute("aria-valuenow", String(Math.round(fraction * 100)));
}

async function startLoad(name, options) {
  if (loading) return;
  loading = true;
  showError("");
  $("load-button").disabled = true;
  setProgress(0, `Loading ${name}…`);
  const poll = setInterval(async () => {
    try {
      const status = await api("/ui/api/status");
      const fraction = status.loading?.[name];
      if (fraction != null) setProgress(fraction, `Loading ${name}…`);
      showStatus(status);
    } catch {
      /* the load request reports errors */
    }
  }, 250);
  try {
    const status = await api("/ui/api/models/load", { method: "POST", json: { name, ...options } });
    setProgress(1, `Loaded ${name}`);
    toast(`Loaded ${name}.`, "success");
    showStatus(status);
  } catch (error) {
    showError(`Could not load ${name}: ${error.message}`);
  } finally {
    clearInterval(poll);
    loading = false;
    $("load-button").disabled = false;
    setTimeout(() => ($("load-progress").hidden = true), 1200);
    await load();
  }
}

async function unload(name) {
  try {
    const status = await api("/ui/api/models/unload", { method: "POST", json: { name } });
    showStatus(status);
    toast(`Unloaded ${name}.`, "success");
  } catch (error) {
    showError(error.message);
  }
  await load();
}

$("load-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const options = argumentValues();
  const ctx = $("load-ctx").value;
  const threads = $("load-threads").value;
  if (ctx !== "") options.ctx_size = Number(ctx);
  if (threads !== "") options.threads = Number(threads);
  startLoad($("load-name").value, options);
});
load();
