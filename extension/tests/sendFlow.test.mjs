import assert from "node:assert/strict";
import { beforeEach, describe, test } from "node:test";

import { createTabQueue, createTabStore } from "../modules/composeTabs.mjs";
import { HelperError, TRACKING_PAUSED } from "../modules/nativeHost.mjs";
import { countPixels } from "../modules/pixel.mjs";
import { createSendFlow } from "../modules/sendFlow.mjs";
import { DOMParser } from "./dom.mjs";
import { BASE, TOKEN2, fakeHelper, memoryArea, pixelUrl, quietLog } from "./fixtures.mjs";

const TAB = { id: 7 };

function composeDetails(extra = {}) {
  return {
    isPlainText: false,
    deliveryFormat: "auto",
    identityId: "id1",
    from: "Me <me@example.org>",
    to: ["Ann <ann@example.org>"],
    cc: [],
    bcc: [],
    subject: "Quarterly numbers",
    body: "<!DOCTYPE html><html><head></head><body><p>Hello</p></body></html>",
    ...extra,
  };
}

let local;
let session;
let notices;
let editorBody;

function makeFlow(helper, { settings = {} } = {}) {
  Object.assign(local.data, settings);
  return createSendFlow({
    helper,
    tabStore: createTabStore(session),
    runForTab: createTabQueue(),
    DOMParser,
    localArea: local,
    log: quietLog,
    notify: {
      helperFailed: (error, options) => notices.push({ type: "helperFailed", error, ...options }),
      recordFailed: (error) => notices.push({ type: "recordFailed", error }),
    },
    editor: {
      readBody: async () => editorBody,
      writeBody: async (_tabId, body) => {
        editorBody = body;
      },
    },
  });
}

const pixels = (html) => countPixels(html, [BASE], DOMParser);

beforeEach(() => {
  local = memoryArea({ pixelBases: [BASE] });
  session = memoryArea();
  notices = [];
  editorBody = "";
});

