// Finds replies and bounces to tracked mail in the user's own mailboxes: each message
// Thunderbird files (messages.onNewMailReceived with monitorAllFolders, so mail that the
// user's filters move out of the Inbox is seen too), and at start the messages received
// since the last look (mail that arrived while Thunderbird was closed). Each is judged by
// replies.mjs; what names a mail is reported to the helper, which keeps it in replies.csv
// for the fold when that mail is tracked. Only the fact, the sender's address, the time and
// the reason leave Thunderbird, never the text.
//
// What was reported and when the last look was are kept in storage.local, so a restart's
// catch-up asks the helper only about what is new. deps: {helper, messenger, local?, now?,
// log?, onRecorded?}; node tests pass doubles.

import { bytesToBinary } from "./mime.mjs";
import {
  VERDICTS,
  headersFromObject,
  isDeliveryReport,
  judge,
  parseDeliveryReport,
  referencedIds,
} from "./replies.mjs";
import { STAGING_FOLDER } from "./sentCopy.mjs";
import { identityEmails } from "./messageInfo.mjs";

export const STATE_KEY = "replyWatch";
// The first start looks this far back; later starts from the last look.
export const FIRST_LOOK_MS = 14 * 24 * 60 * 60 * 1000;
// A message's date is the sender's clock, and a server may file mail late: look back a
// little further than the last look.
export const LOOK_BACK_MARGIN_MS = 60 * 60 * 1000;
// How many reported Message-IDs are remembered (a catch-up skips them).
export const MAX_REMEMBERED = 2000;
// A catch-up looks at no more than this many messages (a first start on a huge account).
export const MAX_CATCH_UP = 5000;

const SKIPPED_FOLDERS = new Set(["sent", "drafts", "templates", "outbox", "trash", "junk"]);

/** True for a folder whose messages are never answers to the user: Sent, Drafts, staging… */
export function isSkippedFolder(folder) {
  if (!folder) {
    return false;
  }
  // A plain folder named Sent (Local Folders' own, made without the Sent flag) is a Sent folder too.
  if (folder.name === STAGING_FOLDER || SKIPPED_FOLDERS.has(folder.type) || /^sent$/i.test(folder.name ?? "")) {
    return true;
  }
  return (folder.specialUse ?? []).some((use) => SKIPPED_FOLDERS.has(use));
}

/** The requests to the helper for one verdict: one per bounced recipient, else one (pure). */
export function reportsOf(verdict, { replyId, time }) {
  const base = { messageIds: verdict.messageIds, replyId, from: verdict.from, time, verdict: verdict.verdict };
  if (verdict.verdict === VERDICTS.bounce) {
    return verdict.bounces.map((bounce) => ({ ...base, reason: bounce.reason, recipient: bounce.recipient }));
  }
  return [{ ...base, reason: verdict.reason }];
}

function isoOf(date, now) {
  const time = date instanceof Date ? date.getTime() : Date.parse(date ?? "");
  return new Date(Number.isFinite(time) ? time : now).toISOString();
}

export function createReplyWatch({ helper, messenger, local, now = () => Date.now(), log = console,
  onRecorded = () => {} }) {
  const area = local ?? messenger.storage.local;
  let ownEmails = null;

  async function load() {
    return (await area.get(STATE_KEY))[STATE_KEY] ?? { lastLook: 0, reported: [] };
  }

  async function remember(replyIds, lastLook) {
    const stored = await load();
    const reported = [...new Set([...(stored.reported ?? []), ...replyIds])].slice(-MAX_REMEMBERED);
    await area.set({ [STATE_KEY]: { lastLook: lastLook ?? stored.lastLook ?? 0, reported } });
  }

  async function ownAddresses() {
    ownEmails ??= identityEmails(await messenger.accounts.list(false));
    return ownEmails;
  }

  async function headersOf(message) {
    if (typeof messenger.messages.getHeaders === "function") {
      return headersFromObject(await messenger.messages.getHeaders(message.id));
    }
    const full = await messenger.messages.getFull(message.id);
    return headersFromObject(full?.headers);
  }

  async function rawOf(message) {
    const raw = await messenger.messages.getRaw(message.id, { data_format: "File" });
    return typeof raw === "string" ? raw : bytesToBinary(new Uint8Array(await raw.arrayBuffer()));
  }

  /**
   * Judge one message and report it when it names a mail: {verdict, tracked, recorded} or
   * null for a message that answers nothing (no helper call, nothing kept).
   */
  async function examine(message) {
    if (isSkippedFolder(message.folder)) {
      return null;
    }
    const headers = await headersOf(message);
    const report = isDeliveryReport(headers);
    if (!report && referencedIds(headers).length === 0) {
      return null;
    }
    const verdict = judge({
      headers,
      ownEmails: await ownAddresses(),
      report: report ? parseDeliveryReport(await rawOf(message)) : null,
    });
    if (verdict.verdict === VERDICTS.unrelated) {
      return null;
    }
    const replyId = message.headerMessageId || (headers.get("message-id")?.[0] ?? "").replace(/[<>\s]/g, "");
    if (!replyId) {
      return null;
    }
    let tracked = false;
    let recorded = false;
    for (const request of reportsOf(verdict, { replyId, time: isoOf(message.date, now()) })) {
      const answer = await helper.reply(request);
      tracked ||= Boolean(answer?.tracked);
      recorded ||= Boolean(answer?.recorded);
    }
    return { verdict: verdict.verdict, reason: verdict.reason, replyId, tracked, recorded };
  }

  /** Examine each message of a list (a MessageList, paged), reporting what names tracked mail. */
  async function examineList(list, { skip = new Set(), limit = Infinity } = {}) {
    const outcomes = [];
    let page = list;
    let seen = 0;
    while (page && seen < limit) {
      for (const message of page.messages ?? []) {
        if (seen >= limit) {
          break;
        }
        seen += 1;
        if (skip.has(message.headerMessageId)) {
          continue;
        }
        try {
          const outcome = await examine(message);
          if (outcome) {
            outcomes.push(outcome);
          }
        } catch (error) {
          log.warn("mailtracker: a received message could not be judged: %s", error.message);
        }
      }
      page = page.id ? await messenger.messages.continueList(page.id) : null;
    }
    const counted = outcomes.filter((outcome) => outcome.recorded &&
      (outcome.verdict === VERDICTS.reply || outcome.verdict === VERDICTS.bounce));
    if (outcomes.length > 0) {
      await remember(outcomes.map((outcome) => outcome.replyId));
    }
    if (counted.length > 0) {
      onRecorded(counted);
    }
    return outcomes;
  }

  /**
   * messages.onNewMailReceived: the messages just filed in a folder. A folder that never
   * holds answers (Sent, mailtracker-staging…) is left at once, its list untouched: the
   * Sent copy's replacement (sentCopy.mjs) is at work on those very messages.
   */
  async function onNewMail(folder, messages) {
    if (isSkippedFolder(folder)) {
      return [];
    }
    return examineList(messages);
  }

  /** At start: what arrived since the last look (first start: the last FIRST_LOOK_MS). */
  async function catchUp() {
    const started = now();
    const stored = await load();
    const fromTime = stored.lastLook ? stored.lastLook - LOOK_BACK_MARGIN_MS : started - FIRST_LOOK_MS;
    const list = await messenger.messages.query({ fromDate: new Date(fromTime) });
    const outcomes = await examineList(list, { skip: new Set(stored.reported ?? []), limit: MAX_CATCH_UP });
    await remember([], started);
    return outcomes;
  }

  return { examine, onNewMail, catchUp };
}
