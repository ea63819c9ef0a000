import assert from "node:assert/strict";
import { before, describe, test } from "node:test";

import { DOMParser } from "./dom.mjs";
import { BASE, TOKEN, getMessage, memoryArea, pixelUrl } from "./fixtures.mjs";

// A stand-in for Thunderbird's `browser`: events record their listeners, every
// other function records its call, and native messages go to nativeReply().
const listeners = new Map();
const apiCalls = [];
const nativeRequests = [];
let nativeReply = (request) => ({ id: request.id, ok: true, data: {} });

function event(name) {
  return {
    addListener(listener, ...options) {
      listeners.set(name, { listener, options });
    },
  };
}

function api(name, result) {
  return async (...args) => {
    apiCalls.push({ name, args });
    return typeof result === "function" ? result(...args) : result;
  };
}

const local = memoryArea();
const session = memoryArea();

globalThis.DOMParser = DOMParser;
globalThis.browser = {
  compose: {
    onBeforeSend: event("compose.onBeforeSend"),
    onAfterSend: event("compose.onAfterSend"),
    onIdentityChanged: event("compose.onIdentityChanged"),
    getComposeDetails: api("compose.getComposeDetails", {}),
    setComposeDetails: api("compose.setComposeDetails"),
  },
  composeAction: { setIcon: api("composeAction.setIcon"), setTitle: api("composeAction.setTitle") },
  tabs: { onRemoved: event("tabs.onRemoved"), onCreated: event("tabs.onCreated"), create: api("tabs.create") },
  webRequest: { onBeforeRequest: event("webRequest.onBeforeRequest") },
  messageDisplay: { onMessagesDisplayed: event("messageDisplay.onMessagesDisplayed") },
  messages: {
    onNewMailReceived: event("messages.onNewMailReceived"),
    query: api("messages.query", { id: null, messages: [] }),
  },
  messageDisplayAction: { enable: api("messageDisplayAction.enable"), disable: api("messageDisplayAction.disable") },
  action: {
    onClicked: event("action.onClicked"),
    setBadgeText: api("action.setBadgeText"),
    setBadgeBackgroundColor: api("action.setBadgeBackgroundColor"),
  },
  alarms: { onAlarm: event("alarms.onAlarm"), create: api("alarms.create"), clear: api("alarms.clear") },
  accounts: { list: api("accounts.list", []), get: api("accounts.get", null) },
  identities: { get: api("identities.get", null) },
  folders: {
    query: api("folders.query", []),
    create: api("folders.create"),
    onFolderInfoChanged: event("folders.onFolderInfoChanged"),
  },
  permissions: { onAdded: event("permissions.onAdded") },
  notifications: { create: api("notifications.create"), onClicked: event("notifications.onClicked") },
  i18n: { getMessage, getUILanguage: () => "en" },
  runtime: {
    onStartup: event("runtime.onStartup"),
    onInstalled: event("runtime.onInstalled"),
    onMessage: event("runtime.onMessage"),
    sendMessage: api("runtime.sendMessage"),
    getURL: (path) => `moz-extension://test/${path}`,
    sendNativeMessage: async (host, request) => {
      nativeRequests.push({ host, request });
      return nativeReply(request);
    },
    // The background keeps one port; each posted request is answered by nativeReply(),
    // and a reply that throws closes the port with that error, as Thunderbird does.
    connectNative: (host) => {
      const onMessage = [];
      const onDisconnect = [];
      return {
        onMessage: { addListener: (listener) => onMessage.push(listener) },
        onDisconnect: { addListener: (listener) => onDisconnect.push(listener) },
        postMessage(request) {
          nativeRequests.push({ host, request });
          queueMicrotask(() => {
            let reply;
            try {
              reply = nativeReply(request);
            } catch (error) {
              onDisconnect.forEach((listener) => listener({ error }));
              return;
            }
            onMessage.forEach((listener) => listener(reply));
          });
        },
      };
    },
  },
  storage: { local, session, onChanged: event("storage.onChanged") },
};

