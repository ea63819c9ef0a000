// The tracked state of a sent mail as Thunderbird tags on its Sent copy: "Opened",
// "Clicked", "Not opened yet", visible (and sortable, searchable) in the message list.
//
// The tags are ours by key ($mt_…): created once if missing, then the user may rename
// or recolour them and we never touch their names again; a message's other tags are
// never touched. Tags are IMAP keywords, so other mail programs may show them too.
// Every Thunderbird API arrives as `messenger`, so node tests pass fakes.

import { reminderSettled, reminderWaitsFor } from "./reminders.mjs";
import { STAGING_FOLDER } from "./sentCopy.mjs";

export const STATE_TAGS = Object.freeze({
  opened: { key: "$mt_opened", name: "tagOpened", color: "#2E7D32" },
  clicked: { key: "$mt_clicked", name: "tagClicked", color: "#1565C0" },
  notOpened: { key: "$mt_notopened", name: "tagNotOpened", color: "#E65100" },
  noReply: { key: "$mt_noreply", name: "tagNoReply", color: "#EF6C00" },
  replied: { key: "$mt_replied", name: "tagReplied", color: "#6A1B9A" },
  undelivered: { key: "$mt_undelivered", name: "tagUndelivered", color: "#B71C1C" },
  notVisible: { key: "$mt_notvisible", name: "tagNotVisible", color: "#757575" },
  notMeasurable: { key: "$mt_notmeasurable", name: "tagNotMeasurable", color: "#9E9E9E" },
});
// The helper's "not seen" states (register column not_seen) and the state part each shows.
const NOT_SEEN_PARTS = Object.freeze({ no_images: "notVisible", not_measurable: "notMeasurable" });
const OUR_KEYS = new Set(Object.values(STATE_TAGS).map((tag) => tag.key));

/**
 * The state a register row shows in the Sent list, its parts joined by "+" ("none" for no
 * part): "clicked" (a person followed a link, which also proves an open) or "opened";
 * "replied" (a person answered); "undelivered" (a recipient's server returned it); "notVisible"
 * or "notMeasurable" for a mail nobody opened whose opens cannot show (every recipient still to
 * open it does not load images, or is behind a proxy: "not opened" would claim what cannot be
 * known); "due" (its reminder time passed unopened) or "noReply" (its "if no reply" reminder
 * time passed without a reply, and so for an "if not opened" one of a mail not seen). A reply
 * or a bounce ends every reminder.
 */
export function stateOf(row, now) {
  const parts = [];
  if (Number(row?.clicks ?? 0) > 0) {
    parts.push("clicked");
  } else if (row?.opened === true || Number(row?.opens ?? 0) > 0) {
    parts.push("opened");
  }
  if (Number(row?.replies ?? 0) > 0) {
    parts.push("replied");
  }
  if (row?.undelivered) {
    parts.push("undelivered");
  }
  const notSeen = NOT_SEEN_PARTS[row?.not_seen];
  if (notSeen && !parts.length) {
    parts.push(notSeen);
  }
  const due = Date.parse(row?.remind_at ?? "");
  if (Number.isFinite(due) && due <= now && !reminderSettled(row)) {
    parts.push(reminderWaitsFor(row) === "no_reply" ? "noReply" : "due");
  }
  return parts.join("+") || "none";
}

/** Our tag keys for a state: a clicked mail is also an opened one (the "Opened" filter finds it). */
export function keysOf(state) {
  const keys = {
    clicked: [STATE_TAGS.opened.key, STATE_TAGS.clicked.key],
    opened: [STATE_TAGS.opened.key],
    due: [STATE_TAGS.notOpened.key],
    noReply: [STATE_TAGS.noReply.key],
    replied: [STATE_TAGS.replied.key],
    undelivered: [STATE_TAGS.undelivered.key],
    notVisible: [STATE_TAGS.notVisible.key],
    notMeasurable: [STATE_TAGS.notMeasurable.key],
  };
  return String(state).split("+").flatMap((part) => keys[part] ?? []);
}

/** A message's new tag list: the user's own tags as they were, then ours; null when nothing changes. */
export function retag(current, wanted) {
  const theirs = (current ?? []).filter((key) => !OUR_KEYS.has(key));
  const next = [...theirs, ...wanted];
  const before = new Set(current ?? []);
  const same = next.length === before.size && next.every((key) => before.has(key));
  return same ? null : next;
}

/** Creates whichever of our tags is missing (never renames or recolours an existing one). */
export async function ensureTags(messenger, t) {
  const existing = new Set((await messenger.messages.tags.list()).map((tag) => tag.key));
  for (const tag of Object.values(STATE_TAGS)) {
    if (!existing.has(tag.key)) {
      await messenger.messages.tags.create(tag.key, t(tag.name), tag.color);
    }
  }
}

/** Every copy of the mail with this Message-ID, but the transient one in the staging folder. */
export async function findCopies(messenger, headerMessageId) {
  const copies = [];
  let page = await messenger.messages.query({ headerMessageId });
  for (;;) {
    copies.push(...(page?.messages ?? []).filter((message) => message.folder?.name !== STAGING_FOLDER));
    if (!page?.id) {
      return copies;
    }
    page = await messenger.messages.continueList(page.id);
  }
}

/**
 * Puts the state's tags on every copy of the mail (its clean Sent copy, a copy to oneself);
 * returns how many copies there are: 0 means none yet (the clean copy is still on its way).
 */
export async function tagCopies(messenger, headerMessageId, state) {
  const copies = await findCopies(messenger, headerMessageId);
  for (const message of copies) {
    const tags = retag(message.tags, keysOf(state));
    if (tags) {
      await messenger.messages.update(message.id, { tags });
    }
  }
  return copies.length;
}