describe("onBeforeSend", () => {
  test("a tracked HTML email gets one freshly minted pixel and is forced to multipart", async () => {
    const helper = fakeHelper();
    const flow = makeFlow(helper);
    const result = await flow.beforeSend(TAB, composeDetails());
    assert.deepEqual(helper.callsOf("mint").map((c) => c.args), [
      { subject: "Quarterly numbers", recipients: ["Ann <ann@example.org>"], identity: "me@example.org" },
    ]);
    assert.equal(pixels(result.details.body), 1);
    assert.equal(result.details.deliveryFormat, "both");
  });

  test("a second onBeforeSend for the same send attempt reuses the tag instead of minting again", async () => {
    const helper = fakeHelper();
    const flow = makeFlow(helper);
    const first = await flow.beforeSend(TAB, composeDetails());
    const second = await flow.beforeSend(TAB, composeDetails({ body: first.details.body }));
    assert.equal(helper.callsOf("mint").length, 1);
    assert.equal(second.details.body, first.details.body);
  });

  test("two onBeforeSend events fired at once still mint only one tag", async () => {
    const helper = fakeHelper();
    const flow = makeFlow(helper);
    await Promise.all([flow.beforeSend(TAB, composeDetails()), flow.beforeSend(TAB, composeDetails())]);
    assert.equal(helper.callsOf("mint").length, 1);
  });

  test("if the mail changed before the next attempt, the unused tag is marked unsent and a new one minted", async () => {
    const helper = fakeHelper();
    const flow = makeFlow(helper);
    await flow.beforeSend(TAB, composeDetails());
    await flow.beforeSend(TAB, composeDetails({ subject: "Corrected numbers" }));
    assert.equal(helper.callsOf("mint").length, 2);
    assert.deepEqual(helper.callsOf("unsent").map((c) => c.args.tagId), ["tag1"]);
  });

  test("a reply quoting a tracked mail loses the old pixel and carries only the new one", async () => {
    const helper = fakeHelper();
    const flow = makeFlow(helper);
    const quoted = `<p>Re:</p><blockquote><img\n src="${pixelUrl(TOKEN2)}"\n width="1"></blockquote>`;
    const result = await flow.beforeSend(TAB, composeDetails({ body: quoted }));
    assert.equal(pixels(result.details.body), 1);
    assert.equal(result.details.body.includes(TOKEN2), false);
  });

  test("an email turned off in the popup is not minted, but quoted old pixels are still removed", async () => {
    const helper = fakeHelper();
    const flow = makeFlow(helper);
    await createTabStore(session).update(TAB.id, { choice: false });
    const result = await flow.beforeSend(TAB, composeDetails({ body: `<p>x</p><img src="${pixelUrl()}">` }));
    assert.equal(helper.callsOf("mint").length, 0);
    assert.equal(pixels(result.details.body), 0);
  });

  test("an identity whose default is off sends untracked and unchanged", async () => {
    const helper = fakeHelper();
    const flow = makeFlow(helper, { settings: { identityDefaults: { id1: false } } });
    assert.equal(await flow.beforeSend(TAB, composeDetails()), undefined);
    assert.equal(helper.callsOf("mint").length, 0);
  });

  test("a redirected email is passed on untouched, even if it quotes one of our pixels", async () => {
    const helper = fakeHelper();
    const flow = makeFlow(helper);
    const result = await flow.beforeSend(TAB, composeDetails({ type: "redirect", body: `<img src="${pixelUrl()}">` }));
    assert.equal(result, undefined);
    assert.equal(helper.callsOf("mint").length, 0);
  });

  test("a plain-text email is sent untouched and untracked", async () => {
    const helper = fakeHelper();
    const flow = makeFlow(helper);
    const result = await flow.beforeSend(TAB, composeDetails({ isPlainText: true, body: "", plainTextBody: "hi" }));
    assert.equal(result, undefined);
    assert.equal(helper.callsOf("mint").length, 0);
  });

  test("when the helper fails the email goes out untracked and the user is told", async () => {
    const helper = fakeHelper({
      mint: () => {
        throw new HelperError("missing", "No such native application mailtracker.helper");
      },
    });
    const flow = makeFlow(helper);
    const result = await flow.beforeSend(TAB, composeDetails({ body: `<p>x</p><img src="${pixelUrl()}">` }));
    assert.notEqual(result?.cancel, true);
    assert.equal(pixels(result.details.body), 0);
    assert.deepEqual(
      notices.map((n) => [n.type, n.cancelled, n.error.kind]),
      [["helperFailed", false, "missing"]],
    );
  });

  test("while tracking is paused from the tray, the email goes out untracked, quietly, even with 'block sending' on", async () => {
    const helper = fakeHelper({
      mint: () => {
        throw new HelperError("failed", "tracking is paused from the tray", TRACKING_PAUSED);
      },
    });
    const flow = makeFlow(helper, { settings: { blockOnHelperFailure: true } });
    const result = await flow.beforeSend(TAB, composeDetails({ body: `<p>x</p><img src="${pixelUrl()}">` }));
    assert.notEqual(result?.cancel, true);
    assert.equal(pixels(result.details.body), 0);
    assert.deepEqual(notices, []);
  });

  test("when the helper fails and 'block sending' is on, the send is cancelled", async () => {
    const helper = fakeHelper({
      mint: () => {
        throw new HelperError("failed", "secret missing", 3);
      },
    });
    const flow = makeFlow(helper, { settings: { blockOnHelperFailure: true } });
    assert.deepEqual(await flow.beforeSend(TAB, composeDetails()), { cancel: true });
    assert.deepEqual(notices.map((n) => [n.type, n.cancelled]), [["helperFailed", true]]);
  });

  test("a minted URL outside the pixel rules is refused, unsent, and treated as a helper failure", async () => {
    const helper = fakeHelper({ mint: () => ({ id: "bad1", url: "https://t.example.org/p/short.gif", html: "" }) });
    const flow = makeFlow(helper);
    const result = await flow.beforeSend(TAB, composeDetails());
    assert.equal(result, undefined);
    assert.deepEqual(helper.callsOf("unsent").map((c) => c.args.tagId), ["bad1"]);
    assert.equal(notices[0].error.kind, "protocol");
  });
});

