// Reacts to a message being displayed: shows the open-status button only on the
// user's own mail, and warns the helper that this Thunderbird may fetch the pixel.
//
// All Thunderbird and helper access is passed in, so tests can drive it.

import { isOwnMessage, messagesOf } from "./messageInfo.mjs";

/**
 * deps: {helper, loadOwnEmails, loadSentIds, setActionEnabled(tabId, bool), log?}
 * Returns the onMessagesDisplayed listener body.
 */
export function createDisplayWatcher({ helper, loadOwnEmails, loadSentIds, setActionEnabled, log = console }) {
  return async function onMessagesDisplayed(tab, displayed) {
    // The moment the display began: a fetch of the pixel now is the sender's own,
    // however long the checks below take.
    const at = Date.now();
    const messages = messagesOf(displayed);
    // Several selected messages show a summary, not their bodies, so no pixel
    // can load and there is no single status to show.
    const message = messages.length === 1 ? messages[0] : null;
    const own =
      message !== null &&
      isOwnMessage(message, { ownEmails: await loadOwnEmails(), sentIds: await loadSentIds() });
    await setActionEnabled(tab.id, own);
    if (!own || !message.headerMessageId) {
      return;
    }
    try {
      // Thunderbird may load the pixel of a displayed Sent copy (when remote
      // content is allowed) and no extension API can stop that load, so the
      // helper is told to label the hit as the sender's own.
      await helper.selfFetch({ messageId: message.headerMessageId, at });
    } catch (error) {
      // Untracked mail, or a helper that is not installed: neither is worth
      // interrupting someone reading their mail.
      log.debug?.("mailtracker: self_fetch for %s: %s", message.headerMessageId, error.message);
    }
  };
}
