// Fills extension pages with strings from _locales and formats dates for them.

import { fixText } from "./notify.mjs";

/** The localised string name, with $1… replaced by substitutions. */
export function t(name, substitutions) {
  return browser.i18n.getMessage(name, substitutions);
}

/** Replaces the text of every [data-i18n] element and the title of every [data-i18n-title] one. */
export function localizePage(root = document) {
  for (const element of root.querySelectorAll("[data-i18n]")) {
    element.textContent = t(element.dataset.i18n);
  }
  for (const element of root.querySelectorAll("[data-i18n-title]")) {
    element.title = t(element.dataset.i18nTitle);
  }
}

let dateFormat;

/** A date and time in Thunderbird's UI language, or "—" for none. */
export function formatDateTime(date) {
  if (!date) {
    return "—";
  }
  dateFormat ??= new Intl.DateTimeFormat(browser.i18n.getUILanguage(), {
    dateStyle: "medium",
    timeStyle: "short",
  });
  return dateFormat.format(date);
}

/** A moment as a person says it: the time alone today, else the date and time; "—" for none. */
export function formatMoment(date, now = new Date()) {
  if (!date || Number.isNaN(date.getTime())) {
    return "—";
  }
  if (date.toDateString() !== now.toDateString()) {
    return formatDateTime(date);
  }
  return new Intl.DateTimeFormat(browser.i18n.getUILanguage(), { timeStyle: "short" }).format(date);
}

/**
 * Shows a helper failure as text naming the one fix that applies: the helper's own hint for its
 * error code when it answered, else (no helper answered) install-host, then doctor.
 */
export function helperProblemText(error) {
  const what = error?.kind === "missing" ? t("helperMissing") : (error?.message ?? String(error));
  return `${what} ${fixText(error, t)}`;
}
