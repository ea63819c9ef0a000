import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { blockRulesFor, blockingResponse, createRequestBlocker, originPatternOf } from "../modules/pixelBlocker.mjs";
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
});
