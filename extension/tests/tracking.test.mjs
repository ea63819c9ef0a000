import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { buttonStatus, helperReadiness } from "../modules/composeIndicator.mjs";
import { HelperError } from "../modules/nativeHost.mjs";
import { serverSeenText } from "../modules/serverSeen.mjs";
import { fakeHelper, getMessage } from "./fixtures.mjs";

import {
  DEFAULT_TRACKING,
  classifySendResult,
  countRecipients,
  decideOnHelperFailure,
  describeCompose,
  emailOf,
  identityOf,
  isTrackingWanted,
  planSend,
  recipientsOf,
} from "../modules/tracking.mjs";

const html = (extra = {}) => ({ isPlainText: false, deliveryFormat: "auto", to: ["a@example.org"], ...extra });

describe("isTrackingWanted", () => {
  test("an identity without a default tracks every HTML email", () => {
    assert.equal(DEFAULT_TRACKING, true);
    assert.equal(isTrackingWanted({ identityId: "id1", identityDefaults: {} }), true);
  });

  test("the identity's default from the options page applies", () => {
    assert.equal(isTrackingWanted({ identityId: "id1", identityDefaults: { id1: false } }), false);
    assert.equal(isTrackingWanted({ identityId: "id2", identityDefaults: { id1: false } }), true);
  });

  test("the per-tab toggle overrides the identity default both ways", () => {
    assert.equal(isTrackingWanted({ identityId: "id1", tabChoice: true, identityDefaults: { id1: false } }), true);
    assert.equal(isTrackingWanted({ identityId: "id1", tabChoice: false, identityDefaults: {} }), false);
  });
});

describe("describeCompose", () => {
  test("an HTML email that is wanted is shown as tracked", () => {
    assert.equal(describeCompose({ wanted: true, details: html() }).status, "tracked");
  });

  test("a plain-text editor is never shown as tracked, and cannot be switched from here", () => {
    const view = describeCompose({ wanted: true, details: html({ isPlainText: true, deliveryFormat: null }) });
    assert.equal(view.status, "untrackable");
    assert.equal(view.reason, "plainTextEditor");
    assert.equal(view.canSwitchToHtml, false);
  });

  test("an HTML email set to go out as plain text offers the switch to HTML", () => {
    const view = describeCompose({ wanted: true, details: html({ deliveryFormat: "plaintext" }) });
    assert.equal(view.status, "untrackable");
    assert.equal(view.canSwitchToHtml, true);
  });

  test("an email the user turned off is shown as off", () => {
    assert.equal(describeCompose({ wanted: false, details: html() }).status, "off");
  });

  test("several recipients, across to/cc/bcc, are flagged; one is not", () => {
    assert.equal(describeCompose({ wanted: true, details: html() }).several, false);
    assert.equal(describeCompose({ wanted: true, details: html({ cc: ["b@example.org"] }) }).several, true);
  });

  test("a mailing list counts as several recipients", () => {
    assert.equal(countRecipients({ to: ["Team <Team>"] }) > 1, true);
    assert.equal(countRecipients({ to: [{ id: "x", type: "mailingList" }] }) > 1, true);
    assert.equal(countRecipients({ to: "a@example.org" }), 1);
  });
});

describe("planSend", () => {
  test("a wanted HTML email is tracked and forced to multipart, since 'auto' may drop the HTML", () => {
    assert.deepEqual(planSend({ wanted: true, details: html() }), { track: true, reason: null, deliveryFormat: "both" });
  });

  test("an explicit html or both delivery format is kept", () => {
    assert.equal(planSend({ wanted: true, details: html({ deliveryFormat: "html" }) }).deliveryFormat, undefined);
    assert.equal(planSend({ wanted: true, details: html({ deliveryFormat: "both" }) }).deliveryFormat, undefined);
  });

  test("a plain-text email is sent untracked, never pretended", () => {
    assert.deepEqual(planSend({ wanted: true, details: html({ isPlainText: true }) }), {
      track: false,
      reason: "plainTextEditor",
    });
    assert.equal(planSend({ wanted: true, details: html({ deliveryFormat: "plaintext" }) }).track, false);
  });

  test("an email turned off is not tracked", () => {
    assert.equal(planSend({ wanted: false, details: html() }).track, false);
  });
});

