// Judges a message that arrived in the user's mail: is it a person's reply to a tracked
// mail, an automatic answer (out of office, vacation), the user's own message, a delivery
// report (a bounce: which recipient, and why), or nothing to do with tracked mail? Each
// verdict comes with a plain reason, shown the way open labels are ("automatic reply: not
// counted").
//
// Pure: the message comes in as its header block (text) or Thunderbird's header object, and
// for a delivery report as its raw text. Everything read from it is outside input: header
// text is bounded and stripped of control characters before any of it is kept, and only the
// fact, the sender's address, the time and (for a bounce) the recipient and reason leave here.

import { parseHeaderFields as parseMimeHeaderFields, parseContentType } from "./mime.mjs";

export const VERDICTS = Object.freeze({
  reply: "reply",
  auto: "auto",
  own: "own",
  bounce: "bounce",
  unrelated: "unrelated",
});

// A header block longer than this is cut: no real header needs more, and a hostile one
// must not cost more than a bounded amount of work.
export const MAX_HEADER_CHARS = 256 * 1024;
// What one kept value may hold (an address, a reason, a diagnostic).
export const MAX_VALUE = 200;
// How many Message-IDs of In-Reply-To and References are looked up (References of a
// long thread name every earlier mail; the tracked one is near its end).
export const MAX_IDS = 50;
const MAX_ID_LENGTH = 998;
// How much of a delivery report is read for its status part and the returned headers.
export const MAX_REPORT_CHARS = 2 * 1024 * 1024;

// Subjects of automatic answers, for mail programs that set no header (a fallback only).
const AUTO_SUBJECT = new RegExp(
  "^\\s*(?:auto(?:matic)?[ -]?(?:reply|response|respons|answer)|autoreply|out of (?:the )?office|" +
    "on vacation|vacation reply|automatische antwort|abwesenheitsnotiz|r[ée]ponse automatique|" +
    "respuesta autom[áa]tica|risposta automatica|automatisch antwoord)\\b",
  "i",
);
const AUTO_PRECEDENCE = new Set(["auto_reply", "bulk", "junk"]);

/** Text from outside made inert: control characters become spaces, runs of space one, cut to `max`. */
export function cleanText(value, max = MAX_VALUE) {
  // eslint-disable-next-line no-control-regex
  return String(value ?? "").replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g, " ")
    .replace(/\s+/g, " ").trim().slice(0, max);
}

/** A header value with its RFC 2047 encoded words (=?charset?B|Q?…?=) decoded; unknown charsets left as they are. */
export function decodeWords(value) {
  return String(value ?? "").replace(/=\?([^?\s]+)\?([BbQq])\?([^?\s]*)\?=(\s+(?==\?))?/g, (word, charset, kind, text) => {
    try {
      const binary = kind.toUpperCase() === "B"
        ? atob(text)
        : text.replace(/_/g, " ").replace(/=([0-9A-Fa-f]{2})/g, (_, hex) => String.fromCharCode(parseInt(hex, 16)));
      const bytes = Uint8Array.from(binary, (char) => char.charCodeAt(0) & 0xff);
      return new TextDecoder(charset.split("*")[0], { fatal: false }).decode(bytes);
    } catch {
      return word;
    }
  });
}

/** The bare, lower-cased address of a From or recipient value: "Name <a@b>", "a@b (comment)", "a@b"; "" if none. */
export function addressOf(value) {
  const text = String(value ?? "").slice(0, 2000);
  const angle = /<([^<>\s]+@[^<>\s]+)>/.exec(text);
  if (angle) {
    return angle[1].toLowerCase();
  }
  const bare = /[^\s<>(),;:"]+@[^\s<>(),;:"]+/.exec(text);
  return bare ? bare[0].toLowerCase() : "";
}

/** The header block of a raw message (a binary or decoded string): up to its first empty line, bounded. */
export function headerBlockOf(raw) {
  const text = String(raw ?? "").slice(0, MAX_HEADER_CHARS);
  const end = /\r?\n\r?\n/.exec(text);
  return end ? text.slice(0, end.index) : text;
}

/** Header fields of a header block (bounded): name (lower-case) -> every value, unfolded, in order. */
export function parseHeaderFields(headerText) {
  return parseMimeHeaderFields(String(headerText ?? "").slice(0, MAX_HEADER_CHARS));
}

