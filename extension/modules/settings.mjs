// The add-on's options, in one table (SETTINGS), and the small caches kept in storage.local.
//
// A row of the table is one option: its storage.local key (never renamed: what a user set must
// load after an upgrade), its default, what a stored value may be (anything else reads as the
// default, and saving it is an error), and where the user sets it. Every module reads and writes
// an option through loadSetting / saveSetting / saveIdentitySetting here, never by its key.
//
// The storage area is an argument (default: browser.storage.local, looked up
// only when called) so node tests can pass an in-memory one.

import { normalizePixelBase } from "./pixel.mjs";

/** "Send individually" offers at most this many recipients unless the options say otherwise. */
export const DEFAULT_MAX_INDIVIDUAL = 10;
export const MAX_INDIVIDUAL_LIMIT = 50;
/** A reminder's days: 0 (off) to this. */
export const MAX_REMIND_DAYS = 365;
/** What a reminder waits for: no open (an open, a click or a reply ends it), or no reply. */
export const REMIND_IF = Object.freeze(["not_opened", "no_reply"]);

const wholeNumber = (low, high) => (value) => {
  const n = Number(value);
  return Number.isInteger(n) && n >= low && n <= high ? n : undefined;
};
const individualLimit = wholeNumber(2, MAX_INDIVIDUAL_LIMIT);
const reminderDays = wholeNumber(0, MAX_REMIND_DAYS);
const aBoolean = (value) => (typeof value === "boolean" ? value : undefined);
const aFolderId = (value) => (typeof value === "string" && value ? value : undefined);
const aLateCopyWatch = (value) =>
  typeof value?.target === "string" && Number.isFinite(value?.until) ? { target: value.target, until: value.until } : undefined;

/** The user's limit for "Send individually", bounded: 2..MAX_INDIVIDUAL_LIMIT, else the default. */
export function maxIndividual(value) {
  return individualLimit(value) ?? DEFAULT_MAX_INDIVIDUAL;
}

/** A whole number of days from 0 (off) to MAX_REMIND_DAYS; null for anything else. */
export function cleanDays(value) {
  return reminderDays(value) ?? null;
}

/** "no_reply" or "not_opened" (anything else). */
export function cleanRemindIf(value) {
  return value === "no_reply" ? "no_reply" : "not_opened";
}

/** A single value: keep(value) is what is stored, or undefined when value is not one. */
function single(fallback, keep, shown) {
  return Object.freeze({ default: fallback, keep, shown, perIdentity: false });
}

/**
 * A map (identityId -> value, or another id for a cache): the entries whose value keep() takes;
 * undefined when the stored thing is not a map at all.
 */
function mapOf(keep, shown, { perIdentity = true } = {}) {
  const keepMap = (value) => {
    if (!value || typeof value !== "object" || Array.isArray(value)) {
      return undefined;
    }
    const kept = {};
    for (const [id, entry] of Object.entries(value)) {
      const one = keep(entry);
      if (one !== undefined) {
        kept[id] = one;
      }
    }
    return kept;
  };
  return Object.freeze({ default: Object.freeze({}), keep: keepMap, keepEntry: keep, shown, perIdentity });
}

/**
 * Every option, by its storage.local key. shown: the page and element where the user sets it
 * (a test checks the element is there), or "" for what the add-on remembers by itself.
 */
export const SETTINGS = Object.freeze({
  // Track new mail by default, per identity (missing: tracking.DEFAULT_TRACKING).
  identityDefaults: mapOf(aBoolean, "options/options.html#identities"),
  // Links are tracked (rewritten to click URLs) unless false, per identity.
  trackLinks: mapOf(aBoolean, "options/options.html#linkIdentities"),
  // Stop sending when the helper fails (else the mail goes out untracked, with a notification).
  blockOnHelperFailure: single(false, aBoolean, "options/options.html#blockOnHelperFailure"),
  // Put a copy without the pixel in Sent (sentCopy.mjs).
  cleanSentCopy: single(true, aBoolean, "options/options.html#cleanSentCopy"),
  // "Send individually" is offered up to this many recipients.
  individualMax: single(DEFAULT_MAX_INDIVIDUAL, individualLimit, "options/options.html#individualMax"),
  // Remind after this many days (0: off), per identity; the Track popup starts from it.
  remindDefaults: mapOf(reminderDays, "options/options.html#remindIdentities"),
  // What that reminder waits for, per identity (missing: "not_opened").
  remindIfDefaults: mapOf(cleanRemindIf, "options/options.html#remindIdentities"),
  // The folder Thunderbird last filed each identity's Sent copy into (sentCopy.mjs finds Sent with it).
  sentCopyFiled: mapOf(aFolderId, ""),
  // Message-ID -> {target folder, until}: a late second copy an interrupted import may leave in Sent.
  sentCopyWatch: mapOf(aLateCopyWatch, "", { perIdentity: false }),
});

