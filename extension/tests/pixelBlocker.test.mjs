import assert from "node:assert/strict";
import { describe, test } from "node:test";

import {
  blockRulesFor,
  blockingResponse,
  createRequestBlocker,
  originPatternOf,
  syncBlockRules,
} from "../modules/pixelBlocker.mjs";
import { BASE, pixelUrl } from "./fixtures.mjs";

describe("pixelBlocker", () => {
  test("a load of one of our pixels is cancelled", () => {
    assert.deepEqual(blockingResponse(pixelUrl(), [BASE]), { cancel: true });
  });

  test("other loads, even from the pixel server, go through", () => {
    assert.deepEqual(blockingResponse("https://t.example.org/p/", [BASE]), {});
    assert.deepEqual(blockingResponse("https://example.org/image.png", [BASE]), {});
  });

  test("the webRequest listener reads the pixel bases when it fires (the background may have just woken)", async () => {
    let bases = [];
    const listener = createRequestBlocker(async () => bases);
    assert.deepEqual(await listener({ url: pixelUrl(), tabId: 3, type: "image" }), {});
    bases = [BASE];
    assert.deepEqual(await listener({ url: pixelUrl(), tabId: 3, type: "image" }), { cancel: true });
  });

  test("one declarativeNetRequest block rule per known base, anchored at the URL start", () => {
    const rules = blockRulesFor([BASE, "http://old.example.net:8080/t", "nonsense"]);
    assert.deepEqual(
      rules.map((r) => [r.action.type, r.condition.urlFilter]),
      [
        ["block", `|${BASE}`],
        ["block", "|http://old.example.net:8080/t/"],
      ],
    );
    assert.equal(new Set(rules.map((r) => r.id)).size, 2);
  });

  test("the host permission asked for is the pixel server's host only, any port", () => {
    assert.equal(originPatternOf(BASE), "https://t.example.org/*");
    assert.equal(originPatternOf("http://127.0.0.1:8765/p/"), "http://127.0.0.1/*");
    assert.equal(originPatternOf("nope"), null);
  });

  test("two syncs racing (accounts changing while the add-on starts) end in the last one's rules, no Duplicate rule ID", async (t) => {
    // Like Thunderbird's: every call yields, and adding an id that exists throws.
    const rules = new Map([[7, { id: 7, condition: { urlFilter: "|https://someone-else.example/" } }]]);
    const tick = () => new Promise((resolve) => setTimeout(resolve, 1));
    globalThis.browser = {
      declarativeNetRequest: {
        async getDynamicRules() {
          await tick();
          return [...rules.values()];
        },
        async updateDynamicRules({ removeRuleIds = [], addRules = [] }) {
          await tick();
          removeRuleIds.forEach((id) => rules.delete(id));
          for (const rule of addRules) {
            if (rules.has(rule.id)) {
              throw new Error(`Duplicate rule ID: ${rule.id}`);
            }
            rules.set(rule.id, rule);
          }
        },
      },
    };
    t.after(() => delete globalThis.browser);
    const other = "http://127.0.0.1:8765/p/";
    assert.deepEqual(await Promise.all([syncBlockRules([BASE]), syncBlockRules([BASE, other]), syncBlockRules([other])]), [true, true, true]);
    assert.deepEqual(
      [...rules.values()].map((rule) => rule.condition.urlFilter).sort(),
      [`|${other}`, "|https://someone-else.example/"],
    );
    await syncBlockRules([other]);
    assert.equal(rules.size, 2);
  });
});
