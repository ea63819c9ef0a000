import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";

import { clickTarget, restoreLinks, rewriteLinks, skipReason, trackableLinks } from "../modules/links.mjs";
import { createTabQueue, createTabStore } from "../modules/composeTabs.mjs";
import { createSendFlow } from "../modules/sendFlow.mjs";
import { DOMParser } from "./dom.mjs";
import { BASE, clickUrl, fakeHelper, memoryArea, quietLog } from "./fixtures.mjs";

const body = (inner) => `<!DOCTYPE html><html><head></head><body>${inner}</body></html>`;
const anchor = (html) => new DOMParser().parseFromString(body(html), "text/html").querySelector("a");

describe("links: what is tracked", () => {
  test("an http(s) link with words is tracked; entities in the href come back as the target", () => {
    const links = trackableLinks(
      body('<p>See <a href="https://shop.example.org/offer?a=1&amp;b=2#terms"><b>the</b> offer</a></p>'),
      [BASE],
      DOMParser,
    );
    assert.deepEqual(links, [{ target: "https://shop.example.org/offer?a=1&b=2#terms", text: "the offer" }]);
  });

  const skipped = {
    "a mailto: link": '<a href="mailto:ann@example.org">write to me</a>',
    "a tel: link": '<a href="tel:+441234">call me</a>',
    "an in-page anchor": '<a href="#part2">part two</a>',
    "a relative link": '<a href="offer.html">the offer</a>',
    "a link in a quoted reply": '<blockquote type="cite"><a href="https://a.example/x">their link</a></blockquote>',
    "a link in a forward": '<div class="moz-forward-container"><a href="https://a.example/x">their link</a></div>',
    "a link showing an address": '<a href="https://a.example/x">https://a.example/x</a>',
    "a link showing a bare domain": '<a href="https://a.example/x">a.example/x</a>',
    "a link showing www.": '<a href="https://www.a.example/">www.a.example</a>',
    "a javascript: link": '<a href="javascript:alert(1)">click</a>',
    "a link already on the pixel server": `<a href="${BASE}c/x">ours</a>`,
  };
  for (const [name, html] of Object.entries(skipped)) {
    test(`${name} is left as it was`, () => {
      assert.notEqual(skipReason(anchor(html), [BASE]), null);
      assert.deepEqual(trackableLinks(body(html), [BASE], DOMParser), []);
    });
  }

  test("an image link is named by its alt text", () => {
    const links = trackableLinks(body('<a href="https://a.example/"><img src="cid:x" alt="Our shop"></a>'), [BASE], DOMParser);
    assert.deepEqual(links, [{ target: "https://a.example/", text: "Our shop" }]);
  });
});

