// The "Tracked mail" page: recent tracked emails with their opens, sortable and filtered;
// a row shows the device and client of each open. Opening it clears the toolbar badge. A mail
// whose reminder is due, or that some but not all recipients answered, offers "Write a follow-up".

import { FOLLOW_UP, followUpLines, followUpPlan, hasAddressees } from "../modules/followUp.mjs";
import { formatDateTime, helperProblemText, localizePage, t } from "../modules/i18n.mjs";
import { BADGE_SEEN, COUNTS_CHANGED, createHelper } from "../modules/nativeHost.mjs";
import { stateOf } from "../modules/sentList.mjs";
import { FILTERS, countedOpens, matchesFilter, sendingOf, sortTags } from "../modules/trackedView.mjs";

// Enough for a screenful of recent mail; the register itself has them all.
const LIMIT = 200;

const helper = createHelper();
const byId = (id) => document.getElementById(id);
const view = { tags: [], sortKey: "sent_time", descending: true, filter: "all", expanded: new Set() };

function toDate(value) {
  const date = value ? new Date(value) : null;
  return date && !Number.isNaN(date.getTime()) ? date : null;
}

function statusText(status) {
  const known = ["pending", "sent", "unsent"];
  return known.includes(status) ? t(`status_${status}`) : String(status ?? "");
}

// When it was sent; a mint time says what it is (why on hover), a mail never sent says so.
function sentCell(tag) {
  const { time, note } = sendingOf(tag);
  if (!note) {
    return cell(formatDateTime(toDate(time)), "time");
  }
  const label = t(`trackedSent_${note}`);
  const td = cell(time ? `${formatDateTime(toDate(time))} (${label})` : label, "time sendNote");
  td.title = t(`trackedSentWhy_${note}`);
  return td;
}

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) {
    td.className = className;
  }
  return td;
}

const isDue = (state) => state.split("+").some((part) => part === "due" || part === "noReply");

function reminderText(tag, state) {
  const when = toDate(tag.remind_at);
  if (!when) {
    return "";
  }
  const text = isDue(state) ? t("trackedReminderDue", [formatDateTime(when)]) : formatDateTime(when);
  return tag.remind_if === "no_reply" ? `${text} ${t("composeRemindIfNoReply")}` : text;
}

/** The reminder cell: its time, and "Write a follow-up" when the reminder is due or some (not
 * all) recipients answered. */
function reminderCell(tag, state) {
  const td = cell(reminderText(tag, state));
  const plan = followUpPlan([tag]);
  const partly = Number(tag.replies ?? 0) > 0 && hasAddressees(plan);
  if (tag.status === "unsent" || !tag.message_id || !(isDue(state) || partly)) {
    return td;
  }
  const button = document.createElement("button");
  button.type = "button";
  button.className = "followUp";
  button.textContent = t("followUpWrite");
  button.title = [t("followUpWriteTitle"), ...followUpLines(plan, t)].join("\n");
  button.addEventListener("click", async (event) => {
    event.stopPropagation();
    try {
      const written = await browser.runtime.sendMessage({ command: FOLLOW_UP, tagId: tag.id });
      if (!written?.opened) {
        button.disabled = true;
        button.title = t("followUpNobody");
      }
    } catch (error) {
      button.title = helperProblemText(error);
    }
  });
  td.append(" ", button);
  return td;
}

/** How many people replied, who (on hover); "not delivered" with the server's reason for a bounce. */
function repliesCell(tag) {
  if (tag.undelivered) {
    const td = cell(t("trackedUndelivered"), "number undelivered");
    td.title = t("messageUndelivered", [String(tag.undelivered), String(tag.undelivered_reason ?? "")]);
    return td;
  }
  const td = cell(String(Number(tag.replies ?? 0)), "number");
  td.title = String(tag.replied_by ?? "");
  return td;
}

/** The open count; "not visible" / "not measurable" (the rule and the mail that taught it on
 * hover) for a mail nobody opened whose recipients' opens cannot show. */
function opensCell(tag, parts) {
  const notSeen = ["notVisible", "notMeasurable"].find((part) => parts.includes(part));
  if (!notSeen) {
    return cell(String(Number(tag.opens ?? 0)), "number");
  }
  const td = cell(t(notSeen === "notVisible" ? "trackedNotVisible" : "trackedNotMeasurable"), "number notseen");
  td.title = String(tag.not_seen_reason ?? "");
  return td;
}