/** The same map from Thunderbird's headers object ({name: [values]} of getFull / getHeaders). */
export function headersFromObject(object) {
  const fields = new Map();
  for (const [name, values] of Object.entries(object ?? {})) {
    const list = (Array.isArray(values) ? values : [values]).filter((value) => typeof value === "string");
    fields.set(name.toLowerCase(), list.map((value) => value.slice(0, MAX_HEADER_CHARS)));
  }
  return fields;
}

function first(headers, name) {
  return headers.get(name)?.[0] ?? "";
}

/** The Message-IDs in a header value, without their angle brackets (at most `max`). */
export function messageIdsOf(value, max = MAX_IDS) {
  const ids = [];
  for (const match of String(value ?? "").matchAll(/<([^<>\s]+)>/g)) {
    const id = match[1];
    if (id.length <= MAX_ID_LENGTH && id.includes("@")) {
      ids.push(id);
    }
  }
  return ids.slice(-max);
}

/**
 * The Message-IDs a message answers, the likeliest first: In-Reply-To, then References
 * from the newest back (unique, at most MAX_IDS).
 */
export function referencedIds(headers) {
  const inReplyTo = (headers.get("in-reply-to") ?? []).flatMap((value) => messageIdsOf(value));
  const references = (headers.get("references") ?? []).flatMap((value) => messageIdsOf(value)).reverse();
  return [...new Set([...inReplyTo, ...references])].slice(0, MAX_IDS);
}

/** True for a delivery status notification (RFC 3464: multipart/report; report-type=delivery-status). */
export function isDeliveryReport(headers) {
  const { type, params } = parseContentType(first(headers, "content-type"));
  return type === "multipart/report" && String(params["report-type"] ?? "").toLowerCase() === "delivery-status";
}

/** Why this is an automatic answer, or "" for a message a person may have written. */
export function automaticReason(headers) {
  const submitted = first(headers, "auto-submitted").split(";")[0].trim().toLowerCase();
  if (submitted && submitted !== "no") {
    return `automatic answer (Auto-Submitted: ${cleanText(submitted, 40)})`;
  }
  for (const name of ["x-autoreply", "x-autorespond", "x-autoresponder"]) {
    if (headers.has(name)) {
      return `automatic answer (${name.replace(/^x-a/, "X-A")} header)`;
    }
  }
  const precedence = first(headers, "precedence").trim().toLowerCase();
  if (AUTO_PRECEDENCE.has(precedence)) {
    return `automatic answer (Precedence: ${precedence})`;
  }
  if (headers.has("x-ms-exchange-inbox-rules-loop")) {
    return "automatic answer (made by an Outlook/Exchange rule)";
  }
  if (/vacation/i.test(first(headers, "x-apple-action"))) {
    return "automatic answer (Apple iCloud vacation reply)";
  }
  if (AUTO_SUBJECT.test(decodeWords(first(headers, "subject")))) {
    return "automatic answer (its subject says so)";
  }
  return "";
}

// --- delivery reports ----------------------------------------------------------

/** The body parts of a multipart entity (binary or decoded text) as {headers, body}; bounded. */
function partsOf(entity, boundary, depth = 0) {
  if (!boundary || depth > 4) {
    return [];
  }
  const delimiter = `--${boundary}`;
  const pieces = entity.split(delimiter).slice(1);
  const parts = [];
  for (const piece of pieces.slice(0, 20)) {
    if (piece.startsWith("--")) {
      break;
    }
    const text = piece.replace(/^[ \t]*\r?\n/, "");
    const end = /\r?\n\r?\n/.exec(text);
    const headerText = end ? text.slice(0, end.index) : text;
    const body = end ? text.slice(end.index + end[0].length) : "";
    const headers = parseHeaderFields(headerText);
    const { type, params } = parseContentType(first(headers, "content-type"));
    parts.push({ type, headers, body });
    if (type.startsWith("multipart/")) {
      parts.push(...partsOf(body, params.boundary, depth + 1));
    }
  }
  return parts;
}

/** The groups of "Name: value" fields of a message/delivery-status body (RFC 3464 2.1). */
function statusGroups(body) {
  return body.split(/\r?\n[ \t]*\r?\n/).map((group) => parseHeaderFields(group)).filter((group) => group.size > 0);
}

function typedValue(value) {
  // "rfc822; ann@example.org" -> "ann@example.org"; "smtp; 550 5.1.1 ..." -> "550 5.1.1 ..."
  const semi = value.indexOf(";");
  return (semi >= 0 ? value.slice(semi + 1) : value).trim();
}

