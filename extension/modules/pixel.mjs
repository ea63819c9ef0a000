// Finds, strips and inserts mailtracker's tracking pixel in an HTML mail body.
//
// Pure: it never touches `browser` and takes the DOMParser class as an argument,
// so Thunderbird passes its own and the node tests pass jsdom's. We parse with a
// real HTML parser because Thunderbird re-wraps long lines inside <img> tags of
// sent mail, so a quoted pixel rarely sits on one line.

// Tokens are 32 base32 characters; the helper names every pixel "<token>.gif".
const PIXEL_FILE = /^[a-z2-7]{32}\.gif$/;

/** Returns pixelBase as a normalised "https://host/prefix/" string, or null if it is not an http(s) URL. */
export function normalizePixelBase(pixelBase) {
  if (typeof pixelBase !== "string" || pixelBase.trim() === "") {
    return null;
  }
  let url;
  try {
    url = new URL(pixelBase);
  } catch {
    return null;
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    return null;
  }
  const path = url.pathname.endsWith("/") ? url.pathname : `${url.pathname}/`;
  return `${url.origin}${path}`;
}

/** Derives the pixel base from one pixel URL: everything up to the last "/". */
export function pixelBaseOf(pixelUrl) {
  const base = normalizePixelBase(pixelUrl);
  if (!base) {
    return null;
  }
  // normalizePixelBase added a trailing "/" after the file name; drop both.
  const trimmed = base.slice(0, -1);
  return trimmed.slice(0, trimmed.lastIndexOf("/") + 1);
}

function matchesBase(candidate, pixelBases) {
  let url;
  try {
    url = new URL(candidate);
  } catch {
    return false;
  }
  for (const pixelBase of pixelBases) {
    const base = normalizePixelBase(pixelBase);
    if (!base) {
      continue;
    }
    const baseUrl = new URL(base);
    if (url.origin !== baseUrl.origin || !url.pathname.startsWith(baseUrl.pathname)) {
      continue;
    }
    if (PIXEL_FILE.test(url.pathname.slice(baseUrl.pathname.length))) {
      return true;
    }
  }
  return false;
}

/**
 * True if src is one of our pixels under any of pixelBases, with a valid-looking token.
 * Image proxies (Gmail's among them) keep the original URL after a "#", so a
 * proxied copy quoted in a reply is recognised too.
 */
export function isPixelUrl(src, pixelBases) {
  if (typeof src !== "string" || !pixelBases?.length) {
    return false;
  }
  // new URL() drops tabs and newlines anywhere in a URL (the URL standard), so
  // a src that a mail client folded over several lines still names our pixel.
  if (matchesBase(src, pixelBases)) {
    return true;
  }
  const hash = src.indexOf("#");
  return hash >= 0 && matchesBase(src.slice(hash + 1), pixelBases);
}

function parse(html, DOMParserClass) {
  return new DOMParserClass().parseFromString(html ?? "", "text/html");
}

function serialize(doc) {
  const doctype = doc.doctype ? `<!DOCTYPE ${doc.doctype.name}>\n` : "";
  return doctype + doc.documentElement.outerHTML;
}

function removeOurPixels(doc, pixelBases) {
  let removed = 0;
  for (const img of doc.querySelectorAll("img[src]")) {
    if (isPixelUrl(img.getAttribute("src"), pixelBases)) {
      img.remove();
      removed += 1;
    }
  }
  return removed;
}

/** Counts our pixels in html (for tests and diagnostics). */
export function countPixels(html, pixelBases, DOMParserClass) {
  const doc = parse(html, DOMParserClass);
  return [...doc.querySelectorAll("img[src]")].filter((img) =>
    isPixelUrl(img.getAttribute("src"), pixelBases),
  ).length;
}

/**
 * Removes every pixel of ours from html (a reply or forward quoting a tracked
 * mail carries the old one) and leaves every other image alone.
 * Returns {html, removed}; html is the input untouched when nothing was removed.
 */
export function stripPixels(html, pixelBases, DOMParserClass) {
  const doc = parse(html, DOMParserClass);
  const removed = removeOurPixels(doc, pixelBases);
  return { html: removed ? serialize(doc) : html, removed };
}

function pixelElement(doc, tag, pixelBases, DOMParserClass) {
  // Prefer the helper's own <img> (it may carry styling), but only if it really
  // is the minted pixel; otherwise build a plain one from the URL.
  const fromHelper = parse(tag.html ?? "", DOMParserClass).querySelector("img[src]");
  let img;
  if (fromHelper && isPixelUrl(fromHelper.getAttribute("src"), pixelBases)) {
    img = doc.importNode(fromHelper, false);
  } else {
    img = doc.createElement("img");
    img.setAttribute("src", tag.url);
    img.setAttribute("width", "1");
    img.setAttribute("height", "1");
    img.setAttribute("alt", "");
  }
  // Tells Thunderbird never to fetch and embed the image as an attachment,
  // which would both fire the pixel from the sender's machine and defeat it.
  img.setAttribute("moz-do-not-send", "true");
  return img;
}

/**
 * Returns html with our old pixels removed and the pixel of tag ({url, html})
 * appended to the end of <body>, exactly once. Works for bodies with or
 * without <html>/<body>. Throws if tag.url is not a pixel under pixelBases.
 */
export function insertPixel(html, tag, pixelBases, DOMParserClass) {
  if (!isPixelUrl(tag?.url, pixelBases)) {
    throw new Error(`not a mailtracker pixel URL: ${tag?.url}`);
  }
  const doc = parse(html, DOMParserClass);
  removeOurPixels(doc, pixelBases);
  doc.body.appendChild(pixelElement(doc, tag, pixelBases, DOMParserClass));
  return serialize(doc);
}
