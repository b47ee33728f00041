// The chat page's state, what the browser remembers of it, and the names and places every
// part of the page asks about. One object for the page; the other modules read and change it.

import { boot, store } from "./common.js";
import { FALLBACK_SAMPLING, presetByName } from "./params.js";

export const STORE_KEY = "hearth.ui";
export const MODES = ["chat", "chat-instruct", "instruct"];

const saved = store.load(STORE_KEY);
const choices = boot.choices || {};

export const state = {
  characters: boot.characters || [],
  presets: boot.presets || [],
  templates: boot.templates || [],
  templateSwitches: boot.template_switches || {},
  // A newcomer starts where the model answers best (boot.start_mode); then the last choice.
  mode: MODES.includes(saved.mode) ? saved.mode : boot.start_mode || choices.mode,
  character: saved.character ?? choices.character,
  preset: saved.preset ?? choices.preset,
  sampling: null,
  template: saved.template ?? choices.instruction_template,
  userName: saved.userName ?? choices.user_name,
  userBio: saved.userBio ?? choices.user_bio,
  thinking: saved.thinking ?? "", // "", "on", "off"
  effort: saved.effort ?? "", // "", "low", "medium", "high"
  lastChats: saved.lastChats ?? {},
  paramsOpen: saved.paramsOpen ?? window.matchMedia("(min-width: 1200px)").matches,
  chats: [],
  chat: null, // {id, mode, character, title, incognito?, messages: [{id, role, content, ...}]}
  gen: null, // the reply being written
  files: [], // files read for the next message: {name, kind, text, chars, tokens, notice}
  context: null, // {tokens, n_ctx, reply_room}: the chat's prompt as it stands
};
state.sampling = {
  ...FALLBACK_SAMPLING, ...(presetByName(state.presets, state.preset)?.sampling || {}), ...(saved.sampling || {}),
};

export function remember() {
  store.save(STORE_KEY, {
    ...store.load(STORE_KEY), // the notebook page keeps its own keys here too
    mode: state.mode, character: state.character, preset: state.preset, sampling: state.sampling,
    template: state.template, userName: state.userName, userBio: state.userBio,
    thinking: state.thinking, effort: state.effort, lastChats: state.lastChats, paramsOpen: state.paramsOpen,
  });
}

export function currentCharacter() {
  return state.characters.find((c) => c.key === state.character) || null;
}

export function characterKey() {
  return state.mode === "instruct" ? null : state.character;
}

export function placeKey() {
  return state.mode === "instruct" ? "instruct" : `chat|${state.character}`;
}

export function userName() {
  return state.userName || currentCharacter()?.user_name || "You";
}

export function botName() {
  if (state.mode === "instruct") return "Assistant";
  return currentCharacter()?.name || state.character;
}

export function incognito() {
  return Boolean(state.chat?.incognito);
}

/** The chat as requests name it: mode, character, and whether it is incognito. */
export function chatPlace() {
  return { mode: state.mode, character: characterKey(), incognito: incognito() };
}

export function placeQuery() {
  const params = new URLSearchParams({ mode: state.mode });
  if (characterKey()) params.set("character", characterKey());
  if (incognito()) params.set("incognito", "1");
  return params.toString();
}

/** The reasoning switches the template in use reads (none in chat mode: no template). */
export function templateSwitches(status) {
  if (state.mode === "chat") return [];
  if (state.template) return state.templateSwitches[state.template] || [];
  return status?.model?.template_switches || [];
}

/** The choices a generation or a prompt preview sends besides the chat. */
export function promptChoices(status) {
  const switches = templateSwitches(status);
  const out = {
    sampling: state.sampling,
    user_name: state.userName || "",
    user_bio: state.userBio || "",
    instruction_template: state.template || "",
  };
  if (switches.includes("enable_thinking") && state.thinking) out.enable_thinking = state.thinking === "on";
  if (switches.includes("reasoning_effort") && state.effort) out.reasoning_effort = state.effort;
  return out;
}

// Functions one module offers the others without importing them (chat.js fills these in).
export const actions = {
  openChat: async () => {},
  reloadChat: async () => {},
  enterPlace: async () => {},
  refreshContext: () => {},
  generate: () => {},
};
