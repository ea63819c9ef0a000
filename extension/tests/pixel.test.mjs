import assert from "node:assert/strict";
import { describe, test } from "node:test";

import {
  countPixels,
  insertPixel,
  isPixelUrl,
  normalizePixelBase,
  pixelBaseOf,
  stripPixels,
} from "../modules/pixel.mjs";
import { DOMParser } from "./dom.mjs";
import { BASE, TOKEN, TOKEN2, pixelUrl } from "./fixtures.mjs";

const tag = (token = TOKEN) => ({
  url: pixelUrl(token),
  html: `<img src="${pixelUrl(token)}" width="1" height="1" alt="">`,
});
const count = (html, bases = [BASE]) => countPixels(html, bases, DOMParser);
const imgSrcs = (html) =>
  [...new DOMParser().parseFromString(html, "text/html").querySelectorAll("img")].map((i) => i.getAttribute("src"));

describe("isPixelUrl", () => {
  test("accepts a URL under the pixel base with a 32-char base32 token and .gif", () => {
    assert.equal(isPixelUrl(pixelUrl(), [BASE]), true);
  });

  test("rejects another host, another prefix, or no known base", () => {
    assert.equal(isPixelUrl(`https://other.example.org/p/${TOKEN}.gif`, [BASE]), false);
    assert.equal(isPixelUrl(`https://t.example.org/q/${TOKEN}.gif`, [BASE]), false);
    assert.equal(isPixelUrl(pixelUrl(), []), false);
  });

  test("rejects names that are not a valid-looking token", () => {
    assert.equal(isPixelUrl(`${BASE}${TOKEN.toUpperCase()}.gif`, [BASE]), false);
    assert.equal(isPixelUrl(`${BASE}${TOKEN.slice(1)}.gif`, [BASE]), false);
    assert.equal(isPixelUrl(`${BASE}${TOKEN.slice(1)}0.gif`, [BASE]), false, "0 is not base32");
    assert.equal(isPixelUrl(`${BASE}${TOKEN}.png`, [BASE]), false);
    assert.equal(isPixelUrl(`${BASE}sub/${TOKEN}.gif`, [BASE]), false);
  });

  test("accepts a src folded over several lines, as a mail client may leave it", () => {
    assert.equal(isPixelUrl(`  https://t.example.org/p/${TOKEN.slice(0, 10)}\n${TOKEN.slice(10)}.gif\n`, [BASE]), true);
  });

  test("accepts an image proxy URL that carries our pixel after '#'", () => {
    const proxied = `https://ci3.googleusercontent.com/meips/ADKq_Nb1x2#${pixelUrl()}`;
    assert.equal(isPixelUrl(proxied, [BASE]), true);
  });

  test("matches any of several bases, e.g. an old server address", () => {
    const old = "http://old.example.net:8080/track/";
    assert.equal(isPixelUrl(pixelUrl(TOKEN, old), [BASE, old]), true);
  });
});

describe("pixel bases", () => {
  test("normalizePixelBase adds the trailing slash and refuses non-http URLs", () => {
    assert.equal(normalizePixelBase("https://T.example.org/p"), "https://t.example.org/p/");
    assert.equal(normalizePixelBase("ftp://t.example.org/p/"), null);
    assert.equal(normalizePixelBase("not a url"), null);
  });

  test("pixelBaseOf derives the base from a minted pixel URL", () => {
    assert.equal(pixelBaseOf(pixelUrl()), BASE);
  });
});

