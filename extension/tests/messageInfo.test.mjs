import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { identityEmails, isOwnMessage, messagesOf, summarizeStatus } from "../modules/messageInfo.mjs";

const stranger = { headerMessageId: "s@x", author: "Stranger <s@elsewhere.org>", folder: { type: "inbox" } };

describe("own messages", () => {
  test("messagesOf accepts an array or a MessageList", () => {
    assert.deepEqual(messagesOf([stranger]), [stranger]);
    assert.deepEqual(messagesOf({ id: null, messages: [stranger] }), [stranger]);
    assert.deepEqual(messagesOf(undefined), []);
  });

  test("a message in a Sent folder is the user's own", () => {
    assert.equal(isOwnMessage({ ...stranger, folder: { specialUse: ["sent"] } }), true);
    assert.equal(isOwnMessage({ ...stranger, folder: { type: "sent" } }), true);
  });

  test("a message authored by one of the user's identities is their own, case-insensitively", () => {
    assert.equal(isOwnMessage({ ...stranger, author: "Me <ME@example.org>" }, { ownEmails: ["me@example.org"] }), true);
  });

  test("a message this profile recorded sending is their own wherever it is filed", () => {
    assert.equal(isOwnMessage(stranger, { sentIds: ["s@x"] }), true);
  });

  test("someone else's message is not", () => {
    assert.equal(isOwnMessage(stranger, { ownEmails: ["me@example.org"], sentIds: [] }), false);
  });

  test("identityEmails collects every identity of every account", () => {
    const accounts = [{ identities: [{ email: "A@x.org" }, { email: "b@x.org" }] }, { identities: [] }];
    assert.deepEqual(identityEmails(accounts), ["a@x.org", "b@x.org"]);
  });
});

describe("summarizeStatus", () => {
  test("an untracked message says so and nothing else", () => {
    assert.deepEqual(summarizeStatus({ tracked: false }), { tracked: false });
  });

  test("a mail sent individually has a row per recipient: opened or not, first/last open, device, clicks", () => {
    const summary = summarizeStatus({
      tracked: true,
      opens: 1,
      recipients: [
        { recipient: "ann@x.org", opened: false, opens: 0, first_open: "", last_open: "", device: "", clicks: 0 },
        {
          recipient: "bob@x.org",
          opened: true,
          opens: 1,
          first_open: "2025-01-02T10:00:00Z",
          last_open: "2025-01-02T10:00:00Z",
          device: "Outlook on Windows",
          clicks: 2,
        },
      ],
    });
    assert.deepEqual(
      summary.recipients.map((r) => [r.recipient, r.opened, r.firstOpen?.toISOString() ?? null, r.device, r.clicks]),
      [
        ["ann@x.org", false, null, "", 0],
        ["bob@x.org", true, "2025-01-02T10:00:00.000Z", "Outlook on Windows", 2],
      ],
    );
    assert.deepEqual(summarizeStatus({ tracked: true }).recipients, []);
  });

  test("the timeline is sorted oldest first, counted per label, and unknown labels read as opens", () => {
    const summary = summarizeStatus({
      tracked: true,
      short_id: "abc1234",
      opens: 2,
      first_open: "2025-01-02T10:00:00Z",
      last_open: "2025-01-03T09:00:00Z",
      timeline: [
        { time: "2025-01-03T09:00:00Z", label: "open" },
        { time: "2025-01-01T08:00:00Z", label: "self" },
        { time: "2025-01-02T10:00:00Z", label: "proxy" },
        { time: "2025-01-01T08:00:05Z", label: "weird" },
        { time: "garbage", label: "open" },
      ],
    });
    assert.deepEqual(
      summary.timeline.map((e) => [e.time.toISOString(), e.label]),
      [
        ["2025-01-01T08:00:00.000Z", "self"],
        ["2025-01-01T08:00:05.000Z", "open"],
        ["2025-01-02T10:00:00.000Z", "proxy"],
        ["2025-01-03T09:00:00.000Z", "open"],
      ],
    );
    assert.deepEqual(summary.counts, { open: 2, proxy: 1, prefetch: 0, self: 1, click: 0 });
    assert.equal(summary.opens, 2);
    assert.equal(summary.firstOpen.toISOString(), "2025-01-02T10:00:00.000Z");
  });

  test("a long timeline keeps the newest events and says how many are hidden", () => {
    const timeline = Array.from({ length: 30 }, (_, i) => ({
      time: new Date(Date.UTC(2025, 0, 1, 0, i)).toISOString(),
      label: "open",
    }));
    const summary = summarizeStatus({ tracked: true, opens: 30, timeline }, { limit: 20 });
    assert.equal(summary.timeline.length, 20);
    assert.equal(summary.hiddenEarlier, 10);
    assert.equal(summary.timeline.at(-1).time.toISOString(), timeline.at(-1).time);
  });
});
