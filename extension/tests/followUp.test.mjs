// The follow-up a due reminder offers: whom it goes to (the register's replied_by and undelivered
// against the Sent copy's To/Cc/Bcc), what the reminder's notification says of it, and the reply
// a click on it opens. Thunderbird's APIs are fakes (fixtures.fakeMessenger); the real reply
// window is tested in tests/e2e/test_follow_up.py.

import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { fakeMessenger, getMessage, memoryArea, quietLog } from "./fixtures.mjs";
import { createTabStore } from "../modules/composeTabs.mjs";
import { createFollowUp, followUpPlan, hasAddressees } from "../modules/followUp.mjs";
import { createOpenWatch } from "../modules/openWatch.mjs";
import { createReminders, remindIfFor } from "../modules/reminders.mjs";
import { loadSetting, saveIdentitySetting } from "../modules/settings.mjs";

const NOW = Date.parse("2026-12-01T12:00:00.000Z");
const DUE = "2026-11-30T00:00:00.000Z";
const ANN = "Ann Example <ann@example.net>";
const BOB = "Bob <bob@example.net>";
const CY = "cy@example.net";

function row(id, fields = {}) {
  return { id, short_id: id.slice(0, 7), subject: "Offer", status: "sent", message_id: `${id}@x`,
    opens: 0, clicks: 0, opened: false, replies: 0, replied_by: "", undelivered: "", remind_at: DUE,
    recipients: [ANN, BOB, CY].join("; "), ...fields };
}

/** A Sent copy as messages.query gives it: Thunderbird's To (recipients), Cc and Bcc lists. */
function sentCopy(messageId, { to = [ANN, BOB], cc = [CY], bcc = [] } = {}) {
  return { headerMessageId: messageId, subject: "Offer", recipients: to, ccList: cc, bccList: bcc };
}

/** The open watch and the follow-up over one list of rows (rows.current may change), as background.js wires them. */
function wired(rows, messages) {
  const messenger = fakeMessenger({ messages });
  const listed = { current: rows };
  const helper = { list: async () => ({ tags: structuredClone(listed.current) }) };
  const session = memoryArea();
  const followUp = createFollowUp({ helper, messenger, tabStore: createTabStore(session), listLimit: 500,
    log: quietLog });
  const watch = createOpenWatch({ helper, messenger, followUp, local: memoryArea(), t: getMessage,
    now: () => NOW, log: quietLog });
  watch.setHelperState({ tray: false });
  return { messenger, followUp, watch, session, listed };
}

const notices = (messenger) => messenger.callsOf("notifications.create").map((call) => ({ id: call.args[0], ...call.args[1] }));

describe("whom a follow-up goes to", () => {
  test("nobody answered: everyone, each in their own field", () => {
    const plan = followUpPlan([row("a")], { to: [ANN, BOB], cc: [CY], bcc: ["dee@example.net"] });
    assert.deepEqual(plan, { to: [ANN, BOB], cc: [CY], bcc: ["dee@example.net"], leftOut: [] });
  });

  test("one of three answered: the other two; the one who answered is left out, by address whatever the case", () => {
    const plan = followUpPlan([row("a", { replies: 1, replied_by: "BOB@example.net" })],
      { to: [ANN, BOB], cc: [CY], bcc: [] });
    assert.deepEqual(plan, { to: [ANN], cc: [CY], bcc: [], leftOut: [{ recipient: BOB, why: "replied", reason: "" }] });
  });

  test("everyone in To answered: the Cc move to To; all answered: no one to write to", () => {
    const plan = followUpPlan([row("a", { replied_by: "ann@example.net; bob@example.net" })],
      { to: [ANN, BOB], cc: [CY], bcc: [] });
    assert.deepEqual([plan.to, plan.cc], [[CY], []]);
    const none = followUpPlan([row("a", { replied_by: `ann@example.net; bob@example.net; ${CY}` })],
      { to: [ANN, BOB], cc: [CY], bcc: [] });
    assert.equal(hasAddressees(none), false);
  });

  test("without a Sent copy: the register's recipients, all in To", () => {
    assert.deepEqual(followUpPlan([row("a", { replied_by: CY })]).to, [ANN, BOB]);
  });
});

