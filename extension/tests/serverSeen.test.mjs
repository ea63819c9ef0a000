import assert from "node:assert/strict";
import { before, describe, test } from "node:test";

import { serverSeenLines } from "../modules/serverSeen.mjs";
import { getMessage } from "./fixtures.mjs";

// The options page's lines for the helper's server_seen (docs/protocol.md), as the host answers it.
// A moment today in this machine's zone: the lines show it as 04:39 (en-GB).
const now = new Date();
now.setHours(23, 0, 0, 0);
const at = new Date(now);
at.setHours(4, 39, 0, 0);
const since = at.toISOString();
const DOCTOR = "Run 'mailtracker doctor --server' to find where the way to the server breaks.";
const down = {
  how: "pull", state: "unreachable", server: "t.example.org", since, last_reached: "",
  reason: "connection refused", code: 70, hint: DOCTOR,
  message: "cannot connect to t.example.org: Connection refused; is the pixel server running and reachable?",
};
const refused = {
  ...down, state: "failing", reason: "", code: 71, message: "t.example.org refused the pull token (HTTP 401).",
  hint: "Copy this desktop's secret to the server.",
};
const reachable = { how: "pull", state: "reachable", server: "t.example.org", since, last_reached: since };

describe("the options page's pixel server as last seen", () => {
  before(() => {
    globalThis.browser = { i18n: { getMessage, getUILanguage: () => "en-GB" } };
  });

  test("reachable: since when it answers, and no alarm", () => {
    assert.deepEqual(serverSeenLines(reachable, now), [
      { text: "Last seen: the pixel server has answered this computer's pulls since 04:39.", down: false },
    ]);
  });

  test("no answer: when, the reason, that opens follow once it is back, and the one hint for its code", () => {
    assert.deepEqual(serverSeenLines(down, now), [{
      text: "Last seen: the pixel server did not answer at 04:39 (connection refused); opens will show once it " +
        `is back. ${DOCTOR}`,
      down: true,
    }]);
  });

  test("a refused pull: the server's own message and its fix, not 'did not answer'", () => {
    const [line] = serverSeenLines(refused, now);
    assert.equal(line.text, "Last seen: this computer could not take opens from the pixel server at 04:39: " +
      "t.example.org refused the pull token (HTTP 401). Copy this desktop's secret to the server.");
    assert.equal(line.down, true);
  });

  test("the same words as the Track popup's: one owner of the sentence", () => {
    const [line] = serverSeenLines(down, now);
    const compose = getMessage("composeTrackedBut", [line.text.replace(/^Last seen: /, "")]);
    assert.match(compose, /^Tracked — but the pixel server did not answer at 04:39 \(connection refused\)/);
  });

  test("a failure on another day shows its date too", () => {
    const [line] = serverSeenLines({ ...down, since: new Date(at.getTime() - 86400000).toISOString() }, now);
    assert.match(line.text, /did not answer at \d{1,2} \w{3} \d{4}, 04:39 \(/);
  });

  test("never pulled yet: said plainly, no alarm", () => {
    const [line] = serverSeenLines({ how: "pull", state: "unknown", server: "t.example.org" }, now);
    assert.equal(line.down, false);
    assert.match(line.text, /^Last seen: this computer has not pulled opens from the pixel server yet/);
  });

  test("hits brought by a sync tool: when they last arrived, never an alarm", () => {
    const synced = { how: "sync", state: "unknown", hits_changed: since };
    assert.deepEqual(serverSeenLines(synced, now), [
      { text: "Opens arrive through your sync tool; they last arrived at 04:39.", down: false },
    ]);
    assert.deepEqual(serverSeenLines({ ...synced, hits_changed: "" }, now), [
      { text: "Opens arrive through your sync tool; none has arrived yet.", down: false },
    ]);
  });

  test("several pull servers: one line each, named by its host, the worst first as the helper sent them", () => {
    const other = { ...reachable, server: "t2.example.org:8443" };
    const lines = serverSeenLines({ ...down, servers: [down, other] }, now);
    assert.equal(lines.length, 2);
    assert.match(lines[0].text, /^t\.example\.org, last seen: the pixel server did not answer at 04:39/);
    assert.equal(lines[0].down, true);
    assert.equal(lines[1].text, "t2.example.org:8443, last seen: the pixel server has answered this computer's pulls since 04:39.");
    assert.equal(lines[1].down, false);
  });

  test("a helper too old to say: nothing is shown", () => {
    assert.deepEqual(serverSeenLines(undefined, now), []);
  });
});
