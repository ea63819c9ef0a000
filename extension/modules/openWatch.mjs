// Keeps what Thunderbird shows of the opens current, once per change the helper pushes:
// the tags on Sent copies (sentList.mjs), the toolbar badge (new opens since the user
// last looked at the Tracked mail page), notifications of a person's open or click (only
// while no tray runs: a tray notifies itself, whether it folds or follows this
// Thunderbird's helper; several at once are one notification, as the tray's are), and
// follow-up reminders that came due unopened (a click on one writes the follow-up: followUp.mjs).
//
// One `list` per change; only the mails whose state changed are looked up and retagged.
// What was seen, tagged and notified is kept in storage.local, so a suspended
// background, a restart or a second change never notifies one open twice.
// deps: {helper, messenger, followUp?, local?, t, now?, log?}; node tests pass doubles.

import { cellEntries, followUpLines, followUpPlan, mailRows } from "./followUp.mjs";
import { REMINDER_ALARM, nextReminder, reminderSettled, reminderWaitsFor } from "./reminders.mjs";
import { ensureTags, findCopies, stateOf, tagCopies } from "./sentList.mjs";
import { TRACKED_PAGE } from "./trackedView.mjs";

export const STATE_KEY = "openWatch";
// The register keeps every tag; a mail older than the newest this many is left as it is.
export const LIST_LIMIT = 500;
// A mail whose copy is not found (deleted, or filed where we cannot see it) is looked up
// again at this many changes, then left alone.
export const MAX_LOOKUPS = 5;
export const BADGE_COLOR = "#2E7D32";
// Opens (or reminders) that arrive together are one notification naming this many mails.
export const GROUP_LINES = 4;
const NOTIFICATION_PREFIX = "mailtracker-mail:";
const GROUP_PREFIX = "mailtracker-group:";

/** A notification id that names the mail to open when it is clicked. */
export function notificationIdFor(kind, tagId, count, messageId) {
  return `${NOTIFICATION_PREFIX}${kind}:${tagId}:${count}:${messageId}`;
}

/** A notification id for several mails at once (a click opens the Tracked mail page). */
export function groupNotificationIdFor(kind, count, at) {
  return `${GROUP_PREFIX}${kind}:${count}:${at}`;
}

/** What a notification id names: {kind, tagId, messageId}, or null for someone else's notification. */
export function parseNotificationId(notificationId) {
  if (!String(notificationId).startsWith(NOTIFICATION_PREFIX)) {
    return null;
  }
  const parts = notificationId.slice(NOTIFICATION_PREFIX.length).split(":");
  const messageId = parts.length >= 4 ? parts.slice(3).join(":") : "";
  return messageId ? { kind: parts[0], tagId: parts[1], messageId } : null;
}

/** The Message-ID a notification id names, or null for someone else's notification. */
export function messageIdOfNotification(notificationId) {
  return parseNotificationId(notificationId)?.messageId ?? null;
}

/** Who a notice names: the recipient; for a reply who answered, for a bounce whom it missed. */
function whoOf(row, kind) {
  if (kind === "reply" && row.replied_by) {
    return cellEntries(row.replied_by).at(-1);
  }
  if (kind === "bounce" && row.undelivered) {
    return row.undelivered;
  }
  return row.name || row.recipients || row.short_id || "";
}

/**
 * What changed between the stored per-tag state and the new rows (pure):
 * {entries, retag: [row, state], notices: [{kind, row, count}], newOpens}.
 * notifyHere: true (no tray runs: the add-on notifies), false (the tray notifies), null (not
 * known yet: leave the notified counts for a later change to settle).
 */