describe("a due reminder's follow-up", () => {
  test("nobody answered: the notification names everyone; its click replies to the Sent copy, to them", async () => {
    const { messenger, watch } = wired([row("a")], [sentCopy("a@x")]);
    await watch.refresh();
    const [notice] = notices(messenger);
    assert.equal(notice.title, "Not opened yet: “Offer”");
    assert.match(notice.message, /Click to write a follow-up\.\nFollow-up to: Ann Example <ann@example.net>, Bob <bob@example.net>, cy@example.net$/);
    assert.equal(await watch.openMailOf(notice.id), true);
    assert.deepEqual(messenger.callsOf("compose.beginReply")[0].args,
      [1, "replyToAll", { to: [ANN, BOB], cc: [CY], bcc: [] }]);
    assert.equal(messenger.callsOf("messageDisplay.open").length, 0, "the follow-up, not the mail, opens");
  });

  test("a reminder if no reply: one of three answered (the pixel saw two opens): a reply to the other two", async () => {
    // A reply ends the reminder today; the page and popup still offer the follow-up to the rest.
    const rows = [row("a", { remind_if: "no_reply", opens: 2, opened: true, replies: 1, replied_by: "bob@example.net" })];
    const { messenger, followUp } = wired(rows, [sentCopy("a@x")]);
    const written = await followUp.write({ messageId: "<a@x>" });
    assert.equal(written.opened, true);
    assert.deepEqual(messenger.callsOf("compose.beginReply")[0].args[2], { to: [ANN], cc: [CY], bcc: [] });
    assert.deepEqual(written.plan.leftOut, [{ recipient: BOB, why: "replied", reason: "" }]);
  });

  test("sent individually: one tag per recipient; the follow-up replies to the one Sent copy, to the group's non-answerers, individually again", async () => {
    const group = { group: "g1" };
    const rows = [
      row("k", { ...group, recipients: ANN }),
      row("b", { ...group, recipients: BOB, replies: 1, replied_by: "bob@example.net", remind_at: DUE }),
      row("c", { ...group, recipients: CY }),
      row("z", { recipients: "zed@example.net", remind_at: "" }), // another mail, not in the group
    ];
    // The copy kept in Sent is the first recipient's, readdressed to everyone; the others filed none.
    const { messenger, watch, session } = wired(rows, [sentCopy("k@x", { to: [ANN, BOB, CY], cc: [] })]);
    await watch.refresh();
    const shown = notices(messenger);
    assert.equal(shown.length, 1, "the group's copies due together are one reminder");
    assert.match(shown[0].message, /Follow-up to: Ann Example <ann@example.net>, cy@example.net\nLeft out: Bob <bob@example.net> \(replied\)$/);
    assert.equal(await watch.openMailOf(shown[0].id), true);
    const [reply] = messenger.callsOf("compose.beginReply");
    assert.deepEqual(reply.args, [1, "replyToAll", { to: [ANN, CY], cc: [], bcc: [] }]);
    assert.deepEqual(Object.values(session.data), [{ individually: true }], "the follow-up starts as Send individually");
    assert.match(Object.keys(session.data)[0], /^compose:\d+$/);
  });

  test("sent individually, the copies' reminders due seconds apart: one notification for the mail", async () => {
    const rows = [row("k", { group: "g3", recipients: ANN, remind_at: DUE }),
      row("b", { group: "g3", recipients: BOB, remind_at: "2026-12-01T12:00:02.000Z" })];
    const { messenger, watch, listed } = wired(rows, [sentCopy("k@x", { to: [ANN, BOB], cc: [] })]);
    await watch.refresh(); // the first copy is due, the second two seconds later
    listed.current = rows.map((each) => ({ ...each, remind_at: DUE }));
    await watch.refresh(); // both are due now
    assert.equal(notices(messenger).length, 1);
    assert.match(notices(messenger)[0].message, /Follow-up to: Ann Example <ann@example.net>, Bob <bob@example.net>$/);
  });

  test("a bounced recipient is left out, and the reminder's notification says why", async () => {
    const group = { group: "g2" };
    const reason = "not delivered: 550 5.1.1 user unknown";
    const rows = [
      row("k", { ...group, recipients: ANN }),
      row("n", { ...group, recipients: "nobody@example.net", undelivered: "nobody@example.net", undelivered_reason: reason }),
    ];
    const { messenger, watch } = wired(rows, [sentCopy("k@x", { to: [ANN, "nobody@example.net"], cc: [] })]);
    await watch.refresh();
    const reminder = notices(messenger).find((notice) => notice.id.includes(":reminder:"));
    assert.match(reminder.message, /Left out: nobody@example.net \(not delivered: not delivered: 550 5\.1\.1 user unknown\)$/);
    await watch.openMailOf(reminder.id);
    assert.deepEqual(messenger.callsOf("compose.beginReply")[0].args[2], { to: [ANN], cc: [], bcc: [] });
  });

  test("no one left to write to: the click opens the mail instead; no Sent copy: a new mail \"Re: …\"", async () => {
    const answered = wired([row("a", { replied_by: `ann@example.net; bob@example.net; ${CY}`, replies: 3 })], [sentCopy("a@x")]);
    assert.deepEqual(await answered.followUp.write({ tagId: "a" }), {
      opened: false, reason: "nobody", plan: { to: [], cc: [], bcc: [], leftOut: [ANN, BOB, CY].map((recipient) =>
        ({ recipient, why: "replied", reason: "" })) } });
    const noCopy = wired([row("a")], []);
    await noCopy.followUp.write({ tagId: "a" });
    assert.deepEqual(noCopy.messenger.callsOf("compose.beginNew")[0].args,
      [{ to: [ANN, BOB, CY], cc: [], bcc: [], subject: "Re: Offer" }]);
    assert.deepEqual(await noCopy.followUp.write({ tagId: "unknown" }), { opened: false, reason: "unknown" });
  });

  test("the helper down when the notification is clicked: the mail opens, as before follow-ups", async () => {
    const { messenger, watch } = wired([row("a")], [sentCopy("a@x")]);
    await watch.refresh();
    const [notice] = notices(messenger);
    const broken = createOpenWatch({ helper: { list: async () => { throw new Error("helper gone"); } }, messenger,
      followUp: createFollowUp({ helper: { list: async () => { throw new Error("helper gone"); } }, messenger,
        tabStore: createTabStore(memoryArea()), listLimit: 500 }), local: memoryArea(), t: getMessage, log: quietLog });
    assert.equal(await broken.openMailOf(notice.id), true);
    assert.deepEqual(messenger.callsOf("messageDisplay.open")[0].args, [{ messageId: 1, location: "tab" }]);
  });

  test("a bounce's notification says the reminder is cancelled only when one was still to come", async () => {
    const later = "2026-12-09T00:00:00.000Z";
    const opened = { opens: 1, opened: true };
    const { messenger, watch, listed } = wired([row("a", { remind_at: "" }), row("b", { remind_at: later }),
      row("c", { remind_at: later, ...opened })], [sentCopy("a@x"), sentCopy("b@x"), sentCopy("c@x")]);
    await watch.refresh();
    const bounced = { undelivered: "nobody@example.net", undelivered_reason: "not delivered: 550 5.1.1 user unknown" };
    for (const [id, fields] of [["a", { remind_at: "" }], ["b", { remind_at: later }], ["c", { remind_at: later, ...opened }]]) {
      listed.current = listed.current.map((each) => (each.id === id ? row(id, { ...fields, ...bounced }) : each));
      await watch.refresh();
    }
    // No reminder; one still to come; one an open had already ended.
    assert.deepEqual(notices(messenger).map((notice) => notice.message), [
      "“Offer”: not delivered: 550 5.1.1 user unknown.",
      "“Offer”: not delivered: 550 5.1.1 user unknown. Its reminder is cancelled: there is no one to remind of it.",
      "“Offer”: not delivered: 550 5.1.1 user unknown.",
    ]);
    // Told together with another mail's news: its line says so too.
    const together = wired([row("c", { remind_at: later }), row("d", { remind_at: "" })], []);
    await together.watch.refresh();
    together.listed.current = [row("c", { remind_at: later, ...bounced }), row("d", { remind_at: "", replies: 1,
      replied_by: "ann@example.net" })];
    await together.watch.refresh();
    assert.equal(notices(together.messenger)[0].message,
      "Not delivered to nobody@example.net: “Offer” (its reminder is cancelled)\nann@example.net replied: “Offer”");
  });
});