describe("decideOnHelperFailure", () => {
  test("by default the email is sent untracked", () => {
    assert.deepEqual(decideOnHelperFailure({ blockOnHelperFailure: false }), { cancel: false });
    assert.deepEqual(decideOnHelperFailure({}), { cancel: false });
  });

  test("with the block option on, the send is cancelled", () => {
    assert.deepEqual(decideOnHelperFailure({ blockOnHelperFailure: true }), { cancel: true });
  });
});

describe("addresses and send results", () => {
  test("recipientsOf lists to, cc and bcc as strings", () => {
    assert.deepEqual(recipientsOf({ to: ["A <a@x.org>"], cc: "b@x.org", bcc: [{ id: "c1", type: "contact" }] }), [
      "A <a@x.org>",
      "b@x.org",
      "contact:c1",
    ]);
  });

  test("emailOf and identityOf give the bare sender address", () => {
    assert.equal(emailOf("Ann Example <Ann@Example.org>"), "ann@example.org");
    assert.equal(identityOf({ from: "Ann <ann@example.org>", identityId: "id1" }), "ann@example.org");
    assert.equal(identityOf({ identityId: "id1" }), "id1");
  });

  test("a send with an error, or a draft, is not sent", () => {
    assert.equal(classifySendResult({ mode: "sendNow", error: "SMTP said no" }).sent, false);
    assert.equal(classifySendResult({ mode: "draft" }).sent, false);
  });

  test("a successful send yields its header Message-ID, falling back to the copies'", () => {
    assert.deepEqual(classifySendResult({ mode: "sendNow", headerMessageId: "m1@x" }), {
      sent: true,
      messageId: "m1@x",
      reason: null,
    });
    assert.equal(classifySendResult({ mode: "sendLater", messages: [{ headerMessageId: "m2@x" }] }).messageId, "m2@x");
  });
});

describe("redirect", () => {
  test("a redirected mail is someone else's and is never tracked", () => {
    const details = html({ type: "redirect" });
    assert.equal(planSend({ wanted: true, details }).track, false);
    assert.equal(describeCompose({ wanted: true, details }).status, "untrackable");
  });
});


