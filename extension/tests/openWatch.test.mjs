import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { fakeMessenger, getMessage, memoryArea, quietLog } from "./fixtures.mjs";
import { LIST_LIMIT, STATE_KEY, createOpenWatch, diffRows, messageIdOfNotification, notificationIdFor } from "../modules/openWatch.mjs";
import { REMINDER_ALARM, nextReminder, remindAtFor, remindDaysFor, createReminders } from "../modules/reminders.mjs";
import { STATE_TAGS, keysOf, retag, stateOf, tagCopies } from "../modules/sentList.mjs";
import { countedOpens, matchesFilter, sendingOf, sortTags } from "../modules/trackedView.mjs";

const NOW = Date.parse("2026-12-01T12:00:00.000Z");
const OPENED = STATE_TAGS.opened.key;
const CLICKED = STATE_TAGS.clicked.key;
const NOT_OPENED = STATE_TAGS.notOpened.key;
const REPLIED = STATE_TAGS.replied.key;
const UNDELIVERED = STATE_TAGS.undelivered.key;
const NO_REPLY = STATE_TAGS.noReply.key;

function row(id, fields = {}) {
  return { id, short_id: id.slice(0, 7), name: "Ann", subject: `Mail ${id}`, status: "sent", message_id: `${id}@x`,
    opens: 0, clicks: 0, opened: false, remind_at: "", ...fields };
}

function listHelper(rowsRef) {
  const calls = [];
  return {
    calls,
    list: async (args) => {
      calls.push(args);
      return { tags: structuredClone(rowsRef.rows) };
    },
  };
}

function watchWith({ rows, messages, tags, tray = false, now = NOW, local = memoryArea() }) {
  const rowsRef = { rows };
  const messenger = fakeMessenger({ messages, tags });
  const helper = listHelper(rowsRef);
  const clock = { now };
  const watch = createOpenWatch({ helper, messenger, local, t: getMessage, now: () => clock.now, log: quietLog });
  if (tray !== null) watch.setHelperState({ folding: !tray, tray });
  return { watch, messenger, helper, rowsRef, local, clock };
}

const badgeTexts = (messenger) => messenger.callsOf("action.setBadgeText").map((c) => c.args[0].text);

describe("the Sent list's tags", () => {
  test("a row's state: a click beats an open, an open beats a due reminder", () => {
    assert.equal(stateOf(row("a", { clicks: 1, opens: 0, opened: true }), NOW), "clicked");
    assert.equal(stateOf(row("a", { opens: 2, opened: true }), NOW), "opened");
    assert.equal(stateOf(row("a", { remind_at: "2026-12-01T11:59:59.000Z" }), NOW), "due");
    assert.equal(stateOf(row("a", { remind_at: "2026-12-01T12:00:01.000Z" }), NOW), "none");
    assert.equal(stateOf(row("a", { opens: 1, remind_at: "2026-11-01T00:00:00.000Z" }), NOW), "opened");
    assert.deepEqual(keysOf("clicked"), [OPENED, CLICKED]);
  });

  test("retagging keeps the user's own tags and changes only ours; no change is null", () => {
    assert.deepEqual(retag(["$label1", "todo", NOT_OPENED], keysOf("opened")), ["$label1", "todo", OPENED]);
    assert.equal(retag(["todo", OPENED], keysOf("opened")), null);
    assert.equal(retag([], []), null);
    assert.deepEqual(retag(["todo", OPENED, CLICKED], []), ["todo"]);
  });

  test("every copy but the staging one is tagged", async () => {
    const messenger = fakeMessenger({
      messages: [
        { headerMessageId: "m@x", tags: ["todo"] },
        { headerMessageId: "m@x", folder: { name: "mailtracker-staging" } },
        { headerMessageId: "other@x" },
      ],
    });
    assert.equal(await tagCopies(messenger, "m@x", "opened"), 1);
    assert.deepEqual(messenger.store.map((m) => m.tags), [["todo", OPENED], [], []]);
  });
});

