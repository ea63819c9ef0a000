import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { binaryToBytes, bytesToBinary, decodeQuotedPrintable, encodeQuotedPrintable } from "../modules/mime.mjs";
import { STAGING_FOLDER, STATES, createSentCopy, filesOwnSentCopy, loadSentCopyStatus } from "../modules/sentCopy.mjs";
import { DOMParser } from "./dom.mjs";
import { BASE, TOKEN, memoryArea, pixelUrl } from "./fixtures.mjs";

const PIXEL = `<img src="${pixelUrl()}" width="1" height="1" alt="" moz-do-not-send="true">`;
const BODY = `<html><body><p>Hello</p>${PIXEL}</body></html>`;

function rawMessage(messageId, html = BODY) {
  return binaryToBytes(
    [
      `Message-ID: <${messageId}>`,
      "From: Sender <sender@example.org>",
      "Subject: Hi",
      "Content-Type: text/html; charset=UTF-8",
      "Content-Transfer-Encoding: quoted-printable",
      "",
      encodeQuotedPrintable(html, "\r\n"),
      "",
    ].join("\r\n"),
  );
}

/**
 * A Thunderbird double, with folders holding raw messages. Two POP3 accounts the
 * API shows alike (type pop3, an Inbox of their own, no Sent folder): "pop" is
 * deferred to Local Folders (the global inbox), "own" keeps its own folders.
 * Only where Thunderbird files an identity's copy tells them apart (fccOf).
 */
function fakeThunderbird({ withSent = true } = {}) {
  const folders = new Map([
    ["local:/Trash", { name: "Trash", accountId: "local", specialUse: ["trash"] }],
    ["local:/Unsent Messages", { name: "Unsent Messages", accountId: "local", specialUse: ["outbox"] }],
    ["pop:/Inbox", { name: "Inbox", accountId: "pop", specialUse: ["inbox"] }],
    ["own:/Inbox", { name: "Inbox", accountId: "own", specialUse: ["inbox"] }],
  ]);
  if (withSent) {
    folders.set("local:/Sent", { name: "Sent", accountId: "local", specialUse: ["sent"] });
  }
  // Each identity's Fcc folder, as Thunderbird's prefs name it (no API does).
  const fccOf = { id1: "local:/Sent", id2: "imap:/Sent", id3: "own:/Sent" };
  /** Thunderbird files a copy in the identity's Fcc, creating the folder (with the Sent use) if need be. */
  const fileFcc = (identityId) => {
    const folderId = fccOf[identityId];
    if (!folders.has(folderId)) {
      const [accountId, name] = folderId.split(":/");
      folders.set(folderId, { name, accountId, specialUse: ["sent"] });
    }
    return folderId;
  };
  const messages = new Map();
  let nextId = 1;
  const calls = [];
  const faults = { import: null, move: null, deleteOptions: false };
  const add = (folderId, bytes) => {
    const text = bytesToBinary(bytes);
    const id = nextId++;
    messages.set(id, {
      id,
      folderId,
      bytes,
      headerMessageId: /Message-ID: <([^>]+)>/i.exec(text)[1],
      author: "Sender <sender@example.org>",
      subject: "Hi",
    });
    return id;
  };
  const header = (m) => ({
    ...m,
    bytes: undefined,
    folder: { id: m.folderId, specialUse: folders.get(m.folderId)?.specialUse ?? [] },
  });
  const inFolder = (folderId) => [...messages.values()].filter((m) => m.folderId === folderId);
  const messenger = {
    accounts: {
      list: async () => [
        { id: "pop", type: "pop3", identities: [{ id: "id1", email: "sender@example.org" }] },
        { id: "imap", type: "imap", identities: [{ id: "id2", email: "imap@example.org" }] },
        { id: "own", type: "pop3", identities: [{ id: "id3", email: "own@example.org" }] },
        { id: "local", type: "local", rootFolder: { id: "local:/" }, identities: [] },
      ],
      get: async (id) => ({ id, type: { pop: "pop3", own: "pop3", imap: "imap" }[id] ?? "local" }),
    },
    identities: {
      get: async (id) =>
        ({ id1: { id, accountId: "pop" }, id2: { id, accountId: "imap" }, id3: { id, accountId: "own" } })[id] ??
        null,
    },
    folders: {
      get: async (id) => {
        if (!folders.has(id)) throw new Error(`Folder not found: ${id}`);
        return { id, ...folders.get(id) };
      },
      query: async ({ accountId, name, specialUse }) =>
        [...folders.entries()]
          .filter(([, f]) => f.accountId === accountId)
          .filter(([, f]) => name == null || f.name === name)
          .filter(([, f]) => specialUse == null || specialUse.some((use) => f.specialUse.includes(use)))
          .map(([id, f]) => ({ id, name: f.name })),
      create: async (parentId, name) => {
        const id = `${parentId}${name}`;
        folders.set(id, { name, accountId: "local", specialUse: [] });
        calls.push(["folders.create", name]);
        return { id, name };
      },
    },
    messages: {
      getRaw: async (id) => ({ arrayBuffer: async () => messages.get(id).bytes.buffer }),
      import: async (file, folderId) => {
        calls.push(["messages.import", folderId]);
        if (faults.import) throw new Error(faults.import);
        const bytes = new Uint8Array(await file.arrayBuffer());
        const messageId = /Message-ID: <([^>]+)>/i.exec(bytesToBinary(bytes))[1];
        if (inFolder(folderId).some((m) => m.headerMessageId === messageId)) {
          throw new Error(`Destination folder already contains a message with id <${messageId}>`);
        }
        return header(messages.get(add(folderId, bytes)));
      },
      query: async ({ folderId, headerMessageId }) => ({
        id: null,
        messages: inFolder(folderId)
          .filter((m) => m.headerMessageId === headerMessageId)
          .map(header),
      }),
      delete: async (ids, options) => {
        calls.push(["messages.delete", ids, options]);
        if (faults.deleteOptions && typeof options !== "boolean") {
          throw new Error("Incorrect argument types for messages.delete.");
        }
        const missing = ids.find((id) => !messages.has(id));
        if (missing != null) throw new Error(`Error deleting message: Message not found: ${missing}.`);
        ids.forEach((id) => messages.delete(id));
      },
      move: async (ids, folderId) => {
        calls.push(["messages.move", ids, folderId]);
        if (faults.move) throw new Error(faults.move);
        ids.forEach((id) => {
          messages.get(id).folderId = folderId;
        });
      },
      get: async (id) => {
        if (!messages.has(id)) throw new Error(`Message not found: ${id}.`);
        return header(messages.get(id));
      },
      list: async (folderId) => ({ id: null, messages: inFolder(folderId).map(header) }),
      continueList: async () => ({ id: null, messages: [] }),
    },
  };
  return { messenger, messages, folders, calls, faults, add, inFolder, header, fileFcc };
}