/**
 * What a delivery report says (pure; `raw` is its whole text, bounded here): the returned
 * mail's Message-ID (from the returned message or headers part, or X-Original-Message-ID)
 * and each recipient's {recipient, action, status, diagnostic}, all cleaned.
 */
export function parseDeliveryReport(raw) {
  const text = String(raw ?? "").slice(0, MAX_REPORT_CHARS);
  const top = parseHeaderFields(headerBlockOf(text));
  const { params } = parseContentType(first(top, "content-type"));
  const bodyStart = /\r?\n\r?\n/.exec(text);
  const parts = partsOf(bodyStart ? text.slice(bodyStart.index + bodyStart[0].length) : "", params.boundary);
  let originalId = "";
  const recipients = [];
  for (const part of parts) {
    if (part.type === "message/delivery-status" || part.type === "message/global-delivery-status") {
      const [perMessage, ...perRecipient] = statusGroups(part.body);
      originalId ||= messageIdsOf(first(perMessage ?? new Map(), "x-original-message-id"), 1)[0] ?? "";
      for (const group of perRecipient) {
        const recipient = addressOf(typedValue(first(group, "final-recipient") || first(group, "original-recipient")));
        if (!recipient) {
          continue;
        }
        recipients.push({
          recipient: cleanText(recipient),
          action: cleanText(first(group, "action"), 20).toLowerCase(),
          status: cleanText(first(group, "status"), 20),
          diagnostic: cleanText(typedValue(first(group, "diagnostic-code"))),
        });
      }
    } else if (part.type === "message/rfc822" || part.type === "text/rfc822-headers" ||
      part.type === "message/global" || part.type === "message/global-headers") {
      const returned = parseHeaderFields(headerBlockOf(part.body));
      originalId = messageIdsOf(first(returned, "message-id"), 1)[0] ?? originalId;
    }
  }
  return { originalId, recipients };
}

function bounceReason({ status, diagnostic }) {
  const said = diagnostic || (status ? `status ${status}` : "no reason given");
  return cleanText(`not delivered: ${said}`);
}

// --- the verdict -----------------------------------------------------------------

/**
 * The verdict on one received message (pure):
 * {verdict, reason, from, messageIds, bounces?: [{recipient, reason}]}.
 * headers: the parsed header map; ownEmails: the user's identities (lower-case);
 * report: parseDeliveryReport's result for a delivery report (null otherwise).
 * messageIds are the tracked mail's candidates, likeliest first, for the helper to match.
 */
export function judge({ headers, ownEmails = [], report = null }) {
  const from = cleanText(addressOf(first(headers, "from")));
  const referenced = referencedIds(headers);
  if (isDeliveryReport(headers)) {
    const messageIds = [...new Set([report?.originalId, ...referenced].filter(Boolean))].slice(0, MAX_IDS);
    const failed = (report?.recipients ?? []).filter((entry) => entry.action === "failed");
    if (messageIds.length === 0) {
      return { verdict: VERDICTS.unrelated, reason: "a delivery report that names no mail", from, messageIds };
    }
    if (failed.length === 0) {
      const action = report?.recipients?.[0]?.action || "no failure";
      return { verdict: VERDICTS.auto, reason: cleanText(`delivery report (${action}): not a bounce`), from, messageIds };
    }
    return {
      verdict: VERDICTS.bounce,
      reason: bounceReason(failed[0]),
      from,
      messageIds,
      bounces: failed.map((entry) => ({ recipient: entry.recipient, reason: bounceReason(entry) })),
    };
  }
  if (referenced.length === 0) {
    return { verdict: VERDICTS.unrelated, reason: "answers no earlier mail", from, messageIds: [] };
  }
  const own = new Set(ownEmails.map((email) => String(email).toLowerCase()));
  if (from && own.has(from)) {
    return { verdict: VERDICTS.own, reason: "your own message: not counted", from, messageIds: referenced };
  }
  const automatic = automaticReason(headers);
  if (automatic) {
    return { verdict: VERDICTS.auto, reason: `${automatic}: not counted`, from, messageIds: referenced };
  }
  if (!from) {
    return { verdict: VERDICTS.auto, reason: "no sender address: not counted", from, messageIds: referenced };
  }
  return { verdict: VERDICTS.reply, reason: "a reply from a person", from, messageIds: referenced };
}
