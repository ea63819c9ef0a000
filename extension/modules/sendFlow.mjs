// Runs one compose tab's send: mint and insert the pixel in onBeforeSend, then
// report the outcome to the helper in onAfterSend.
//
// Everything that talks to Thunderbird or the helper is passed in, so node
// tests drive the whole flow with fakes; background.js wires the real ones.

import { HelperError, TRACKING_PAUSED } from "./nativeHost.mjs";
import { restoreLinks, rewriteLinks, trackableLinks } from "./links.mjs";
import { insertPixel, isPixelUrl, pixelBaseOf, stripPixels } from "./pixel.mjs";
import { loadPixelBases, loadSettings, rememberPixelBase, rememberSentId } from "./settings.mjs";
import {
  classifySendResult,
  decideOnHelperFailure,
  identityOf,
  isTrackingWanted,
  planSend,
  recipientsOf,
} from "./tracking.mjs";

/** What identifies "the same mail" across repeated onBeforeSend calls of one attempt. */
export function fingerprintOf(details) {
  return JSON.stringify({
    subject: details?.subject ?? "",
    recipients: recipientsOf(details).slice().sort(),
    identity: identityOf(details),
  });
}

/**
 * deps: {helper, tabStore, runForTab, DOMParser, notify, editor?, localArea?, log?, onSent?}
 *   notify.helperFailed(error, {cancelled}) and notify.recordFailed(error) tell the user;
 *   editor.readBody(tabId) / editor.writeBody(tabId, body) touch the compose window;
 *   onSent({tabId, tagId, messageId}) runs once the helper recorded a send.
 */
