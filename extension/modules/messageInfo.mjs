// Recognises the user's own sent messages and shapes the helper's open status for display.
//
// Pure: messages, identities and status data come in as arguments.

import { emailOf } from "./tracking.mjs";

/** The messages of an onMessagesDisplayed / getDisplayedMessages result: an array, or a MessageList. */
export function messagesOf(result) {
  if (Array.isArray(result)) {
    return result;
  }
  return Array.isArray(result?.messages) ? result.messages : [];
}

function inSentFolder(message) {
  const folder = message?.folder;
  if (!folder) {
    return false;
  }
  return folder.type === "sent" || (Array.isArray(folder.specialUse) && folder.specialUse.includes("sent"));
}

/**
 * True if message is one the user sent: it sits in a Sent folder, its author is
 * one of ownEmails, or this profile recorded sending it.
 */
export function isOwnMessage(message, { ownEmails = [], sentIds = [] } = {}) {
  if (!message) {
    return false;
  }
  if (inSentFolder(message) || sentIds.includes(message.headerMessageId)) {
    return true;
  }
  const author = emailOf(message.author);
  return author !== "" && ownEmails.map((e) => e.toLowerCase()).includes(author);
}

/** Every identity address of the given accounts (accounts.list() result), lower-cased. */
export function identityEmails(accounts) {
  return (accounts ?? [])
    .flatMap((account) => account.identities ?? [])
    .map((identity) => (identity.email ?? "").toLowerCase())
    .filter(Boolean);
}

export const TIMELINE_LABELS = ["open", "proxy", "prefetch", "self", "click"];

function toDate(value) {
  if (value == null || value === "") {
    return null;
  }
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? null : date;
}

/** The times of a row's opens "from somewhere new" (register field opened_elsewhere, space-separated). */
export function openedElsewhere(row) {
  return new Set(String(row?.opened_elsewhere ?? "").split(" ").filter(Boolean));
}

/**
 * The helper's status data made safe to render: dates parsed, the timeline
 * sorted oldest first and cut to the newest `limit` entries, per-label counts.
 */
export function summarizeStatus(data, { limit = 20 } = {}) {
  if (!data?.tracked) {
    return { tracked: false };
  }
  // Opens from a network and mail program no earlier open came from (the helper's elsewhere.py): a hint.
  const elsewhere = openedElsewhere(data);
  const events = (data.timeline ?? [])
    .map((event) => ({ time: toDate(event.time), label: TIMELINE_LABELS.includes(event.label) ? event.label : "open",
      elsewhere: Boolean(event.counted) && event.label === "open" && elsewhere.has(String(event.time)) }))
    .filter((event) => event.time)
    .sort((a, b) => a.time - b.time);
  const counts = Object.fromEntries(TIMELINE_LABELS.map((label) => [label, 0]));
  for (const event of events) {
    counts[event.label] += 1;
  }
  return {
    tracked: true,
    shortId: data.short_id ?? "",
    opens: Number(data.opens ?? 0),
    firstOpen: toDate(data.first_open),
    lastOpen: toDate(data.last_open),
    counts,
    timeline: events.slice(-limit),
    hiddenEarlier: Math.max(0, events.length - limit),
    clicks: Number(data.clicks ?? 0),
    lastClick: toDate(data.last_click),
    // A person's click proves the mail was read, even with its images blocked.
    opened: Boolean(data.opened ?? Number(data.opens ?? 0) > 0),
    // So does a reply (its verdict is the add-on's, replies.mjs); "read": opened, clicked or replied.
    replies: Number(data.replies ?? 0),
    repliedBy: String(data.replied_by ?? ""),
    lastReply: toDate(data.last_reply),
    undelivered: String(data.undelivered ?? ""),
    undeliveredReason: String(data.undelivered_reason ?? ""),
    // Opens that cannot show (the helper's visibility.py): "no_images", "not_measurable" or "", and why.
    notSeen: String(data.not_seen ?? ""),
    notSeenReason: String(data.not_seen_reason ?? ""),
    read: Boolean(data.read ?? (data.opened || Number(data.replies ?? 0) > 0)),
    // A mail sent individually: one row per recipient's copy (individual.mjs).
    recipients: (data.recipients ?? []).map((row) => ({
      recipient: String(row.recipient ?? ""),
      opened: Boolean(row.opened),
      opens: Number(row.opens ?? 0),
      firstOpen: toDate(row.first_open),
      lastOpen: toDate(row.last_open),
      device: String(row.device ?? ""),
      clicks: Number(row.clicks ?? 0),
    })),
    links: (data.links ?? []).map((link) => ({
      text: String(link.text ?? ""),
      target: String(link.target ?? ""),
      clicks: Number(link.clicks ?? 0),
      lastClick: toDate(link.last_click),
    })),
  };
}
