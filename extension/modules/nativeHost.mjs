// Speaks the native messaging contract with the mailtracker helper.
//
// Two transports. The background keeps one runtime.connectNative port: a warm
// helper answers a send's requests without starting a process each time, and,
// subscribed, it runs the home's daemon (folding new hits) for as long as
// Thunderbird runs, pushing a "changed" event when the counts change. A port
// that dies (the helper crashed, the background was suspended) fails only the
// requests in flight; the next request opens a new one. Extension pages (popups,
// the Tracked mail page, options) pass their requests to the background, which sends
// them over that port (no process to start: an answer in milliseconds); where the
// background does not relay, runtime.sendNativeMessage starts a helper per request.
// `browser` is only read when a request is sent, so node can import this module.

export const HOST_NAME = "mailtracker.helper";
// The helper's error code for "tracking is paused from the tray" (errors.py).
export const TRACKING_PAUSED = 81;
export const PROTOCOL = 1;
export const DEFAULT_TIMEOUT_MS = 15000;
// The runtime message the background sends to open extension pages when the counts changed.
export const COUNTS_CHANGED = "mailtracker-counts-changed";
// The runtime message the Tracked mail page sends the background: the user saw the opens.
export const BADGE_SEEN = "mailtracker-badge-seen";
// The runtime message an extension page sends the background: this request, over your port.
export const HELPER_RELAY = "mailtracker-helper-relay";

// The fix when no helper answers at all (missing, timeout, a broken reply): install the host
// manifest, then let the helper diagnose itself. A helper that answers with an error sends
// its own fix for that code (HelperError.hint).
export const INSTALL_COMMAND = "mailtracker install-host";
export const DOCTOR_COMMAND = "mailtracker doctor";

/**
 * A failed helper request. kind is one of:
 *   "missing"  - Thunderbird found no host manifest (or it is not for us),
 *   "failed"   - the helper answered ok:false (code and message are the helper's),
 *   "timeout"  - no answer in time,
 *   "protocol" - an answer that does not follow the contract.
 */
export class HelperError extends Error {
  constructor(kind, message, code = null, hint = "") {
    super(message);
    this.name = "HelperError";
    this.kind = kind;
    this.code = code;
    // The helper's fix for this code (core/hints.py): the one table the CLI uses too.
    this.hint = hint;
  }
}

function defaultNewId() {
  return globalThis.crypto.randomUUID();
}

function defaultSend(request) {
  return relaySend(request);
}

/**
 * A page's request, over the background's port: the reply, or the error the background met
 * (a missing helper is said as Thunderbird says it). A background that does not answer the
 * relay (an older one, or none listening yet) leaves it to a helper started for the request.
 */
export async function relaySend(request, {
  sendMessage = (message) => browser.runtime.sendMessage(message),
  sendNative = (frame) => browser.runtime.sendNativeMessage(HOST_NAME, frame),
} = {}) {
  let answer;
  try {
    answer = await sendMessage({ command: HELPER_RELAY, request });
  } catch {
    answer = undefined; // no background listening
  }
  if (answer && typeof answer === "object" && "reply" in answer) {
    return answer.reply;
  }
  if (answer && typeof answer === "object" && typeof answer.error === "string") {
    throw new Error(answer.error);
  }
  return sendNative(request);
}

/** The background's side of relaySend: the reply of ``send`` (a port transport's), or its error. */
export function answerRelay(send, request) {
  return Promise.resolve()
    .then(() => send(request))
    .then((reply) => ({ reply }), (error) => ({ error: String(error?.message ?? error) }));
}

function defaultConnect() {
  return browser.runtime.connectNative(HOST_NAME);
}

/**
 * A transport over one long-lived port: send(request) resolves with the reply
 * whose id matches; frames without an id are events for onEvent. connect()
 * returns a runtime.Port (or a test double with the same shape).
 */
export function createPortTransport({ connect = defaultConnect, onEvent = () => {}, onConnect = () => {} } = {}) {
  let port = null;
  const pending = new Map();

  function open() {
    const opened = connect();
    opened.onMessage.addListener((message) => {
      if (message && typeof message === "object" && message.id == null && message.event) {
        onEvent(message);
        return;
      }
      const waiter = pending.get(message?.id);
      if (waiter) {
        pending.delete(message.id);
        waiter.resolve(message);
      }
    });
    opened.onDisconnect.addListener((gone) => {
      if (port === opened) {
        port = null;
      }
      const error = new Error(gone?.error?.message ?? opened.error?.message ?? "the helper closed the connection");
      for (const waiter of pending.values()) {
        waiter.reject(error);
      }
      pending.clear();
    });
    port = opened;
    onConnect();
    return opened;
  }

  function send(request) {
    const target = port ?? open();
    return new Promise((resolve, reject) => {
      pending.set(request.id, { resolve, reject });
      try {
        target.postMessage(request);
      } catch (error) {
        pending.delete(request.id);
        reject(error);
      }
    });
  }

  return { send, isOpen: () => port !== null };
}