describe("insertPixel", () => {
  test("appends exactly one pixel at the end of <body> of a full document", () => {
    const html = "<!DOCTYPE html><html><head></head><body><p>Hello</p><p>Bye</p></body></html>";
    const out = insertPixel(html, tag(), [BASE], DOMParser);
    assert.equal(count(out), 1);
    const body = new DOMParser().parseFromString(out, "text/html").body;
    assert.equal(body.lastElementChild.tagName, "IMG");
    assert.equal(body.lastElementChild.getAttribute("src"), pixelUrl());
    assert.match(out, /^<!DOCTYPE html>/);
    assert.match(out, /<p>Hello<\/p><p>Bye<\/p>/);
  });

  test("works on a body fragment without <html> or <body>", () => {
    const out = insertPixel("<p>Just a fragment</p>", tag(), [BASE], DOMParser);
    assert.equal(count(out), 1);
    const body = new DOMParser().parseFromString(out, "text/html").body;
    assert.equal(body.firstElementChild.textContent, "Just a fragment");
    assert.equal(body.lastElementChild.getAttribute("src"), pixelUrl());
  });

  test("works on an empty body", () => {
    assert.equal(count(insertPixel("", tag(), [BASE], DOMParser)), 1);
  });

  test("inserting twice still leaves exactly one pixel", () => {
    const once = insertPixel("<p>x</p>", tag(), [BASE], DOMParser);
    const twice = insertPixel(once, tag(), [BASE], DOMParser);
    assert.equal(count(twice), 1);
  });

  test("replaces the old pixel of a quoted tracked mail and keeps other images", () => {
    const reply = `<p>Thanks!</p><blockquote><p>Old mail</p><img src="https://cdn.example.com/logo.png">
      <img width="1"
        height="1" alt=""
        src="${pixelUrl(TOKEN2)}"></blockquote>`;
    const out = insertPixel(reply, tag(TOKEN), [BASE], DOMParser);
    assert.deepEqual(imgSrcs(out), ["https://cdn.example.com/logo.png", pixelUrl(TOKEN)]);
  });

  test("marks the pixel moz-do-not-send and keeps the helper's attributes", () => {
    const out = insertPixel("<p>x</p>", tag(), [BASE], DOMParser);
    const img = new DOMParser().parseFromString(out, "text/html").querySelector("img");
    assert.equal(img.getAttribute("moz-do-not-send"), "true");
    assert.equal(img.getAttribute("width"), "1");
    assert.equal(img.getAttribute("height"), "1");
    assert.equal(img.getAttribute("alt"), "");
  });

  test("builds the <img> from the URL when the helper's html is not that pixel", () => {
    const out = insertPixel("<p>x</p>", { url: pixelUrl(), html: "<b>oops</b>" }, [BASE], DOMParser);
    const img = new DOMParser().parseFromString(out, "text/html").querySelector("img");
    assert.equal(img.getAttribute("src"), pixelUrl());
    assert.equal(img.getAttribute("alt"), "");
  });

  test("refuses a URL that is not a pixel under the known bases", () => {
    assert.throws(() => insertPixel("<p>x</p>", { url: "https://evil.example/x.gif" }, [BASE], DOMParser));
  });
});

describe("stripPixels", () => {
  test("removes a pixel whose <img> tag Thunderbird re-wrapped over several lines", () => {
    const sent = [
      "<p>Earlier mail</p>",
      '<img moz-do-not-send="true"',
      '  src="https://t.example.org/p/' + TOKEN + '.gif"',
      '  alt="" width="1"',
      '  height="1">',
    ].join("\r\n");
    const { html, removed } = stripPixels(sent, [BASE], DOMParser);
    assert.equal(removed, 1);
    assert.equal(count(html), 0);
    assert.match(html, /Earlier mail/);
  });

  test("removes every quoted pixel of ours, from every level of quoting", () => {
    const thread = `<p>3</p><blockquote><img src="${pixelUrl(TOKEN)}"><blockquote><img src="${pixelUrl(TOKEN2)}"></blockquote></blockquote>`;
    const { html, removed } = stripPixels(thread, [BASE], DOMParser);
    assert.equal(removed, 2);
    assert.deepEqual(imgSrcs(html), []);
  });

  test("leaves other images alone, including look-alikes outside pixel_base or with a bad token", () => {
    const others = [
      "https://t.example.org/logo.png",
      `https://t.example.org/other/${TOKEN}.gif`,
      `https://elsewhere.example/p/${TOKEN}.gif`,
      `${BASE}not-a-token.gif`,
      "cid:part1.abc@example.org",
      "data:image/gif;base64,R0lGODlhAQABAAAAACw=",
    ];
    const html = others.map((src) => `<img src="${src}">`).join("");
    const result = stripPixels(html, [BASE], DOMParser);
    assert.equal(result.removed, 0);
    assert.equal(result.html, html, "untouched input is returned as is");
  });

  test("does nothing when no pixel base is known yet", () => {
    const html = `<img src="${pixelUrl()}">`;
    assert.deepEqual(stripPixels(html, [], DOMParser), { html, removed: 0 });
  });
});