describe("the default condition per identity", () => {
  test("the tab's choice, else the identity's default, else if not opened", () => {
    assert.equal(remindIfFor({ tabChoice: undefined, identityDefault: undefined }), "not_opened");
    assert.equal(remindIfFor({ tabChoice: undefined, identityDefault: "no_reply" }), "no_reply");
    assert.equal(remindIfFor({ tabChoice: "not_opened", identityDefault: "no_reply" }), "not_opened");
    assert.equal(remindIfFor({ tabChoice: "junk", identityDefault: "no_reply" }), "not_opened");
  });

  test("an identity whose default is if no reply sends its reminders so; another identity and a tab's choice keep theirs", async () => {
    const local = memoryArea({ remindDefaults: { id1: 2, id2: 2 }, reminderDayMs: 1000 });
    await saveIdentitySetting("remindIfDefaults", "id1", "no_reply", local);
    await saveIdentitySetting("remindIfDefaults", "id3", "nonsense", local);
    assert.deepEqual(await loadSetting("remindIfDefaults", local), { id1: "no_reply", id3: "not_opened" });
    const session = memoryArea({ "remind:9": { choice: 1, remindIf: "not_opened" } });
    const calls = [];
    const reminders = createReminders({ helper: { remind: async (args) => calls.push(args) },
      runForTab: (_, task) => task(), session, local, now: () => NOW, log: quietLog });
    for (const [tabId, identityId, tagId] of [[7, "id1", "t1"], [8, "id2", "t2"], [9, "id1", "t3"]]) {
      await reminders.noteSend(tabId, identityId);
      await reminders.onSent({ tabId, tagId });
    }
    assert.deepEqual(calls.map(({ tagId, remindIf }) => [tagId, remindIf]),
      [["t1", "no_reply"], ["t2", "not_opened"], ["t3", "not_opened"]]);
  });
});
