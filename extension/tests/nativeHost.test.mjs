import assert from "node:assert/strict";
import { describe, test } from "node:test";

import {
  HOST_NAME,
  HelperError,
  buildRequest,
  createConnectedHelper,
  createHelper,
  createPortTransport,
  relaySend,
} from "../modules/nativeHost.mjs";

/** A sendNativeMessage double answering with reply(request). */
function helperAnswering(reply, options = {}) {
  const sent = [];
  let n = 0;
  const helper = createHelper({
    newId: () => `r${++n}`,
    send: async (request) => {
      sent.push(request);
      return reply(request);
    },
    ...options,
  });
  return { helper, sent };
}

describe("nativeHost", () => {
  test("the host name is the one the helper installs", () => {
    assert.equal(HOST_NAME, "mailtracker.helper");
  });

  test("a request carries id, command, protocol 1 and its arguments", () => {
    assert.deepEqual(buildRequest("mint", { subject: "Hi" }, "r1"), {
      id: "r1",
      command: "mint",
      protocol: 1,
      subject: "Hi",
    });
  });

  test("an ok reply resolves with its data", async () => {
    const { helper } = helperAnswering((req) => ({ id: req.id, ok: true, data: { version: "0.1.0", protocol: 1 } }));
    assert.deepEqual(await helper.ping(), { version: "0.1.0", protocol: 1 });
  });

  test("an error reply rejects with the helper's code and message", async () => {
    const { helper } = helperAnswering((req) => ({ id: req.id, ok: false, code: 12, message: "register locked" }));
    await assert.rejects(helper.list({ limit: 5 }), (error) => {
      assert.ok(error instanceof HelperError);
      assert.equal(error.kind, "failed");
      assert.equal(error.code, 12);
      assert.equal(error.message, "register locked");
      return true;
    });
  });

  test("Thunderbird's 'No such native application' means the helper is missing", async () => {
    const helper = createHelper({
      send: async () => {
        throw new Error("No such native application mailtracker.helper");
      },
    });
    await assert.rejects(helper.ping(), { kind: "missing" });
  });

  test("a reply to another request id is a protocol error", async () => {
    const { helper } = helperAnswering(() => ({ id: "someone-else", ok: true, data: {} }));
    await assert.rejects(helper.ping(), { kind: "protocol" });
  });

  test("a helper that never answers times out", async () => {
    const helper = createHelper({ send: () => new Promise(() => {}), timeoutMs: 20 });
    await assert.rejects(helper.ping(), { kind: "timeout" });
  });

  test("each command sends the contract's argument names", async () => {
    const { helper, sent } = helperAnswering((req) => ({ id: req.id, ok: true, data: {} }));
    await helper.mint({ subject: "S", recipients: ["a@x"], identity: "me@x" });
    await helper.sent({ tagId: "t1", messageId: "m1@x", at: 1764000000000 });
    await helper.unsent({ tagId: "t1", reason: "why" });
    await helper.selfFetch({ tagId: "t1" });
    await helper.selfFetch({ messageId: "m1@x" });
    await helper.status({ messageId: "m1@x" });
    await helper.list({ limit: 7 });
    await helper.config();
    const strip = ({ id, protocol, ...rest }) => rest;
    assert.deepEqual(sent.map(strip), [
      { command: "mint", subject: "S", recipients: ["a@x"], identity: "me@x" },
      { command: "sent", tag_id: "t1", message_id: "m1@x", at: 1764000000000 },
      { command: "unsent", tag_id: "t1", reason: "why" },
      { command: "self_fetch", tag_id: "t1" },
      { command: "self_fetch", message_id: "m1@x" },
      { command: "status", message_id: "m1@x" },
      { command: "list", limit: 7 },
      { command: "config" },
    ]);
    assert.ok(sent.every((req) => req.protocol === 1 && typeof req.id === "string"));
  });
});

/** A runtime.Port double: the test plays the helper through answer(request, port). */
function fakePort(answer) {
  const messageListeners = [];
  const disconnectListeners = [];
  const port = {
    posted: [],
    onMessage: { addListener: (listener) => messageListeners.push(listener) },
    onDisconnect: { addListener: (listener) => disconnectListeners.push(listener) },
    postMessage(message) {
      port.posted.push(message);
      queueMicrotask(() => answer(message, port));
    },
    deliver: (message) => messageListeners.forEach((listener) => listener(message)),
    disconnect: (error) => disconnectListeners.forEach((listener) => listener({ error })),
  };
  return port;
}