/** Builds one request frame. */
export function buildRequest(command, args, id) {
  return { ...args, id, command, protocol: PROTOCOL };
}

/** Returns the reply's data, or throws HelperError. */
export function parseReply(reply, id) {
  if (reply === null || typeof reply !== "object") {
    throw new HelperError("protocol", "the helper's reply is not a JSON object");
  }
  if (reply.id !== id) {
    throw new HelperError("protocol", `the helper answered request ${reply.id}, not ${id}`);
  }
  if (reply.ok === true) {
    return reply.data ?? {};
  }
  if (reply.ok === false) {
    throw new HelperError(
      "failed",
      String(reply.message ?? "the helper reported an error"),
      reply.code ?? null,
      typeof reply.hint === "string" ? reply.hint : "",
    );
  }
  throw new HelperError("protocol", "the helper's reply has no ok field");
}

/** Turns what sendNativeMessage threw into a HelperError. */
export function classifyTransportError(error) {
  if (error instanceof HelperError) {
    return error;
  }
  const text = String(error?.message ?? error);
  // Thunderbird gives this one message for a missing manifest, a wrong
  // extension id in allowed_extensions and a relative path alike.
  if (/no such native application/i.test(text)) {
    return new HelperError("missing", text);
  }
  return new HelperError("failed", text);
}

function withTimeout(promise, timeoutMs) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(
      () => reject(new HelperError("timeout", `the helper did not answer within ${timeoutMs / 1000} s`)),
      timeoutMs,
    );
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Returns an object with one method per contract command. Every method resolves
 * with the reply's data or rejects with a HelperError.
 * send, newId and timeoutMs exist so tests can stand in for Thunderbird.
 */
export function createHelper({ send = defaultSend, newId = defaultNewId, timeoutMs = DEFAULT_TIMEOUT_MS } = {}) {
  async function call(command, args = {}) {
    const id = newId();
    let reply;
    try {
      reply = await withTimeout(Promise.resolve().then(() => send(buildRequest(command, args, id))), timeoutMs);
    } catch (error) {
      throw classifyTransportError(error);
    }
    return parseReply(reply, id);
  }

  return {
    call,
    subscribe: () => call("subscribe"),
    ping: () => call("ping"),
    config: () => call("config"),
    mint: ({ subject, recipients, identity, group }) =>
      call("mint", { subject, recipients, identity, ...(group ? { group } : {}) }),
    sent: ({ tagId, messageId, at }) => call("sent", { tag_id: tagId, message_id: messageId, at }),
    unsent: ({ tagId, reason }) => call("unsent", { tag_id: tagId, reason }),
    selfFetch: ({ tagId, messageId, at }) =>
      call("self_fetch", { ...(tagId ? { tag_id: tagId } : { message_id: messageId }), ...(at ? { at } : {}) }),
    status: ({ messageId }) => call("status", { message_id: messageId }),
    list: ({ limit }) => call("list", { limit }),
    links: ({ tagId, links }) => call("links", { tag_id: tagId, links }),
    remind: ({ tagId, remindAt, remindIf }) =>
      call("remind", { tag_id: tagId, remind_at: remindAt, ...(remindIf ? { remind_if: remindIf } : {}) }),
    reply: ({ messageIds, replyId, from, time, verdict, reason, recipient }) =>
      call("reply", { message_ids: messageIds, reply_id: replyId, from, time, verdict, reason,
        ...(recipient ? { recipient } : {}) }),
  };
}

/**
 * The background's helper: one port, subscribed on every (re)connection so that
 * the helper runs the daemon while Thunderbird runs. onChanged runs when the
 * helper says the counts changed; onSubscribed with subscribe's reply ({folding}).
 */
export function createConnectedHelper({
  connect = defaultConnect,
  onChanged = () => {},
  onSubscribed = () => {},
  newId,
  timeoutMs,
  log = console,
} = {}) {
  let helper = null;
  const transport = createPortTransport({
    connect,
    onEvent: (message) => {
      if (message.event === "changed") {
        onChanged(message.data ?? {});
      }
    },
    // A new port is a new helper process: ask it to keep the counts current.
    onConnect: () => {
      queueMicrotask(() =>
        helper
          .subscribe()
          .then(onSubscribed)
          .catch((error) => log.warn("mailtracker: subscribe: %s", error.message)),
      );
    },
  });
  helper = createHelper({ send: transport.send, newId, timeoutMs });
  // An extension page's request (relaySend), over this port.
  helper.relay = (request) => answerRelay(transport.send, request);
  return helper;
}
