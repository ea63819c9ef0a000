// The one table of the add-on's options (modules/settings.mjs): what older versions stored still
// loads, under the same keys; what the table does not take reads as the default and is refused
// on save; every option is read and written only through the table.

import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";

import { memoryArea } from "./fixtures.mjs";
import { SETTINGS, loadSetting, loadSettings, saveIdentitySetting, saveSetting } from "../modules/settings.mjs";

const EXTENSION = new URL("..", import.meta.url).pathname;

// storage.local as the add-on before the table wrote it (each module had its own key): written out
// here, not derived from SETTINGS, so a renamed key fails.
const STORED_BY_OLDER_VERSIONS = {
  identityDefaults: { id1: false, id2: true },
  trackLinks: { id1: false },
  blockOnHelperFailure: true,
  cleanSentCopy: false,
  individualMax: 25,
  remindDefaults: { id1: 3, id2: 0 },
  remindIfDefaults: { id1: "no_reply" },
  sentCopyFiled: { id1: "account1://Sent Items" },
  sentCopyWatch: { "m1@example.org": { target: "account1://Sent", until: 1796000000000 } },
};

describe("the settings table", () => {
  test("an existing user's options load as they were stored, each through the table", async () => {
    const area = memoryArea(STORED_BY_OLDER_VERSIONS);
    assert.deepEqual(await loadSettings(area), STORED_BY_OLDER_VERSIONS);
    for (const [key, value] of Object.entries(STORED_BY_OLDER_VERSIONS)) {
      assert.deepEqual(await loadSetting(key, area), value, key);
    }
  });

  test("the table holds every option, and only those: nothing is stored under a new key", async () => {
    assert.deepEqual(Object.keys(SETTINGS).sort(), Object.keys(STORED_BY_OLDER_VERSIONS).sort());
    const area = memoryArea();
    await saveSetting("cleanSentCopy", false, area);
    await saveSetting("individualMax", 12, area);
    await saveIdentitySetting("remindDefaults", "id1", 4, area);
    await saveIdentitySetting("sentCopyFiled", "id1", "account1://Sent", area);
    assert.deepEqual(area.data, {
      cleanSentCopy: false, individualMax: 12, remindDefaults: { id1: 4 }, sentCopyFiled: { id1: "account1://Sent" },
    });
  });

  test("nothing stored: every option's default", async () => {
    const settings = await loadSettings(memoryArea());
    assert.deepEqual(settings, {
      identityDefaults: {}, trackLinks: {}, blockOnHelperFailure: false, cleanSentCopy: true, individualMax: 10,
      remindDefaults: {}, remindIfDefaults: {}, sentCopyFiled: {}, sentCopyWatch: {},
    });
    settings.remindDefaults.id1 = 5; // a caller's copy: the default itself is not changed
    assert.deepEqual(await loadSetting("remindDefaults", memoryArea()), {});
  });

  test("a stored value the table does not take reads as the default; a map keeps its good entries", async () => {
    const area = memoryArea({
      blockOnHelperFailure: "yes", cleanSentCopy: 0, individualMax: 99, identityDefaults: ["id1"],
      remindDefaults: { id1: 2, id2: -1, id3: "x", id4: "7" }, remindIfDefaults: { id1: "no_reply", id2: "later" },
      sentCopyFiled: { id1: "", id2: 7, id3: "account1://Sent" },
      sentCopyWatch: { a: { target: "f1", until: 5 }, b: { target: "f1" }, c: "f1" },
    });
    const settings = await loadSettings(area);
    assert.equal(settings.blockOnHelperFailure, false);
    assert.equal(settings.cleanSentCopy, true);
    assert.equal(settings.individualMax, 10);
    assert.deepEqual(settings.identityDefaults, {});
    assert.deepEqual(settings.remindDefaults, { id1: 2, id4: 7 });
    assert.deepEqual(settings.remindIfDefaults, { id1: "no_reply", id2: "not_opened" });
    assert.deepEqual(settings.sentCopyFiled, { id3: "account1://Sent" });
    assert.deepEqual(settings.sentCopyWatch, { a: { target: "f1", until: 5 } });
  });

  test("saving a value the table does not take is an error, and nothing is stored", async () => {
    const area = memoryArea({ individualMax: 12, remindDefaults: { id1: 3 } });
    await assert.rejects(saveSetting("individualMax", 500, area), /not a value for the setting individualMax: 500/);
    await assert.rejects(saveSetting("cleanSentCopy", "off", area), TypeError);
    await assert.rejects(saveIdentitySetting("remindDefaults", "id1", 400, area), /remindDefaults of identity id1: 400/);
    await assert.rejects(saveIdentitySetting("cleanSentCopy", "id1", true, area), /not kept per identity/);
    await assert.rejects(saveSetting("individualmax", 12, area), /no setting "individualmax"/);
    assert.deepEqual(area.data, { individualMax: 12, remindDefaults: { id1: 3 } });
  });

  test("one identity's entry is saved beside the others'", async () => {
    const area = memoryArea({ trackLinks: { id1: false } });
    await saveIdentitySetting("trackLinks", "id2", true, area);
    assert.deepEqual(await loadSetting("trackLinks", area), { id1: false, id2: true });
  });

  test("every option the user sets is on the page the table names", () => {
    for (const [key, { shown }] of Object.entries(SETTINGS)) {
      if (!shown) {
        continue;
      }
      const [page, id] = shown.split("#");
      assert.match(readFileSync(join(EXTENSION, page), "utf8"), new RegExp(`id="${id}"`), `${key}: ${shown}`);
    }
  });

  test("no module reads or writes an option's key in storage but settings.mjs", () => {
    const keys = Object.keys(SETTINGS).join("|");
    const direct = new RegExp(`\\.(get|set|remove)\\([^)]*\\b(${keys})\\b`);
    const sources = ["background.js", ...["modules", "options", "compose_popup", "message_popup", "tracked"]
      .flatMap((dir) => readdirSync(join(EXTENSION, dir)).filter((f) => /\.m?js$/.test(f)).map((f) => `${dir}/${f}`))];
    const offenders = sources
      .filter((file) => file !== "modules/settings.mjs")
      .filter((file) => direct.test(readFileSync(join(EXTENSION, file), "utf8")));
    assert.deepEqual(offenders, []);
  });
});