describe("nativeHost over one port", () => {
  test("requests share one port and each gets the reply with its own id", async () => {
    const ports = [];
    const transport = createPortTransport({
      connect: () => {
        const port = fakePort((req, p) => p.deliver({ id: req.id, ok: true, data: { echo: req.command } }));
        ports.push(port);
        return port;
      },
    });
    let n = 0;
    const helper = createHelper({ send: transport.send, newId: () => `r${++n}` });
    const [a, b] = await Promise.all([helper.ping(), helper.config()]);
    assert.deepEqual([a.echo, b.echo], ["ping", "config"]);
    assert.equal(ports.length, 1);
    assert.deepEqual(ports[0].posted.map((m) => m.id), ["r1", "r2"]);
  });

  test("a port that dies fails what was in flight, and the next request opens a new one", async () => {
    const ports = [];
    const transport = createPortTransport({
      connect: () => {
        const port = fakePort((req, p) => {
          if (ports.length === 1) {
            p.disconnect({ message: "No such native application mailtracker.helper" });
          } else {
            p.deliver({ id: req.id, ok: true, data: {} });
          }
        });
        ports.push(port);
        return port;
      },
    });
    const helper = createHelper({ send: transport.send });
    await assert.rejects(helper.ping(), { kind: "missing" });
    assert.equal(transport.isOpen(), false);
    assert.deepEqual(await helper.ping(), {});
    assert.equal(ports.length, 2);
  });

  test("the connected helper subscribes on each new port and hands pushed events on", async () => {
    const changes = [];
    let port;
    const helper = createConnectedHelper({
      connect: () => {
        port = fakePort((req, p) => p.deliver({ id: req.id, ok: true, data: { folding: true } }));
        return port;
      },
      onChanged: (data) => changes.push(data),
    });
    await helper.ping();
    await new Promise((resolve) => setTimeout(resolve, 0));
    assert.deepEqual(port.posted.map((m) => m.command).sort(), ["ping", "subscribe"]);
    port.deliver({ event: "changed", data: {} });
    assert.deepEqual(changes, [{}]);
  });
});

describe("a page's requests, over the background's port", () => {
  test("a page's request goes over the background's one port, and its answer comes back", async () => {
    let port;
    const background = createConnectedHelper({
      connect: () => {
        port = fakePort((req, p) => p.deliver({ id: req.id, ok: true, data: { echo: req.command, tag: req.tag_id } }));
        return port;
      },
    });
    const native = [];
    let n = 0;
    const page = createHelper({
      newId: () => `p${++n}`,
      send: (request) => relaySend(request, {
        // What runtime.sendMessage does: the background's listener answers (background.js).
        sendMessage: async (message) => background.relay(message.request),
        sendNative: async (request) => native.push(request),
      }),
    });
    assert.deepEqual(await page.status({ messageId: "m@x" }), { echo: "status", tag: undefined });
    assert.deepEqual(await page.links({ tagId: "t", links: [] }), { echo: "links", tag: "t" });
    assert.deepEqual(native, [], "no helper started for the page");
    assert.deepEqual(port.posted.map((m) => m.id).filter((id) => id.startsWith("p")), ["p1", "p2"]);
  });

  test("what the background's port met reaches the page as the same error", async () => {
    const background = createConnectedHelper({
      // As Thunderbird does, the port closes a moment after it was opened.
      connect: () => fakePort((req, p) => setTimeout(() => p.disconnect({ message: "No such native application mailtracker.helper" }), 0)),
      log: { warn() {} },
    });
    const page = createHelper({
      send: (request) => relaySend(request, { sendMessage: async (message) => background.relay(message.request) }),
    });
    await assert.rejects(page.ping(), { kind: "missing" });
  });

  test("with no background to relay, the page starts a helper of its own", async () => {
    for (const sendMessage of [async () => undefined, async () => { throw new Error("Receiving end does not exist"); }]) {
      const native = [];
      const page = createHelper({
        newId: () => "q1",
        send: (request) => relaySend(request, {
          sendMessage,
          sendNative: async (request) => {
            native.push(request.command);
            return { id: request.id, ok: true, data: { alone: true } };
          },
        }),
      });
      assert.deepEqual(await page.ping(), { alone: true });
      assert.deepEqual(native, ["ping"]);
    }
  });
});
