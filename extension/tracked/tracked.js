// The "Tracked mail" page: the most recent tracked emails with their open counts.

import { formatDateTime, helperProblemText, localizePage, t } from "../modules/i18n.mjs";
import { COUNTS_CHANGED, createHelper } from "../modules/nativeHost.mjs";

// Enough for a screenful of recent mail; the register itself has them all.
const LIMIT = 200;

const helper = createHelper();
const byId = (id) => document.getElementById(id);

function toDate(value) {
  const date = value ? new Date(value) : null;
  return date && !Number.isNaN(date.getTime()) ? date : null;
}

function statusText(status) {
  const known = ["pending", "sent", "unsent"];
  return known.includes(status) ? t(`status_${status}`) : String(status ?? "");
}

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) {
    td.className = className;
  }
  return td;
}

function row(tag) {
  const tr = document.createElement("tr");
  const opens = Number(tag.opens ?? 0);
  tr.classList.toggle("opened", opens > 0);
  tr.classList.toggle("unsent", tag.status === "unsent");
  const recipients = Array.isArray(tag.recipients) ? tag.recipients.join(", ") : String(tag.recipients ?? "");
  tr.append(
    cell(formatDateTime(toDate(tag.created))),
    cell(tag.subject || t("trackedNoSubject")),
    cell(recipients, "recipients"),
    cell(String(opens), "number"),
    cell(formatDateTime(toDate(tag.last_open))),
    cell(statusText(tag.status)),
    cell(tag.short_id ?? ""),
  );
  tr.title = tag.name ?? "";
  return tr;
}

async function load() {
  const state = byId("state");
  state.textContent = t("loading");
  state.className = "";
  state.hidden = false;
  let tags;
  try {
    ({ tags } = await helper.list({ limit: LIMIT }));
  } catch (error) {
    byId("tags").hidden = true;
    state.textContent = helperProblemText(error);
    state.className = "problem";
    return;
  }
  const sorted = [...(tags ?? [])].sort(
    (a, b) => (toDate(b.created)?.getTime() ?? 0) - (toDate(a.created)?.getTime() ?? 0),
  );
  byId("tags").querySelector("tbody").replaceChildren(...sorted.map(row));
  byId("tags").hidden = sorted.length === 0;
  state.textContent = t("trackedEmpty");
  state.hidden = sorted.length > 0;
}

localizePage();
byId("refresh").addEventListener("click", () => load());
// The background says when the helper folded new counts: show them without a click.
browser.runtime.onMessage.addListener((message) => {
  if (message?.event === COUNTS_CHANGED) {
    load();
  }
});
load();
