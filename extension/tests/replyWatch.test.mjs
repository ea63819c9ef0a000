import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";

import { FIRST_LOOK_MS, STATE_KEY, createReplyWatch, isSkippedFolder } from "../modules/replyWatch.mjs";
import { headerBlockOf, parseHeaderFields } from "../modules/replies.mjs";
import { memoryArea } from "./fixtures.mjs";

const sample = (name) => readFileSync(new URL(`./data/replies/${name}`, import.meta.url), "latin1");
const NOW = Date.parse("2026-12-05T12:00:00Z");
const INBOX = { name: "Inbox", type: "inbox" };

/** A Thunderbird double (a fake: node has no Thunderbird) holding raw messages by id. */
function fakeMessenger(raws) {
  const calls = [];
  const list = raws.map(([file, extra], index) => ({
    id: index + 1, folder: INBOX, date: new Date(NOW - 1000), headerMessageId: `m${index + 1}@example.net`,
    raw: sample(file), ...extra }));
  const byId = new Map(list.map((message) => [message.id, message]));
  const objectOf = (raw) => Object.fromEntries([...parseHeaderFields(headerBlockOf(raw))]);
  return {
    calls,
    list,
    accounts: { list: async () => [{ identities: [{ email: "sam@sender.example.org" }] }] },
    messages: {
      getHeaders: async (id) => { calls.push(["getHeaders", id]); return objectOf(byId.get(id).raw); },
      getRaw: async (id) => { calls.push(["getRaw", id]); return byId.get(id).raw; },
      query: async (info) => { calls.push(["query", info]); return { id: null, messages: list }; },
      continueList: async () => null,
    },
  };
}

function fakeHelper(tracked) {
  const requests = [];
  return { requests, reply: async (request) => {
    requests.push(request);
    return request.messageIds.some((id) => tracked.includes(id)) ? { tracked: true, recorded: true } : { tracked: false };
  } };
}

describe("the reply watch", () => {
  test("new mail: a reply, an out-of-office and a bounce are reported with their verdicts; plain mail is not", async () => {
    const messenger = fakeMessenger([["person-reply-outlook.eml"], ["exchange-oof-automatic-reply.eml"],
      ["postfix-dsn.eml"], ["person-reply-outlook.eml", { raw: "From: x@example.net\nSubject: hi\n\nbody" }]]);
    const helper = fakeHelper(["tracked-1@sender.example.org", "tracked-2@sender.example.org"]);
    const recorded = [];
    const watch = createReplyWatch({ helper, messenger, local: memoryArea(), now: () => NOW,
      onRecorded: (outcomes) => recorded.push(...outcomes) });
    await watch.onNewMail(INBOX, { id: null, messages: messenger.list });
    assert.deepEqual(helper.requests.map((r) => [r.verdict, r.replyId, r.from, r.recipient ?? ""]), [
      ["reply", "m1@example.net", "ann@example.net", ""],
      ["auto", "m2@example.net", "nyaan@corp.example.net", ""],
      ["bounce", "m3@example.net", "mailer-daemon@mx.sender.example.org", "nobody@example.net"],
    ]);
    assert.equal(helper.requests[0].time, new Date(NOW - 1000).toISOString());
    // Only a delivery report is read whole; the others by their headers.
    assert.deepEqual(messenger.calls.filter(([name]) => name === "getRaw").map(([, id]) => id), [3]);
    assert.deepEqual(recorded.map((outcome) => outcome.verdict), ["reply", "bounce"]);
  });

  test("catch-up at start: from the last look (first start: FIRST_LOOK_MS back), skipping what was reported", async () => {
    const messenger = fakeMessenger([["person-reply-outlook.eml"]]);
    const helper = fakeHelper(["tracked-1@sender.example.org"]);
    const local = memoryArea();
    const watch = createReplyWatch({ helper, messenger, local, now: () => NOW });
    await watch.catchUp();
    const [, first] = messenger.calls.find(([name]) => name === "query");
    assert.equal(first.fromDate.getTime(), NOW - FIRST_LOOK_MS);
    assert.equal(helper.requests.length, 1);
    await watch.catchUp();
    assert.equal(helper.requests.length, 1, "a reply already reported is not asked about again");
    const [, second] = messenger.calls.filter(([name]) => name === "query")[1];
    assert.ok(second.fromDate.getTime() > NOW - FIRST_LOOK_MS && second.fromDate.getTime() < NOW);
    assert.deepEqual((await local.get(STATE_KEY))[STATE_KEY].reported, ["m1@example.net"]);
  });

  test("new mail in Sent or staging is left at once: its list is not even paged (the Sent copy's replacement works on it)", async () => {
    const messenger = fakeMessenger([["person-reply-outlook.eml"]]);
    const continued = [];
    messenger.messages.continueList = async (id) => { continued.push(id); return null; };
    const helper = fakeHelper(["tracked-1@sender.example.org"]);
    const watch = createReplyWatch({ helper, messenger, local: memoryArea(), now: () => NOW });
    const list = { id: "more", messages: messenger.list.map((m) => ({ ...m, folder: { name: "mailtracker-staging" } })) };
    assert.deepEqual(await watch.onNewMail({ name: "mailtracker-staging", specialUse: [] }, list), []);
    assert.deepEqual(await watch.onNewMail({ name: "Sent", specialUse: ["sent"] }, list), []);
    assert.deepEqual([continued, messenger.calls, helper.requests], [[], [], []]);
  });

  test("Sent, Drafts, Trash, Junk and the staging folder are never read as answers", () => {
    for (const folder of [{ type: "sent" }, { specialUse: ["drafts"] }, { type: "trash" }, { type: "junk" },
      { name: "mailtracker-staging", type: "normal" }]) {
      assert.equal(isSkippedFolder(folder), true, JSON.stringify(folder));
    }
    // Local Folders' Sent as the add-on makes it: a plain folder named Sent.
    assert.equal(isSkippedFolder({ name: "Sent", type: undefined, specialUse: [] }), true);
    assert.equal(isSkippedFolder(INBOX), false);
    assert.equal(isSkippedFolder({ name: "Clients", type: "normal" }), false);
  });
});
