// The parameters panel of the chat and notebook pages: sampling values and presets, and on
// the chat page the instruction template and the user's name and bio. It edits the page's
// state and calls `remember` to keep it.

import { $, api, confirmAction, el, onStatus, showStatus, toast } from "./common.js";

const SAMPLING_FIELDS = [
  { key: "temperature", label: "Temperature", min: 0, max: 2, step: 0.01 },
  { key: "top_p", label: "Top P", min: 0, max: 1, step: 0.01 },
  { key: "top_k", label: "Top K", min: 0, max: 200, step: 1 },
  { key: "min_p", label: "Min P", min: 0, max: 1, step: 0.01 },
  { key: "repetition_penalty", label: "Repetition penalty", min: 1, max: 2, step: 0.01 },
  { key: "max_tokens", label: "Max new tokens", min: 1, max: 4096, step: 1, limit: 1000000 },
  { key: "seed", label: "Seed", min: -1, max: 4294967295, step: 1, plain: true, hint: "-1: random" },
];
export const FALLBACK_SAMPLING = {
  temperature: 0.7, top_p: 0.9, top_k: 40, min_p: 0.05, repetition_penalty: 1.1, max_tokens: 512,
  seed: -1, stop: [],
};

let state = null;
let remember = () => {};
const layout = $("chat-layout");

export function presetByName(presets, name) {
  return presets.find((p) => p.name === name);
}

function buildSamplingFields() {
  const box = $("sampling-fields");
  box.replaceChildren(...SAMPLING_FIELDS.map((field) => {
    const id = `param-${field.key}`;
    const number = el("input", {
      type: "number", id, class: "param-number", min: field.min, max: field.limit ?? field.max,
      step: field.step, "data-key": field.key,
    });
    const row = el("div", { class: "param" },
      el("div", { class: "param-top" },
        el("label", { for: id, text: field.label }),
        field.hint ? el("span", { class: "muted small", text: field.hint }) : null, number));
    if (!field.plain) {
      const range = el("input", {
        type: "range", class: "param-range", min: field.min, max: field.max, step: field.step,
        "aria-label": field.label, "data-key": field.key, tabindex: "-1",
      });
      row.append(range);
    }
    return row;
  }));
  box.addEventListener("input", (event) => {
    const key = event.target.dataset.key;
    if (!key) return;
    const field = SAMPLING_FIELDS.find((f) => f.key === key);
    let value = Number(event.target.value);
    if (!Number.isFinite(value) || event.target.value === "") return;
    value = Math.min(field.limit ?? field.max, Math.max(field.min, value));
    if (field.step >= 1) value = Math.round(value);
    state.sampling[key] = value;
    syncSamplingFields(key);
    markPresetChanged();
    remember();
  });
}

function syncSamplingFields(only) {
  for (const field of SAMPLING_FIELDS) {
    if (only && field.key !== only) continue;
    const value = state.sampling[field.key];
    const number = $(`param-${field.key}`);
    if (document.activeElement !== number) number.value = value;
    const range = number.closest(".param").querySelector(".param-range");
    if (range) range.value = value;
  }
  if (!only) $("stop").value = (state.sampling.stop || []).join("\n");
}

function renderPresets() {
  const select = $("preset");
  const names = state.presets.map((p) => p.name);
  if (state.preset && !names.includes(state.preset)) names.push(state.preset);
  select.replaceChildren(...names.map((name) => el("option", { value: name, text: name, selected: name === state.preset })));
  markPresetChanged();
}

function markPresetChanged() {
  const preset = presetByName(state.presets, state.preset);
  const changed = !preset || JSON.stringify(normalize(preset.sampling)) !== JSON.stringify(normalize(state.sampling));
  $("preset").classList.toggle("changed", changed);
  $("preset").title = changed ? "Changed since the preset was chosen" : "";
  $("preset-delete").disabled = !preset || preset.builtin;
}

function normalize(sampling) {
  const out = {};
  for (const key of Object.keys(FALLBACK_SAMPLING).sort()) out[key] = sampling[key] ?? FALLBACK_SAMPLING[key];
  return out;
}

function renderTemplates() {
  if (!$("template")) return; // the notebook has no template
  const status = currentStatus;
  const chosen = status?.model?.template;
  const auto = !chosen || chosen === "model" ? "the model's own" : chosen;
  const select = $("template");
  select.replaceChildren(
    el("option", { value: "", text: `Automatic (${auto})`, selected: !state.template }),
    ...state.templates.map((name) => el("option", { value: name, text: name, selected: name === state.template })));
}

let currentStatus = null;

export function initParams(chatState, save) {
  state = chatState;
  remember = save;
  buildSamplingFields();
  syncSamplingFields();
  renderPresets();
  renderTemplates();
  if ($("user-name")) initPromptFields();

  $("preset").addEventListener("change", (event) => {
    state.preset = event.target.value;
    const preset = presetByName(state.presets, state.preset);
    if (preset) state.sampling = { ...FALLBACK_SAMPLING, ...preset.sampling };
    syncSamplingFields();
    markPresetChanged();
    remember();
  });
  $("stop").addEventListener("input", (event) => {
    state.sampling.stop = event.target.value.split("\n").filter((s) => s.length).slice(0, 16);
    markPresetChanged();
    remember();
  });
  $("preset-save").addEventListener("click", () => {
    $("preset-name").value = state.preset || "";
    $("preset-dialog").showModal();
  });
  $("preset-dialog").addEventListener("close", async () => {
    if ($("preset-dialog").returnValue !== "ok") return;
    const name = $("preset-name").value.trim();
    if (!name) return;
    try {
      await api(`/ui/api/presets/${encodeURIComponent(name)}`, { method: "PUT", json: { sampling: state.sampling } });
      state.presets = (await api("/ui/api/presets")).presets;
      state.preset = name;
      renderPresets();
      remember();
      toast(`Saved the preset “${name}”.`, "success");
    } catch (error) {
      toast(error.message, "error");
    }
  });
  $("preset-delete").addEventListener("click", async () => {
    const name = state.preset;
    if (!(await confirmAction(`The preset “${name}” will be deleted.`, { title: "Delete this preset?" }))) return;
    try {
      await api(`/ui/api/presets/${encodeURIComponent(name)}`, { method: "DELETE" });
      state.presets = (await api("/ui/api/presets")).presets;
      state.preset = state.presets[0]?.name || "Default";
      renderPresets();
      remember();
    } catch (error) {
      toast(error.message, "error");
    }
  });
  onStatus((status) => {
    currentStatus = status;
    renderTemplates();
  });
  setParamsOpen(state.paramsOpen);
  $("params-toggle").addEventListener("click", () => setParamsOpen(!state.paramsOpen));
  $("params-close").addEventListener("click", () => setParamsOpen(false));
}

function initPromptFields() {
  $("user-name").value = state.userName || "";
  $("user-bio").value = state.userBio || "";
  $("template").addEventListener("change", (event) => {
    state.template = event.target.value;
    remember();
    showStatus(currentStatus);
  });
  $("user-name").addEventListener("input", (event) => {
    state.userName = event.target.value.trim();
    remember();
  });
  $("user-bio").addEventListener("input", (event) => {
    state.userBio = event.target.value;
    remember();
  });
}

export function setParamsOpen(open) {
  state.paramsOpen = open;
  layout.classList.toggle("params-open", open);
  $("params-toggle").setAttribute("aria-expanded", String(open));
  remember();
}