function row(tag, now) {
  const tr = document.createElement("tr");
  const state = stateOf(tag, now);
  tr.className = "mail";
  const parts = state.split("+");
  tr.classList.toggle("opened", parts.includes("opened") || parts.includes("clicked"));
  tr.classList.toggle("replied", parts.includes("replied"));
  tr.classList.toggle("undelivered", parts.includes("undelivered"));
  tr.classList.toggle("due", parts.includes("due") || parts.includes("noReply"));
  tr.classList.toggle("unsent", tag.status === "unsent");
  tr.dataset.id = tag.id ?? "";
  const recipients = Array.isArray(tag.recipients) ? tag.recipients.join(", ") : String(tag.recipients ?? "");
  tr.append(
    sentCell(tag),
    cell(tag.subject || t("trackedNoSubject")),
    cell(recipients, "recipients"),
    opensCell(tag, parts),
    cell(String(Number(tag.clicks ?? 0)), "number"),
    repliesCell(tag),
    cell(formatDateTime(toDate(tag.last_open))),
    reminderCell(tag, state),
    cell(statusText(tag.status)),
    cell(tag.short_id ?? ""),
  );
  tr.title = tag.name ?? "";
  tr.addEventListener("click", () => toggleDetails(tag));
  return tr;
}

// The device and client of each open come from the tag's status (one helper call per row opened).
async function detailsRow(tag) {
  const tr = document.createElement("tr");
  tr.className = "details";
  tr.dataset.detailsOf = tag.id;
  const td = document.createElement("td");
  td.colSpan = 9;
  tr.append(td);
  try {
    const opens = countedOpens(await helper.status({ messageId: tag.message_id || tag.id }));
    if (!opens.length) {
      td.textContent = t("trackedNoOpens");
      return tr;
    }
    const list = document.createElement("ul");
    for (const open of opens) {
      const item = document.createElement("li");
      const what = [t(`label_${open.label}`), open.client || t("trackedClientUnknown"),
        ...(open.elsewhere ? [t("timelineElsewhere")] : [])].join(" — ");
      item.textContent = t("trackedOpenBy", [formatDateTime(toDate(open.time)), what]);
      list.append(item);
    }
    td.append(list);
  } catch (error) {
    td.textContent = helperProblemText(error);
    td.className = "problem";
  }
  return tr;
}

async function toggleDetails(tag) {
  if (view.expanded.has(tag.id)) {
    view.expanded.delete(tag.id);
  } else {
    view.expanded.add(tag.id);
  }
  await render();
}

async function render() {
  const now = Date.now();
  const shown = sortTags(
    view.tags.filter((tag) => matchesFilter(tag, view.filter, now)),
    view.sortKey,
    view.descending,
  );
  const rows = [];
  for (const tag of shown) {
    rows.push(row(tag, now));
    if (view.expanded.has(tag.id)) {
      rows.push(await detailsRow(tag));
    }
  }
  byId("tags").querySelector("tbody").replaceChildren(...rows);
  for (const th of byId("tags").querySelectorAll("th[data-sort]")) {
    if (th.dataset.sort === view.sortKey) {
      th.setAttribute("aria-sort", view.descending ? "descending" : "ascending");
    } else {
      th.removeAttribute("aria-sort");
    }
  }
  byId("tags").hidden = view.tags.length === 0;
  byId("state").textContent = t("trackedEmpty");
  byId("state").className = "";
  byId("state").hidden = view.tags.length > 0;
}

async function load() {
  const state = byId("state");
  state.textContent = t("loading");
  state.className = "";
  state.hidden = false;
  try {
    view.tags = (await helper.list({ limit: LIMIT })).tags ?? [];
  } catch (error) {
    byId("tags").hidden = true;
    state.textContent = helperProblemText(error);
    state.className = "problem";
    return;
  }
  await render();
}

function seen() {
  browser.runtime.sendMessage({ command: BADGE_SEEN }).catch(() => {});
}

localizePage();
// The page may be opened on a filter (a notification of several reminders opens it on "due").
const asked = new URLSearchParams(location.search).get("filter");
if (FILTERS.includes(asked)) {
  view.filter = asked;
  byId("filter").value = asked;
}
byId("refresh").addEventListener("click", () => load());
byId("filter").addEventListener("change", () => {
  view.filter = byId("filter").value;
  render();
});
for (const th of document.querySelectorAll("th[data-sort]")) {
  th.addEventListener("click", () => {
    const key = th.dataset.sort;
    view.descending = key === view.sortKey ? !view.descending : ["sent_time", "opens", "clicks", "replies", "last_open"].includes(key);
    view.sortKey = key;
    render();
  });
}
// The background says when the helper folded new counts: show them without a click.
browser.runtime.onMessage.addListener((message) => {
  if (message?.event === COUNTS_CHANGED) {
    load();
  }
});
seen();
load();
