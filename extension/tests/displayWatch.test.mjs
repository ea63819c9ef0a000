import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { HelperError } from "../modules/nativeHost.mjs";
import { createDisplayWatcher } from "../modules/displayWatch.mjs";
import { fakeHelper, quietLog } from "./fixtures.mjs";

const mine = { headerMessageId: "mine@x", author: "Me <me@example.org>", folder: { specialUse: ["sent"] } };
const theirs = { headerMessageId: "theirs@x", author: "Ann <ann@example.org>", folder: { type: "inbox" } };

function watcher(helper) {
  const enabled = [];
  const onDisplayed = createDisplayWatcher({
    helper,
    loadOwnEmails: async () => ["me@example.org"],
    loadSentIds: async () => [],
    setActionEnabled: async (tabId, on) => enabled.push([tabId, on]),
    log: quietLog,
  });
  return { onDisplayed, enabled };
}

describe("displayWatch", () => {
  test("displaying one's own sent message enables the status button and warns the helper of a self fetch", async () => {
    const helper = fakeHelper();
    const { onDisplayed, enabled } = watcher(helper);
    await onDisplayed({ id: 4 }, [mine]);
    assert.deepEqual(enabled, [[4, true]]);
    const [call] = helper.callsOf("selfFetch");
    assert.equal(call.args.messageId, "mine@x");
    // The moment the display began, so a late helper still labels the fetch as the sender's own.
    assert.ok(Math.abs(call.args.at - Date.now()) < 5000, `at is ${call.args.at}`);
  });

  test("someone else's message disables the button and leaves the helper alone", async () => {
    const helper = fakeHelper();
    const { onDisplayed, enabled } = watcher(helper);
    await onDisplayed({ id: 4 }, { messages: [theirs] });
    assert.deepEqual(enabled, [[4, false]]);
    assert.deepEqual(helper.calls, []);
  });

  test("a multi-message selection loads no bodies, so no self fetch is reported", async () => {
    const helper = fakeHelper();
    const { onDisplayed, enabled } = watcher(helper);
    await onDisplayed({ id: 4 }, [mine, mine]);
    assert.deepEqual(enabled, [[4, false]]);
    assert.deepEqual(helper.calls, []);
  });

  test("a helper failure while reading mail is swallowed", async () => {
    const helper = fakeHelper({
      selfFetch: () => {
        throw new HelperError("missing", "No such native application");
      },
    });
    const { onDisplayed } = watcher(helper);
    await onDisplayed({ id: 4 }, [mine]);
  });
});