/** Resolves once predicate() holds; fails after a bound instead of hoping a delay was enough. */
async function until(predicate, what, timeoutMs = 2000) {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}`);
    }
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** The requests the mail flow made, without the port's own subscribe and the open watch's list. */
const flowRequests = () => nativeRequests.filter(({ request }) => !["subscribe", "list"].includes(request.command));

describe("background.js", () => {
  before(async () => {
    await import("../background.js");
  });

  test("registers its listeners at top level and calls no other API while loading", () => {
    assert.deepEqual([...listeners.keys()].sort(), [
      "action.onClicked",
      "alarms.onAlarm",
      "compose.onAfterSend",
      "compose.onBeforeSend",
      "compose.onIdentityChanged",
      "folders.onFolderInfoChanged",
      "messageDisplay.onMessagesDisplayed",
      "messages.onNewMailReceived",
      "notifications.onClicked",
      "permissions.onAdded",
      "runtime.onInstalled",
      "runtime.onMessage",
      "runtime.onStartup",
      "storage.onChanged",
      "tabs.onCreated",
      "tabs.onRemoved",
      "webRequest.onBeforeRequest",
    ]);
    // Every folder: a reply the user's filters move out of the Inbox is still seen.
    assert.deepEqual(listeners.get("messages.onNewMailReceived").options, [true]);
    assert.deepEqual(apiCalls, []);
    assert.deepEqual(nativeRequests, []);
  });

  test("the webRequest listener is blocking, for all URLs, and cancels our pixels", async () => {
    const { listener, options } = listeners.get("webRequest.onBeforeRequest");
    assert.deepEqual(options, [{ urls: ["<all_urls>"] }, ["blocking"]]);
    await local.set({ pixelBases: [BASE] });
    assert.deepEqual(await listener({ url: pixelUrl(), tabId: 9, type: "image" }), { cancel: true });
    assert.deepEqual(await listener({ url: "https://example.org/a.png", tabId: 9, type: "image" }), {});
  });

  test("a send goes through the native helper: mint in onBeforeSend, sent and self_fetch after", async () => {
    nativeReply = (request) => {
      const data = {
        mint: { id: TOKEN, short_id: "abcdefg", url: pixelUrl(), html: `<img src="${pixelUrl()}" width="1" height="1" alt="">` },
        sent: { tag_id: TOKEN },
        self_fetch: {},
      }[request.command];
      return { id: request.id, ok: true, data };
    };
    const details = {
      isPlainText: false,
      deliveryFormat: "auto",
      identityId: "id1",
      from: "Me <me@example.org>",
      to: ["ann@example.org"],
      subject: "Hi",
      body: "<p>Hello</p>",
    };
    const result = await listeners.get("compose.onBeforeSend").listener({ id: 3 }, details);
    assert.match(result.details.body, new RegExp(`src="${pixelUrl()}"`));
    assert.equal(result.details.deliveryFormat, "both");

    const returned = listeners.get("compose.onAfterSend").listener({ id: 3 }, { mode: "sendNow", headerMessageId: "m@x" });
    assert.equal(returned, undefined, "onAfterSend must return nothing");
    await until(() => flowRequests().length >= 3, "sent and self_fetch");
    assert.deepEqual(
      flowRequests().map(({ host, request }) => [host, request.command, request.protocol]),
      [
        ["mailtracker.helper", "mint", 1],
        ["mailtracker.helper", "sent", 1],
        ["mailtracker.helper", "self_fetch", 1],
      ],
    );
    assert.equal(flowRequests()[1].request.message_id, "m@x");
  });

  test("a missing helper sends the mail untracked and shows a notification naming the fix", async () => {
    nativeReply = () => {
      throw new Error("No such native application mailtracker.helper");
    };
    const details = { isPlainText: false, deliveryFormat: "auto", to: ["a@x.org"], subject: "S", body: "<p>x</p>" };
    const result = await listeners.get("compose.onBeforeSend").listener({ id: 4 }, details);
    assert.equal(result, undefined);
    await until(() => apiCalls.some((c) => c.name === "notifications.create"), "the notification");
    const shown = apiCalls.filter((c) => c.name === "notifications.create").map((c) => c.args[0].message);
    assert.equal(shown.length, 1);
    assert.match(shown[0], /mailtracker install-host.*mailtracker doctor/s);
  });
});
