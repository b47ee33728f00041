// Model output is untrusted. It is rendered in two locks:
// 1. markdown-it with HTML disabled: every "<" in the text is escaped, and links other than
//    http(s) and mailto are not made into links;
// 2. the produced HTML is parsed into an inert <template> and walked with an allow-list:
//    unknown elements are unwrapped or dropped, and every attribute is removed except href on
//    links (http, https, mailto only) and highlight.js class names.
// The page's Content-Security-Policy forbids inline scripts as a third lock.

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

const md = window.markdownit({
  html: false,
  linkify: true,
  breaks: true,
  typographer: false,
  highlight(code, language) {
    const hljs = window.hljs;
    if (hljs && language && hljs.getLanguage(language)) {
      try {
        return hljs.highlight(code, { language, ignoreIllegals: true }).value;
      } catch {
        /* fall back to plain, escaped code */
      }
    }
    return "";
  },
});
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

/** Markdown text -> a sanitized DocumentFragment ready to insert. */
export function renderMarkdown(text) {
  const template = document.createElement("template");
  template.innerHTML = md.render(String(text ?? ""));
  const fragment = sanitize(template.content);
  decorateCodeBlocks(fragment);
  return fragment;
}