/** The storage.local area every module keeps its options and caches in (a test passes its own). */
export function localArea(area) {
  return area ?? browser.storage.local;
}

function rowOf(key) {
  const row = SETTINGS[key];
  if (!row) {
    throw new Error(`mailtracker has no setting ${JSON.stringify(key)}`);
  }
  return row;
}

function readRow(row, stored) {
  const kept = row.keep(stored);
  return kept === undefined ? structuredClone(row.default) : kept;
}

/** One option as stored, or its default when none (or none the table takes) is. */
export async function loadSetting(key, area) {
  const row = rowOf(key);
  const { [key]: stored } = await localArea(area).get(key);
  return readRow(row, stored);
}

/** Every option, {key: value}, in one read. */
export async function loadSettings(area) {
  const keys = Object.keys(SETTINGS);
  const stored = await localArea(area).get(keys);
  return Object.fromEntries(keys.map((key) => [key, readRow(SETTINGS[key], stored[key])]));
}

/** Stores one option; returns what was stored. A value the table does not take is an error. */
export async function saveSetting(key, value, area) {
  const kept = rowOf(key).keep(value);
  if (kept === undefined) {
    throw new TypeError(`not a value for the setting ${key}: ${JSON.stringify(value)}`);
  }
  await localArea(area).set({ [key]: kept });
  return kept;
}

/** Stores one entry of a per-identity option (the others are kept); returns the entry stored. */
export async function saveIdentitySetting(key, identityId, value, area) {
  const row = rowOf(key);
  if (!row.perIdentity) {
    throw new Error(`the setting ${key} is not kept per identity`);
  }
  const kept = row.keepEntry(value);
  if (kept === undefined || !identityId) {
    throw new TypeError(`not a value for the setting ${key} of identity ${identityId}: ${JSON.stringify(value)}`);
  }
  const current = await loadSetting(key, area);
  await localArea(area).set({ [key]: { ...current, [identityId]: kept } });
  return kept;
}

// Pixel bases seen before: a server moved to a new address still owns the
// pixels quoted in old threads, so we keep stripping those too.
const MAX_PIXEL_BASES = 5;
// Enough to recognise this week's sent mail without growing for ever.
const MAX_SENT_IDS = 500;

/** Puts value first in list, without duplicates, at most max long. */
export function pushBounded(list, value, max) {
  return [value, ...(list ?? []).filter((v) => v !== value)].slice(0, max);
}

/** The pixel bases we know of, newest first. */
export async function loadPixelBases(area) {
  const { pixelBases } = await localArea(area).get("pixelBases");
  return Array.isArray(pixelBases) ? pixelBases : [];
}

/** Adds a pixel base (e.g. from the helper's config or a minted URL); returns the new list. */
export async function rememberPixelBase(pixelBase, area) {
  const base = normalizePixelBase(pixelBase);
  const known = await loadPixelBases(area);
  if (!base || known[0] === base) {
    return known;
  }
  const updated = pushBounded(known, base, MAX_PIXEL_BASES);
  await localArea(area).set({ pixelBases: updated });
  return updated;
}

/** headerMessageIds of mail this profile sent tracked, newest first. */
export async function loadSentIds(area) {
  const { sentMessageIds } = await localArea(area).get("sentMessageIds");
  return Array.isArray(sentMessageIds) ? sentMessageIds : [];
}

export async function rememberSentId(messageId, area) {
  if (!messageId) {
    return;
  }
  const updated = pushBounded(await loadSentIds(area), messageId, MAX_SENT_IDS);
  await localArea(area).set({ sentMessageIds: updated });
}
