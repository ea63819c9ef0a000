// Follow-up reminders: "remind me in N days if not opened" (or "if no reply"), chosen per mail in the
// Track popup (default off, or the identity's default days and condition from the options), sent to the
// helper with the tag once the mail left (the helper keeps it in tags.csv, so `list`,
// the report and `mailtracker list` show it), and woken by browser.alarms.
//
// The per-tab choice lives in storage.session (like composeTabs.mjs), the identities' defaults are
// options (settings.mjs's remindDefaults and remindIfDefaults); areas and the helper are arguments
// so node tests pass doubles.

import { cleanDays, cleanRemindIf, loadSetting, localArea } from "./settings.mjs";

export const REMINDER_ALARM = "mailtracker-reminder";
export const DAY_MS = 24 * 60 * 60 * 1000;
export const DEFAULT_REMIND_DAYS = 3;

/**
 * What a mail's reminder waits for: "no_reply" when the user chose so, and also for an "if not
 * opened" reminder of a mail whose opens cannot show (`not_seen`: every recipient still to open it
 * does not load images or is behind a proxy, helper's visibility.py) — there "not opened" only
 * means "not seen", so it is due when no reply came; else "not_opened".
 */
export function reminderWaitsFor(row) {
  return row?.remind_if === "no_reply" || Boolean(row?.not_seen) ? "no_reply" : "not_opened";
}

/** Whether what a reminder waits for has come: a reply (or a bounce) always; an open or a click
 * unless it waits for a reply. */
export function reminderSettled(row) {
  if (Number(row?.replies ?? 0) > 0 || Boolean(row?.undelivered)) {
    return true;
  }
  if (reminderWaitsFor(row) === "no_reply") {
    return false;
  }
  return row?.opened === true || Number(row?.opens ?? 0) > 0 || Number(row?.clicks ?? 0) > 0;
}

function sessionArea(area) {
  return area ?? browser.storage.session;
}

const keyOf = (tabId) => `remind:${tabId}`;

/** The days for one mail: the tab's choice, else the identity's default, else off (0). */
export function remindDaysFor({ tabChoice, identityDefault }) {
  return cleanDays(tabChoice) ?? cleanDays(identityDefault) ?? 0;
}

/** What one mail's reminder waits for: the tab's choice, else the identity's default, else "not_opened". */
export function remindIfFor({ tabChoice, identityDefault }) {
  return cleanRemindIf(tabChoice ?? identityDefault);
}

/** When a reminder is due, as the helper takes it (UTC ISO 8601). */
export function remindAtFor(sentAt, days, dayMs = DAY_MS) {
  return new Date(sentAt + days * dayMs).toISOString();
}

/** The earliest reminder still to come among mails no one opened; null if none. */
export function nextReminder(rows, now) {
  let next = null;
  for (const row of rows ?? []) {
    const due = Date.parse(row?.remind_at ?? "");
    if (!reminderSettled(row) && row?.status !== "unsent" && Number.isFinite(due) && due > now && (next === null || due < next)) {
      next = due;
    }
  }
  return next;
}

/** How long a reminder "day" is: a day, unless a test set `reminderDayMs` in storage.local. */
export async function loadDayMs(area) {
  const { reminderDayMs } = await localArea(area).get("reminderDayMs");
  return Number.isFinite(reminderDayMs) && reminderDayMs > 0 ? reminderDayMs : DAY_MS;
}

/** The popup's choice for one compose tab: a number of days (0: off), or undefined (the default). */
export async function loadTabChoice(tabId, area) {
  const stored = await sessionArea(area).get(keyOf(tabId));
  return stored[keyOf(tabId)]?.choice;
}

export async function saveTabChoice(tabId, days, area, remindIf = undefined) {
  const current = (await sessionArea(area).get(keyOf(tabId)))[keyOf(tabId)] ?? {};
  const kind = remindIf === undefined ? current.remindIf : cleanRemindIf(remindIf);
  await sessionArea(area).set({ [keyOf(tabId)]: { ...current, choice: cleanDays(days) ?? 0, remindIf: kind } });
}

/** What the popup chose this compose tab's reminder to wait for, or undefined (the identity's default). */
export async function loadTabRemindIf(tabId, area) {
  const stored = await sessionArea(area).get(keyOf(tabId));
  return stored[keyOf(tabId)]?.remindIf;
}

/**
 * The send side. deps: {helper, runForTab, session?, local?, now?, log?}.
 * noteSend (onBeforeSend) fixes the days for this send from the tab's choice and the
 * identity's default; onSent (after the helper recorded the send) asks the helper to keep
 * the reminder; forgetTab (tab closed) drops the tab's state. All run in the tab's queue,
 * after the send flow's own steps for that tab.
 */
export function createReminders({ helper, runForTab, session, local, now = () => Date.now(), log = console }) {
  async function noteSend(tabId, identityId) {
    return runForTab(tabId, async () => {
      const stored = (await sessionArea(session).get(keyOf(tabId)))[keyOf(tabId)] ?? {};
      const [defaults, ifDefaults] = await Promise.all([
        loadSetting("remindDefaults", local),
        loadSetting("remindIfDefaults", local),
      ]);
      const days = remindDaysFor({ tabChoice: stored.choice, identityDefault: defaults[identityId] });
      const remindIf = remindIfFor({ tabChoice: stored.remindIf, identityDefault: ifDefaults[identityId] });
      await sessionArea(session).set({ [keyOf(tabId)]: { ...stored, days, remindIf } });
    });
  }

  // Called from inside the send flow's task for this tab: it must not queue behind it.
  async function onSent({ tabId, tagId }) {
    const stored = (await sessionArea(session).get(keyOf(tabId)))[keyOf(tabId)] ?? {};
    if (!stored.days) {
      return null;
    }
    const remindAt = remindAtFor(now(), stored.days, await loadDayMs(local));
    try {
      await helper.remind({ tagId, remindAt, remindIf: cleanRemindIf(stored.remindIf) });
      return remindAt;
    } catch (error) {
      log.warn("mailtracker: the reminder for tag %s was not kept: %s", tagId, error.message);
      return null;
    }
  }

  async function forgetTab(tabId) {
    return runForTab(tabId, () => sessionArea(session).remove(keyOf(tabId)));
  }

  /**
   * A copy of a mail sent individually (individual.mjs) is a compose tab of its own: it gets the
   * reminder chosen in the user's window (days and condition), else each copy would fall back to
   * the identity's default. Called before the copy is sent; nothing chosen leaves it the default.
   */
  async function carry(fromTabId, toTabId) {
    const chosen = (await sessionArea(session).get(keyOf(fromTabId)))[keyOf(fromTabId)] ?? {};
    if (chosen.choice === undefined && chosen.remindIf === undefined) {
      return;
    }
    await sessionArea(session).set({ [keyOf(toTabId)]: { choice: chosen.choice, remindIf: chosen.remindIf } });
  }

  return { noteSend, onSent, forgetTab, carry };
}
