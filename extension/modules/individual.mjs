// "Send individually": one copy per recipient, each addressed to them alone and
// carrying its own pixel, so the Opens popup can say who opened it.
//
// Thunderbird gives an add-on no control over the SMTP envelope, so the only
// route is one compose.beginNew + compose.sendMessage per recipient; the
// original send is cancelled in onBeforeSend. Each copy goes through the normal
// send flow (its own tag, minted with the group's id). The first copy that
// leaves keeps a Sent copy, which sentCopy.mjs cleans and readdresses to every
// recipient; the others file none. Which recipients got their copy is kept per
// group in storage.local, so a retry after a failure sends only to the rest.
//
// The rules are pure functions; createIndividualSend takes every Thunderbird
// API in deps so node tests drive it with fakes.

import { DEFAULT_MAX_INDIVIDUAL, localArea, maxIndividual } from "./settings.mjs";
import { emailOf, pixelCapability } from "./tracking.mjs";

const FIELDS = ["to", "cc", "bcc"];
// Groups remembered for a retry: enough for this week's mail.
const MAX_GROUPS = 200;

function asList(value) {
  if (value == null || value === "") {
    return [];
  }
  return Array.isArray(value) ? value : [value];
}

/** A recipient entry as Thunderbird shows it, or a ComposeRecipient {id, type}. */
function entryText(entry) {
  return typeof entry === "string" ? entry.trim() : `${entry?.type}:${entry?.id}`;
}

/**
 * Every To/Cc/Bcc entry as one recipient: {field, entry, key, isList}. A mailing
 * list (an address-book list, or an address that is itself a list) is one
 * entry, so one recipient: its members share one copy. The same address twice
 * is one recipient (the first field wins).
 */
export function recipientsToSplit(details) {
  const seen = new Set();
  const out = [];
  for (const field of FIELDS) {
    for (const entry of asList(details?.[field])) {
      const text = entryText(entry);
      if (!text) {
        continue;
      }
      const isList =
        typeof entry === "string" ? !emailOf(text).includes("@") : entry?.type === "mailingList";
      const key = isList ? text.toLowerCase() : emailOf(text);
      if (seen.has(key)) {
        continue;
      }
      seen.add(key);
      out.push({ field, entry, key, isList });
    }
  }
  return out;
}

/**
 * Whether the popup offers "Send individually": {offered, reason, count, lists}.
 * reason: "single" (fewer than 2 recipients), "tooMany" (above max), "untrackable"
 * (no pixel can go in: plain text, a redirect), or null when offered.
 */
export function individualOffer(details, { max = DEFAULT_MAX_INDIVIDUAL } = {}) {
  const recipients = recipientsToSplit(details);
  const count = recipients.length;
  const lists = recipients.filter((r) => r.isList).length;
  let reason = null;
  if (!pixelCapability(details).ok) {
    reason = "untrackable";
  } else if (count < 2) {
    reason = "single";
  } else if (count > maxIndividual(max)) {
    reason = "tooMany";
  }
  return { offered: reason === null, reason, count, lists, max: maxIndividual(max) };
}

/** Whether this send goes out individually: only when the user chose it and it is still offered. */
export function sendsIndividually({ chosen, wanted, details, max }) {
  return chosen === true && wanted === true && individualOffer(details, { max }).offered;
}

/** The recipients still to send to: those whose key is not in sent (the retry set). */
export function remainingRecipients(recipients, sent) {
  const done = new Set(Object.keys(sent ?? {}));
  return recipients.filter((r) => !done.has(r.key));
}

/**
 * The compose details of one recipient's copy: the original's content, addressed
 * to that recipient alone (in To, whatever field they were in: a Bcc recipient
 * sees their own address). noCopy: file no Sent copy of it.
 */
export function copyDetails(details, recipient, { attachments = [], noCopy = false } = {}) {
  const copy = {
    identityId: details.identityId,
    from: details.from,
    subject: details.subject ?? "",
    to: [recipient.entry],
    cc: [],
    bcc: [],
    replyTo: details.replyTo,
    followupTo: details.followupTo,
    priority: details.priority,
    returnReceipt: details.returnReceipt,
    deliveryStatusNotification: details.deliveryStatusNotification,
    deliveryFormat: details.deliveryFormat,
    attachVCard: details.attachVCard,
    customHeaders: details.customHeaders,
    isPlainText: false,
    body: details.body,
    attachments,
  };
  if (noCopy) {
    copy.overrideDefaultFccFolderId = "";
  }
  for (const [name, value] of Object.entries(copy)) {
    if (value === undefined || value === null) {
      delete copy[name];
    }
  }
  return copy;
}

/** The address lines of the one Sent copy: every recipient, where the user put them. */
export function sentCopyHeaders(details) {
  const headers = {};
  for (const field of FIELDS) {
    const entries = asList(details?.[field]).map(entryText).filter(Boolean);
    if (entries.length) {
      headers[field] = entries;
    }
  }
  return headers;
}

/** The group's record: {subject, recipients: [key], sent: {key: messageId}, keeper?}. */
export async function loadGroup(groupId, area) {
  const { individualGroups } = await localArea(area).get("individualGroups");
  return individualGroups?.[groupId] ?? null;
}

async function saveGroup(groupId, record, area) {
  const { individualGroups = {}, individualOrder = [] } = await localArea(area).get([
    "individualGroups",
    "individualOrder",
  ]);
  const order = [groupId, ...individualOrder.filter((id) => id !== groupId)].slice(0, MAX_GROUPS);
  const kept = Object.fromEntries(order.filter((id) => id in individualGroups).map((id) => [id, individualGroups[id]]));
  kept[groupId] = record;
  await localArea(area).set({ individualGroups: kept, individualOrder: order });
}