describe("links: judged as a browser reads them", () => {
  // The same tricky targets the helper's signer is tested with (tests/test_clicks.py).
  const table = JSON.parse(readFileSync(new URL("../../tests/data/url_targets.json", import.meta.url), "utf8"));
  const escapeAttribute = (text) => text.replace(/&/g, "&amp;").replace(/"/g, "&quot;");
  const browserReads = (text) => {
    try {
      return new URL(text);
    } catch {
      return null;
    }
  };

  for (const { name, target } of table.targets) {
    test(`${name}: the helper is handed the WHATWG href, never the text as written`, () => {
      const links = trackableLinks(body(`<p><a href="${escapeAttribute(target)}">the offer</a></p>`), [BASE], DOMParser);
      const url = browserReads(target.trim());
      if (url === null || !["http:", "https:"].includes(url.protocol)) {
        assert.deepEqual(links, []);
      } else {
        assert.deepEqual(links, [{ target: url.href, text: "the offer" }]);
      }
    });
  }

  test("a backslash before an @ stays on the host the reader's browser opens", () => {
    const [link] = trackableLinks(body('<a href="https://good.example\\@evil.example/">the offer</a>'), [BASE], DOMParser);
    assert.equal(new URL(link.target).host, "good.example");
    assert.equal(link.target, "https://good.example/@evil.example/");
  });
});

describe("links: rewriting and restoring", () => {
  const html = body(
    '<p><a href="https://one.example/">one</a> <a href="mailto:x@y">mail</a> <a href="https://two.example/">two</a></p>',
  );

  test("the tracked links take the helper's URLs in order; null and the skipped stay; the HTML stays valid", () => {
    const out = rewriteLinks(html, [clickUrl(0), null], [BASE], DOMParser);
    const doc = new DOMParser().parseFromString(out, "text/html");
    assert.deepEqual(
      [...doc.querySelectorAll("a")].map((a) => a.getAttribute("href")),
      [clickUrl(0), "mailto:x@y", "https://two.example/"],
    );
    assert.deepEqual([...doc.querySelectorAll("a")].map((a) => a.textContent), ["one", "mail", "two"]);
  });

  test("a mismatched answer is refused rather than guessed", () => {
    assert.throws(() => rewriteLinks(html, [clickUrl(0)], [BASE], DOMParser));
  });

  test("a URL that is not on the pixel server is never put in", () => {
    const out = rewriteLinks(html, ["https://evil.example/", null], [BASE], DOMParser);
    assert.ok(!out.includes("evil.example"));
  });

  test("a quoted click URL of ours turns back into its link", () => {
    const quoted = body(`<blockquote type="cite"><a href="${clickUrl(2, "https://x.example/?q=1")}">offer</a></blockquote>`);
    assert.equal(clickTarget(clickUrl(2, "https://x.example/?q=1"), [BASE]), "https://x.example/?q=1");
    const { html: out, restored } = restoreLinks(quoted, [BASE], DOMParser);
    assert.equal(restored, 1);
    assert.ok(out.includes('href="https://x.example/?q=1"'));
  });
});

describe("links in the send flow", () => {
  function flow(helper, settings = {}) {
    return createSendFlow({
      helper,
      tabStore: createTabStore(memoryArea()),
      runForTab: createTabQueue(),
      DOMParser,
      localArea: memoryArea({ pixelBases: [BASE], ...settings }),
      log: quietLog,
      notify: { helperFailed() {}, recordFailed() {} },
      editor: { readBody: async () => "", writeBody: async () => {} },
    });
  }
  const details = (extra = {}) => ({
    isPlainText: false, deliveryFormat: "auto", identityId: "id1", to: ["ann@example.org"], subject: "S",
    body: body('<p><a href="https://shop.example.org/offer?a=1&amp;b=2">the offer</a></p>'), ...extra,
  });

  test("a tracked mail goes out with click URLs, the pixel, and the helper told each link", async () => {
    const helper = fakeHelper();
    const result = await flow(helper).beforeSend({ id: 1 }, details());
    assert.ok(result.details.body.includes(clickUrl(0).replace(/&/g, "&amp;")));
    const [call] = helper.callsOf("links");
    assert.deepEqual(call.args.links, [{ target: "https://shop.example.org/offer?a=1&b=2", text: "the offer" }]);
  });

  test("link tracking turned off for the identity keeps the links and the pixel", async () => {
    const helper = fakeHelper();
    const result = await flow(helper, { trackLinks: { id1: false } }).beforeSend({ id: 1 }, details());
    assert.equal(helper.callsOf("links").length, 0);
    assert.ok(result.details.body.includes("https://shop.example.org/offer?a=1&amp;b=2"));
    assert.ok(result.details.body.includes("<img"));
  });

  test("a helper that cannot sign links costs the clicks, not the pixel or the send", async () => {
    const helper = fakeHelper({ links: () => { throw new Error("boom"); } });
    const result = await flow(helper).beforeSend({ id: 1 }, details());
    assert.ok(result.details.body.includes("https://shop.example.org/offer?a=1&amp;b=2"));
    assert.ok(result.details.body.includes("<img"));
  });
});
