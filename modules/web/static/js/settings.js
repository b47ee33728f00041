// The settings page: save the UI's choices as defaults, list extensions and access settings.

import { $, APPROVAL_TEXT, api, applyTheme, boot, el, store, toast } from "./common.js";

const form = $("settings-form");

function fill() {
  const saved = store.load("hearth.ui");
  const theme = localStorage.getItem("hearth.theme");
  const current = {
    ...boot.choices,
    mode: saved.mode ?? boot.choices.mode,
    character: saved.character ?? boot.choices.character,
    preset: saved.preset ?? boot.choices.preset,
    instruction_template: saved.template ?? boot.choices.instruction_template,
    user_name: saved.userName ?? boot.choices.user_name,
    user_bio: saved.userBio ?? boot.choices.user_bio,
    theme: theme || boot.choices.theme,
  };
  $("set-character").replaceChildren(...boot.characters.map((c) => el("option", { value: c.key, text: c.name })));
  $("set-preset").replaceChildren(...boot.presets.map((name) => el("option", { value: name, text: name })));
  $("set-template").replaceChildren(el("option", { value: "", text: "Automatic" }),
    ...boot.templates.map((name) => el("option", { value: name, text: name })));
  for (const [key, value] of Object.entries(current)) {
    if (form.elements[key]) form.elements[key].value = value ?? "";
  }
}

async function save(event) {
  event.preventDefault();
  const choices = Object.fromEntries(new FormData(form).entries());
  try {
    const data = await api("/ui/api/settings", { method: "PUT", json: choices });
    applyTheme(data.choices.theme);
    toast(`Saved to ${data.file}.`, "success");
  } catch (error) {
    toast(error.message, "error");
  }
}

const SERVER_STATE = { stopped: ["Not started", ""], running: ["Running", " ok"], failed: ["Failed", " warn"] };

function serverRow(server) {
  const [label, badge] = SERVER_STATE[server.state] || [server.state, ""];
  const tools = server.tools.map((t) => `${t.name} (${APPROVAL_TEXT[t.approval] || t.approval})`).join(", ");
  const start = el("button", { type: "button", class: "btn", text: server.state === "running" ? "Running" : "Start", disabled: server.state === "running" });
  start.addEventListener("click", async () => {
    start.disabled = true;
    start.textContent = "Starting…";
    try {
      const next = await api(`/ui/api/tools/servers/${encodeURIComponent(server.label)}/start`, { method: "POST" });
      row.replaceWith(serverRow(next));
    } catch (error) {
      toast(error.message, "error");
      start.disabled = false;
      start.textContent = "Start";
    }
  });
  const row = el("tr", { dataset: { server: server.label } },
    el("td", {}, el("strong", { text: server.label }), el("span", { class: "muted", text: ` MCP, ${server.transport}` })),
    el("td", {}, el("span", { class: `badge${badge}`, text: label }),
      server.error ? el("div", { class: "small warn-text", text: server.error }) : null),
    el("td", {}, tools ? el("span", { text: tools }) : el("span", { class: "muted", text: server.state === "running" ? "no tools" : "listed once started" })),
    el("td", {}, start));
  return row;
}

function toolRow(tool) {
  return el("tr", { dataset: { tool: tool.name } },
    el("td", {}, el("strong", { text: tool.name }), el("span", { class: "muted", text: tool.source === "local" ? " your tool" : " built in" })),
    el("td", {}, el("span", { class: "badge ok", text: "Ready" })),
    el("td", {}, el("span", { text: `${tool.description.split("\n")[0]} (${APPROVAL_TEXT[tool.approval] || tool.approval})` })),
    el("td", {}));
}

async function loadTools() {
  try {
    const data = await api("/ui/api/tools");
    const rows = [...data.servers.map(serverRow), ...data.local.map(toolRow), ...data.builtin.map(toolRow)];
    $("tools-table").tBodies[0].replaceChildren(...rows);
  } catch (error) {
    toast(error.message, "error");
  }
}

async function loadExtensions() {
  try {
    const data = await api("/ui/api/settings");
    $("settings-file").textContent = `Saves to ${data.file}`;
    const rows = data.extensions.map((ext) => el("tr", {},
      el("td", {}, el("strong", { text: ext.name })),
      el("td", {}, el("span", {
        class: `badge${ext.state === "loaded" ? " ok" : ext.state === "failed" ? " warn" : ""}`,
        text: { loaded: "Enabled", failed: "Failed to load", available: "Available" }[ext.state],
      })),
      el("td", {}, Object.keys(ext.params).length
        ? el("code", { text: Object.entries(ext.params).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(", ") })
        : el("span", { class: "muted", text: "—" }))));
    $("extensions-table").tBodies[0].replaceChildren(...(rows.length ? rows
      : [el("tr", {}, el("td", { colspan: "3", class: "muted", text: "No extensions found." }))]));
    $("extension-panels").replaceChildren(...data.extensions.filter((ext) => ext.panel.length).map(panel));
  } catch (error) {
    toast(error.message, "error");
  }
}

// An extension's panel: its ui() controls, bound to its params, changed for the running server.
function panel(ext) {
  const controls = ext.panel.map((control) => {
    const value = ext.params[control.param];
    const id = `ext-${ext.name}-${control.param}`;
    let input;
    if (control.type === "checkbox") {
      input = el("input", { type: "checkbox", id, checked: value });
    } else if (control.type === "textarea") {
      input = el("textarea", { id, rows: "3", value });
    } else if (control.type === "select") {
      input = el("select", { id }, ...control.choices.map((c) => el("option", { value: c, text: c, selected: c === value })));
    } else {
      input = el("input", { id, type: control.type === "number" ? "number" : "text", value: String(value ?? ""),
        min: control.min ?? undefined, max: control.max ?? undefined, step: control.step ?? (control.type === "number" ? "any" : undefined) });
    }
    input.addEventListener("change", async () => {
      const next = control.type === "checkbox" ? input.checked : control.type === "number" ? Number(input.value) : input.value;
      try {
        await api(`/ui/api/extensions/${encodeURIComponent(ext.name)}/params`, { method: "PUT", json: { [control.param]: next } });
        toast(`${ext.name}: ${control.label} changed until Hearth restarts.`, "success");
      } catch (error) {
        toast(error.message, "error");
      }
    });
    const label = el("label", { class: control.type === "checkbox" ? "field checkbox-field" : "field", for: id },
      el("span", { text: control.label }), input);
    return control.help ? el("div", {}, label, el("p", { class: "muted small", text: control.help })) : label;
  });
  return el("section", { class: "card extension-panel", "data-extension": ext.name },
    el("h2", { text: ext.name }), el("div", { class: "settings-grid" }, ...controls));
}

function renderAccess() {
  const items = [
    boot.listen ? "The UI listens on the network (--listen)." : "The UI only answers on this computer (127.0.0.1).",
    boot.auth ? "A login is required (--ui-auth)." : "No login is required. Use --ui-auth USER:PASSWORD before --listen.",
  ];
  $("access").replaceChildren(...items.map((text) => el("li", { text })));
}

form.addEventListener("submit", save);
fill();
renderAccess();
loadExtensions();
loadTools();
