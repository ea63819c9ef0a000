// The Tracked mail page's rules: which rows a filter keeps and how a column sorts (pure,
// so node tests check them; tracked/tracked.js renders).

import { stateOf } from "./sentList.mjs";

// Where the Tracked mail page is, for whatever opens it (the toolbar button, popups, notifications).
export const TRACKED_PAGE = "/tracked/tracked.html";

export const FILTERS = ["all", "opened", "notOpened", "clicked", "replied", "undelivered", "due"];
const NUMERIC = new Set(["opens", "clicks", "replies"]);

/** Whether a list row passes the filter at `now` ("not opened": no open, click or reply). */
export function matchesFilter(tag, filter, now) {
  const parts = stateOf(tag, now).split("+");
  const has = (part) => parts.includes(part);
  switch (filter) {
    case "opened":
      return has("opened") || has("clicked");
    case "notOpened":
      return !has("opened") && !has("clicked") && !has("replied");
    case "due":
      return has("due") || has("noReply");
    case "clicked":
    case "replied":
    case "undelivered":
      return has(filter);
    default:
      return true;
  }
}

function sortValue(tag, key) {
  const value = tag[key];
  if (NUMERIC.has(key)) {
    return Number(value ?? 0);
  }
  return Array.isArray(value) ? value.join(", ") : String(value ?? "");
}

/** The rows sorted by one column; empty values last whichever the direction. */
export function sortTags(tags, key, descending) {
  return [...tags].sort((a, b) => {
    const x = sortValue(a, key);
    const y = sortValue(b, key);
    if (x === "" || y === "") {
      return (x === "") - (y === "");
    }
    const order = typeof x === "number" ? x - y : x.localeCompare(y);
    return descending ? -order : order;
  });
}

/** The counted opens (and clicks) of a status timeline, newest first: {time, label, client}. */
export function countedOpens(status) {
  return (status?.timeline ?? [])
    .filter((event) => event.counted && ["open", "proxy", "click"].includes(event.label))
    .map((event) => ({ time: event.time, label: event.label, client: String(event.client ?? "") }))
    .reverse();
}

/**
 * The Sent column of a row: {time, note}. time is when Thunderbird sent it, or, where that is
 * not known, the mint time, with note naming what it is ("minted": sent before send times were
 * noted; "unconfirmed": the send was never confirmed; "tagged": made with 'mailtracker tag');
 * a mail never sent has no time and the note "unsent". The helper decides (Row.sending).
 */
export function sendingOf(tag) {
  const how = tag.sent_how ?? (tag.status === "unsent" ? "unsent" : "minted");
  const time = tag.sent_how ? tag.sent_time || null : tag.created || null;
  return { time, note: how === "sent" ? null : how };
}