describe("the open watch", () => {
  test("an open tags the Sent copy Opened, counts on the badge and notifies once", async () => {
    const { watch, messenger, rowsRef } = watchWith({
      rows: [row("a"), row("b")],
      messages: [{ headerMessageId: "a@x", tags: ["$label4"] }, { headerMessageId: "b@x" }],
    });
    await watch.refresh(); // the first look takes what is there as seen
    assert.equal(messenger.callsOf("notifications.create").length, 0);
    assert.equal(messenger.callsOf("messages.query").length, 0, "nothing to show: no lookup");
    rowsRef.rows = [row("a", { opens: 1, opened: true }), row("b")];
    await watch.refresh();
    assert.deepEqual(messenger.store[0].tags, ["$label4", OPENED]);
    assert.deepEqual(messenger.store[1].tags, []);
    assert.deepEqual(messenger.callsOf("messages.query").map((c) => c.args[0].headerMessageId), ["a@x"]);
    assert.equal(badgeTexts(messenger).at(-1), "1");
    const [notice] = messenger.callsOf("notifications.create");
    assert.equal(notice.args[1].title, "Ann opened your email");
    assert.equal(messageIdOfNotification(notice.args[0]), "a@x");
    // The same counts again (a second change, a restart): no lookup, no notification, same badge.
    await watch.refresh();
    assert.equal(messenger.callsOf("messages.query").length, 1);
    assert.equal(messenger.callsOf("notifications.create").length, 1);
    assert.equal(badgeTexts(messenger).at(-1), "1");
    // Our tags are made once, with the en names.
    assert.deepEqual(messenger.definitions.map((d) => [d.key, d.tag]), [
      [OPENED, "Opened"], [CLICKED, "Clicked"], [NOT_OPENED, "Not opened yet"], [NO_REPLY, "No reply yet"],
      [REPLIED, "Replied"], [UNDELIVERED, "Not delivered"], [STATE_TAGS.notVisible.key, "Opens not visible"],
      [STATE_TAGS.notMeasurable.key, "Opens not measurable"]]);
  });

  test("opens that arrive together are one notification naming each mail, which opens the Tracked mail page", async () => {
    const ids = ["a", "b", "c", "d", "e", "f"];
    const { watch, messenger, rowsRef } = watchWith({ rows: ids.map((id) => row(id)),
      messages: ids.map((id) => ({ headerMessageId: `${id}@x` })) });
    await watch.refresh();
    rowsRef.rows = [row("a", { opens: 1, opened: true, name: "Bob" }), row("b", { opens: 1, clicks: 1, opened: true }),
      row("c"), row("d"), row("e"), row("f")];
    await watch.refresh();
    const [both] = messenger.callsOf("notifications.create");
    assert.equal(messenger.callsOf("notifications.create").length, 1);
    assert.equal(both.args[1].title, "2 tracked emails opened");
    assert.equal(both.args[1].message, "Bob: “Mail a”\nAnn: “Mail b”");
    assert.equal(badgeTexts(messenger).at(-1), "2");
    assert.equal(await watch.openMailOf(both.args[0]), true);
    assert.deepEqual(messenger.callsOf("tabs.create").map((c) => c.args[0].url), ["/tracked/tracked.html"]);
    // Six at once: the first four by name, then how many more; a click among them says so.
    rowsRef.rows = ids.map((id) => row(id, { opens: 2, opened: true, clicks: id === "c" ? 1 : 0 }));
    await watch.refresh();
    const many = messenger.callsOf("notifications.create")[1].args[1];
    assert.equal(messenger.callsOf("notifications.create").length, 2);
    assert.equal(many.title, "6 tracked emails opened");
    assert.deepEqual(many.message.split("\n"),
      ["Ann: “Mail a”", "Ann: “Mail b”", "Ann: “Mail c”", "Ann: “Mail d”", "and 2 more"]);
  });

  test("a full list drops what the watch kept of older mails; a shorter one keeps it", () => {
    const kept = { state: "opened", tagged: true, lookups: 0, seenOpens: 3, toldOpens: 3, toldClicks: 0, reminded: false };
    const stored = { baselined: true, entries: { old: kept } };
    const full = Array.from({ length: LIST_LIMIT }, (_, i) => row(`t${i}`));
    assert.equal(Object.keys(diffRows(stored, full, { now: NOW, notifyHere: true }).entries).length, LIST_LIMIT);
    assert.equal(diffRows(stored, full, { now: NOW, notifyHere: true }).entries.old, undefined);
    const { entries, notices } = diffRows(stored, full.slice(1), { now: NOW, notifyHere: true });
    assert.deepEqual(entries.old, kept);
    // Back in a later list with the same counts (a rebuild was under way): no news.
    assert.deepEqual(diffRows({ baselined: true, entries }, [row("old", { opens: 3, opened: true })],
      { now: NOW, notifyHere: true }).notices, notices);
  });

  test("a renamed tag is left as the user made it", async () => {
    const { watch, messenger, rowsRef } = watchWith({
      rows: [row("a")], messages: [{ headerMessageId: "a@x" }],
      tags: [{ key: OPENED, tag: "Gelesen", color: "#000000" }],
    });
    await watch.refresh();
    rowsRef.rows = [row("a", { opens: 1, opened: true })];
    await watch.refresh();
    assert.deepEqual(messenger.callsOf("messages.tags.create").map((c) => c.args[0]),
      [CLICKED, NOT_OPENED, NO_REPLY, REPLIED, UNDELIVERED, STATE_TAGS.notVisible.key, STATE_TAGS.notMeasurable.key]);
    assert.equal(messenger.definitions[0].tag, "Gelesen");
  });

  test("a click adds Clicked and says so; the badge counts opens only", async () => {
    const { watch, messenger, rowsRef } = watchWith({ rows: [row("a", { opens: 1, opened: true })],
      messages: [{ headerMessageId: "a@x" }] });
    await watch.refresh();
    assert.deepEqual(messenger.store[0].tags, [OPENED], "an opened mail is tagged at the first look");
    rowsRef.rows = [row("a", { opens: 1, clicks: 1, opened: true })];
    await watch.refresh();
    assert.deepEqual(messenger.store[0].tags, [OPENED, CLICKED]);
    assert.equal(messenger.callsOf("notifications.create")[0].args[1].title, "Ann clicked a link in your email");
    assert.deepEqual(badgeTexts(messenger), [""]);
  });

  test("when a tray runs, it notifies, not the add-on; nor before it is known", async () => {
    for (const tray of [true, null]) {
      const { watch, messenger, rowsRef } = watchWith({ rows: [row("a")], messages: [{ headerMessageId: "a@x" }], tray });
      await watch.refresh();
      rowsRef.rows = [row("a", { opens: 1, opened: true })];
      await watch.refresh();
      assert.equal(messenger.callsOf("notifications.create").length, 0, `tray ${tray}`);
      assert.deepEqual(messenger.store[0].tags, [OPENED], "the tag is this Thunderbird's own, whoever folds");
    }
  });

  test("a tray that follows this helper (started after Thunderbird) still notifies alone", async () => {
    const { watch, messenger, rowsRef } = watchWith({ rows: [row("a")], messages: [{ headerMessageId: "a@x" }] });
    watch.setHelperState({ folding: true, tray: true });
    await watch.refresh();
    rowsRef.rows = [row("a", { opens: 1, opened: true })];
    await watch.refresh();
    assert.equal(messenger.callsOf("notifications.create").length, 0);
    // An older helper that says only whether it folds: the folder notifies.
    watch.setHelperState({ folding: true });
    rowsRef.rows = [row("a", { opens: 2, opened: true })];
    await watch.refresh();
    assert.equal(messenger.callsOf("notifications.create").length, 1);
  });

  test("an open told while the tray ran is not told again when it stops", async () => {
    const { watch, messenger, rowsRef } = watchWith({ rows: [row("a")], messages: [{ headerMessageId: "a@x" }], tray: true });
    await watch.refresh();
    rowsRef.rows = [row("a", { opens: 1, opened: true })];
    await watch.refresh();
    watch.setHelperState({ folding: true, tray: false });
    await watch.refresh();
    assert.equal(messenger.callsOf("notifications.create").length, 0);
  });

  test("the notified counts are in storage.local: a new watch (a restart) does not notify again", async () => {
    const local = memoryArea();
    const first = watchWith({ rows: [row("a")], messages: [{ headerMessageId: "a@x" }], local });
    await first.watch.refresh();
    first.rowsRef.rows = [row("a", { opens: 1, opened: true })];
    await first.watch.refresh();
    const second = watchWith({ rows: [row("a", { opens: 1, opened: true })], messages: [{ headerMessageId: "a@x" }], local });
    await second.watch.refresh();
    assert.equal(second.messenger.callsOf("notifications.create").length, 0);
    assert.equal(second.messenger.callsOf("messages.query").length, 0);
    assert.equal(local.data[STATE_KEY].badge, 1);
  });

  test("clearing the badge starts it from zero", async () => {
    const { watch, messenger, rowsRef } = watchWith({ rows: [row("a")], messages: [{ headerMessageId: "a@x" }] });
    await watch.refresh();
    rowsRef.rows = [row("a", { opens: 2, opened: true })];
    await watch.refresh();
    assert.equal(badgeTexts(messenger).at(-1), "2");
    await watch.clearBadge();
    assert.equal(badgeTexts(messenger).at(-1), "");
    rowsRef.rows = [row("a", { opens: 3, opened: true })];
    await watch.refresh();
    assert.equal(badgeTexts(messenger).at(-1), "1");
  });

  test("a Sent copy not there yet is looked up again at the next change", async () => {
    const { watch, messenger, rowsRef } = watchWith({ rows: [row("a")], messages: [] });
    await watch.refresh();
    rowsRef.rows = [row("a", { opens: 1, opened: true })];
    await watch.refresh();
    messenger.store.push({ id: 9, headerMessageId: "a@x", tags: [], folder: { name: "Sent" } });
    await watch.refresh();
    assert.deepEqual(messenger.store[0].tags, [OPENED]);
  });

  test("a reminder: an alarm at its time; when due unopened, Not opened yet and one notification that opens the mail", async () => {
    const remindAt = "2026-12-01T12:00:05.000Z";
    const { watch, messenger, clock } = watchWith({ rows: [row("a", { remind_at: remindAt })],
      messages: [{ headerMessageId: "a@x" }] });
    await watch.refresh();
    assert.deepEqual(messenger.callsOf("alarms.create").at(-1).args, [REMINDER_ALARM, { when: Date.parse(remindAt) }]);
    assert.deepEqual(messenger.store[0].tags, []);
    clock.now = Date.parse(remindAt) + 1;
    await watch.refresh(); // the alarm fired
    assert.deepEqual(messenger.store[0].tags, [NOT_OPENED]);
    const notices = messenger.callsOf("notifications.create");
    assert.equal(notices.length, 1);
    assert.equal(notices[0].args[1].title, "Not opened yet: “Mail a”");
    assert.equal(messenger.callsOf("alarms.clear").length, 1, "no reminder left to wait for");
    await watch.refresh();
    assert.equal(messenger.callsOf("notifications.create").length, 1, "a reminder is told once");
    assert.equal(await watch.openMailOf(notices[0].args[0]), true);
    assert.deepEqual(messenger.callsOf("messageDisplay.open")[0].args, [{ messageId: 1, location: "tab" }]);
    assert.equal(await watch.openMailOf("someone-else"), false);
  });

  test("reminders due together are one notification, apart from an open at the same time", async () => {
    const remindAt = "2026-12-01T12:00:05.000Z";
    const { watch, messenger, rowsRef, clock } = watchWith({
      rows: [row("a", { remind_at: remindAt }), row("b", { remind_at: remindAt, name: "Bob" }), row("c")],
      messages: [{ headerMessageId: "a@x" }, { headerMessageId: "b@x" }, { headerMessageId: "c@x" }] });
    await watch.refresh();
    clock.now = Date.parse(remindAt) + 1;
    rowsRef.rows = [...rowsRef.rows.slice(0, 2), row("c", { opens: 1, opened: true, name: "Cy" })];
    await watch.refresh();
    const shown = messenger.callsOf("notifications.create").map((c) => c.args[1]);
    assert.deepEqual(shown.map((n) => n.title), ["Cy opened your email", "2 emails not opened yet"]);
    assert.equal(shown[1].message, "Ann: “Mail a”\nBob: “Mail b”");
    assert.deepEqual(messenger.store.map((m) => m.tags), [[NOT_OPENED], [NOT_OPENED], [OPENED]]);
  });

  test("an open after the reminder replaces Not opened yet with Opened", async () => {
    const { watch, messenger, rowsRef } = watchWith({ rows: [row("a", { remind_at: "2026-11-30T00:00:00.000Z" })],
      messages: [{ headerMessageId: "a@x", tags: ["todo"] }] });
    await watch.refresh();
    assert.deepEqual(messenger.store[0].tags, ["todo", NOT_OPENED]);
    rowsRef.rows = [row("a", { opens: 1, opened: true, remind_at: "2026-11-30T00:00:00.000Z" })];
    await watch.refresh();
    assert.deepEqual(messenger.store[0].tags, ["todo", OPENED]);
  });

  test("a reply adds Replied (not Opened: the pixel saw nothing), ends the reminder and says who answered", async () => {
    const remind = "2026-11-30T00:00:00.000Z";
    const { watch, messenger, rowsRef } = watchWith({ rows: [row("a", { remind_at: remind })],
      messages: [{ headerMessageId: "a@x", tags: ["todo"] }] });
    await watch.refresh();
    assert.deepEqual(messenger.store[0].tags, ["todo", NOT_OPENED]);
    rowsRef.rows = [row("a", { remind_at: remind, replies: 1, replied_by: "ann@example.net" })];
    await watch.refresh();
    assert.deepEqual(messenger.store[0].tags, ["todo", REPLIED]);
    const titles = messenger.callsOf("notifications.create").map((call) => call.args[1].title);
    assert.equal(titles.at(-1), "ann@example.net replied to your email");
    // An open later: Opened beside Replied; the same reply again is not told twice.
    rowsRef.rows = [row("a", { remind_at: remind, replies: 1, replied_by: "ann@example.net", opens: 1, opened: true })];
    await watch.refresh();
    assert.deepEqual(messenger.store[0].tags, ["todo", OPENED, REPLIED]);
    assert.equal(messenger.callsOf("notifications.create").filter((c) => /replied/.test(c.args[1].title)).length, 1);
  });

  test("a reminder if no reply: due though the mail was opened (No reply yet beside Opened), ended by a reply", async () => {
    const remind = "2026-11-30T00:00:00.000Z";
    const { watch, messenger, rowsRef } = watchWith({
      rows: [row("a", { remind_at: remind, remind_if: "no_reply", opens: 1, opened: true })],
      messages: [{ headerMessageId: "a@x" }] });
    await watch.refresh();
    assert.deepEqual(messenger.store[0].tags, [OPENED, NO_REPLY]);
    const [notice] = messenger.callsOf("notifications.create");
    assert.equal(notice.args[1].title, "No reply yet: “Mail a”");
    rowsRef.rows = [row("a", { remind_at: remind, remind_if: "no_reply", opens: 1, opened: true, replies: 1,
      replied_by: "ann@example.net" })];
    await watch.refresh();
    assert.deepEqual(messenger.store[0].tags, [OPENED, REPLIED]);
    assert.equal(nextReminder([row("b", { remind_at: "2026-12-09T00:00:00.000Z", remind_if: "no_reply",
      opens: 3, opened: true })], NOW), Date.parse("2026-12-09T00:00:00.000Z"), "an open does not end it");
  });

  test("a bounce tags Not delivered, cancels the reminder and says why, once, though a tray runs", async () => {
    const remind = "2026-11-30T00:00:00.000Z";
    const { watch, messenger, rowsRef } = watchWith({ rows: [row("a")], messages: [{ headerMessageId: "a@x" }],
      tray: true });
    await watch.refresh();
    rowsRef.rows = [row("a", { remind_at: remind, undelivered: "nobody@example.net",
      undelivered_reason: "not delivered: 550 5.1.1 user unknown" })];
    await watch.refresh();
    await watch.refresh();
    assert.deepEqual(messenger.store[0].tags, [UNDELIVERED]);
    const notices = messenger.callsOf("notifications.create").map((call) => call.args[1]);
    assert.equal(notices.length, 1, "no reminder for a bounced mail, and the bounce told once");
    assert.equal(notices[0].title, "Your email was not delivered to nobody@example.net");
    assert.match(notices[0].message, /550 5\.1\.1 user unknown\. Its reminder is cancelled/);
  });

  test("refreshes asked for during a run become one more run, each with one list", async () => {
    const { watch, helper } = watchWith({ rows: [row("a")], messages: [] });
    await Promise.all([watch.refresh(), watch.refresh(), watch.refresh()]);
    assert.equal(helper.calls.length, 2);
  });

  test("unsent tags are left out; notification ids carry the Message-ID whole", () => {
    const { entries } = diffRows({}, [row("a", { status: "unsent", opens: 1 })], { now: NOW, notifyHere: true });
    assert.deepEqual(entries, {});
    assert.equal(messageIdOfNotification(notificationIdFor("open", "abc", 1, "x:y@z")), "x:y@z");
  });
});

