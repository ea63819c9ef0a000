// Reads and writes the user's options and the small caches kept in storage.local.
//
// The storage area is an argument (default: browser.storage.local, looked up
// only when called) so node tests can pass an in-memory one.

import { normalizePixelBase } from "./pixel.mjs";

export const DEFAULT_SETTINGS = Object.freeze({
  // identityId -> boolean; identities not listed use tracking.DEFAULT_TRACKING.
  identityDefaults: {},
  // identityId -> boolean; links are tracked (rewritten to click URLs) unless false.
  trackLinks: {},
  blockOnHelperFailure: false,
});

// Pixel bases seen before: a server moved to a new address still owns the
// pixels quoted in old threads, so we keep stripping those too.
const MAX_PIXEL_BASES = 5;
// Enough to recognise this week's sent mail without growing for ever.
const MAX_SENT_IDS = 500;

/** The storage.local area every module keeps its options and caches in (a test passes its own). */
export function localArea(area) {
  return area ?? browser.storage.local;
}

/** Returns the options merged over DEFAULT_SETTINGS. */
export async function loadSettings(area) {
  const stored = await localArea(area).get(["identityDefaults", "trackLinks", "blockOnHelperFailure"]);
  return {
    identityDefaults: { ...DEFAULT_SETTINGS.identityDefaults, ...(stored.identityDefaults ?? {}) },
    trackLinks: { ...DEFAULT_SETTINGS.trackLinks, ...(stored.trackLinks ?? {}) },
    blockOnHelperFailure:
      typeof stored.blockOnHelperFailure === "boolean"
        ? stored.blockOnHelperFailure
        : DEFAULT_SETTINGS.blockOnHelperFailure,
  };
}

/** Stores a partial settings object. */
export async function saveSettings(patch, area) {
  await localArea(area).set(patch);
}

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
