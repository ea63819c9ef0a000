import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { createTabStore } from "../modules/composeTabs.mjs";
import {
  copyDetails,
  createIndividualSend,
  individualOffer,
  loadGroup,
  recipientsToSplit,
  remainingRecipients,
  sendsIndividually,
  sentCopyHeaders,
} from "../modules/individual.mjs";
import { replaceAddressHeaders } from "../modules/mime.mjs";
import { individualFailedText } from "../modules/notify.mjs";
import { createReminders } from "../modules/reminders.mjs";
import { DEFAULT_MAX_INDIVIDUAL, maxIndividual } from "../modules/settings.mjs";
import { getMessage, memoryArea, quietLog } from "./fixtures.mjs";

function details(extra = {}) {
  return {
    isPlainText: false,
    deliveryFormat: "auto",
    identityId: "id1",
    from: "Me <me@example.org>",
    to: ["Ann <ann@example.org>", "bob@example.org"],
    cc: ["Cy <cy@example.org>"],
    bcc: ["dee@example.org"],
    subject: "Offer",
    body: "<html><body><p>Hello</p></body></html>",
    ...extra,
  };
}

const keysOf = (list) => list.map((r) => r.key);

describe("who counts as a recipient", () => {
  test("every To, Cc and Bcc entry is one recipient, keyed by its bare address", () => {
    const split = recipientsToSplit(details());
    assert.deepEqual(keysOf(split), ["ann@example.org", "bob@example.org", "cy@example.org", "dee@example.org"]);
    assert.deepEqual(
      split.map((r) => r.field),
      ["to", "to", "cc", "bcc"],
    );
  });

  test("a mailing list or address-book list is one recipient, however many it holds", () => {
    const split = recipientsToSplit(
      details({ to: ["Team <Team>", { id: "list1", type: "mailingList" }], cc: [], bcc: [] }),
    );
    assert.equal(split.length, 2);
    assert.deepEqual(
      split.map((r) => r.isList),
      [true, true],
    );
    assert.equal(individualOffer(details({ to: ["Team <Team>", "ann@example.org"], cc: [], bcc: [] })).lists, 1);
  });

  test("the same address twice is one recipient; empty entries are none", () => {
    const split = recipientsToSplit(details({ to: ["ANN@example.org", ""], cc: ["Ann <ann@example.org>"], bcc: [] }));
    assert.deepEqual(keysOf(split), ["ann@example.org"]);
  });
});

describe("when Send individually is offered", () => {
  test("2 to N recipients (default 10); one is not enough; above N is not offered and says why", () => {
    assert.equal(DEFAULT_MAX_INDIVIDUAL, 10);
    assert.equal(individualOffer(details()).offered, true);
    const one = individualOffer(details({ to: ["ann@example.org"], cc: [], bcc: [] }));
    assert.deepEqual([one.offered, one.reason], [false, "single"]);
    const eleven = Array.from({ length: 11 }, (_, i) => `p${i}@example.org`);
    const many = individualOffer(details({ to: eleven, cc: [], bcc: [] }));
    assert.deepEqual([many.offered, many.reason, many.count, many.max], [false, "tooMany", 11, 10]);
    assert.equal(individualOffer(details({ to: eleven, cc: [], bcc: [] }), { max: 12 }).offered, true);
    assert.equal(individualOffer(details(), { max: 3 }).reason, "tooMany");
  });

  test("the limit is bounded: 2..50, anything else is the default", () => {
    assert.deepEqual([maxIndividual(5), maxIndividual(1), maxIndividual(51), maxIndividual("x")], [5, 10, 10, 10]);
  });

  test("no pixel, no offer: a plain-text mail or a redirect", () => {
    assert.equal(individualOffer(details({ isPlainText: true })).reason, "untrackable");
    assert.equal(individualOffer(details({ type: "redirect" })).reason, "untrackable");
  });

  test("never chosen silently: only the user's explicit choice on a tracked, offered mail", () => {
    assert.equal(sendsIndividually({ chosen: undefined, wanted: true, details: details() }), false);
    assert.equal(sendsIndividually({ chosen: true, wanted: false, details: details() }), false);
    assert.equal(sendsIndividually({ chosen: true, wanted: true, details: details({ to: ["a@x.org"], cc: [], bcc: [] }) }), false);
    assert.equal(sendsIndividually({ chosen: true, wanted: true, details: details() }), true);
  });
});

