// The open-status popup of a sent email: opens, first and last open, and a small timeline;
// "Write a follow-up" opens a reply to it, addressed to those who have not answered (followUp.mjs).

import { FOLLOW_UP } from "../modules/followUp.mjs";
import { formatDateTime, helperProblemText, localizePage, t } from "../modules/i18n.mjs";
import { messagesOf, summarizeStatus } from "../modules/messageInfo.mjs";
import { createHelper } from "../modules/nativeHost.mjs";
import { loadSentCopyStatus } from "../modules/sentCopy.mjs";
import { TRACKED_PAGE } from "../modules/trackedView.mjs";

const byId = (id) => document.getElementById(id);

function showState(text, isProblem = false) {
  byId("state").textContent = text;
  byId("state").className = isProblem ? "problem" : "";
  byId("state").hidden = false;
}

function renderStrip(timeline) {
  const strip = byId("strip");
  strip.replaceChildren();
  if (timeline.length === 0) {
    strip.hidden = true;
    return;
  }
  const first = timeline[0].time.getTime();
  const span = Math.max(1, timeline.at(-1).time.getTime() - first);
  for (const event of timeline) {
    const dot = document.createElement("span");
    dot.className = `label-${event.label}`;
    dot.style.left = `${timeline.length === 1 ? 50 : ((event.time.getTime() - first) / span) * 100}%`;
    dot.title = `${formatDateTime(event.time)}: ${t(`label_${event.label}`)}`;
    strip.append(dot);
  }
}

function renderTimeline(timeline) {
  const list = byId("timeline");
  list.replaceChildren();
  // Newest first: the latest open is what people come to see.
  for (const event of [...timeline].reverse()) {
    const item = document.createElement("li");
    item.className = `label-${event.label}`;
    const time = document.createElement("time");
    time.dateTime = event.time.toISOString();
    time.textContent = formatDateTime(event.time);
    item.append(time, t(`label_${event.label}`));
    if (event.elsewhere) {
      const hint = document.createElement("span");
      hint.className = "elsewhere";
      hint.textContent = ` — ${t("timelineElsewhere")}`;
      item.append(hint);
    }
    list.append(item);
  }
}

function renderLinks(links) {
  const list = byId("links");
  list.replaceChildren(
    ...links.map((link) => {
      const item = document.createElement("li");
      const key = link.clicks === 1 ? "messageLinkClick" : "messageLinkClicks";
      item.textContent = t(key, [link.text || link.target, String(link.clicks)]);
      item.title = link.target;
      return item;
    }),
  );
  list.hidden = links.length === 0;
}

function renderRecipients(recipients) {
  const list = byId("recipients");
  list.replaceChildren(
    ...recipients.map((row) => {
      const item = document.createElement("li");
      item.className = row.opened ? "opened" : "unopened";
      const parts = [
        row.recipient,
        row.opened
          ? t(row.opens === 1 ? "messageRecipientOpenedOnce" : "messageRecipientOpened", [
              formatDateTime(row.firstOpen),
              String(row.opens),
              formatDateTime(row.lastOpen),
            ])
          : t("messageRecipientNotOpened"),
      ];
      if (row.device) {
        parts.push(t("messageRecipientDevice", [row.device]));
      }
      if (row.clicks) {
        parts.push(t("messageRecipientClicks", [String(row.clicks)]));
      }
      item.textContent = parts.join(" — ");
      return item;
    }),
  );
  byId("perRecipient").hidden = recipients.length === 0;
}

/** "Opens not visible for this recipient" / "Opens not measurable", with who and why, for a mail
 * nobody opened whose recipients' opens cannot show (instead of a bare "Not opened yet"). */
const notSeenWords = { no_images: "tagNotVisible", not_measurable: "tagNotMeasurable" };