describe("reminders", () => {
  test("days per mail: the tab's choice, else the identity's default, else off", () => {
    assert.equal(remindDaysFor({ tabChoice: undefined, identityDefault: undefined }), 0);
    assert.equal(remindDaysFor({ tabChoice: undefined, identityDefault: 3 }), 3);
    assert.equal(remindDaysFor({ tabChoice: 0, identityDefault: 3 }), 0);
    assert.equal(remindDaysFor({ tabChoice: 5, identityDefault: 3 }), 5);
    assert.equal(remindDaysFor({ tabChoice: -1, identityDefault: "x" }), 0);
    assert.equal(remindAtFor(NOW, 2), "2026-12-03T12:00:00.000Z");
  });

  test("the next reminder is the earliest to come of the unopened mails", () => {
    const rows = [row("a", { remind_at: "2026-12-05T00:00:00.000Z" }), row("b", { remind_at: "2026-12-02T00:00:00.000Z", opens: 1 }),
      row("c", { remind_at: "2026-12-03T00:00:00.000Z" }), row("d", { remind_at: "2026-11-01T00:00:00.000Z" })];
    assert.equal(nextReminder(rows, NOW), Date.parse("2026-12-03T00:00:00.000Z"));
    assert.equal(nextReminder([], NOW), null);
  });

  test("a send with a reminder chosen asks the helper to keep it; none chosen asks nothing", async () => {
    const session = memoryArea({ "remind:7": { choice: 2, remindIf: "no_reply" } });
    const local = memoryArea({ remindDefaults: { id1: 4 }, reminderDayMs: 1000 });
    const calls = [];
    const helper = { remind: async (args) => calls.push(args) };
    const reminders = createReminders({ helper, runForTab: (_, task) => task(), session, local, now: () => NOW, log: quietLog });
    await reminders.noteSend(7, "id1");
    assert.equal(await reminders.onSent({ tabId: 7, tagId: "t1" }), "2026-12-01T12:00:02.000Z");
    await reminders.noteSend(8, "id1"); // no choice in tab 8: the identity's default
    await reminders.onSent({ tabId: 8, tagId: "t2" });
    await reminders.noteSend(9, "id2"); // no default: off
    assert.equal(await reminders.onSent({ tabId: 9, tagId: "t3" }), null);
    assert.deepEqual(calls, [{ tagId: "t1", remindAt: "2026-12-01T12:00:02.000Z", remindIf: "no_reply" },
      { tagId: "t2", remindAt: "2026-12-01T12:00:04.000Z", remindIf: "not_opened" }]);
    await reminders.forgetTab(7);
    assert.equal("remind:7" in session.data, false);
  });
});

