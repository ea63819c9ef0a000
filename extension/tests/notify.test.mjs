import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { HelperError } from "../modules/nativeHost.mjs";
import { helperFailureText, recordFailureText } from "../modules/notify.mjs";
import { getMessage } from "./fixtures.mjs";

describe("notifications", () => {
  test("a missing helper is explained and the fix names install-host, then doctor", () => {
    const { title, message } = helperFailureText(new HelperError("missing", "No such native application"), { cancelled: false }, getMessage);
    assert.match(title, /untracked/);
    assert.match(message, /cannot find the mailtracker helper/);
    assert.match(message, /mailtracker install-host.*then.*mailtracker doctor/s);
  });

  test("a blocked send says it was not sent and why", () => {
    const { title, message } = helperFailureText(new HelperError("failed", "bad secret", 4), { cancelled: true }, getMessage);
    assert.match(title, /stopped/);
    assert.match(message, /bad secret \(code 4\)/);
    assert.match(message, /Block sending when the helper fails/);
    assert.match(message, /mailtracker install-host/);
  });

  test("a helper that answered with an error names its own fix for that code, not install-host", () => {
    const error = new HelperError("failed", "No secret at /h/secret.", 12, "Copy the secret from your pixel server.");
    const { message } = helperFailureText(error, { cancelled: false }, getMessage);
    assert.match(message, /No secret at \/h\/secret\. \(code 12\)/);
    assert.match(message, /Copy the secret from your pixel server\./);
    assert.doesNotMatch(message, /install-host/);
  });

  test("a sent mail the helper did not record says the mail left, and names the fix", () => {
    const { message } = recordFailureText(new HelperError("timeout", "slow"), getMessage);
    assert.match(message, /did not answer in time/);
    assert.match(message, /left with its tracking image/);
    assert.match(message, /mailtracker doctor/);
  });
});