function renderNotSeen(summary) {
  const key = { no_images: "messageNotVisible", not_measurable: "messageNotMeasurable" }[summary.notSeen];
  byId("notSeen").hidden = !key || summary.opened;
  if (key) {
    byId("notSeen").textContent = t(key, [summary.notSeenReason]);
  }
}

function renderStatus(summary) {
  byId("state").hidden = true;
  byId("opens").textContent = String(summary.opens);
  byId("firstOpen").textContent = summary.firstOpen
    ? formatDateTime(summary.firstOpen)
    : t(summary.replies > 0 ? "messageReadByReply" : notSeenWords[summary.notSeen] ?? "messageNoOpens");
  byId("lastOpen").textContent = formatDateTime(summary.lastOpen);
  byId("clicks").textContent = summary.clicks
    ? t("messageClicksLast", [String(summary.clicks), formatDateTime(summary.lastClick)])
    : String(summary.clicks);
  byId("replies").textContent = summary.replies
    ? t("messageRepliesFrom", [String(summary.replies), summary.repliedBy, formatDateTime(summary.lastReply)])
    : t("messageRepliesNone");
  byId("undelivered").textContent = t("messageUndelivered", [summary.undelivered, summary.undeliveredReason]);
  byId("undelivered").hidden = !summary.undelivered;
  renderNotSeen(summary);
  renderLinks(summary.links);
  renderRecipients(summary.recipients);
  renderStrip(summary.timeline);
  renderTimeline(summary.timeline);
  byId("earlier").hidden = summary.hiddenEarlier === 0;
  byId("earlier").textContent = t("messageEarlierHidden", [String(summary.hiddenEarlier)]);
  const { open, proxy, prefetch, self } = summary.counts;
  byId("breakdown").textContent = t("messageBreakdown", [open, proxy, prefetch, self].map(String));
  byId("shortId").textContent = summary.shortId ? t("messageShortId", [summary.shortId]) : "";
  byId("status").hidden = false;
}

/** What became of this mail's Sent copy, from the add-on's own record. */
async function renderSentCopy(messageId) {
  const status = await loadSentCopyStatus(messageId);
  if (!status) {
    return;
  }
  byId("sentCopy").textContent = t(`sentCopy_${status.state}`, [status.reason || ""]);
  byId("sentCopy").hidden = false;
}

/** The follow-up button: the background writes it; if no one is left to write to, it says so. */
function offerFollowUp(messageId) {
  byId("followUp").title = t("followUpWriteTitle");
  byId("followUp").addEventListener("click", async () => {
    try {
      const written = await browser.runtime.sendMessage({ command: FOLLOW_UP, messageId });
      if (written?.opened) {
        window.close();
        return;
      }
      byId("followUp").disabled = true;
      byId("followUpState").textContent = t("followUpNobody");
    } catch (error) {
      byId("followUpState").textContent = helperProblemText(error);
    }
  });
  byId("followUpRow").hidden = false;
}

async function main() {
  localizePage();
  byId("openTracked").addEventListener("click", async (event) => {
    event.preventDefault();
    await browser.tabs.create({ url: TRACKED_PAGE });
    window.close();
  });

  const [tab] = await browser.tabs.query({ active: true, currentWindow: true });
  const messages = messagesOf(await browser.messageDisplay.getDisplayedMessages(tab.id));
  if (messages.length !== 1) {
    showState(t("messageSelectOne"));
    return;
  }
  const messageId = messages[0].headerMessageId;
  if (!messageId) {
    showState(t("messageNoMessageId"));
    return;
  }
  await renderSentCopy(messageId);
  let data;
  try {
    data = await createHelper().status({ messageId });
  } catch (error) {
    showState(helperProblemText(error), true);
    return;
  }
  const summary = summarizeStatus(data);
  if (!summary.tracked) {
    showState(t("messageNotTracked"));
    return;
  }
  renderStatus(summary);
  offerFollowUp(messageId);
}

main().catch((error) => showState(String(error?.message ?? error), true));
