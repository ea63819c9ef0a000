// The follow-up of a tracked mail: a reply to its Sent copy, addressed to those who have not
// answered. Written from a reminder's notification (a click), the Tracked mail page's "Write a
// follow-up" and the Opens popup; the user reads and sends it like any reply (whether it is
// tracked follows the identity's default, as for any mail).
//
// Who it goes to is a pure rule over the register's rows (replied_by, undelivered) and the Sent
// copy's own To / Cc / Bcc: each recipient who has not answered keeps their field; one who
// answered, or whose server returned the mail, is left out, and the reminder's notification says
// so. A mail sent individually is one row per recipient (one group): the follow-up goes to the
// group's non-answerers and starts as "send individually" too.
// deps: {helper, messenger, tabStore, listLimit, log?}; node tests pass doubles.

import { findCopies } from "./sentList.mjs";
import { emailOf } from "./tracking.mjs";

export const FOLLOW_UP = "mailtracker-follow-up";
const FIELDS = ["to", "cc", "bcc"];

/** The entries of a "; "-joined register cell (replied_by, undelivered, recipients). */
export function cellEntries(cell) {
  return String(cell ?? "")
    .split(";")
    .map((entry) => entry.trim())
    .filter(Boolean);
}

/** The rows one follow-up is about: the row itself, or every copy of a mail sent individually. */
export function mailRows(rows, row) {
  if (!row?.group) {
    return [row];
  }
  return rows.filter((each) => each?.group === row.group && each.status !== "unsent");
}

/**
 * Who a follow-up goes to: {to, cc, bcc, leftOut: [{recipient, why: "replied"|"undelivered",
 * reason}]}. `addressed` is the Sent copy's {to, cc, bcc} (address strings as Thunderbird shows
 * them); without it the rows' recipients, all in To. Each recipient keeps their field; with no
 * one left in To, those in Cc move there. The same address twice counts once.
 */
export function followUpPlan(rows, addressed = null) {
  const answered = new Set(rows.flatMap((row) => cellEntries(row.replied_by)).map(emailOf));
  const bounced = new Map();
  for (const row of rows) {
    for (const address of cellEntries(row.undelivered)) {
      bounced.set(emailOf(address), String(row.undelivered_reason ?? ""));
    }
  }
  const fields = addressed ?? { to: rows.flatMap((row) => cellEntries(row.recipients)), cc: [], bcc: [] };
  const plan = { to: [], cc: [], bcc: [], leftOut: [] };
  const seen = new Set();
  for (const field of FIELDS) {
    for (const recipient of fields[field] ?? []) {
      const key = emailOf(recipient);
      if (!key || seen.has(key)) {
        continue;
      }
      seen.add(key);
      if (answered.has(key)) {
        plan.leftOut.push({ recipient, why: "replied", reason: "" });
      } else if (bounced.has(key)) {
        plan.leftOut.push({ recipient, why: "undelivered", reason: bounced.get(key) });
      } else {
        plan[field].push(recipient);
      }
    }
  }
  if (plan.to.length === 0) {
    [plan.to, plan.cc] = [plan.cc, []];
  }
  return plan;
}

/** Whether a plan has anyone to write to. */
export function hasAddressees(plan) {
  return plan.to.length + plan.cc.length + plan.bcc.length > 0;
}

/** The lines a notification or page adds about a follow-up: whom it goes to, who is left out and why. */
export function followUpLines(plan, t) {
  const names = [...plan.to, ...plan.cc, ...plan.bcc];
  const lines = names.length ? [t("followUpTo", [names.join(", ")])] : [t("followUpNobody")];
  for (const { recipient, why, reason } of plan.leftOut) {
    lines.push(why === "replied"
      ? t("followUpLeftOutReplied", [recipient])
      : t("followUpLeftOutUndelivered", [recipient, reason]));
  }
  return lines;
}

function headerFields(message) {
  return { to: message.recipients ?? [], cc: message.ccList ?? [], bcc: message.bccList ?? [] };
}

/** listLimit: how many of the newest mails to look in (the open watch's list). */
export function createFollowUp({ helper, messenger, tabStore, listLimit, log = console }) {
  /** The Sent copy of a mail (for one sent individually, the copy that lists everyone), or null. */
  async function sentCopyOf(rows) {
    for (const row of rows) {
      if (row.message_id) {
        const [copy] = await findCopies(messenger, row.message_id);
        if (copy) {
          return copy;
        }
      }
    }
    return null;
  }

  /**
   * Opens the follow-up of the mail with this tag id or Message-ID: a reply to its Sent copy
   * (quoted, "Re: …", threaded) addressed by followUpPlan. Returns {opened, tabId?, plan?,
   * reason?}: reason "unknown" (no such tracked mail), "nobody" (everyone answered or bounced).
   */
  async function write({ tagId = "", messageId = "" }) {
    const rows = (await helper.list({ limit: listLimit })).tags ?? [];
    const wanted = String(messageId).replace(/^<|>$/g, "");
    const row = rows.find((each) => (tagId && each.id === tagId) || (wanted && each.message_id === wanted));
    if (!row) {
      return { opened: false, reason: "unknown" };
    }
    const members = mailRows(rows, row);
    const copy = await sentCopyOf(members);
    const plan = followUpPlan(members, copy ? headerFields(copy) : null);
    if (!hasAddressees(plan)) {
      return { opened: false, reason: "nobody", plan };
    }
    const addressed = { to: plan.to, cc: plan.cc, bcc: plan.bcc };
    let tab;
    if (copy) {
      // Replying to one's own sent mail: Thunderbird addresses it to the original's recipients;
      // the plan's fields replace them.
      tab = await messenger.compose.beginReply(copy.id, "replyToAll", addressed);
    } else {
      log.warn("mailtracker: no Sent copy of %s: the follow-up is a new mail", row.message_id);
      tab = await messenger.compose.beginNew({ ...addressed, subject: `Re: ${row.subject ?? ""}` });
    }
    if (row.group && tab?.id != null) {
      // Sent individually, followed up individually: the popup shows it and the user may untick it.
      await tabStore.update(tab.id, { individually: true });
    }
    return { opened: true, tabId: tab?.id, plan };
  }

  return { write };
}
