// Model output is untrusted. It is rendered in two locks:
// 1. markdown-it with HTML disabled: every "<" in the text is escaped, and links other than
//    http(s) and mailto are not made into links;
// 2. the produced HTML is parsed into an inert <template> and walked with an allow-list:
//    unknown elements are unwrapped or dropped, and every attribute is removed except href on
//    links (http, https, mailto only) and highlight.js class names.
// The page's Content-Security-Policy forbids inline scripts as a third lock.
//
// Code is highlighted after the text is shown, when the page is idle (`highlightSoon`), so
// that opening a long chat or streaming a long reply never waits for highlight.js; its
// output goes through the same allow-list.

import { copyText, el, icon } from "./common.js";

const SAFE_URL = /^(https?:\/\/|mailto:)/i;
const SAFE_CLASS = /^(hljs(-[\w-]+)?|language-[\w+#.-]+|[\w-]+_)$/;
const ALLOWED = new Set([
  "P", "BR", "HR", "H1", "H2", "H3", "H4", "H5", "H6", "STRONG", "EM", "S", "DEL", "CODE", "PRE",
  "BLOCKQUOTE", "UL", "OL", "LI", "A", "TABLE", "THEAD", "TBODY", "TR", "TH", "TD", "SPAN", "SUP",
  "SUB",
]);
const DROPPED = new Set([
  "SCRIPT", "STYLE", "IFRAME", "FRAME", "FRAMESET", "OBJECT", "EMBED", "TEMPLATE", "SVG", "MATH",
  "FORM", "INPUT", "TEXTAREA", "SELECT", "BUTTON", "LINK", "META", "BASE", "NOSCRIPT", "IMG",
  "IMAGE", "PICTURE", "VIDEO", "AUDIO", "SOURCE", "CANVAS", "DIALOG", "PORTAL",
]);

const md = window.markdownit({ html: false, linkify: true, breaks: true, typographer: false });
md.disable("image");
md.validateLink = (url) => SAFE_URL.test(url.trim());

/** Remove everything that is not on the allow-list, in place. */
export function sanitize(root) {
  for (const node of [...root.childNodes]) {
    if (node.nodeType === Node.TEXT_NODE) continue;
    if (node.nodeType !== Node.ELEMENT_NODE) {
      node.remove();
      continue;
    }
    const tag = node.tagName.toUpperCase();
    if (DROPPED.has(tag)) {
      node.remove();
      continue;
    }
    sanitize(node);
    if (!ALLOWED.has(tag)) {
      node.replaceWith(...node.childNodes);
      continue;
    }
    for (const attribute of [...node.attributes]) {
      const name = attribute.name.toLowerCase();
      const value = attribute.value.trim();
      if (tag === "A" && name === "href" && SAFE_URL.test(value)) continue;
      if ((tag === "CODE" || tag === "SPAN") && name === "class") {
        const classes = value.split(/\s+/).filter((c) => SAFE_CLASS.test(c));
        if (classes.length) {
          node.setAttribute("class", classes.join(" "));
          continue;
        }
      }
      if (tag === "OL" && name === "start" && /^\d{1,7}$/.test(value)) continue;
      node.removeAttribute(attribute.name);
    }
    if (tag === "A") {
      node.setAttribute("target", "_blank");
      node.setAttribute("rel", "noopener noreferrer nofollow");
    }
  }
  return root;
}

function decorateCodeBlocks(root) {
  for (const pre of root.querySelectorAll("pre")) {
    const code = pre.querySelector("code");
    if (!code) continue;
    const language = [...code.classList].find((c) => c.startsWith("language-"))?.slice(9) || "text";
    if (!code.classList.contains("hljs")) code.classList.add("hljs");
    const button = el("button", { type: "button", class: "copy-code", "aria-label": `Copy ${language} code` },
      icon("copy"), el("span", { text: "Copy" }));
    button.addEventListener("click", async () => {
      const ok = await copyText(code.textContent);
      button.lastChild.textContent = ok ? "Copied" : "Copy failed";
      setTimeout(() => (button.lastChild.textContent = "Copy"), 1500);
    });
    const block = el("div", { class: "code-block" },
      el("div", { class: "code-head" }, el("span", { class: "code-lang", text: language }), button));
    pre.replaceWith(block);
    block.append(pre);
  }
}

/** Markdown text -> a sanitized DocumentFragment ready to insert (code not yet highlighted:
 * call `highlightSoon` on the element it goes into). */
export function renderMarkdown(text) {
  const template = document.createElement("template");
  template.innerHTML = md.render(String(text ?? ""));
  const fragment = sanitize(template.content);
  decorateCodeBlocks(fragment);
  return fragment;
}

function highlight(code) {
  const language = [...code.classList].find((c) => c.startsWith("language-"))?.slice(9);
  const hljs = window.hljs;
  code.dataset.highlighted = "1";
  if (!hljs || !language || !hljs.getLanguage(language)) return;
  try {
    const html = hljs.highlight(code.textContent, { language, ignoreIllegals: true }).value;
    const template = document.createElement("template");
    template.innerHTML = html;
    code.replaceChildren(sanitize(template.content));
  } catch {
    /* left plain */
  }
}

const waiting = new Set();
let scheduled = false;
const idle = window.requestIdleCallback || ((run) => setTimeout(() => run({ timeRemaining: () => 8 }), 30));
let highlighter = null;

/** highlight.js, loaded the first time there is code to highlight (the page does not wait). */
function loadHighlighter() {
  highlighter ??= new Promise((resolve) => {
    if (window.hljs) return resolve();
    const script = document.createElement("script");
    script.src = new URL("../vendor/highlight.min.js", import.meta.url).href;
    script.onload = script.onerror = () => resolve();
    document.head.append(script);
  });
  return highlighter;
}

/** Highlight the code blocks under `root` when the page has time, a few at a time. */
export function highlightSoon(root) {
  for (const code of root.querySelectorAll("pre > code:not([data-highlighted])")) waiting.add(code);
  if (waiting.size && !scheduled) {
    scheduled = true;
    loadHighlighter().then(() => idle(work));
  }
}

function work(deadline) {
  for (const code of waiting) {
    waiting.delete(code);
    if (code.isConnected) highlight(code);
    if (deadline.timeRemaining() < 4) break;
  }
  scheduled = waiting.size > 0;
  if (scheduled) idle(work);
}

/** A streamed text, rendered in blocks: the blocks that are finished (up to the last blank
 * line outside a code fence) are rendered once and kept; only the last one is rendered again
 * as it grows. The whole text is rendered once more when it is complete (`renderMarkdown`). */
export class MarkdownStream {
  constructor(root) {
    this.root = root;
    this.done = 0; // characters of text rendered into kept blocks
    this.kept = document.createElement("div");
    this.kept.className = "md-kept";
    this.tail = document.createElement("div");
    this.tail.className = "md-tail";
    root.replaceChildren(this.kept, this.tail);
  }

  update(text) {
    const cut = stableEnd(text, this.done);
    if (cut > this.done) {
      this.kept.append(renderMarkdown(text.slice(this.done, cut)));
      this.done = cut;
      highlightSoon(this.kept);
    }
    this.tail.replaceChildren(renderMarkdown(text.slice(this.done)));
  }
}

/** Where the finished blocks of `text` end: after the last blank line that is outside a
 * code fence, at or after `from`. */
function stableEnd(text, from) {
  let fence = null;
  let end = from;
  let at = 0;
  for (const line of text.split("\n")) {
    const next = at + line.length + 1;
    const mark = line.match(/^\s{0,3}(`{3,}|~{3,})/);
    if (mark) {
      if (!fence) fence = mark[1][0];
      else if (mark[1][0] === fence) fence = null;
    } else if (!fence && !line.trim() && next <= text.length && next > from) {
      end = next;
    }
    at = next;
  }
  return end;
}