describe("onAfterSend", () => {
  test("a sent email is reported with its Message-ID, then as a possible self fetch", async () => {
    const helper = fakeHelper();
    const flow = makeFlow(helper);
    await flow.beforeSend(TAB, composeDetails());
    const before = Date.now();
    const returned = await flow.afterSend(TAB, { mode: "sendNow", headerMessageId: "abc@example.org", messages: [] });
    const after = Date.now();
    assert.equal(returned, undefined);
    // With the moment Thunderbird reported it sent: the views show it, not the mint time.
    const { at } = helper.callsOf("sent")[0].args;
    assert.ok(before <= at && at <= after, `${before} <= ${at} <= ${after}`);
    assert.deepEqual(
      helper.calls.filter((c) => c.command !== "mint").map((c) => [c.command, c.args]),
      [
        ["sent", { tagId: "tag1", messageId: "abc@example.org", at }],
        ["selfFetch", { tagId: "tag1" }],
      ],
    );
    assert.deepEqual(local.data.sentMessageIds, ["abc@example.org"]);
  });

  test("a send that reports no Message-ID at all is still recorded as sent, with an empty id", async () => {
    const helper = fakeHelper();
    const flow = makeFlow(helper);
    await flow.beforeSend(TAB, composeDetails());
    await flow.afterSend(TAB, { mode: "sendLater", messages: [] });
    assert.deepEqual(helper.callsOf("sent").map(({ args: { at, ...rest } }) => rest), [{ tagId: "tag1", messageId: "" }]);
    assert.deepEqual(notices, []);
  });

  test("a failed send marks the tag unsent, cleans the editor, and the retry mints a new tag", async () => {
    const helper = fakeHelper();
    const flow = makeFlow(helper);
    const first = await flow.beforeSend(TAB, composeDetails());
    editorBody = first.details.body;
    await flow.afterSend(TAB, { mode: "sendNow", error: "Connection refused" });
    assert.deepEqual(helper.callsOf("unsent").map((c) => c.args.tagId), ["tag1"]);
    assert.equal(pixels(editorBody), 0);
    await flow.beforeSend(TAB, composeDetails({ body: editorBody }));
    assert.equal(helper.callsOf("mint").length, 2);
  });

  test("an onAfterSend for a tab with no tag (untracked mail) tells the helper nothing", async () => {
    const helper = fakeHelper();
    const flow = makeFlow(helper);
    await flow.afterSend(TAB, { mode: "sendNow", headerMessageId: "x@y" });
    assert.deepEqual(helper.calls, []);
  });

  test("a helper failure after the mail left is reported, not thrown", async () => {
    const helper = fakeHelper({
      sent: () => {
        throw new HelperError("timeout", "slow");
      },
    });
    const flow = makeFlow(helper);
    await flow.beforeSend(TAB, composeDetails());
    await flow.afterSend(TAB, { mode: "sendNow", headerMessageId: "m@x" });
    assert.deepEqual(notices.map((n) => n.type), ["recordFailed"]);
  });
});

describe("closing the compose tab", () => {
  test("a tag minted for a window closed without a confirmed send is marked unsent", async () => {
    const helper = fakeHelper();
    const flow = makeFlow(helper);
    await flow.beforeSend(TAB, composeDetails());
    await flow.forgetTab(TAB.id);
    assert.deepEqual(helper.callsOf("unsent").map((c) => c.args.tagId), ["tag1"]);
    assert.deepEqual(session.data, {});
  });

  test("closing after a confirmed send does not unsend it, even when both events race", async () => {
    const helper = fakeHelper();
    const flow = makeFlow(helper);
    await flow.beforeSend(TAB, composeDetails());
    await Promise.all([flow.afterSend(TAB, { mode: "sendNow", headerMessageId: "m@x" }), flow.forgetTab(TAB.id)]);
    assert.equal(helper.callsOf("unsent").length, 0);
    assert.equal(helper.callsOf("sent").length, 1);
  });
});
