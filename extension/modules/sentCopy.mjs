// Keeps the Sent copy of a tracked mail free of our pixel (and its links the originals).
//
// Thunderbird cannot give the Fcc copy its own body, and a stored message
// cannot be edited. So onBeforeSend files the copy into a staging folder under
// Local Folders (it never reaches an IMAP server with the pixel), and after the
// send the staged copy is read, cleaned (mime.mjs) and imported into the real
// Sent folder; only once the clean copy is found there is the staged one
// deleted. Any failure leaves the original copy where the user finds it (moved
// to Sent as it is, or, if even that fails, in the staging folder) and says so.
// A staged copy left by a crash is finished at the next start. An import the
// crash interrupted may still have reached the server, and an IMAP folder may
// show it only later: such a Sent folder is watched for a while, and a second
// clean copy that surfaces is deleted (settleDuplicates).
//
// Where the copy belongs is the identity's Fcc folder, which no WebExtension
// API names. An account's own folder with the Sent special use is taken for it.
// An IMAP or POP3 account without one (new, never sent) is not staged:
// Thunderbird files that copy itself, creating the folder with the Sent flag
// where the identity's Fcc says (in the account's own folders, or in Local
// Folders for a POP3 account deferred to them: the API tells neither apart),
// and the copy is replaced where it landed. That folder is remembered per
// identity, so the next copies are staged for it.
//
// Every Thunderbird API arrives in deps.messenger so node tests drive it with fakes.

import { clickTarget } from "./links.mjs";
import { removeTracking, replaceAddressHeaders, stripLocalStatusHeaders } from "./mime.mjs";
import { countPixels, isPixelUrl } from "./pixel.mjs";
import { loadSetting, localArea, pushBounded, saveIdentitySetting, saveSetting } from "./settings.mjs";

export const STAGING_FOLDER = "mailtracker-staging";
const MAX_STATUSES = 500;
const VERIFY_ATTEMPTS = 40;
const VERIFY_INTERVAL_MS = 100;
// After a crash mid-import, how long a late copy of that import is watched for in Sent.
const INTERRUPTED_WATCH_MS = 15 * 60 * 1000;

/** Outcomes recorded per Message-ID; every state but "clean" means the copy in Sent still has the pixel. */
export const STATES = Object.freeze({
  clean: "clean", // the Sent copy is the clean one
  protected: "protected", // signed or encrypted: kept as it is
  kept: "kept", // cleaning failed: the original copy was put in Sent as it is
  staged: "staged", // cleaning and moving failed: the original copy is in the staging folder
  off: "off", // the user turned the clean copy off
});

/** What the message popup shows for one Message-ID: {state, reason, at} or null. */
export async function loadSentCopyStatus(messageId, area) {
  const { sentCopyStatus } = await localArea(area).get("sentCopyStatus");
  return sentCopyStatus?.[messageId] ?? null;
}

// Mail services whose SMTP server files its own copy of what it sends, pixel included.
const OWN_COPY_DOMAINS = ["gmail.com", "googlemail.com"];

/** Whether mail from this address goes through a server that keeps its own Sent copy (README: "The Sent copy"). */
export function filesOwnSentCopy(email) {
  const domain =
    String(email ?? "")
      .toLowerCase()
      .split("@")[1] ?? "";
  return OWN_COPY_DOMAINS.includes(domain);
}

function isSignedOrEncrypted(details) {
  // {name: "OpenPGP" | "S/MIME", signMessage, encryptBody, …}, as Thunderbird 153 reports it.
  const technology = details?.selectedEncryptionTechnology;
  return Boolean(technology?.signMessage || technology?.encryptBody);
}

/** The identity's address in a From header value ("Name <a@b>" or "a@b"), lower-cased. */
function addressOf(author) {
  const angle = /<([^<>]+)>\s*$/.exec(author ?? "");
  return (angle ? angle[1] : (author ?? "")).trim().toLowerCase();
}

async function fileOf(messenger, messageId) {
  const raw = await messenger.messages.getRaw(messageId, { data_format: "File" });
  return new Uint8Array(await raw.arrayBuffer());
}

