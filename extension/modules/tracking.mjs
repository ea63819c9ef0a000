// Decides whether one email is tracked, and what to do when the helper fails.
//
// Pure: every input arrives as an argument, so the rules the user sees in the
// compose popup and the rules applied at send time are the same function.

/** Every HTML email is tracked unless the options page or the compose popup says otherwise. */
export const DEFAULT_TRACKING = true;

/** The per-tab choice wins; then the identity's default; then DEFAULT_TRACKING. */
export function isTrackingWanted({ identityId, tabChoice, identityDefaults }) {
  if (typeof tabChoice === "boolean") {
    return tabChoice;
  }
  const identityDefault = identityDefaults?.[identityId];
  return typeof identityDefault === "boolean" ? identityDefault : DEFAULT_TRACKING;
}

/**
 * Whether the mail as composed can carry a pixel at all. reason is
 * "redirect" (someone else's mail, passed on unchanged), "plainTextEditor"
 * (nothing can be done in this window) or "plainTextDelivery" (an HTML editor
 * told to send plain text: switchable).
 */
export function pixelCapability(details) {
  if (details?.type === "redirect") {
    return { ok: false, reason: "redirect", canSwitch: false };
  }
  if (details?.isPlainText) {
    return { ok: false, reason: "plainTextEditor", canSwitch: false };
  }
  if (details?.deliveryFormat === "plaintext") {
    return { ok: false, reason: "plainTextDelivery", canSwitch: true };
  }
  return { ok: true, reason: null, canSwitch: false };
}

function recipientWeight(recipient) {
  // A mailing list is several people even though it is one entry.
  if (typeof recipient === "string") {
    return recipient.includes("@") ? 1 : 2;
  }
  return recipient?.type === "mailingList" ? 2 : 1;
}

function asList(value) {
  if (value == null || value === "") {
    return [];
  }
  return Array.isArray(value) ? value : [value];
}

/** All recipients (to, cc, bcc) as strings, the way the helper stores them. */
export function recipientsOf(details) {
  return ["to", "cc", "bcc"]
    .flatMap((field) => asList(details?.[field]))
    .map((r) => (typeof r === "string" ? r.trim() : `${r.type}:${r.id}`))
    .filter((r) => r !== "");
}

/** How many people may open the mail; 2 means "several", which is all the popup needs. */
export function countRecipients(details) {
  return ["to", "cc", "bcc"]
    .flatMap((field) => asList(details?.[field]))
    .reduce((sum, r) => sum + recipientWeight(r), 0);
}

/** What the compose popup and button show for this tab. */
export function describeCompose({ wanted, details }) {
  const capability = pixelCapability(details);
  let status = "off";
  if (wanted) {
    status = capability.ok ? "tracked" : "untrackable";
  }
  return {
    status,
    wanted,
    reason: capability.reason,
    canSwitchToHtml: wanted && capability.canSwitch,
    several: countRecipients(details) > 1,
  };
}

/**
 * What onBeforeSend does: {track, reason, deliveryFormat}.
 * deliveryFormat is set when Thunderbird must be told to keep the mail HTML:
 * with "auto" it sends a mail without visible formatting as plain text, which
 * would silently drop the pixel.
 */
export function planSend({ wanted, details }) {
  if (!wanted) {
    return { track: false, reason: "off" };
  }
  const capability = pixelCapability(details);
  if (!capability.ok) {
    return { track: false, reason: capability.reason };
  }
  const format = details?.deliveryFormat;
  return {
    track: true,
    reason: null,
    deliveryFormat: format === "html" || format === "both" ? undefined : "both",
  };
}

/** When the helper cannot mint: send untracked, or stop the send if the user asked for that. */
export function decideOnHelperFailure({ blockOnHelperFailure }) {
  return { cancel: blockOnHelperFailure === true };
}

/** The bare, lower-cased address in "Name <a@b.example>" or "a@b.example"; "" if none. */
export function emailOf(address) {
  if (typeof address !== "string") {
    return "";
  }
  const angle = address.match(/<([^<>]+)>\s*$/);
  return (angle ? angle[1] : address).trim().toLowerCase();
}

/** The sending identity as the helper stores it: its address, else Thunderbird's identity id. */
export function identityOf(details) {
  return emailOf(details?.from) || String(details?.identityId ?? "");
}

// Thunderbird's send modes that really put the mail on its way (now or via the Outbox).
const SENDING_MODES = new Set(["sendNow", "sendLater"]);

/**
 * Reads compose.onAfterSend's sendInfo: {sent, messageId, reason}.
 * messageId falls back to the copies' header id because Thunderbird only
 * promises headerMessageId for mail that actually left.
 */
export function classifySendResult(sendInfo) {
  if (sendInfo?.error) {
    return { sent: false, messageId: null, reason: `send failed: ${sendInfo.error}` };
  }
  if (sendInfo?.mode && !SENDING_MODES.has(sendInfo.mode)) {
    return { sent: false, messageId: null, reason: `saved as ${sendInfo.mode}, not sent` };
  }
  const messageId =
    sendInfo?.headerMessageId ?? sendInfo?.messages?.find((m) => m?.headerMessageId)?.headerMessageId ?? null;
  return { sent: true, messageId, reason: null };
}