export function createSendFlow(deps) {
  const { helper, tabStore, runForTab, DOMParser, notify, editor, localArea } = deps;
  const log = deps.log ?? console;

  async function settleUnsent(pending, reason) {
    try {
      await helper.unsent({ tagId: pending.tagId, reason });
    } catch (error) {
      log.warn("mailtracker: could not mark tag %s unsent: %s", pending.tagId, error.message);
    }
  }

  async function mintTag(details, group) {
    const data = await helper.mint({
      subject: details.subject ?? "",
      recipients: recipientsOf(details),
      identity: identityOf(details),
      // One recipient's copy of a mail sent individually (individual.mjs).
      ...(group ? { group } : {}),
    });
    const base = pixelBaseOf(data?.url);
    if (!data?.id || !base || !isPixelUrl(data.url, [base])) {
      if (data?.id) {
        await settleUnsent({ tagId: data.id }, "the extension rejected the minted pixel URL");
      }
      throw new HelperError("protocol", `the helper minted an unusable pixel URL: ${data?.url}`);
    }
    return { tagId: data.id, url: data.url, html: data.html ?? "", fingerprint: fingerprintOf(details) };
  }

  // One tag per send attempt: a repeated onBeforeSend for the same mail reuses
  // the pending tag; a changed mail gets a new one and the old one is unsent.
  async function obtainTag(tabId, state, details) {
    const fingerprint = fingerprintOf(details);
    if (state.pending?.fingerprint === fingerprint) {
      return state.pending;
    }
    if (state.pending) {
      await settleUnsent(state.pending, "replaced by a new tag: the mail changed before it was sent");
      await tabStore.update(tabId, { pending: undefined });
    }
    const pending = await mintTag(details, state.group);
    await tabStore.update(tabId, { pending });
    return pending;
  }

  function stripOnly(details, bases) {
    // A redirect passes someone else's mail on as it was: never edit it.
    if (details.isPlainText || details.type === "redirect" || !bases.length) {
      return undefined;
    }
    const { html, removed } = stripPixels(details.body, bases, DOMParser);
    const { html: clean, restored } = restoreLinks(html, bases, DOMParser);
    return removed || restored ? { details: { body: clean } } : undefined;
  }

  // The mail's own links become click URLs; a failure costs the click tracking
  // of this mail, never the send or the pixel.
  async function trackLinks(tag, body, bases) {
    const links = trackableLinks(body, bases, DOMParser);
    if (!links.length) {
      return body;
    }
    try {
      const { urls } = await helper.links({ tagId: tag.tagId, links });
      return rewriteLinks(body, urls, bases, DOMParser);
    } catch (error) {
      log.warn("mailtracker: links of tag %s are not tracked: %s", tag.tagId, error.message);
      return body;
    }
  }

  async function beforeSend(tab, details) {
    return runForTab(tab.id, async () => {
      const settings = await loadSettings(localArea);
      const state = await tabStore.get(tab.id);
      const wanted = isTrackingWanted({
        identityId: details.identityId,
        tabChoice: state.choice,
        identityDefaults: settings.identityDefaults,
      });
      const plan = planSend({ wanted, details });
      const bases = await loadPixelBases(localArea);

      if (!plan.track) {
        if (state.pending) {
          await settleUnsent(state.pending, "tracking was turned off before sending");
          await tabStore.update(tab.id, { pending: undefined });
        }
        // Even untracked, a quoted old pixel must not go out: it would count
        // this mail's readers as opens of the old one.
        return stripOnly(details, bases);
      }

      try {
        const tag = await obtainTag(tab.id, state, details);
        const known = await rememberPixelBase(pixelBaseOf(tag.url), localArea);
        let body = restoreLinks(details.body, known, DOMParser).html;
        if (settings.trackLinks[details.identityId] !== false) {
          body = await trackLinks(tag, body, known);
        }
        const result = { details: { body: insertPixel(body, tag, known, DOMParser) } };
        if (plan.deliveryFormat) {
          result.details.deliveryFormat = plan.deliveryFormat;
        }
        return result;
      } catch (error) {
        if (error?.code === TRACKING_PAUSED) {
          // The user paused tracking in the tray: untracked is what they asked for.
          return stripOnly(details, bases);
        }
        const decision = decideOnHelperFailure(settings);
        notify.helperFailed(error, { cancelled: decision.cancel });
        return decision.cancel ? { cancel: true } : stripOnly(details, bases);
      }
    });
  }

  async function stripFromEditor(tabId) {
    if (!editor) {
      return;
    }
    try {
      const bases = await loadPixelBases(localArea);
      const { html, removed } = stripPixels(await editor.readBody(tabId), bases, DOMParser);
      if (removed) {
        await editor.writeBody(tabId, html);
      }
    } catch (error) {
      log.warn("mailtracker: could not remove the pixel from the editor: %s", error.message);
    }
  }

  async function afterSend(tab, sendInfo) {
    // The send time the views show (not the mint time): now, before waiting for this tab's turn.
    const sentAt = Date.now();
    return runForTab(tab.id, async () => {
      const { pending } = await tabStore.get(tab.id);
      if (!pending) {
        return;
      }
      // Settle first: whatever the helper says, a retry must mint afresh.
      await tabStore.update(tab.id, { pending: undefined });
      const outcome = classifySendResult(sendInfo);
      if (!outcome.sent) {
        await settleUnsent(pending, outcome.reason);
        // onBeforeSend's body reached the editor; a draft saved now must not
        // carry a pixel that was never sent.
        await stripFromEditor(tab.id);
        return;
      }
      await rememberSentId(outcome.messageId, localArea);
      try {
        // The helper takes a string; "" when Thunderbird gave no id (it
        // promises one only for mail that actually left), so the tag still
        // reads as sent rather than pending.
        await helper.sent({ tagId: pending.tagId, messageId: outcome.messageId ?? "", at: sentAt });
        // The sender's own Thunderbird may load the pixel right now (e.g. the
        // Sent copy); the helper labels hits around this moment as "self".
        await helper.selfFetch({ tagId: pending.tagId });
      } catch (error) {
        notify.recordFailed(error);
        return;
      }
      // Whatever else follows a recorded send (a reminder) runs in this tab's turn.
      await deps.onSent?.({ tabId: tab.id, tagId: pending.tagId, messageId: outcome.messageId });
    });
  }

  /** A compose tab closed: a tag minted for it that never got an onAfterSend was not sent. */
  async function forgetTab(tabId) {
    return runForTab(tabId, async () => {
      const { pending } = await tabStore.get(tabId);
      await tabStore.remove(tabId);
      if (pending) {
        await settleUnsent(pending, "the compose window closed without sending");
      }
    });
  }

  return { beforeSend, afterSend, forgetTab };
}