describe("each copy and the one Sent copy", () => {
  test("a copy goes to its recipient alone, in To, a Bcc recipient too; the content is the original's", () => {
    const [, , , dee] = recipientsToSplit(details());
    const copy = copyDetails(details(), dee, { attachments: [{ name: "a.pdf" }], noCopy: true });
    assert.deepEqual([copy.to, copy.cc, copy.bcc], [["dee@example.org"], [], []]);
    assert.equal(copy.body, details().body);
    assert.equal(copy.subject, "Offer");
    assert.equal(copy.identityId, "id1");
    assert.deepEqual(copy.attachments, [{ name: "a.pdf" }]);
    assert.equal(copy.overrideDefaultFccFolderId, "");
    assert.equal("overrideDefaultFccFolderId" in copyDetails(details(), dee), false);
  });

  test("the Sent copy's address lines list every recipient where the user put them", () => {
    const raw = new TextEncoder().encode(
      "From: Me <me@example.org>\r\nTo: dee@example.org\r\nSubject: Offer\r\nMessage-ID: <1@x>\r\n\r\nTo: not a header\r\n",
    );
    const headers = sentCopyHeaders(details({ to: ["Ann <ann@example.org>", "Zoë <zoe@example.org>"] }));
    const out = new TextDecoder().decode(replaceAddressHeaders(raw, headers));
    assert.match(out, /^From: Me <me@example.org>\r\nSubject: Offer\r\nTo: Ann <ann@example.org>,\r\n =\?UTF-8\?B\?Wm/);
    assert.match(out, /\r\nCc: Cy <cy@example.org>\r\nBcc: dee@example.org\r\nMessage-ID: <1@x>\r\n\r\nTo: not a header\r\n$/);
    assert.equal((out.match(/^To:/gm) ?? []).length, 2);
  });

  test("a folded To of the copy is replaced whole", () => {
    const raw = new TextEncoder().encode("To: a@x.org,\n b@x.org\nSubject: s\n\nbody\n");
    const out = new TextDecoder().decode(replaceAddressHeaders(raw, { to: ["c@x.org"] }));
    assert.equal(out, "Subject: s\nTo: c@x.org\n\nbody\n");
  });
});

describe("the retry set", () => {
  test("only the recipients without a copy yet", () => {
    const split = recipientsToSplit(details());
    assert.deepEqual(keysOf(remainingRecipients(split, { "bob@example.org": "<2@x>" })), [
      "ann@example.org",
      "cy@example.org",
      "dee@example.org",
    ]);
    assert.deepEqual(remainingRecipients(split, Object.fromEntries(keysOf(split).map((k) => [k, "id"]))), []);
  });
});

function harness({ failFor = new Set(), throwFor = new Set(), reminders = null, session = memoryArea() } = {}) {
  const local = memoryArea();
  const tabStore = createTabStore(session);
  const begun = [];
  const closed = [];
  const notices = [];
  const waited = [];
  let nextTab = 100;
  const compose = {
    async beginNew(d) {
      const tab = { id: nextTab++ };
      begun.push({ tab, details: d });
      return tab;
    },
    async sendMessage(tabId) {
      const { details: d } = begun.find((b) => b.tab.id === tabId);
      const state = await tabStore.get(tabId);
      // As background.js's onBeforeSend, then the send flow once the helper recorded it.
      await reminders?.noteSend(tabId, d.identityId);
      await reminders?.onSent({ tabId, tagId: `tag-${d.to[0]}` });
      if (failFor.has(d.to[0])) {
        return { messages: [] }; // Thunderbird 153: a failed send resolves, without a Message-ID
      }
      if (throwFor.has(d.to[0])) {
        throw new Error("SMTP said no");
      }
      return { headerMessageId: `${d.to[0]}.${state.group}@x`, messages: [] };
    },
    listAttachments: async () => [{ id: 5, name: "offer.pdf" }],
    getAttachmentFile: async (id) => ({ fileOf: id }),
  };
  const flow = createIndividualSend({
    compose,
    closeTab: async (id) => closed.push(id),
    tabStore,
    loadMax: async () => 10,
    isWanted: async () => true,
    notify: (outcome) => notices.push(outcome),
    newId: () => "g1",
    carryChoices: reminders ? (from, to) => reminders.carry(from, to) : undefined,
    sentCopyDone: async (messageId) => {
      waited.push(messageId);
      await new Promise((resolve) => setTimeout(resolve, 5));
      waited.push(`begun:${begun.length}`);
    },
    localArea: local,
    log: quietLog,
  });
  return { flow, tabStore, begun, closed, notices, local, failFor, throwFor, waited };
}