export function diffRows(stored, rows, { now, notifyHere }) {
  const previous = stored.entries ?? {};
  const first = !stored.baselined;
  const entries = {};
  const retag = [];
  const notices = [];
  let newOpens = 0;
  for (const row of rows) {
    if (!row?.id || row.status === "unsent") {
      continue;
    }
    const opens = Number(row.opens ?? 0);
    const clicks = Number(row.clicks ?? 0);
    const replies = Number(row.replies ?? 0);
    const state = stateOf(row, now);
    const before = previous[row.id];
    const entry = {
      state: before?.state ?? "none",
      tagged: before?.tagged ?? false,
      lookups: before?.lookups ?? 0,
      seenOpens: first ? opens : (before?.seenOpens ?? 0),
      toldOpens: first ? opens : (before?.toldOpens ?? 0),
      toldClicks: first ? clicks : (before?.toldClicks ?? 0),
      reminded: before?.reminded ?? false,
      toldReplies: first ? replies : (before?.toldReplies ?? 0),
      toldBounce: first ? Boolean(row.undelivered) : (before?.toldBounce ?? false),
    };
    if (opens > entry.seenOpens) {
      newOpens += opens - entry.seenOpens;
    }
    // Fewer after a rebuild under new rules: nothing new, and the next open counts from there.
    entry.seenOpens = opens;
    if (notifyHere !== null) {
      if (notifyHere && opens > entry.toldOpens) {
        notices.push({ kind: "open", row, count: opens });
      } else if (notifyHere && clicks > entry.toldClicks) {
        notices.push({ kind: "click", row, count: clicks });
      }
      entry.toldOpens = opens;
      entry.toldClicks = clicks;
    }
    // Replies and bounces are the add-on's to tell, whether or not a tray runs: the tray tells opens.
    if (notifyHere !== null) {
      if (replies > entry.toldReplies) {
        notices.push({ kind: "reply", row, count: replies });
      }
      if (row.undelivered && !entry.toldBounce) {
        // Its reminder, if one was still to come (not told, not ended by an open or a reply
        // before), will not be: the notification says so.
        const pending = Boolean(row.remind_at) && !entry.reminded && !reminderSettled({ ...row, undelivered: "" });
        notices.push({ kind: "bounce", row, count: 0, cancelled: pending });
      }
      entry.toldReplies = replies;
      entry.toldBounce = Boolean(row.undelivered);
    }
    const parts = state.split("+");
    if ((parts.includes("due") || parts.includes("noReply")) && !entry.reminded && row.message_id) {
      // Whom its follow-up would go to, and who is left out and why (followUp.mjs).
      notices.push({ kind: "reminder", row, count: 0, plan: followUpPlan(mailRows(rows, row)) });
      entry.reminded = true;
    }
    const changed = state !== entry.state || !entry.tagged;
    const lookupsLeft = entry.lookups < MAX_LOOKUPS;
    if (changed && row.message_id && lookupsLeft && !(state === "none" && !before)) {
      retag.push([row, state]);
    } else if (changed && state === "none" && !before) {
      // A new mail with nothing to show: no lookup for it.
      Object.assign(entry, { state, tagged: true });
    }
    entries[row.id] = entry;
  }
  // The copies of a mail sent individually left seconds apart, so their reminders come due
  // seconds apart: the first one due reminds of them all (its plan names the whole group).
  for (const { kind, row } of notices) {
    if (kind === "reminder" && row.group) {
      for (const member of rows) {
        if (member?.group === row.group && entries[member.id]) {
          entries[member.id].reminded = true;
        }
      }
    }
  }
  // A tag missing from a list shorter than the limit keeps its entry (a rebuild may be
  // under way: when it is back, its opens are not news). A full list is the newest mails, and
  // an older one never comes back into it: its entry is dropped, so storage stays bounded.
  if (rows.length < LIST_LIMIT) {
    for (const [id, entry] of Object.entries(previous)) {
      entries[id] ??= entry;
    }
  }
  return { entries, retag, notices, newOpens };
}

/**
 * The notifications to show for these notices (pure): one per notice, except that opens
 * and clicks arriving together are one notification, and so are reminders due together; the
 * copies of one mail sent individually that come due together are one reminder (its plan names
 * the whole group).
 */
