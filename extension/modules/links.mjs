// Finds the links of a mail that are tracked, rewrites them to the helper's click
// URLs at send time, and turns click URLs quoted from earlier mails back into the
// links they stand for.
//
// Pure, like pixel.mjs: the DOMParser class is an argument. Which links are left
// alone, and why:
//   - anything but http(s): mailto:, tel:, in-page anchors, relative links;
//   - links inside a quoted earlier mail (a reply's <blockquote type="cite">, a
//     forward): they are someone else's words;
//   - links whose visible text is itself an address: mail clients (Thunderbird
//     among them) warn of a scam when the shown address differs from the target;
//   - links that already point at the pixel server.
// A tracked link is judged and handed to the helper as a browser reads it (the
// WHATWG href of URL), never as written: "https://good.example\\@evil.example/" is
// good.example to the reader's browser, and so it must be to the signed redirect.

import { normalizePixelBase } from "./pixel.mjs";

const QUOTED = 'blockquote[type="cite"], .moz-forward-container, .moz-cite-prefix';
// Shown text that reads as an address: "https://…", "www.…", "example.org/path".
const LOOKS_LIKE_ADDRESS = /^(?:[a-z][a-z0-9+.-]*:\/\/|www\.)\S*$|^[\w-]+(?:\.[\w-]+)+(?:[/:?#]\S*)?$/i;
const MAX_TEXT = 200;

function parse(html, DOMParserClass) {
  return new DOMParserClass().parseFromString(html ?? "", "text/html");
}

function serialize(doc) {
  const doctype = doc.doctype ? `<!DOCTYPE ${doc.doctype.name}>\n` : "";
  return doctype + doc.documentElement.outerHTML;
}

function visibleText(anchor) {
  const text = anchor.textContent.replace(/\s+/g, " ").trim();
  if (text) {
    return text;
  }
  const img = anchor.querySelector("img[alt]");
  return img ? img.getAttribute("alt").trim() : "";
}

function isOnPixelServer(href, pixelBases) {
  return pixelBases.some((base) => {
    const normal = normalizePixelBase(base);
    return normal !== null && href.startsWith(normal);
  });
}

/** The link of an <a> as a browser reads it (a URL), or null when it is not absolute. */
function linkUrl(anchor) {
  try {
    return new URL((anchor.getAttribute("href") ?? "").trim());
  } catch {
    return null;
  }
}

/** Why an <a> is not tracked, or null when it is. */
export function skipReason(anchor, pixelBases = []) {
  const href = (anchor.getAttribute("href") ?? "").trim();
  const url = linkUrl(anchor);
  if (url === null) {
    return "not an absolute link";
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    return `a ${url.protocol} link`;
  }
  if (anchor.closest(QUOTED)) {
    return "inside a quoted mail";
  }
  const text = visibleText(anchor);
  if (text === href || text === url.href || LOOKS_LIKE_ADDRESS.test(text)) {
    return "its text is an address";
  }
  if (isOnPixelServer(url.href, pixelBases)) {
    return "already on the pixel server";
  }
  return null;
}

function trackedAnchors(doc, pixelBases) {
  return [...doc.querySelectorAll("a[href]")].filter((anchor) => skipReason(anchor, pixelBases) === null);
}

/** The tracked links of html, in order: [{target, text}] (target: the href a browser makes of the link). */
export function trackableLinks(html, pixelBases, DOMParserClass) {
  return trackedAnchors(parse(html, DOMParserClass), pixelBases).map((anchor) => ({
    target: linkUrl(anchor).href,
    text: visibleText(anchor).slice(0, MAX_TEXT),
  }));
}

/**
 * html with the tracked links (in trackableLinks' order) pointing at urls[i];
 * a null url leaves that link as it was. Throws when urls does not match the links.
 */
export function rewriteLinks(html, urls, pixelBases, DOMParserClass) {
  const doc = parse(html, DOMParserClass);
  const anchors = trackedAnchors(doc, pixelBases);
  if (!Array.isArray(urls) || urls.length !== anchors.length) {
    throw new Error(`the helper gave ${urls?.length} click URLs for ${anchors.length} links`);
  }
  anchors.forEach((anchor, index) => {
    const url = urls[index];
    if (typeof url === "string" && isOnPixelServer(url, pixelBases)) {
      anchor.setAttribute("href", url);
    }
  });
  return serialize(doc);
}

/** The original link a click URL of ours stands for, or null. */
export function clickTarget(href, pixelBases) {
  if (typeof href !== "string" || !isOnPixelServer(href, pixelBases)) {
    return null;
  }
  let url;
  try {
    url = new URL(href);
  } catch {
    return null;
  }
  if (!/\/c\/[a-z2-7]{32}\/\d+\/[a-z2-7]{20}$/.test(url.pathname)) {
    return null;
  }
  return url.searchParams.get("u");
}

/**
 * Turns our click URLs back into their links (a reply quoting a tracked mail must
 * not count its readers as clicks on the old one). Returns {html, restored}.
 */
export function restoreLinks(html, pixelBases, DOMParserClass) {
  const doc = parse(html, DOMParserClass);
  let restored = 0;
  for (const anchor of doc.querySelectorAll("a[href]")) {
    const target = clickTarget(anchor.getAttribute("href"), pixelBases);
    if (target) {
      anchor.setAttribute("href", target);
      restored += 1;
    }
  }
  return { html: restored ? serialize(doc) : html, restored };
}