/**
 * filed: where Thunderbird filed each identity's copy before (by default the
 * POP3 identity id1 has sent before, into Local Folders' Sent); headers: what
 * sentHeadersFor gives (a mail sent individually).
 */
function setup({ withSent = true, filed = withSent ? { id1: "local:/Sent" } : {}, headers } = {}) {
  const tb = fakeThunderbird({ withSent });
  const notices = [];
  const local = memoryArea({ sentCopyFiled: filed });
  const sentCopy = createSentCopy({
    messenger: tb.messenger,
    localArea: local,
    sessionArea: memoryArea(),
    notify: async (outcome) => notices.push(outcome),
    loadPixelBases: async () => [BASE],
    DOMParser,
    log: { error() {}, warn() {} },
    wait: async () => {},
    sentHeadersFor: async () => headers,
  });
  return { tb, notices, local, sentCopy };
}

const STAGING = `local:/${STAGING_FOLDER}`;
const tracked = { details: { body: BODY } };
const composeDetails = { identityId: "id1", body: "<p>Hello</p>" };

/** onBeforeSend, then Thunderbird filing the copy where the result said, then onAfterSend. */
async function send({ tb, sentCopy }, messageId, details = composeDetails, result = tracked) {
  const amended = await sentCopy.amendBeforeSend({ id: 1 }, details, result);
  const fcc = amended?.details?.overrideDefaultFccFolderId || tb.fileFcc(details.identityId);
  const id = tb.add(fcc, rawMessage(messageId));
  await sentCopy.afterSend(
    { id: 1 },
    { mode: "sendNow", headerMessageId: messageId, messages: [tb.header(tb.messages.get(id))] },
  );
  return amended;
}