/**
 * deps: {compose (beginNew, sendMessage, listAttachments, getAttachmentFile),
 *        closeTab(tabId), tabStore, loadMax(), isWanted(tab, details), notify
 *        ({failed, sent, subject}), newId(), sentCopyDone?(messageId), carryChoices?(fromTabId,
 *        toTabId), localArea?, log?}
 *   sentCopyDone resolves once the first copy's Sent copy is finished (sentCopy.mjs);
 *   carryChoices gives a copy's tab what was chosen for the mail in the user's window that is
 *   kept per tab outside tabStore (its reminder: reminders.mjs).
 */
export function createIndividualSend(deps) {
  const { compose, closeTab, tabStore, notify } = deps;
  const log = deps.log ?? console;
  const running = new Set();

  async function attachmentsOf(tabId) {
    const listed = (await compose.listAttachments(tabId)) ?? [];
    const files = [];
    for (const attachment of listed) {
      files.push({ file: await compose.getAttachmentFile(attachment.id), name: attachment.name });
    }
    return files;
  }

  async function sendOne(details, recipient, { attachments, keep, groupId, headers, from }) {
    const tab = await compose.beginNew(copyDetails(details, recipient, { attachments, noCopy: !keep }));
    // Before sendMessage: the copy's onBeforeSend reads these (sendFlow: tracked,
    // its tag in the group; sentCopy: the one Sent copy lists everyone; reminders: the
    // reminder chosen for the mail).
    await tabStore.update(tab.id, { choice: true, group: groupId, ...(keep ? { sentHeaders: headers } : {}) });
    await deps.carryChoices?.(from, tab.id);
    let failure;
    try {
      const result = await compose.sendMessage(tab.id, { mode: "sendNow" });
      // Thunderbird 153 resolves a failed send too (once the user closed its "Send
      // Message Error" dialog), without a Message-ID: only mail that left has one.
      const messageId = result?.headerMessageId ?? result?.messages?.[0]?.headerMessageId;
      if (messageId) {
        return { ok: true, messageId };
      }
      failure = "Thunderbird reported no Message-ID: the mail did not leave";
    } catch (error) {
      failure = String(error?.message ?? error);
    }
    log.warn(`mailtracker: the copy to ${recipient.key} was not sent: ${failure}`);
    // The failed copy's window stays open after a failed send; the original holds the email.
    await closeTab(tab.id).catch(() => {});
    return { ok: false, error: failure };
  }

  /** Sends the remaining copies one after another; returns {sent, failed} (recipient keys). */
  async function run(tab, details, groupId) {
    const recipients = recipientsToSplit(details);
    const record = (await loadGroup(groupId, deps.localArea)) ?? {
      subject: details.subject ?? "",
      recipients: [],
      sent: {},
    };
    record.recipients = [...new Set([...record.recipients, ...recipients.map((r) => r.key)])];
    const todo = remainingRecipients(recipients, record.sent);
    const attachments = await attachmentsOf(tab.id);
    const headers = sentCopyHeaders(details);
    const failed = [];
    for (const recipient of todo) {
      const keep = !record.keeper;
      const outcome = await sendOne(details, recipient, { attachments, keep, groupId, headers, from: tab.id });
      if (outcome.ok) {
        record.sent[recipient.key] = outcome.messageId;
        if (keep) {
          record.keeper = outcome.messageId;
          // The next copy's send (and a failure's modal error dialog) must not overlap the
          // replacement of the Sent copy: seen in Thunderbird 153, it then never finished.
          await deps.sentCopyDone?.(outcome.messageId);
        }
      } else {
        failed.push(recipient.key);
      }
      await saveGroup(groupId, record, deps.localArea);
    }
    const sent = todo.map((r) => r.key).filter((key) => !failed.includes(key));
    if (failed.length) {
      // The original stays open with every recipient: pressing Send again sends only to these.
      notify({ failed, sent, subject: details.subject ?? "" });
    } else {
      await tabStore.remove(tab.id);
      await closeTab(tab.id).catch((error) => log.warn("mailtracker: could not close the compose window: %s", error));
    }
    return { sent, failed };
  }

  /**
   * onBeforeSend of the user's own compose window: {cancel: true} when this mail
   * goes out individually (the copies are sent after it), else null.
   */
  async function beforeSend(tab, details) {
    const state = await tabStore.get(tab.id);
    if (state.group && !state.individually) {
      return null; // one of our copies: the normal flow sends it
    }
    const wanted = await deps.isWanted(tab, details, state);
    if (!sendsIndividually({ chosen: state.individually, wanted, details, max: await deps.loadMax() })) {
      return null;
    }
    if (running.has(tab.id)) {
      return { cancel: true };
    }
    const groupId = state.individualGroup ?? deps.newId();
    await tabStore.update(tab.id, { individualGroup: groupId });
    running.add(tab.id);
    // Not awaited: onBeforeSend must answer before the copies' sends can start.
    lastRun = run(tab, details, groupId)
      .catch((error) => {
        log.error("mailtracker: sending individually failed: %s", error?.message ?? error);
        notify({ failed: recipientsToSplit(details).map((r) => r.key), sent: [], subject: details.subject ?? "" });
      })
      .finally(() => running.delete(tab.id));
    return { cancel: true };
  }

  let lastRun = Promise.resolve();
  return { beforeSend, run, settled: () => lastRun };
}