describe("the Tracked mail page's filter and sort", () => {
  const tags = [row("a", { opens: 2, opened: true, created: "2026-11-02" }), row("b", { created: "2026-11-03" }),
    row("c", { clicks: 1, opened: true, created: "2026-11-01" }), row("d", { remind_at: "2026-11-30T00:00:00.000Z", created: "" })];
  const ids = (list) => list.map((t) => t.id);

  test("filters: opened (clicks too), not opened (due too), clicked, reminder due", () => {
    assert.deepEqual(ids(tags.filter((t) => matchesFilter(t, "opened", NOW))), ["a", "c"]);
    assert.deepEqual(ids(tags.filter((t) => matchesFilter(t, "notOpened", NOW))), ["b", "d"]);
    assert.deepEqual(ids(tags.filter((t) => matchesFilter(t, "clicked", NOW))), ["c"]);
    assert.deepEqual(ids(tags.filter((t) => matchesFilter(t, "due", NOW))), ["d"]);
    assert.equal(tags.filter((t) => matchesFilter(t, "all", NOW)).length, 4);
    // A reply is read without an open; a bounce is its own filter; states combine.
    const more = [row("r", { replies: 1 }), row("o", { opens: 1, opened: true, replies: 2 }),
      row("u", { undelivered: "nobody@example.net", remind_at: "2026-11-30T00:00:00.000Z" })];
    assert.deepEqual(ids(more.filter((t) => matchesFilter(t, "replied", NOW))), ["r", "o"]);
    assert.deepEqual(ids(more.filter((t) => matchesFilter(t, "opened", NOW))), ["o"]);
    assert.deepEqual(ids(more.filter((t) => matchesFilter(t, "notOpened", NOW))), ["u"]);
    assert.deepEqual(ids(more.filter((t) => matchesFilter(t, "undelivered", NOW))), ["u"]);
    assert.deepEqual(ids(more.filter((t) => matchesFilter(t, "due", NOW))), [], "a bounce ends the reminder");
  });

  test("sorting by a number or a text, either way, with empty values last", () => {
    assert.deepEqual(ids(sortTags(tags, "opens", true)), ["a", "b", "c", "d"]);
    assert.deepEqual(ids(sortTags(tags, "created", false)), ["c", "a", "b", "d"]);
    assert.deepEqual(ids(sortTags(tags, "created", true)), ["b", "a", "c", "d"]);
  });

  test("the Sent column: Thunderbird's send time; a mint time labelled; a mail never sent says so, with no time", () => {
    // As the helper's Row.sending gives them (sent_time, sent_how).
    assert.deepEqual(sendingOf({ status: "sent", created: "2026-11-01T09:00:00.000Z", sent_time: "2026-11-01T09:00:03.000Z", sent_how: "sent" }),
      { time: "2026-11-01T09:00:03.000Z", note: null });
    assert.deepEqual(sendingOf({ status: "sent", created: "2026-11-01T09:00:00.000Z", sent_time: "2026-11-01T09:00:00.000Z", sent_how: "minted" }),
      { time: "2026-11-01T09:00:00.000Z", note: "minted" });
    assert.deepEqual(sendingOf({ status: "unsent", created: "2026-11-01T09:00:00.000Z", sent_time: "", sent_how: "unsent" }),
      { time: null, note: "unsent" });
    for (const note of ["minted", "unconfirmed", "unsent", "tagged"]) {
      assert.ok(getMessage(`trackedSent_${note}`) && getMessage(`trackedSentWhy_${note}`), note);
    }
    // Sorted by send time, newest first, a mail never sent last.
    const sent = [{ id: "x", sent_time: "2026-11-02" }, { id: "y", sent_time: "" }, { id: "z", sent_time: "2026-11-03" }];
    assert.deepEqual(ids(sortTags(sent, "sent_time", true)), ["z", "x", "y"]);
  });

  test("the opens of a status with their device and client, newest first", () => {
    const status = { timeline: [
      { time: "2026-11-01T10:00:00.000Z", label: "prefetch", counted: false, client: "Mimecast" },
      { time: "2026-11-01T11:00:00.000Z", label: "open", counted: true, client: "Outlook on Windows" },
      { time: "2026-11-01T12:00:00.000Z", label: "proxy", counted: true, client: "Gmail (device unknown)" },
    ] };
    assert.deepEqual(countedOpens(status).map((o) => o.client), ["Gmail (device unknown)", "Outlook on Windows"]);
  });
});