const sourcesIn = (tb, folderId) => tb.inFolder(folderId).map((m) => bytesToBinary(m.bytes));
// The token as a reader sees it: quoted-printable may split it over lines.
const hasPixel = (source) => decodeQuotedPrintable(source).includes(TOKEN);

describe("sentCopy", () => {
  test("a tracked send is staged, then Sent holds exactly one copy, without the pixel", async () => {
    const env = setup();
    const amended = await send(env, "m1@x");
    assert.equal(amended.details.overrideDefaultFccFolderId, STAGING);
    assert.equal(amended.details.body, BODY, "the body that is sent keeps its pixel");
    const sent = sourcesIn(env.tb, "local:/Sent");
    assert.equal(sent.length, 1);
    assert.ok(!hasPixel(sent[0]) && sent[0].includes("Message-ID: <m1@x>") && sent[0].includes("Hello"));
    assert.deepEqual(sourcesIn(env.tb, STAGING), []);
    assert.equal((await loadSentCopyStatus("m1@x", env.local)).state, STATES.clean);
    const order = env.tb.calls.map((c) => c[0]);
    assert.ok(
      order.indexOf("messages.import") < order.indexOf("messages.delete"),
      "written before the staged copy goes",
    );
    assert.deepEqual(env.tb.calls.find((c) => c[0] === "messages.delete")[2], { deletePermanently: true });
    assert.deepEqual(env.notices, []);
  });

  test("an import the folder refuses puts the original copy in Sent as it is, and says so", async () => {
    const env = setup();
    env.tb.faults.import = "Error importing message: no";
    await send(env, "m2@x");
    const sent = sourcesIn(env.tb, "local:/Sent");
    assert.equal(sent.length, 1);
    assert.ok(sent[0].includes("=") && bytesToBinary(rawMessage("m2@x")) === sent[0], "the original, byte for byte");
    assert.equal((await loadSentCopyStatus("m2@x", env.local)).state, STATES.kept);
    assert.equal(env.notices[0].state, STATES.kept);
    assert.match(env.notices[0].reason, /refused/);
  });

  test("when even the move fails the copy stays in the staging folder, and the start-up scan finishes it", async () => {
    const env = setup();
    env.tb.faults.import = "server down";
    env.tb.faults.move = "server down";
    await send(env, "m3@x");
    assert.equal(sourcesIn(env.tb, STAGING).length, 1, "nothing lost");
    assert.ok(hasPixel(sourcesIn(env.tb, STAGING)[0]));
    assert.equal(env.notices[0].state, STATES.staged);
    assert.equal((await loadSentCopyStatus("m3@x", env.local)).state, STATES.staged);

    // A change in the staging folder does not retry it (one notice is enough); the next start does.
    assert.deepEqual(await env.sentCopy.stagingChanged({ name: STAGING_FOLDER }, { totalMessageCount: 1 }), []);
    assert.equal(env.notices.length, 1);
    env.tb.faults.import = null;
    env.tb.faults.move = null;
    assert.deepEqual(await env.sentCopy.finishStaged(), [STATES.clean]);
    assert.deepEqual(sourcesIn(env.tb, STAGING), []);
    assert.equal(sourcesIn(env.tb, "local:/Sent").length, 1);
    assert.ok(!hasPixel(sourcesIn(env.tb, "local:/Sent")[0]));
  });

  test("a staged copy whose clean copy was already imported before a crash is not doubled", async () => {
    const env = setup();
    await env.sentCopy.amendBeforeSend({ id: 1 }, composeDetails, tracked);
    env.tb.add(STAGING, rawMessage("m4@x"));
    await env.tb.messenger.messages.import(
      { arrayBuffer: async () => rawMessage("m4@x", "<p>Hello</p>").buffer },
      "local:/Sent",
    );
    assert.deepEqual(await env.sentCopy.finishStaged(), [STATES.clean]);
    assert.equal(sourcesIn(env.tb, "local:/Sent").length, 1);
    assert.deepEqual(sourcesIn(env.tb, STAGING), []);
    assert.equal(env.tb.calls.filter((c) => c[0] === "messages.import").length, 1, "only the test's own import");
  });

  test("an import a crash interrupted that shows in Sent only after the copy was imported again is deleted when Sent changes", async () => {
    const env = setup();
    await env.sentCopy.amendBeforeSend({ id: 1 }, composeDetails, tracked);
    env.tb.add(STAGING, rawMessage("m20@x"));
    await env.local.set({ sentCopyStatus: { "m20@x": { state: "importing", reason: "", at: "" } } });
    assert.deepEqual(await env.sentCopy.finishStaged(), [STATES.clean]);
    assert.equal(sourcesIn(env.tb, "local:/Sent").length, 1);
    // The server stored the interrupted import after all; the folder shows it only now.
    env.tb.add("local:/Sent", rawMessage("m20@x", "<p>Hello</p>"));
    assert.equal(await env.sentCopy.settleDuplicates({ id: "local:/Other" }), 0, "another folder changed");
    assert.equal(sourcesIn(env.tb, "local:/Sent").length, 2);
    assert.equal(await env.sentCopy.settleDuplicates({ id: "local:/Sent" }), 1);
    const sent = sourcesIn(env.tb, "local:/Sent");
    assert.equal(sent.length, 1);
    assert.ok(!hasPixel(sent[0]));

    // A copy of a mail whose import was never interrupted is the user's business.
    await send(env, "m21@x");
    env.tb.add("local:/Sent", rawMessage("m21@x", "<p>Hello</p>"));
    assert.equal(await env.sentCopy.settleDuplicates(), 0);
    assert.equal(env.tb.inFolder("local:/Sent").filter((m) => m.headerMessageId === "m21@x").length, 2);
  });

  test("a copy the server filed itself, pixel and all, is replaced by the clean one", async () => {
    const env = setup();
    env.tb.add("local:/Sent", rawMessage("m10@x"));
    await send(env, "m10@x");
    const sent = sourcesIn(env.tb, "local:/Sent");
    assert.equal(sent.length, 1);
    assert.ok(!hasPixel(sent[0]));
    assert.equal((await loadSentCopyStatus("m10@x", env.local)).state, STATES.clean);
  });

  test("an import that left a second copy (a crash, a server that files its own) ends with exactly one clean copy", async () => {
    const env = setup();
    const realImport = env.tb.messenger.messages.import;
    env.tb.messenger.messages.import = async (file, folderId) => {
      const header = await realImport(file, folderId);
      env.tb.add(folderId, rawMessage("m11@x", "<p>Hello</p>"));
      return header;
    };
    await send(env, "m11@x");
    const sent = sourcesIn(env.tb, "local:/Sent");
    assert.equal(sent.length, 1);
    assert.ok(!hasPixel(sent[0]));
  });

  test("a copy with the pixel that surfaces while the clean one is imported (a server's own) is deleted", async () => {
    const env = setup();
    const realImport = env.tb.messenger.messages.import;
    env.tb.messenger.messages.import = async (file, folderId) => {
      const header = await realImport(file, folderId);
      env.tb.add(folderId, rawMessage("m12@x")); // the server's copy, pixel and all, filed meanwhile
      return header;
    };
    await send(env, "m12@x");
    const sent = sourcesIn(env.tb, "local:/Sent");
    assert.equal(sent.length, 1, "the leftover copy with the pixel is gone");
    assert.ok(!hasPixel(sent[0]));
  });

  test("a crash before onAfterSend: the scan finds the Sent folder from the copy's author", async () => {
    const env = setup();
    await env.sentCopy.amendBeforeSend({ id: 1 }, composeDetails, tracked);
    env.tb.add(STAGING, rawMessage("m5@x"));
    assert.deepEqual(await env.sentCopy.finishStaged(), [STATES.clean]);
    const sent = sourcesIn(env.tb, "local:/Sent");
    assert.equal(sent.length, 1);
    assert.ok(!hasPixel(sent[0]));
  });

  test("signed or encrypted mail keeps Thunderbird's own copy and records why", async () => {
    const env = setup();
    const signed = {
      ...composeDetails,
      selectedEncryptionTechnology: { name: "OpenPGP", signMessage: true, encryptBody: false },
    };
    const amended = await send(env, "m6@x", signed);
    assert.equal(amended.details.overrideDefaultFccFolderId, undefined);
    assert.ok(hasPixel(sourcesIn(env.tb, "local:/Sent")[0]), "the copy as it was sent");
    assert.equal((await loadSentCopyStatus("m6@x", env.local)).state, STATES.protected);
  });

  test("untracked mail is not staged, and an untracked retry gives the user's Fcc choice back", async () => {
    const env = setup();
    const untracked = { details: { body: "<p>Hello</p>" } };
    assert.equal(await env.sentCopy.amendBeforeSend({ id: 1 }, composeDetails, untracked), untracked);
    assert.equal(await env.sentCopy.amendBeforeSend({ id: 1 }, composeDetails, undefined), undefined);
    const first = await env.sentCopy.amendBeforeSend({ id: 2 }, composeDetails, tracked);
    assert.equal(first.details.overrideDefaultFccFolderId, STAGING);
    const retry = await env.sentCopy.amendBeforeSend(
      { id: 2 },
      { ...composeDetails, overrideDefaultFccFolderId: STAGING },
      untracked,
    );
    assert.equal(retry.details.overrideDefaultFccFolderId, null);
  });

  test("on Thunderbird 128, which takes a boolean, the staged copy is still deleted for good", async () => {
    const env = setup();
    env.tb.faults.deleteOptions = true;
    await send(env, "m12@x");
    assert.deepEqual(sourcesIn(env.tb, STAGING), []);
    assert.equal(sourcesIn(env.tb, "local:/Sent").length, 1);
    assert.equal(env.tb.calls.filter((c) => c[0] === "messages.delete").at(-1)[2], true);
  });

  test("a failed send keeps the user's Fcc choice for the retry", async () => {
    const env = setup();
    env.tb.folders.set("local:/Other", { name: "Other", accountId: "local", specialUse: [] });
    const picked = { ...composeDetails, overrideDefaultFccFolderId: "local:/Other" };
    await env.sentCopy.amendBeforeSend({ id: 5 }, picked, tracked);
    await env.sentCopy.afterSend({ id: 5 }, { mode: "sendNow", error: "SMTP down", messages: [] });
    const retry = await env.sentCopy.amendBeforeSend(
      { id: 5 },
      { ...composeDetails, overrideDefaultFccFolderId: STAGING },
      { details: { body: "<p>no pixel now</p>" } },
    );
    assert.equal(retry.details.overrideDefaultFccFolderId, "local:/Other");
  });

  test("an IMAP account whose Sent folder is not known yet: filed as usual, then replaced where it landed", async () => {
    const env = setup();
    env.tb.folders.set("imap:/Sent", { name: "Sent", accountId: "imap", specialUse: [] });
    const details = { ...composeDetails, identityId: "id2" };
    const amended = await env.sentCopy.amendBeforeSend({ id: 7 }, details, tracked);
    assert.equal(amended.details.overrideDefaultFccFolderId, undefined, "not staged");
    const id = env.tb.add("imap:/Sent", rawMessage("m13@x"));
    await env.sentCopy.afterSend(
      { id: 7 },
      { headerMessageId: "m13@x", messages: [env.tb.header(env.tb.messages.get(id))] },
    );
    const sent = sourcesIn(env.tb, "imap:/Sent");
    assert.equal(sent.length, 1);
    assert.ok(!hasPixel(sent[0]));
    assert.deepEqual(sourcesIn(env.tb, STAGING), []);
  });

  test("a copy that reaches staging later (Send Later) is finished when the folder changes, not while a send is in flight", async () => {
    const env = setup();
    await env.sentCopy.amendBeforeSend({ id: 8 }, composeDetails, tracked);
    env.tb.add(STAGING, rawMessage("m14@x"));
    const staging = { id: STAGING, name: STAGING_FOLDER };
    assert.deepEqual(await env.sentCopy.stagingChanged(staging, { totalMessageCount: 1 }), [], "tab 8 is sending");
    assert.equal(sourcesIn(env.tb, STAGING).length, 1);
    await env.sentCopy.forgetTab(8);
    assert.deepEqual(
      await env.sentCopy.stagingChanged({ id: "local:/Trash", name: "Trash" }, { totalMessageCount: 3 }),
      [],
    );
    assert.deepEqual(await env.sentCopy.stagingChanged(staging, { totalMessageCount: 1 }), [STATES.clean]);
    assert.equal(sourcesIn(env.tb, "local:/Sent").length, 1);
  });

  test("a copy the folder-change scan already finished is left alone by onAfterSend", async () => {
    const env = setup();
    await env.sentCopy.amendBeforeSend({ id: 9 }, composeDetails, tracked);
    const id = env.tb.add(STAGING, rawMessage("m15@x"));
    const copy = env.tb.header(env.tb.messages.get(id));
    // The plan is in flight until onAfterSend has finished: the scan keeps off.
    assert.deepEqual(await env.sentCopy.stagingChanged({ name: STAGING_FOLDER }, { totalMessageCount: 1 }), []);
    await env.sentCopy.forgetTab(9);
    assert.deepEqual(await env.sentCopy.finishStaged(), [STATES.clean]);
    await env.sentCopy.amendBeforeSend({ id: 9 }, composeDetails, tracked);
    assert.deepEqual(await env.sentCopy.afterSend({ id: 9 }, { headerMessageId: "m15@x", messages: [copy] }), [
      STATES.clean,
    ]);
    assert.equal((await loadSentCopyStatus("m15@x", env.local)).state, STATES.clean);
    assert.equal(sourcesIn(env.tb, "local:/Sent").length, 1);
    assert.deepEqual(env.notices, []);
  });

  test("a Fcc folder the user picked in the compose window receives the clean copy; 'no copy' stays no copy", async () => {
    const env = setup();
    env.tb.folders.set("local:/Other", { name: "Other", accountId: "local", specialUse: [] });
    const picked = await env.sentCopy.amendBeforeSend(
      { id: 1 },
      { ...composeDetails, overrideDefaultFccFolderId: "local:/Other" },
      tracked,
    );
    assert.equal(picked.details.overrideDefaultFccFolderId, STAGING);
    const id = env.tb.add(STAGING, rawMessage("m7@x"));
    await env.sentCopy.afterSend(
      { id: 1 },
      { headerMessageId: "m7@x", messages: [env.tb.header(env.tb.messages.get(id))] },
    );
    assert.equal(sourcesIn(env.tb, "local:/Other").length, 1);
    const none = await env.sentCopy.amendBeforeSend(
      { id: 3 },
      { ...composeDetails, overrideDefaultFccFolderId: "" },
      tracked,
    );
    assert.equal(none.details.overrideDefaultFccFolderId, undefined);
  });

  test("turned off on the options page: the copy is left to Thunderbird and the status says so", async () => {
    const env = setup();
    await env.local.set({ cleanSentCopy: false });
    const amended = await send(env, "m8@x");
    assert.equal(amended.details.overrideDefaultFccFolderId, undefined);
    assert.ok(sourcesIn(env.tb, "local:/Sent")[0].includes("Message-ID: <m8@x>"));
    assert.equal((await loadSentCopyStatus("m8@x", env.local)).state, STATES.off);
  });

  /**
   * A first send from an identity that never sent: not staged; Thunderbird files the copy in its
   * Fcc folder (creating it); the clean copy replaces it there; the next send is staged for it.
   */
  async function firstThenSecondSend(env, identityId, fcc) {
    const details = { ...composeDetails, identityId };
    const amended = await send(env, "first@x", details);
    assert.equal(amended.details.overrideDefaultFccFolderId, undefined, "not staged: Thunderbird files it");
    assert.deepEqual(env.tb.folders.get(fcc).specialUse, ["sent"], "made by Thunderbird, with the Sent use");
    const [first] = sourcesIn(env.tb, fcc);
    assert.ok(first.includes("Message-ID: <first@x>") && !hasPixel(first));
    assert.equal(sourcesIn(env.tb, fcc).length, 1);
    assert.deepEqual(sourcesIn(env.tb, STAGING), []);
    assert.equal((await loadSentCopyStatus("first@x", env.local)).state, STATES.clean);
    assert.equal((await loadSentCopyStatus("first@x", env.local)).unstaged, true);
    const second = await send(env, "second@x", details);
    assert.equal(second.details.overrideDefaultFccFolderId, STAGING, "staged for the folder Thunderbird chose");
    assert.equal((await loadSentCopyStatus("second@x", env.local)).unstaged, undefined);
    assert.deepEqual(
      sourcesIn(env.tb, fcc).map((source) => [/Message-ID: <([^>]+)>/.exec(source)[1], hasPixel(source)]),
      [
        ["first@x", false],
        ["second@x", false],
      ],
    );
    assert.ok(!env.tb.calls.some((c) => c[0] === "folders.create" && c[1] === "Sent"), "no folder of our own");
  }

  test("a POP3 account with its own folders that never sent: its copy is clean in the Sent folder Thunderbird makes in that account", async () => {
    const env = setup({ withSent: true, filed: {} });
    await firstThenSecondSend(env, "id3", "own:/Sent");
    assert.deepEqual(
      sourcesIn(env.tb, "local:/Sent"),
      [],
      "nothing in Local Folders' Sent, though it exists and the account looks like the deferred one",
    );
  });

  test("a POP3 account deferred to Local Folders that never sent: its copy is clean in Local Folders' Sent, which Thunderbird makes", async () => {
    const env = setup({ withSent: false });
    await firstThenSecondSend(env, "id1", "local:/Sent");
    assert.deepEqual(env.tb.inFolder("pop:/Inbox"), []);
  });

  test("a deferred account whose Local Folders already have Sent, first send after install: the copy lands there", async () => {
    const env = setup({ withSent: true, filed: {} });
    await firstThenSecondSend(env, "id1", "local:/Sent");
    assert.equal(env.tb.folders.has("own:/Sent"), false);
  });

  test("a remembered Fcc folder that is gone: Thunderbird files the copy again and it is replaced where it lands", async () => {
    const env = setup({ filed: { id1: "local:/Deleted" } });
    const amended = await send(env, "m30@x");
    assert.equal(amended.details.overrideDefaultFccFolderId, undefined);
    assert.equal(sourcesIn(env.tb, "local:/Sent").length, 1);
    assert.ok(!hasPixel(sourcesIn(env.tb, "local:/Sent")[0]));
    assert.equal((await send(env, "m31@x")).details.overrideDefaultFccFolderId, STAGING);
  });

  test("sent individually from an account that never sent: the one clean copy lists every recipient, and the staging scan leaves it to onAfterSend", async () => {
    const env = setup({ filed: {}, headers: { to: ["ann@example.net", "bob@example.net"] } });
    const details = { ...composeDetails, identityId: "id3" };
    const amended = await env.sentCopy.amendBeforeSend({ id: 4 }, details, tracked);
    assert.equal(amended.details.overrideDefaultFccFolderId, undefined);
    const id = env.tb.add(env.tb.fileFcc("id3"), rawMessage("m32@x"));
    // While its onAfterSend moves the copy through staging, the folder-change scan keeps off.
    env.tb.folders.set(STAGING, { name: STAGING_FOLDER, accountId: "local", specialUse: [] });
    env.tb.add(STAGING, rawMessage("m33@x"));
    assert.deepEqual(await env.sentCopy.stagingChanged({ name: STAGING_FOLDER }, { totalMessageCount: 2 }), []);
    await env.sentCopy.afterSend(
      { id: 4 },
      { mode: "sendNow", headerMessageId: "m32@x", messages: [env.tb.header(env.tb.messages.get(id))] },
    );
    const [copy] = sourcesIn(env.tb, "own:/Sent");
    assert.equal(sourcesIn(env.tb, "own:/Sent").length, 1);
    assert.match(copy, /^To: ann@example\.net,\r\n bob@example\.net\r$/m);
    assert.ok(!hasPixel(copy));
    assert.equal(typeof (await loadSentCopyStatus("m32@x", env.local)).stagingMs, "number");
  });

  test("Send Later from an account that never sent: the copy queued in the Outbox stays there", async () => {
    const env = setup({ filed: {} });
    await env.sentCopy.amendBeforeSend({ id: 5 }, { ...composeDetails, identityId: "id3" }, tracked);
    const id = env.tb.add("local:/Unsent Messages", rawMessage("m34@x"));
    const results = await env.sentCopy.afterSend(
      { id: 5 },
      { mode: "sendLater", messages: [env.tb.header(env.tb.messages.get(id))], headerMessageId: "m34@x" },
    );
    assert.deepEqual(results, []);
    assert.equal(env.tb.messages.get(id).folderId, "local:/Unsent Messages");
    assert.deepEqual((await env.local.get("sentCopyFiled")).sentCopyFiled, {}, "the Outbox is no Fcc folder");
  });
});

test("Gmail addresses are named as servers that file their own Sent copy", () => {
  assert.equal(filesOwnSentCopy("Me@GMail.com"), true);
  assert.equal(filesOwnSentCopy("me@googlemail.com"), true);
  assert.equal(filesOwnSentCopy("me@example.org"), false);
  assert.equal(filesOwnSentCopy(undefined), false);
});
