// The honest "not seen" in the add-on: a mail whose recipients' opens cannot show (the helper's
// not_seen column) is tagged and filtered as such, never "Not opened yet", and its "if not opened"
// reminder waits for a reply and says so; an open from somewhere new is hinted in the timelines.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { getMessage } from "./fixtures.mjs";
import { noticeText } from "../modules/openWatch.mjs";
import { nextReminder, reminderSettled, reminderWaitsFor } from "../modules/reminders.mjs";
import { STATE_TAGS, keysOf, stateOf } from "../modules/sentList.mjs";
import { countedOpens, matchesFilter } from "../modules/trackedView.mjs";
import { summarizeStatus } from "../modules/messageInfo.mjs";

const NOW = Date.parse("2026-12-01T12:00:00.000Z");
const PASSED = "2026-11-30T00:00:00.000Z";
const LATER = "2026-12-05T00:00:00.000Z";

function row(id, fields = {}) {
  return { id, short_id: id, name: "Ann", subject: `Mail ${id}`, status: "sent", message_id: `${id}@x`,
    recipients: "ann@example.net", opens: 0, clicks: 0, replies: 0, opened: false, remind_at: "", ...fields };
}

const notVisible = (fields = {}) => row("v", { not_seen: "no_images", not_seen_by: "ann@example.net",
  not_seen_reason: "ann@example.net does not load images: replied to “Offer” (tag abc1234) without its image being loaded",
  ...fields });

describe("a mail whose opens cannot show", () => {
  test("its Sent copy is tagged Opens not visible / not measurable, never Not opened yet", () => {
    assert.equal(stateOf(notVisible(), NOW), "notVisible");
    assert.deepEqual(keysOf(stateOf(notVisible(), NOW)), [STATE_TAGS.notVisible.key]);
    assert.equal(stateOf(row("m", { not_seen: "not_measurable" }), NOW), "notMeasurable");
    assert.deepEqual(keysOf("notMeasurable"), [STATE_TAGS.notMeasurable.key]);
    // Once answered (or bounced) the reply is what shows.
    assert.equal(stateOf(notVisible({ replies: 1 }), NOW), "replied");
    assert.equal(stateOf(row("x", { not_seen: "something else" }), NOW), "none");
  });

  test("the Tracked mail page's 'opens not visible' filter finds it; 'not opened' does not", () => {
    const tags = [notVisible(), row("m", { not_seen: "not_measurable" }), row("n"), row("o", { opens: 1, opened: true })];
    const ids = (filter) => tags.filter((t) => matchesFilter(t, filter, NOW)).map((t) => t.id);
    assert.deepEqual(ids("notSeen"), ["v", "m"]);
    assert.deepEqual(ids("notOpened"), ["n"]);
  });

  test("an 'if not opened' reminder waits for a reply: due as 'No reply yet', ended only by a reply", () => {
    const due = notVisible({ remind_at: PASSED });
    assert.equal(reminderWaitsFor(due), "no_reply");
    assert.equal(reminderWaitsFor(row("n", { remind_at: PASSED })), "not_opened");
    assert.equal(stateOf(due, NOW), "notVisible+noReply");
    assert.deepEqual(keysOf(stateOf(due, NOW)), [STATE_TAGS.notVisible.key, STATE_TAGS.noReply.key]);
    assert.equal(reminderSettled(due), false);
    assert.equal(reminderSettled(notVisible({ remind_at: PASSED, replies: 1 })), true);
    assert.equal(stateOf(notVisible({ remind_at: PASSED, replies: 1 }), NOW), "replied");
    assert.equal(nextReminder([notVisible({ remind_at: LATER })], NOW), Date.parse(LATER));
    // Its notification says it waited for a reply, and why.
    const { title, message } = noticeText({ kind: "reminder", row: due }, getMessage);
    assert.equal(title, "No reply yet: “Mail v”");
    assert.match(message, /has answered .*cannot be seen, so this reminder waited for a reply/);
    // A mail whose opens can show keeps the "not opened" reminder and wording.
    assert.equal(stateOf(row("n", { remind_at: PASSED }), NOW), "due");
  });
});

describe("an open from somewhere new", () => {
  const status = { tracked: true, opened_elsewhere: "2026-11-01T12:00:00.000Z", timeline: [
    { time: "2026-11-01T10:00:00.000Z", label: "open", counted: true, client: "Outlook on Windows" },
    { time: "2026-11-01T11:00:00.000Z", label: "prefetch", counted: false, client: "Mimecast" },
    { time: "2026-11-01T12:00:00.000Z", label: "open", counted: true, client: "Mobile Safari on iOS" },
  ] };

  test("the Tracked mail page's opens and the popup's timeline mark only that open", () => {
    assert.deepEqual(countedOpens(status).map((o) => o.elsewhere), [true, false]);
    assert.deepEqual(summarizeStatus(status).timeline.map((e) => e.elsewhere), [false, false, true]);
    assert.deepEqual(countedOpens({ ...status, opened_elsewhere: "" }).map((o) => o.elsewhere), [false, false]);
    assert.equal(getMessage("timelineElsewhere"), "opened on another device or by someone else (forwarded?)");
  });
});
