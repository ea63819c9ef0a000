import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";

import {
  MAX_IDS,
  VERDICTS,
  automaticReason,
  cleanText,
  decodeWords,
  headerBlockOf,
  headersFromObject,
  judge,
  parseDeliveryReport,
  parseHeaderFields,
  referencedIds,
} from "../modules/replies.mjs";

// Real-world samples, trimmed; where each comes from is in data/replies/SOURCES.md.
const sample = (name) => readFileSync(new URL(`./data/replies/${name}`, import.meta.url), "latin1");
const OWN = ["sam@sender.example.org"];

/** What the add-on does with a received message: its headers, and for a report its raw text. */
function judgeRaw(raw, ownEmails = OWN) {
  const headers = parseHeaderFields(headerBlockOf(raw));
  const report = headers.get("content-type")?.[0]?.includes("multipart/report") ? parseDeliveryReport(raw) : null;
  return judge({ headers, ownEmails, report });
}

describe("automatic answers are not replies", () => {
  for (const [file, why] of [
    ["exchange-oof-automatic-reply.eml", /Outlook\/Exchange rule/],
    ["exchange-2013-rules-autoreply.eml", /Auto-Submitted: auto-generated/],
    ["apple-icloud-vacation.eml", /Apple iCloud vacation/],
    ["rfc3834-away.eml", /Auto-Submitted: auto-replied/],
    ["mimecast-autoresponse.eml", /Auto-Submitted: auto-replied/],
  ]) {
    test(`${file}: an automatic answer, not counted, with its reason`, () => {
      const verdict = judgeRaw(sample(file));
      assert.equal(verdict.verdict, VERDICTS.auto);
      assert.match(verdict.reason, why);
      assert.match(verdict.reason, /not counted/);
      assert.deepEqual(verdict.messageIds, ["tracked-1@sender.example.org"]);
    });
  }

  test("each rule on its own: X-Autoreply, X-Autorespond, Precedence, Exchange rules, Apple, subject", () => {
    const reasonOf = (text) => automaticReason(parseHeaderFields(`From: a@example.net\n${text}`));
    assert.match(reasonOf("X-Autoreply: yes"), /X-Autoreply/);
    assert.match(reasonOf("X-Autorespond: vacation"), /X-Autorespond/);
    assert.match(reasonOf("Precedence: auto_reply"), /Precedence: auto_reply/);
    assert.match(reasonOf("Precedence: junk"), /Precedence: junk/);
    assert.match(reasonOf("X-MS-Exchange-Inbox-Rules-Loop: a@example.net"), /Exchange rule/);
    assert.match(reasonOf("X-Apple-Action: VACATION"), /Apple/);
    assert.match(reasonOf("Subject: Out of Office: Offer"), /subject/);
    assert.match(reasonOf("Subject: Automatische Antwort: Angebot"), /subject/);
    assert.match(reasonOf("Subject: =?UTF-8?B?T3V0IG9mIE9mZmljZQ==?="), /subject/);
  });

  test("what a person's mail carries is not taken for an automatic answer", () => {
    const reasonOf = (text) => automaticReason(parseHeaderFields(`From: a@example.net\n${text}`));
    assert.equal(reasonOf("Auto-Submitted: no"), "");
    assert.equal(reasonOf("Precedence: list"), "");
    // Outlook sets this on mail people write; alone it says nothing about who wrote it.
    assert.equal(reasonOf("X-Auto-Response-Suppress: All"), "");
    assert.equal(reasonOf("Subject: Re: my vacation plans"), "");
    assert.equal(reasonOf("Subject: RE: Out of office next week?"), "");
  });
});

describe("replies from people", () => {
  test("an Outlook reply naming the tracked mail is a reply, credited to its sender", () => {
    const verdict = judgeRaw(sample("person-reply-outlook.eml"));
    assert.equal(verdict.verdict, VERDICTS.reply);
    assert.equal(verdict.from, "ann@example.net");
    assert.deepEqual(verdict.messageIds, ["tracked-1@sender.example.org"]);
  });

  test("a reply deep in a thread, from someone the mail was forwarded to: the tracked mail is among its candidates", () => {
    const verdict = judgeRaw(sample("person-reply-late-in-thread.eml"));
    assert.equal(verdict.verdict, VERDICTS.reply);
    assert.equal(verdict.from, "bjorn@example.net");
    // In-Reply-To first, then References from the newest back.
    assert.deepEqual(verdict.messageIds, [
      "CAF9x=reply2@mail.gmail.com", "tracked-1@sender.example.org", "older-0@sender.example.org"]);
  });

  test("the user's own message in the thread (a note to self, a Cc to self) is not a reply", () => {
    const raw = sample("person-reply-outlook.eml").replace("From: Ann Example <ann@example.net>",
      "From: Sam Sender <SAM@sender.example.org>");
    const verdict = judgeRaw(raw);
    assert.equal(verdict.verdict, VERDICTS.own);
    assert.match(verdict.reason, /your own message/);
  });

  test("a message that answers no earlier mail is not related", () => {
    const raw = "From: ann@example.net\nSubject: Hello\nMessage-ID: <new@example.net>\n\nHi";
    assert.equal(judgeRaw(raw).verdict, VERDICTS.unrelated);
  });

  test("a Thunderbird header object (getFull / getHeaders) judges the same as the raw text", () => {
    const object = { from: ["Ann <ann@example.net>"], "in-reply-to": ["<tracked-1@sender.example.org>"],
      subject: ["Re: Offer"] };
    const verdict = judge({ headers: headersFromObject(object), ownEmails: OWN });
    assert.equal(verdict.verdict, VERDICTS.reply);
    assert.deepEqual(verdict.messageIds, ["tracked-1@sender.example.org"]);
  });
});