export function groupNotices(notices) {
  const told = notices.filter((notice) => notice.kind !== "reminder");
  const groups = new Set();
  const due = notices.filter((notice) => {
    if (notice.kind !== "reminder" || (notice.row.group && groups.has(notice.row.group))) {
      return false;
    }
    groups.add(notice.row.group || null);
    return true;
  });
  return [
    ...(told.length > 1 ? [{ kind: "group", notices: told }] : told),
    ...(due.length > 1 ? [{ kind: "reminders", notices: due }] : due),
  ];
}

/** {title, message} of a notification (t: i18n lookup). */
export function noticeText(notice, t) {
  const { kind, row, notices } = notice;
  if (kind === "group" || kind === "reminders") {
    const lineOf = { click: "groupClickLine", reply: "groupReplyLine", bounce: "groupBounceLine" };
    const lines = notices.slice(0, GROUP_LINES).map(({ kind: each, row: mail, cancelled }) => t(
      cancelled ? "groupBounceCancelledLine" : (lineOf[each] ?? "groupLine"),
      [whoOf(mail, each), mail.subject || t("trackedNoSubject")]));
    if (notices.length > GROUP_LINES) {
      lines.push(t("groupMore", [String(notices.length - GROUP_LINES)]));
    }
    return { title: t(kind === "group" ? "groupNoticeTitle" : "remindersTitle", [String(notices.length)]),
      message: lines.join("\n") };
  }
  const subject = row.subject || t("trackedNoSubject");
  if (kind === "reply") {
    return { title: t("replyNoticeTitle", [whoOf(row, kind)]), message: t("noticeBody", [subject]) };
  }
  if (kind === "bounce") {
    const body = t("bounceNoticeBody", [subject, row.undelivered_reason || ""]);
    return { title: t("bounceNoticeTitle", [whoOf(row, kind)]),
      message: notice.cancelled ? `${body} ${t("bounceReminderCancelled")}` : body };
  }
  if (kind === "reminder") {
    // An "if not opened" reminder of a mail whose opens cannot show waited for a reply: say so.
    const noReply = reminderWaitsFor(row) === "no_reply";
    const body = !noReply ? "reminderBody" : row.remind_if === "no_reply" ? "noReplyReminderBody" : "notSeenReminderBody";
    return { title: t(noReply ? "noReplyReminderTitle" : "reminderTitle", [subject]),
      message: [t(body, [whoOf(row)]), ...(notice.plan ? followUpLines(notice.plan, t) : [])].join("\n") };
  }
  return {
    title: t(kind === "click" ? "clickNoticeTitle" : "openNoticeTitle", [whoOf(row)]),
    message: t("noticeBody", [subject]),
  };
}