describe("sending individually", () => {
  test("the original is cancelled; one copy per recipient, one Sent copy, the original closed", async () => {
    const h = harness();
    await h.tabStore.update(1, { individually: true });
    assert.deepEqual(await h.flow.beforeSend({ id: 1 }, details()), { cancel: true });
    await h.flow.settled();
    assert.deepEqual(
      h.begun.map((b) => b.details.to),
      [["Ann <ann@example.org>"], ["bob@example.org"], ["Cy <cy@example.org>"], ["dee@example.org"]],
    );
    // The first copy keeps the Sent copy (readdressed to everyone); the others file none.
    assert.deepEqual(
      h.begun.map((b) => b.details.overrideDefaultFccFolderId),
      [undefined, "", "", ""],
    );
    const first = await h.tabStore.get(100);
    assert.deepEqual([first.choice, first.group], [true, "g1"]);
    assert.deepEqual(first.sentHeaders.to, ["Ann <ann@example.org>", "bob@example.org"]);
    assert.equal((await h.tabStore.get(101)).sentHeaders, undefined);
    assert.deepEqual(h.begun[0].details.attachments, [{ file: { fileOf: 5 }, name: "offer.pdf" }]);
    assert.deepEqual(h.closed, [1]);
    assert.equal(h.notices.length, 0);
    // The next copy waits until the first one's Sent copy is finished.
    assert.deepEqual(h.waited, ["Ann <ann@example.org>.g1@x", "begun:1"]);
    const group = await loadGroup("g1", h.local);
    assert.equal(group.keeper, "Ann <ann@example.org>.g1@x");
    assert.equal(Object.keys(group.sent).length, 4);
  });

  test("a failed copy is named, the original stays open, and a retry sends only to the rest", async () => {
    const h = harness({ failFor: new Set(["bob@example.org"]), throwFor: new Set(["Cy <cy@example.org>"]) });
    await h.tabStore.update(1, { individually: true });
    await h.flow.beforeSend({ id: 1 }, details());
    await h.flow.settled();
    assert.deepEqual(h.notices, [
      { failed: ["bob@example.org", "cy@example.org"], sent: ["ann@example.org", "dee@example.org"], subject: "Offer" },
    ]);
    assert.deepEqual(h.closed, [101, 102]); // the failed copies' windows, not the original
    assert.deepEqual(Object.keys((await loadGroup("g1", h.local)).sent), ["ann@example.org", "dee@example.org"]);
    h.failFor.clear();
    h.throwFor.clear();
    h.begun.length = 0;
    assert.deepEqual(await h.flow.beforeSend({ id: 1 }, details()), { cancel: true });
    await h.flow.settled();
    assert.deepEqual(
      h.begun.map((b) => [b.details.to, b.details.overrideDefaultFccFolderId]),
      [
        [["bob@example.org"], ""],
        [["Cy <cy@example.org>"], ""],
      ],
    );
    assert.equal((await h.tabStore.get(h.begun[0].tab.id)).group, "g1");
    assert.deepEqual(h.closed, [101, 102, 1]);
    const text = individualFailedText(h.notices[0], getMessage);
    assert.match(text.message, /did not get their copy: bob@example\.org, cy@example\.org/);
    assert.match(text.message, /press Send again/);
  });

  test("not chosen, or one of our own copies: the normal flow sends it", async () => {
    const h = harness();
    assert.equal(await h.flow.beforeSend({ id: 1 }, details()), null);
    await h.tabStore.update(2, { choice: true, group: "g1" });
    assert.equal(await h.flow.beforeSend({ id: 2 }, details()), null);
    assert.equal(h.begun.length, 0);
  });

  test("each copy gets the reminder chosen in the user's window, else the identity's default", async () => {
    const local = memoryArea({ remindDefaults: { id1: 2 }, remindIfDefaults: { id1: "not_opened" } });
    async function copiesKeep(chosen) {
      const session = memoryArea(chosen ? { "remind:1": chosen } : {});
      const kept = [];
      const reminders = createReminders({ helper: { remind: async (args) => kept.push(args) },
        runForTab: (_, task) => task(), session, local, now: () => Date.parse("2026-12-01T00:00:00Z"), log: quietLog });
      const h = harness({ reminders, session });
      await h.tabStore.update(1, { individually: true });
      await h.flow.beforeSend({ id: 1 }, details());
      await h.flow.settled();
      return kept.map(({ tagId, remindAt, remindIf }) => [tagId, remindAt, remindIf]);
    }
    const tags = ["Ann <ann@example.org>", "bob@example.org", "Cy <cy@example.org>", "dee@example.org"]
      .map((to) => `tag-${to}`);
    assert.deepEqual(await copiesKeep({ choice: 5, remindIf: "no_reply" }),
      tags.map((tag) => [tag, "2026-12-06T00:00:00.000Z", "no_reply"]));
    assert.deepEqual(await copiesKeep(null), tags.map((tag) => [tag, "2026-12-03T00:00:00.000Z", "not_opened"]));
    // Reminder turned off in the window: no copy keeps one, whatever the identity's default.
    assert.deepEqual(await copiesKeep({ choice: 0 }), []);
  });
});
