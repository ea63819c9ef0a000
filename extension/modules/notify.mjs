// Tells the user, through Thunderbird notifications, that the helper failed and how to fix it.
//
// The wording is built by pure functions taking an i18n lookup, so tests can
// check that every failure names the fix; only show() touches `browser`.

import { DOCTOR_COMMAND, INSTALL_COMMAND } from "./nativeHost.mjs";

function describeError(error, t) {
  if (error?.kind === "missing") {
    return t("helperMissing");
  }
  if (error?.kind === "timeout") {
    return t("helperTimeout");
  }
  const code = error?.code != null ? ` (${t("errorCode", [String(error.code)])})` : "";
  return `${error?.message ?? String(error)}${code}`;
}

/**
 * The one fix that applies: the helper's hint for its error code when it answered (one table
 * with the CLI: core/hints.py), else — no helper answered — install-host, then doctor.
 */
export function fixText(error, t) {
  if (error?.kind === "failed" && error.hint) {
    return error.hint;
  }
  return t("helperFix", [INSTALL_COMMAND, DOCTOR_COMMAND]);
}

/** {title, message} for a helper failure at send time. */
export function helperFailureText(error, { cancelled }, t) {
  return {
    title: t(cancelled ? "sendBlockedTitle" : "sentUntrackedTitle"),
    message: [
      describeError(error, t),
      t(cancelled ? "sendBlockedBody" : "sentUntrackedBody"),
      fixText(error, t),
    ].join("\n"),
  };
}

/** {title, message} for a mail that left tracked but whose send the helper did not record. */
export function recordFailureText(error, t) {
  return {
    title: t("recordFailedTitle"),
    message: [describeError(error, t), t("recordFailedBody"), fixText(error, t)].join("\n"),
  };
}

/** {title, message} for a Sent copy that still carries the pixel; null when there is nothing to say. */
export function sentCopyText({ state, reason, subject, folder }, t) {
  if (state !== "kept" && state !== "staged") {
    return null;
  }
  return {
    title: t("sentCopyFailedTitle"),
    message: [
      t(state === "kept" ? "sentCopyKeptBody" : "sentCopyStagedBody", [subject ?? "", folder ?? ""]),
      reason,
    ]
      .filter(Boolean)
      .join("\n"),
  };
}

/** {title, message} for a mail sent individually whose copies did not all leave. */
export function individualFailedText({ failed, sent, subject }, t) {
  return {
    title: t("individualFailedTitle", [subject ?? ""]),
    message: [
      t("individualFailedBody", [failed.join(", ")]),
      sent.length ? t("individualFailedSent", [sent.join(", ")]) : "",
      t("individualFailedRetry"),
    ]
      .filter(Boolean)
      .join("\n"),
  };
}

function i18n(name, substitutions) {
  return browser.i18n.getMessage(name, substitutions);
}

async function show({ title, message }) {
  try {
    await browser.notifications.create({
      type: "basic",
      iconUrl: browser.runtime.getURL("icons/mailtracker.svg"),
      title,
      message,
    });
  } catch (error) {
    // A notification that cannot be shown must not break the send itself.
    console.error("mailtracker: %s: %s (%s)", title, message, error);
  }
}

/** The notify object the send flow expects. */
export const notify = {
  helperFailed(error, options) {
    console.warn("mailtracker: helper failed at send time: %s", error?.message);
    void show(helperFailureText(error, options, i18n));
  },
  sentCopy(outcome) {
    const text = sentCopyText(outcome, i18n);
    if (text) {
      console.warn("mailtracker: Sent copy not cleaned: %s", outcome.reason);
      void show(text);
    }
  },
  individualFailed(outcome) {
    console.warn(`mailtracker: copies not sent individually to ${outcome.failed.join(", ")}`);
    void show(individualFailedText(outcome, i18n));
  },
  recordFailed(error) {
    console.warn("mailtracker: helper did not record a sent mail: %s", error?.message);
    void show(recordFailureText(error, i18n));
  },
};