export function createOpenWatch({ helper, messenger, followUp, local, t, now = () => Date.now(), log = console }) {
  const area = local ?? messenger.storage.local;
  let notifyHere = null;
  let running = null;
  let again = false;
  let tagsReady = false;

  async function load() {
    return (await area.get(STATE_KEY))[STATE_KEY] ?? { baselined: false, entries: {}, badge: 0 };
  }

  async function showBadge(count) {
    await messenger.action.setBadgeText({ text: count > 0 ? String(count) : "" });
    if (count > 0) {
      await messenger.action.setBadgeBackgroundColor({ color: BADGE_COLOR });
    }
  }

  async function notifyOf(notice) {
    const { title, message } = noticeText(notice, t);
    const id = notice.notices
      ? groupNotificationIdFor(notice.kind, notice.notices.length, now())
      : notificationIdFor(notice.kind, notice.row.id, notice.count, notice.row.message_id ?? "");
    try {
      await messenger.notifications.create(
        id, { type: "basic", iconUrl: messenger.runtime.getURL("icons/mailtracker.svg"), title, message });
    } catch (error) {
      log.warn("mailtracker: notification not shown: %s", error.message);
    }
  }

  async function retagOne(entry, row, state) {
    try {
      if (!tagsReady) {
        await ensureTags(messenger, t);
        tagsReady = true;
      }
      const copies = await tagCopies(messenger, row.message_id, state);
      if (copies > 0) {
        Object.assign(entry, { state, tagged: true, lookups: 0 });
      } else {
        entry.lookups += 1;
      }
    } catch (error) {
      entry.lookups += 1;
      log.warn("mailtracker: could not tag the Sent copy of %s: %s", row.message_id, error.message);
    }
  }

  async function scheduleNext(rows) {
    const next = nextReminder(rows, now());
    if (next === null) {
      await messenger.alarms.clear(REMINDER_ALARM);
    } else {
      // An alarm of the same name replaces the one set before.
      await messenger.alarms.create(REMINDER_ALARM, { when: next });
    }
  }

  async function runOnce() {
    const { tags } = await helper.list({ limit: LIST_LIMIT });
    const rows = tags ?? [];
    const stored = await load();
    const { entries, retag, notices, newOpens } = diffRows(stored, rows, { now: now(), notifyHere });
    for (const [row, state] of retag) {
      await retagOne(entries[row.id], row, state);
    }
    const badge = (stored.badge ?? 0) + newOpens;
    await area.set({ [STATE_KEY]: { baselined: true, entries, badge } });
    if (newOpens > 0 || !stored.baselined) {
      await showBadge(badge);
    }
    for (const notice of groupNotices(notices)) {
      await notifyOf(notice);
    }
    await scheduleNext(rows);
  }

  /** Read the register once and bring tags, badge, notifications and reminders up to date.
   * Calls during a run are folded into one more run after it. */
  async function refresh() {
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      try {
        do {
          again = false;
          await runOnce();
        } while (again);
      } finally {
        running = null;
      }
    })();
    return running;
  }

  /**
   * What the helper says (subscribe's reply, each changed event): a running tray notifies of
   * opens, leading or following, so the add-on does only when none runs. A helper that does
   * not say (an older one) leaves it to whoever folds.
   */
  function setHelperState(data) {
    if (typeof data?.tray === "boolean") {
      notifyHere = !data.tray;
    } else if (typeof data?.folding === "boolean") {
      notifyHere = data.folding;
    }
  }

  /** The user looked at the Tracked mail page: the badge starts from zero. */
  async function clearBadge() {
    await running?.catch(() => {});
    const stored = await load();
    await area.set({ [STATE_KEY]: { ...stored, badge: 0 } });
    await showBadge(0);
  }

  /** Show the badge as stored (a restarted Thunderbird starts without it). */
  async function restoreBadge() {
    await showBadge((await load()).badge ?? 0);
  }

  /** Whether the follow-up opened; a failure (the helper down) is logged and the mail opens instead. */
  async function writeFollowUp(tagId, messageId) {
    try {
      return (await followUp.write({ tagId, messageId })).opened;
    } catch (error) {
      log.warn("mailtracker: the follow-up of %s could not be written: %s", messageId, error.message);
      return false;
    }
  }

  /** A click on one of our notifications: a reminder's writes the follow-up (if anyone is left
   * to write to), another opens that mail (its Sent copy); one for several mails opens the Tracked
   * mail page (on the reminders due, for several reminders). */
  async function openMailOf(notificationId) {
    if (String(notificationId).startsWith(GROUP_PREFIX)) {
      const reminders = String(notificationId).startsWith(`${GROUP_PREFIX}reminders:`);
      await messenger.tabs.create({ url: reminders ? `${TRACKED_PAGE}?filter=due` : TRACKED_PAGE });
      return true;
    }
    const named = parseNotificationId(notificationId);
    if (!named) {
      return false;
    }
    const { kind, tagId, messageId } = named;
    if (kind === "reminder" && followUp && (await writeFollowUp(tagId, messageId))) {
      return true;
    }
    const [message] = await findCopies(messenger, messageId);
    if (!message) {
      return false;
    }
    await messenger.messageDisplay.open({ messageId: message.id, location: "tab" });
    return true;
  }

  return { refresh, setHelperState, clearBadge, restoreBadge, openMailOf };
}