/**
 * deps: {messenger, localArea, sessionArea, notify(outcome), loadPixelBases(), DOMParser,
 *        log?, wait?(ms), sentHeadersFor?(tabId)}
 *   sentHeadersFor: the To/Cc/Bcc the clean copy gets instead of its own (the one
 *   Sent copy of a mail sent individually lists every recipient), or undefined.
 */
export function createSentCopy(deps) {
  const { messenger, notify, loadPixelBases, DOMParser } = deps;
  const local = localArea(deps.localArea);
  const session = deps.sessionArea ?? browser.storage.session;
  const log = deps.log ?? console;
  const wait = deps.wait ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
  // Message-IDs being finished right now: onAfterSend and the start-up scan never both take one.
  const busy = new Set();
  // Why a copy was kept as it is, for its status.
  const lastReason = new Map();

  async function localFoldersAccount() {
    const accounts = await messenger.accounts.list(false);
    // Manifest V3 calls the Local Folders account "local" (V2: "none").
    return accounts.find((account) => account.type === "local" || account.type === "none") ?? null;
  }

  async function stagingFolder({ create }) {
    const account = await localFoldersAccount();
    if (!account) {
      return null;
    }
    const [found] = await messenger.folders.query({ accountId: account.id, name: STAGING_FOLDER, isRoot: false });
    if (found || !create) {
      return found ?? null;
    }
    return messenger.folders.create(account.rootFolder.id, STAGING_FOLDER);
  }

  /** The folder Thunderbird filed this identity's copy into when it last chose (an unstaged send), if it still exists. */
  async function filedBefore(identityId) {
    const folderId = (await loadSetting("sentCopyFiled", local))[identityId];
    if (!folderId) {
      return null;
    }
    try {
      return (await messenger.folders.get(folderId)) ? folderId : null;
    } catch {
      return null;
    }
  }

  /**
   * The identity's Sent folder (its Fcc, as Thunderbird would pick it): the
   * folder with the Sent special use in its own account, else the one
   * Thunderbird filed this identity's copy into before. null for an IMAP or
   * POP3 account that has neither (a new account, one that never sent): the
   * copy is then filed by Thunderbird, which creates the Fcc folder where the
   * identity says (that account's own folders, or Local Folders for a POP3
   * account deferred to them), and replaced where it lands. Without an
   * account, Local Folders' Sent.
   */
  async function defaultSentFolder(identityId) {
    const identity = identityId ? await messenger.identities.get(identityId) : null;
    const account = identity?.accountId ? await messenger.accounts.get(identity.accountId, false) : null;
    if (account) {
      const [own] = await messenger.folders.query({ accountId: account.id, specialUse: ["sent"] });
      if (own) {
        return own.id;
      }
      const filed = await filedBefore(identityId);
      if (filed) {
        return filed;
      }
      if (account.type === "imap" || account.type === "pop3") {
        return null;
      }
    }
    const localAccount = await localFoldersAccount();
    if (!localAccount) {
      return null;
    }
    const [sent] = [
      ...(await messenger.folders.query({ accountId: localAccount.id, specialUse: ["sent"] })),
      ...(await messenger.folders.query({ accountId: localAccount.id, name: "Sent", isRoot: false })),
    ];
    return sent?.id ?? (await messenger.folders.create(localAccount.rootFolder.id, "Sent")).id;
  }

  async function identityIdForAuthor(author) {
    const email = addressOf(author);
    const accounts = await messenger.accounts.list(false);
    for (const account of accounts) {
      const identity = (account.identities ?? []).find((i) => i.email?.toLowerCase() === email);
      if (identity) {
        return identity.id;
      }
    }
    return null;
  }

  const tabKey = (tabId) => `sentCopyTab:${tabId}`;

  /** Deletes without going through Trash: {deletePermanently} on newer Thunderbird, the boolean on 128. */
  async function deleteForGood(ids) {
    try {
      await messenger.messages.delete(ids, { deletePermanently: true });
    } catch (error) {
      if (!/argument|type/i.test(String(error?.message))) {
        throw error;
      }
      await messenger.messages.delete(ids, true);
    }
  }

  async function recordStatus(messageId, state, reason = "", extra = {}) {
    if (!messageId) {
      return;
    }
    const { sentCopyStatus = {}, sentCopyOrder } = await local.get(["sentCopyStatus", "sentCopyOrder"]);
    const order = pushBounded(sentCopyOrder, messageId, MAX_STATUSES);
    const kept = Object.fromEntries(
      order.filter((id) => id in sentCopyStatus || id === messageId).map((id) => [id, sentCopyStatus[id]]),
    );
    kept[messageId] = { state, reason, at: new Date().toISOString(), ...extra };
    await local.set({ sentCopyStatus: kept, sentCopyOrder: order });
  }

  async function journal() {
    const { sentCopyJournal = {} } = await local.get("sentCopyJournal");
    return sentCopyJournal;
  }

  async function setJournal(messageId, entry) {
    const entries = await journal();
    if (entry) {
      entries[messageId] = entry;
    } else {
      delete entries[messageId];
    }
    await local.set({ sentCopyJournal: entries });
  }

  /**
   * Called with onBeforeSend's result for a tracked or untracked mail: adds the
   * staging folder as this copy's Fcc when the mail carries our pixel, and
   * undoes that when a later attempt from the same tab does not.
   */
  async function amendBeforeSend(tab, details, result) {
    const started = Date.now();
    const previous = (await session.get(tabKey(tab.id)))[tabKey(tab.id)];
    const staging = await stagingFolder({ create: false });
    const stagedBefore = staging && details?.overrideDefaultFccFolderId === staging.id;
    const restore = (out) => {
      if (stagedBefore) {
        // An earlier attempt staged this tab's copy: give the user's own choice back.
        const fcc = previous?.userOverride ?? null;
        return { ...(out ?? {}), details: { ...(out?.details ?? {}), overrideDefaultFccFolderId: fcc } };
      }
      return out;
    };
    if (!result?.details?.body || result.cancel) {
      return restore(result);
    }
    const bases = await loadPixelBases();
    if (countPixels(result.details.body, bases, DOMParser) === 0) {
      return restore(result);
    }
    if (!(await loadSetting("cleanSentCopy", local)) || isSignedOrEncrypted(details)) {
      await session.set({
        [tabKey(tab.id)]: { target: null, reason: isSignedOrEncrypted(details) ? "protected" : "off" },
      });
      return restore(result);
    }
    const userOverride = stagedBefore
      ? (previous?.userOverride ?? null)
      : (details?.overrideDefaultFccFolderId ?? null);
    if (userOverride === "") {
      // The user chose "no copy" for this mail: there is nothing to clean.
      return restore(result);
    }
    const target = userOverride || (await defaultSentFolder(details?.identityId));
    const headers = await deps.sentHeadersFor?.(tab.id);
    if (!target) {
      // Thunderbird files this copy in the identity's Fcc folder; it is replaced there (finishSent).
      await session.set({
        [tabKey(tab.id)]: {
          target: null,
          userOverride,
          reason: "unstaged",
          identityId: details?.identityId ?? null,
          stagingMs: Date.now() - started,
          headers,
        },
      });
      return restore(result);
    }
    const folder = staging ?? (await stagingFolder({ create: true }));
    // stagingMs: what this adds to onBeforeSend, for the README's figures.
    await session.set({
      [tabKey(tab.id)]: { target, userOverride, reason: "staged", stagingMs: Date.now() - started, headers },
    });
    return { ...result, details: { ...result.details, overrideDefaultFccFolderId: folder.id } };
  }

  async function findIn(folderId, headerMessageId) {
    const found = await messenger.messages.query({ folderId, headerMessageId });
    return found?.messages ?? [];
  }

  async function waitIn(folderId, headerMessageId) {
    for (let i = 0; i < VERIFY_ATTEMPTS; i += 1) {
      const found = await findIn(folderId, headerMessageId);
      if (found.length) {
        return found;
      }
      await wait(VERIFY_INTERVAL_MS);
    }
    return [];
  }

  /** Puts the original copy in Sent as it is; returns the state reached. */
  async function keepOriginal(staged, target, why) {
    lastReason.set(staged.headerMessageId, why);
    try {
      if (target) {
        await messenger.messages.move([staged.id], target);
        await notify({ state: STATES.kept, reason: why, subject: staged.subject });
        return STATES.kept;
      }
    } catch (error) {
      log.error("mailtracker: could not move the Sent copy %s to Sent: %s", staged.headerMessageId, error?.message);
    }
    await notify({ state: STATES.staged, reason: why, subject: staged.subject, folder: STAGING_FOLDER });
    return STATES.staged;
  }

  // Our pixel and our click URLs, under every pixel base we know.
  const trackingOf = (bases) => ({
    isPixel: (src) => isPixelUrl(src, bases),
    clickTarget: (href) => clickTarget(href, bases),
  });

  const carriesPixel = async (id, bases) => {
    const found = removeTracking(await fileOf(messenger, id), trackingOf(bases));
    return found.removed + found.restored > 0;
  };

  /**
   * The copies with this Message-ID already in Sent, sorted: {clean, pixel}.
   * A clean one is ours (imported before a crash); one with the pixel is the
   * server's own copy (Gmail files one) or Thunderbird's.
   */
  async function copiesIn(target, messageId, bases, knownClean = []) {
    const clean = [];
    const pixel = [];
    for (const copy of await findIn(target, messageId)) {
      // Reading a copy back may mean a round trip to the server: only for copies we did not just write.
      const isClean = knownClean.includes(copy.id) || !(await carriesPixel(copy.id, bases));
      (isClean ? clean : pixel).push(copy.id);
    }
    // Ours first: it is the one kept.
    clean.sort((a, b) => knownClean.includes(b) - knownClean.includes(a));
    return { clean, pixel };
  }

  /** Leaves exactly one clean copy of {clean, pixel} in Sent. */
  async function keepOneClean({ clean, pixel }) {
    const extra = [...clean.slice(1), ...pixel];
    if (extra.length) {
      await deleteForGood(extra);
    }
  }

  /**
   * serverCopies: copies with the pixel already in Sent (a server's own), replaced like ours;
   * headers: the address headers the clean copy is to list (a mail sent individually).
   */
  async function importClean(staged, target, bases, serverCopies, headers) {
    const messageId = staged.headerMessageId;
    const cleaned = removeTracking(await fileOf(messenger, staged.id), trackingOf(bases));
    if (headers && !cleaned.protectedBy) {
      cleaned.bytes = replaceAddressHeaders(cleaned.bytes, headers);
    }
    if (cleaned.protectedBy) {
      await messenger.messages.move([staged.id], target);
      return { state: STATES.protected, reason: `${cleaned.protectedBy}: changing it would break it` };
    }
    // The original is still safe in staging while Sent is briefly without a copy.
    if (serverCopies.length) {
      await deleteForGood(serverCopies);
    }
    await recordStatus(messageId, "importing", "");
    // The staged copy sits in a local mbox, which put its flags first; the
    // target folder keeps its own (and an IMAP server must not get ours).
    const file = new File([stripLocalStatusHeaders(cleaned.bytes)], "message.eml", { type: "message/rfc822" });
    let imported;
    try {
      imported = await messenger.messages.import(file, target, { read: true });
    } catch (error) {
      return { state: await keepOriginal(staged, target, `the clean copy was refused: ${error?.message ?? error}`) };
    }
    if (!(await waitIn(target, messageId)).length) {
      return { state: await keepOriginal(staged, target, "the clean copy did not appear in Sent") };
    }
    // Another copy may have surfaced meanwhile (one an interrupted run appended, a server's own).
    await keepOneClean(await copiesIn(target, messageId, bases, imported?.id != null ? [imported.id] : []));
    await recordStatus(messageId, STATES.clean, "");
    await deleteForGood([staged.id]);
    return { state: STATES.clean };
  }

  async function stillStaged(staged) {
    try {
      return Boolean(await messenger.messages.get(staged.id));
    } catch {
      return false;
    }
  }

  async function watched() {
    return loadSetting("sentCopyWatch", local);
  }

  /** Watches target for a late second copy of messageId (an import a crash interrupted). */
  async function watchForLateCopy(messageId, target) {
    const entries = await watched();
    entries[messageId] = { target, until: Date.now() + INTERRUPTED_WATCH_MS };
    await saveSetting("sentCopyWatch", entries, local);
  }

  /**
   * folders.onFolderInfoChanged (and start): in a watched Sent folder, a clean
   * copy that surfaced late beside ours is deleted, so exactly one stays.
   * Without a folder, every watched one is looked at. Returns how many went.
   */
  async function settleDuplicates(folder = null) {
    const entries = await watched();
    if (!Object.keys(entries).length) {
      return 0;
    }
    const now = Date.now();
    let removed = 0;
    let bases = null;
    let expired = false;
    for (const [messageId, { target, until }] of Object.entries(entries)) {
      if (until <= now) {
        delete entries[messageId];
        expired = true;
        continue;
      }
      if (folder && folder.id !== target) {
        continue;
      }
      bases ??= await loadPixelBases();
      const copies = await copiesIn(target, messageId, bases);
      if (copies.clean.length) {
        removed += copies.clean.length - 1 + copies.pixel.length;
        await guarded(messageId, () => keepOneClean(copies));
      }
    }
    if (expired) {
      await saveSetting("sentCopyWatch", entries, local);
    }
    return removed;
  }

  /** Replaces one staged copy by a clean one in target; records and returns the state reached. */
  async function finishOne(staged, target, extra = {}, headers = undefined) {
    const messageId = staged.headerMessageId;
    const started = Date.now();
    if (!(await stillStaged(staged))) {
      // Finished meanwhile by the other path (start-up or folder-change scan).
      return (await loadSentCopyStatus(messageId, local))?.state ?? null;
    }
    // A crash came while the clean copy was being written: it may be in Sent already, or arrive later.
    const interrupted = (await loadSentCopyStatus(messageId, local))?.state === "importing";
    let outcome;
    try {
      const bases = await loadPixelBases();
      if (!target) {
        outcome = { state: await keepOriginal(staged, null, "no Sent folder was found for this identity") };
      } else {
        let existing = await copiesIn(target, messageId, bases);
        if (!existing.clean.length && interrupted && (await waitIn(target, messageId)).length) {
          existing = await copiesIn(target, messageId, bases);
        }
        if (interrupted) {
          await watchForLateCopy(messageId, target);
        }
        if (existing.clean.length) {
          // Imported before a crash: the staged copy is no longer needed.
          await keepOneClean(existing);
          await deleteForGood([staged.id]);
          outcome = { state: STATES.clean };
        } else {
          outcome = await importClean(staged, target, bases, existing.pixel, headers);
        }
      }
    } catch (error) {
      const reason = String(error?.message ?? error);
      log.error("mailtracker: finishing the Sent copy %s failed: %s", messageId, reason);
      outcome = { state: await keepOriginal(staged, target, reason), reason };
    }
    const { state } = outcome;
    const reason = outcome.reason ?? lastReason.get(messageId) ?? "";
    lastReason.delete(messageId);
    // ms: how long the replacement took, for the figures in the README; unstaged: filed by Thunderbird first.
    await recordStatus(messageId, state, reason, { ms: Date.now() - started, ...extra });
    if (state !== STATES.staged) {
      await setJournal(messageId, null);
    }
    return state;
  }

  async function guarded(messageId, run) {
    if (busy.has(messageId)) {
      return null;
    }
    busy.add(messageId);
    try {
      return await run();
    } finally {
      busy.delete(messageId);
    }
  }

  /** onAfterSend: finish this tab's staged copy (or a copy filed where we could not stage). */
  async function afterSend(tab, sendInfo) {
    const key = tabKey(tab.id);
    const plan = (await session.get(key))[key];
    if (!plan || sendInfo?.error) {
      // A failed send keeps the plan: the retry's onBeforeSend still needs the user's own Fcc choice.
      return [];
    }
    try {
      return await finishSent(plan, sendInfo);
    } finally {
      // Only now: while the plan is there, the staging folder's change events leave this copy to us.
      await session.remove(key);
    }
  }

  async function finishSent(plan, sendInfo) {
    const headerMessageId = sendInfo?.headerMessageId ?? sendInfo?.messages?.[0]?.headerMessageId;
    if (!headerMessageId) {
      return [];
    }
    if (plan.reason === "off" || plan.reason === "protected") {
      await recordStatus(headerMessageId, plan.reason === "off" ? STATES.off : STATES.protected, "");
      return [];
    }
    const staging = await stagingFolder({ create: false });
    const results = [];
    let remembered = false;
    for (const copy of sendInfo.messages ?? []) {
      if (staging && copy.folder?.id === staging.id) {
        await setJournal(copy.headerMessageId, { target: plan.target, headers: plan.headers });
        results.push(
          await guarded(copy.headerMessageId, () =>
            finishOne(copy, plan.target, { stagingMs: plan.stagingMs }, plan.headers),
          ),
        );
      } else if (plan.reason === "unstaged" && copy.folder?.id && !copy.folder.specialUse?.includes("outbox")) {
        // Filed by Thunderbird in the identity's Fcc folder, which we could not
        // name beforehand (a Send Later copy in the Outbox is no such copy):
        // remember it, bring the copy to staging, then replace it where it was.
        const target = copy.folder.id;
        if (plan.identityId && !remembered) {
          // The first copy is the Fcc's (a second one, the additional Fcc's, is not the identity's).
          await saveIdentitySetting("sentCopyFiled", plan.identityId, target, local);
          remembered = true;
        }
        const folder = await stagingFolder({ create: true });
        await setJournal(copy.headerMessageId, { target, headers: plan.headers });
        await messenger.messages.move([copy.id], folder.id);
        const [moved] = await waitIn(folder.id, copy.headerMessageId);
        results.push(
          moved
            ? await guarded(copy.headerMessageId, () =>
                finishOne(moved, target, { stagingMs: plan.stagingMs, unstaged: true }, plan.headers),
              )
            : STATES.kept,
        );
      }
    }
    return results;
  }

  /**
   * At start: every copy still in the staging folder is finished (crash,
   * restart, send later). retryFailed false leaves the copies that already
   * failed this way (status "staged") for the next start: one notice each.
   */
  async function finishStaged({ retryFailed = true } = {}) {
    const staging = await stagingFolder({ create: false });
    if (!staging) {
      return [];
    }
    const entries = await journal();
    const results = [];
    let page = await messenger.messages.list(staging.id);
    for (;;) {
      for (const staged of page.messages ?? []) {
        if (!retryFailed && (await loadSentCopyStatus(staged.headerMessageId, local))?.state === STATES.staged) {
          continue;
        }
        const target =
          entries[staged.headerMessageId]?.target ??
          (await defaultSentFolder(await identityIdForAuthor(staged.author)));
        const headers = entries[staged.headerMessageId]?.headers;
        results.push(await guarded(staged.headerMessageId, () => finishOne(staged, target, {}, headers)));
      }
      if (!page.id) {
        break;
      }
      page = await messenger.messages.continueList(page.id);
    }
    return results;
  }

  /**
   * folders.onFolderInfoChanged: a copy reached staging with no onAfterSend to
   * finish it (Send Later files it when the Outbox is sent). While a send is in
   * flight its onAfterSend finishes it, with the folder the user picked.
   */
  async function stagingChanged(folder, info) {
    if (folder?.name !== STAGING_FOLDER || !(info?.totalMessageCount > 0)) {
      return [];
    }
    const plans = Object.entries(await session.get(null)).filter(([key]) => key.startsWith("sentCopyTab:"));
    // An unstaged plan's copy is brought to staging by its own onAfterSend, with its headers.
    if (plans.some(([, plan]) => plan?.reason === "staged" || plan?.reason === "unstaged")) {
      return [];
    }
    return finishStaged({ retryFailed: false });
  }

  /**
   * Resolves once the copy with this Message-ID has its final status (or after
   * timeoutMs): sending individually waits for it before the next copy.
   */
  async function finished(messageId, timeoutMs = 10000) {
    for (let waited = 0; waited < timeoutMs; waited += VERIFY_INTERVAL_MS) {
      const status = await loadSentCopyStatus(messageId, local);
      if (status && status.state !== "importing" && "ms" in status) {
        return status.state;
      }
      if (status?.state === STATES.off || status?.state === STATES.protected) {
        return status.state;
      }
      await wait(VERIFY_INTERVAL_MS);
    }
    return null;
  }

  /** A compose tab closed: its plan, if it never sent, is dropped. */
  async function forgetTab(tabId) {
    await session.remove(tabKey(tabId));
  }

  return {
    amendBeforeSend,
    afterSend,
    finishStaged,
    stagingChanged,
    settleDuplicates,
    forgetTab,
    defaultSentFolder,
    finished,
  };
}