describe("delivery reports", () => {
  for (const file of ["postfix-dsn.eml", "gmail-dsn.eml", "exchange-online-ndr.eml"]) {
    test(`${file}: a bounce of the tracked mail, for its recipient, with the server's reason`, () => {
      const verdict = judgeRaw(sample(file));
      assert.equal(verdict.verdict, VERDICTS.bounce);
      assert.equal(verdict.messageIds[0], "tracked-2@sender.example.org");
      assert.deepEqual(verdict.bounces.map((bounce) => bounce.recipient), ["nobody@example.net"]);
      assert.match(verdict.bounces[0].reason, /^not delivered: 550 5\.1\.1 <nobody@example\.net>: Recipient address/);
    });
  }

  test("Postfix names the mail only in the returned message: that is where its Message-ID is read", () => {
    assert.equal(parseDeliveryReport(sample("postfix-dsn.eml")).originalId, "tracked-2@sender.example.org");
  });

  test("a report that says delayed or delivered is not a bounce", () => {
    const delayed = sample("postfix-dsn.eml").replace("Action: failed", "Action: delayed");
    const verdict = judgeRaw(delayed);
    assert.equal(verdict.verdict, VERDICTS.auto);
    assert.match(verdict.reason, /delayed.*not a bounce/);
  });

  test("a bounce is judged before the Auto-Submitted it also carries", () => {
    assert.match(sample("gmail-dsn.eml"), /Auto-Submitted: auto-replied/);
    assert.equal(judgeRaw(sample("gmail-dsn.eml")).verdict, VERDICTS.bounce);
  });
});

describe("outside input is bounded and neutralised", () => {
  test("control characters and line breaks leave a reason or an address; long text is cut", () => {
    assert.equal(cleanText("550\r\n=cmd|' /C calc'!A0\u0000\u2028x"), "550 =cmd|' /C calc'!A0 x");
    assert.equal(cleanText("x".repeat(5000)).length, 200);
  });

  test("a diagnostic stuffed with line breaks comes out as one bounded line", () => {
    const raw = sample("postfix-dsn.eml").replace(/Diagnostic-Code: smtp; 550 5\.1\.1/,
      `Diagnostic-Code: smtp; 550 ${"A".repeat(10_000)}\u0007`);
    const [bounce] = judgeRaw(raw).bounces;
    assert.ok(bounce.reason.length <= 200);
    // eslint-disable-next-line no-control-regex
    assert.doesNotMatch(bounce.reason, /[\u0000-\u001f]/);
  });

  test("References naming thousands of ids are cut to the newest MAX_IDS", () => {
    const ids = Array.from({ length: 5000 }, (_, n) => `<id-${n}@example.net>`).join(" ");
    const headers = parseHeaderFields(`From: a@example.net\nReferences: ${ids}`);
    const found = referencedIds(headers);
    assert.equal(found.length, MAX_IDS);
    assert.equal(found[0], "id-4999@example.net");
  });

  test("a huge header block costs bounded work, and what it names is still read", () => {
    const raw = `From: ann@example.net\nIn-Reply-To: <tracked-1@sender.example.org>\nX-Junk: ${"y".repeat(3_000_000)}\n\nbody`;
    const started = Date.now();
    const verdict = judgeRaw(raw);
    assert.equal(verdict.verdict, VERDICTS.reply);
    assert.ok(Date.now() - started < 2000);
  });

  test("an address with a display name in encoded words is kept as the bare address", () => {
    assert.equal(judgeRaw(sample("person-reply-late-in-thread.eml")).from, "bjorn@example.net");
    assert.equal(decodeWords("=?UTF-8?Q?Bj=C3=B6rn?="), "Björn");
  });
});
