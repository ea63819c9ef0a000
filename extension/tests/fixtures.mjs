// Shared test doubles: pixel constants, a storage area, a scripted helper, and i18n.
// (The DOMParser lives in dom.mjs: loading jsdom takes a second.)

import { readFileSync } from "node:fs";

export const BASE = "https://t.example.org/p/";
export const TOKEN = "abcdefghijklmnopqrstuvwxyz234567";
export const TOKEN2 = "zyxwvutsrqponmlkjihgfedcba765432";
export const pixelUrl = (token = TOKEN, base = BASE) => `${base}${token}.gif`;

/** An in-memory storage.local / storage.session with the WebExtension get/set/remove shapes. */
export function memoryArea(initial = {}) {
  const data = structuredClone(initial);
  return {
    data,
    async get(keys) {
      if (keys == null) {
        return structuredClone(data);
      }
      const names = typeof keys === "string" ? [keys] : Array.isArray(keys) ? keys : Object.keys(keys);
      const out = {};
      for (const name of names) {
        if (name in data) {
          out[name] = structuredClone(data[name]);
        } else if (keys && typeof keys === "object" && !Array.isArray(keys)) {
          out[name] = keys[name];
        }
      }
      return out;
    },
    async set(items) {
      Object.assign(data, structuredClone(items));
    },
    async remove(keys) {
      for (const name of typeof keys === "string" ? [keys] : keys) {
        delete data[name];
      }
    },
  };
}

/** A click URL as the helper signs one, for link number i of TOKEN's mail. */
export function clickUrl(i, target = "https://shop.example.org/offer?a=1&b=2") {
  return `${BASE}c/${TOKEN}/${i}/${"s".repeat(20)}?u=${encodeURIComponent(target)}`;
}

/**
 * A helper double recording every call. handlers[command](args) returns data
 * or throws; mint hands out pixels with fresh tokens by default.
 */
export function fakeHelper(handlers = {}) {
  const calls = [];
  let minted = 0;
  const tokens = [TOKEN, TOKEN2, "mnopqrstuvwxyz234567abcdefghijkl"];
  const defaults = {
    mint: () => {
      const token = tokens[minted % tokens.length];
      minted += 1;
      return {
        id: `tag${minted}`,
        short_id: `s${minted}`,
        url: pixelUrl(token),
        html: `<img src="${pixelUrl(token)}" width="1" height="1" alt="">`,
      };
    },
    sent: (args) => ({ tag_id: args.tagId }),
    unsent: (args) => ({ tag_id: args.tagId }),
    selfFetch: () => ({}),
    links: (args) => ({ urls: args.links.map((_, i) => clickUrl(i)) }),
    status: () => ({ tracked: false }),
    config: () => ({ pixel_base: BASE }),
    ping: () => ({ version: "0.1.0", protocol: 1 }),
  };
  const helper = { calls };
  for (const name of Object.keys(defaults)) {
    helper[name] = async (args) => {
      calls.push({ command: name, args });
      return (handlers[name] ?? defaults[name])(args);
    };
  }
  helper.callsOf = (name) => calls.filter((c) => c.command === name);
  return helper;
}

const messages = JSON.parse(readFileSync(new URL("../_locales/en/messages.json", import.meta.url), "utf8"));

/** browser.i18n.getMessage over the real en strings: "" for unknown names, like Thunderbird. */
export function getMessage(name, substitutions = []) {
  const entry = messages[name];
  if (!entry) {
    return "";
  }
  const subs = Array.isArray(substitutions) ? substitutions : [substitutions];
  return entry.message.replace(/\$(\d)/g, (_, n) => subs[Number(n) - 1] ?? "");
}

export const enMessages = messages;

/** A silent console for code under test. */
export const quietLog = { warn() {}, error() {}, debug() {}, info() {} };

/**
 * Thunderbird's APIs the open watch and the follow-up use: messages (with tags, To/Cc/Bcc) found by
 * Message-ID, tag definitions, badge, notifications, alarms, and compose windows (recorded, each a
 * new tab id).
 */
export function fakeMessenger({ messages = [], tags = [] } = {}) {
  const calls = [];
  const record = (name, result) => async (...args) => {
    calls.push({ name, args });
    return typeof result === "function" ? result(...args) : result;
  };
  const store = messages.map((m, i) => ({ id: i + 1, tags: [], folder: { name: "Sent" }, ...m }));
  const definitions = [...tags];
  const messenger = {
    calls,
    store,
    definitions,
    callsOf: (name) => calls.filter((c) => c.name === name),
    messages: {
      query: record("messages.query", ({ headerMessageId }) => ({
        id: null,
        messages: structuredClone(store.filter((m) => m.headerMessageId === headerMessageId)),
      })),
      continueList: record("messages.continueList", { id: null, messages: [] }),
      update: record("messages.update", (id, { tags: next }) => {
        store.find((m) => m.id === id).tags = next;
      }),
      tags: {
        list: record("messages.tags.list", () => structuredClone(definitions)),
        create: record("messages.tags.create", (key, tag, color) => {
          if (definitions.some((d) => d.key === key)) throw new Error(`tag ${key} exists`);
          definitions.push({ key, tag, color });
        }),
      },
    },
    action: { setBadgeText: record("action.setBadgeText"), setBadgeBackgroundColor: record("action.setBadgeBackgroundColor") },
    notifications: { create: record("notifications.create") },
    alarms: { create: record("alarms.create"), clear: record("alarms.clear") },
    runtime: { getURL: (path) => `moz-extension://test/${path}` },
    messageDisplay: { open: record("messageDisplay.open") },
    tabs: { create: record("tabs.create") },
    compose: {
      beginReply: record("compose.beginReply", () => ({ id: 100 + calls.length })),
      beginNew: record("compose.beginNew", () => ({ id: 100 + calls.length })),
    },
  };
  return messenger;
}