describe("the Track button before Send: what the helper says", () => {
  // helperReadiness reads strings through browser.i18n, as in Thunderbird.
  globalThis.browser = { i18n: { getMessage } };
  const fails = (kind, message, code = null, hint = "") => () => {
    throw new HelperError(kind, message, code, hint);
  };

  test("a helper that answers, can mint and has a public server: the mail is tracked", async () => {
    const readiness = await helperReadiness(fakeHelper());
    assert.deepEqual(readiness, { state: "ready" });
    assert.equal(buttonStatus({ status: "tracked" }, readiness), "tracked");
  });

  test("no helper: not tracked, and the fix is install-host, then doctor", async () => {
    const readiness = await helperReadiness(fakeHelper({ ping: fails("missing", "No such native application") }));
    assert.equal(readiness.state, "helperDown");
    assert.match(readiness.problem, /cannot find the mailtracker helper.*mailtracker install-host.*mailtracker doctor/s);
    assert.equal(buttonStatus({ status: "tracked" }, readiness), "helperDown");
  });

  test("a helper that never answers is down after the bound", async () => {
    const readiness = await helperReadiness(fakeHelper({ ping: () => new Promise(() => {}) }), { timeoutMs: 20 });
    assert.equal(readiness.state, "helperDown");
    assert.match(readiness.problem, /did not answer in time/);
  });

  test("a helper without its secret: not tracked, with the helper's fix for code 12, not install-host", async () => {
    const config = () => ({
      pixel_base: "https://t.example.org/p/",
      mint_problem: { code: 12, message: "No secret at /h/secret.", hint: "Copy the secret from your pixel server." },
    });
    const readiness = await helperReadiness(fakeHelper({ config }));
    assert.deepEqual(readiness, { state: "cannotMint", code: 12, problem: "No secret at /h/secret. Copy the secret from your pixel server." });
    assert.doesNotMatch(readiness.problem, /install-host/);
    assert.equal(buttonStatus({ status: "tracked" }, readiness), "cannotMint");
  });

  test("a loopback server: tracked, but said to be unreachable by recipients", async () => {
    const config = () => ({ pixel_base: "http://127.0.0.1:56789/p/", unreachable: "Recipients cannot reach this server." });
    const readiness = await helperReadiness(fakeHelper({ config }));
    assert.deepEqual(readiness, { state: "unreachable", problem: "Recipients cannot reach this server." });
    assert.equal(buttonStatus({ status: "tracked" }, readiness), "unreachable");
  });

  test("a mail not tracked anyway, or not checked, shows its own status", () => {
    assert.equal(buttonStatus({ status: "off" }, { state: "helperDown" }), "off");
    assert.equal(buttonStatus({ status: "untrackable" }, { state: "cannotMint" }), "untrackable");
    assert.equal(buttonStatus({ status: "tracked" }, null), "tracked");
  });

  // The host's server_seen (config): how the pixel server answered this computer's pulls when
  // last seen. A moment today, in this machine's zone: the text shows it as 10:42.
  const today = new Date();
  today.setHours(10, 42, 0, 0);
  const down = {
    how: "pull", state: "unreachable", server: "t.example.org", since: today.toISOString(),
    reason: "connection refused", code: 70, hint: "Run 'mailtracker doctor --server' to find where the way to the server breaks.",
    message: "cannot connect to t.example.org: Connection refused; is the pixel server running and reachable?",
  };
  const withSeen = (seen, extra = {}) => fakeHelper({ config: () => ({ pixel_base: "https://t.example.org/p/", server_seen: seen, ...extra }) });

  test("a pixel server that did not answer when last seen: tracked, said so with the time, the reason and doctor --server", async () => {
    globalThis.browser.i18n.getUILanguage = () => "en-GB";
    const readiness = await helperReadiness(withSeen(down));
    assert.equal(readiness.state, "serverDown");
    assert.equal(readiness.problem,
      "Tracked — but the pixel server did not answer at 10:42 (connection refused); opens will show once it is back. " +
      "Run 'mailtracker doctor --server' to find where the way to the server breaks.");
    assert.equal(buttonStatus({ status: "tracked" }, readiness), "serverDown");
  });

  test("a server that answered but refused the pull: its message and its own fix, not 'did not answer'", async () => {
    const refused = { ...down, state: "failing", reason: "", code: 71, message: "t.example.org refused the pull token (HTTP 401).",
      hint: "Copy this desktop's secret to the server." };
    const readiness = await helperReadiness(withSeen(refused));
    assert.equal(readiness.state, "serverDown");
    assert.match(readiness.problem, /could not take opens from the pixel server at 10:42: t\.example\.org refused the pull token \(HTTP 401\)\. Copy this desktop's secret/);
    assert.doesNotMatch(readiness.problem, /did not answer/);
  });

  test("a failure seen on another day shows its date too", () => {
    const yesterday = new Date(today.getTime() - 86400000);
    assert.match(serverSeenText({ ...down, since: yesterday.toISOString() }, today), /at \d{1,2} \w{3} \d{4}, 10:42 \(/);
  });

  test("a server that answers, or was never pulled yet, changes nothing", async () => {
    for (const seen of [{ how: "pull", state: "reachable", since: today.toISOString() }, { how: "pull", state: "unknown" }, undefined]) {
      assert.deepEqual(await helperReadiness(withSeen(seen)), { state: "ready" });
    }
  });

  test("hits synced by a sync tool: no alarm, only when opens last arrived (nothing when none did)", async () => {
    const synced = await helperReadiness(withSeen({ how: "sync", state: "unknown", hits_changed: today.toISOString() }));
    assert.deepEqual(synced, { state: "ready", note: "Opens arrive through your sync tool; they last arrived at 10:42." });
    assert.deepEqual(await helperReadiness(withSeen({ how: "sync", state: "unknown", hits_changed: "" })), { state: "ready" });
  });

  test("a helper that cannot mint is told before a server that did not answer", async () => {
    const mint_problem = { code: 12, message: "No secret.", hint: "Copy it." };
    assert.equal((await helperReadiness(withSeen(down, { mint_problem }))).state, "cannotMint");
    assert.equal((await helperReadiness(withSeen(down, { unreachable: "Recipients cannot reach it." }))).state, "unreachable");
  });

  test("every status the button can show has an icon title, a headline and an explanation", () => {
    for (const status of ["helperDown", "cannotMint", "unreachable", "serverDown"]) {
      for (const key of [`buttonTitle_${status}`, `composeHeadline_${status}`, `composeExplain_${status}`]) {
        assert.ok(getMessage(key), key);
      }
    }
    assert.doesNotMatch(getMessage("composeHeadline_helperDown"), /will be tracked/);
    assert.doesNotMatch(getMessage("composeHeadline_cannotMint"), /will be tracked/);
  });
});
