// Stops this Thunderbird from fetching its own pixels.
//
// Two mechanisms, because neither covers everything: a blocking webRequest
// listener (observed to see and cancel the compose editor's loads) and a
// declarativeNetRequest block rule (a try for the Sent copy's display, which
// webRequest does not see). Both only act on origins the user granted from the
// options page. Deciding is pure; `browser` is only used by syncBlockRules.

import { isPixelUrl, normalizePixelBase } from "./pixel.mjs";

/** The blocking decision for one webRequest.onBeforeRequest event. */
export function blockingResponse(requestUrl, pixelBases) {
  // Any pixel load from inside Thunderbird is the sender's own (the compose
  // editor, a Sent copy, a copy to self): none of them is a recipient's open.
  return isPixelUrl(requestUrl, pixelBases) ? { cancel: true } : {};
}

/**
 * Returns a webRequest listener. loadPixelBases is async because the
 * background may have just been woken by this very request.
 */
export function createRequestBlocker(loadPixelBases) {
  return async (details) => blockingResponse(details.url, await loadPixelBases());
}

// Our dynamic rules use ids from this offset, so that they are easy to replace as a set.
const RULE_ID_BASE = 1000;

/** declarativeNetRequest rules that block every URL under the given pixel bases. */
export function blockRulesFor(pixelBases) {
  return pixelBases
    .map(normalizePixelBase)
    .filter(Boolean)
    .map((base, index) => ({
      id: RULE_ID_BASE + index,
      priority: 1,
      action: { type: "block" },
      // "|" anchors the filter at the start of the URL.
      condition: { urlFilter: `|${base}` },
    }));
}

/** The host permission pattern for a pixel base, e.g. "https://t.example.org/*". */
export function originPatternOf(pixelBase) {
  const base = normalizePixelBase(pixelBase);
  if (!base) {
    return null;
  }
  // Match patterns carry no port; one without a port matches every port.
  const url = new URL(base);
  return `${url.protocol}//${url.hostname}/*`;
}

async function replaceBlockRules(dnr, pixelBases) {
  const rules = blockRulesFor(pixelBases);
  const existing = await dnr.getDynamicRules();
  // The ids about to be added are removed too, whatever was read: a second writer can
  // then never meet a "Duplicate rule ID" (removals come first in one update).
  const ours = new Set(existing.map((rule) => rule.id).filter((id) => id >= RULE_ID_BASE));
  rules.forEach((rule) => ours.add(rule.id));
  await dnr.updateDynamicRules({ removeRuleIds: [...ours], addRules: rules });
}

// One sync at a time, in the order asked: accounts changing while the add-on starts
// ask twice at once, and the last one asked is what stays.
let pending = Promise.resolve();

/** Replaces our dynamic rules; a no-op where Thunderbird has no declarativeNetRequest. */
export function syncBlockRules(pixelBases) {
  const dnr = globalThis.browser?.declarativeNetRequest;
  if (!dnr?.updateDynamicRules) {
    return Promise.resolve(false);
  }
  const done = pending.then(() => replaceBlockRules(dnr, pixelBases)).then(() => true);
  pending = done.catch(() => {});
  return done;
}
