// Registers mailtracker's listeners; the logic lives in modules/.
//
// Thunderbird suspends an idle Manifest V3 background and wakes it only for
// listeners added synchronously at top level, so this file does nothing else.

import { createTabQueue, createTabStore } from "./modules/composeTabs.mjs";
import { refreshComposeAction } from "./modules/composeIndicator.mjs";
import { createDisplayWatcher } from "./modules/displayWatch.mjs";
import { FOLLOW_UP, createFollowUp } from "./modules/followUp.mjs";
import { createIndividualSend } from "./modules/individual.mjs";
import { identityEmails } from "./modules/messageInfo.mjs";
import { BADGE_SEEN, COUNTS_CHANGED, HELPER_RELAY, createConnectedHelper } from "./modules/nativeHost.mjs";
import { notify } from "./modules/notify.mjs";
import { LIST_LIMIT, createOpenWatch } from "./modules/openWatch.mjs";
import { REMINDER_ALARM, createReminders } from "./modules/reminders.mjs";
import { createReplyWatch } from "./modules/replyWatch.mjs";
import { createRequestBlocker, syncBlockRules } from "./modules/pixelBlocker.mjs";
import { createSendFlow } from "./modules/sendFlow.mjs";
import { createSentCopy } from "./modules/sentCopy.mjs";
import { loadPixelBases, loadSentIds, loadSetting, rememberPixelBase } from "./modules/settings.mjs";
import { TRACKED_PAGE } from "./modules/trackedView.mjs";
import { isTrackingWanted } from "./modules/tracking.mjs";

// One port for the background's life: a warm helper, which also keeps the counts current.
const helper = createConnectedHelper({
  onChanged: (data) => {
    // Open pages (the Tracked mail page) refresh; none open is no error.
    browser.runtime.sendMessage({ event: COUNTS_CHANGED }).catch(() => {});
    openWatch.setHelperState(data);
    openWatch.refresh().catch(logError);
  },
  onSubscribed: (data) => {
    openWatch.setHelperState(data);
    openWatch.refresh().catch(logError);
  },
});

const tabStore = createTabStore();
// A reply to a tracked mail's Sent copy, to those who have not answered (followUp.mjs).
const followUp = createFollowUp({ helper, messenger: browser, tabStore, listLimit: LIST_LIMIT });
// The Sent list's tags, the badge, open notifications and due reminders (openWatch.mjs).
const openWatch = createOpenWatch({ helper, messenger: browser, followUp,
  t: (name, subs) => browser.i18n.getMessage(name, subs) });
const runForTab = createTabQueue();
// Replies and bounces to tracked mail, found in the user's own mailboxes (replyWatch.mjs).
const replyWatch = createReplyWatch({ helper, messenger: browser });
const reminders = createReminders({ helper, runForTab });
// A periodic look as well: it reopens a port that died and catches a missed change.
const CHECK_ALARM = "mailtracker-check";

const sendFlow = createSendFlow({
  helper,
  tabStore,
  runForTab,
  onSent: (sent) => reminders.onSent(sent),
  DOMParser,
  notify,
  editor: {
    readBody: async (tabId) => (await browser.compose.getComposeDetails(tabId)).body,
    writeBody: (tabId, body) => browser.compose.setComposeDetails(tabId, { body }),
  },
});

const sentCopy = createSentCopy({
  messenger: browser,
  notify: (outcome) => notify.sentCopy(outcome),
  loadPixelBases: () => loadPixelBases(),
  DOMParser,
  sentHeadersFor: async (tabId) => (await tabStore.get(tabId)).sentHeaders,
});

// "Send individually": one copy per recipient (individual.mjs).
const individualSend = createIndividualSend({
  compose: browser.compose,
  closeTab: (tabId) => browser.tabs.remove(tabId),
  tabStore,
  loadMax: () => loadSetting("individualMax"),
  isWanted: async (tab, details, state) =>
    isTrackingWanted({
      identityId: details.identityId,
      tabChoice: state.choice,
      identityDefaults: await loadSetting("identityDefaults"),
    }),
  notify: (outcome) => notify.individualFailed(outcome),
  newId: () => crypto.randomUUID(),
  sentCopyDone: (messageId) => sentCopy.finished(messageId),
  carryChoices: (fromTabId, toTabId) => reminders.carry(fromTabId, toTabId),
});

const onMessagesDisplayed = createDisplayWatcher({
  helper,
  loadOwnEmails: async () => identityEmails(await browser.accounts.list(false)),
  loadSentIds: () => loadSentIds(),
  setActionEnabled: (tabId, enabled) =>
    enabled ? browser.messageDisplayAction.enable(tabId) : browser.messageDisplayAction.disable(tabId),
});

function logError(error) {
  console.error("mailtracker:", error);
}

async function refreshPixelConfig() {
  try {
    const config = await helper.config();
    await rememberPixelBase(config.pixel_base);
  } catch (error) {
    // The options page and the next send report this; a start-up notification would only nag.
    console.warn("mailtracker: helper config unavailable: %s", error.message);
  }
  await syncBlockRules(await loadPixelBases());
}

// The Sent copy of a tracked mail is staged, then replaced by a clean one (sentCopy.mjs).
// A mail sent individually is cancelled here and goes out as one copy per recipient.
browser.compose.onBeforeSend.addListener(async (tab, details) => {
  reminders.noteSend(tab.id, details.identityId).catch(logError);
  return (
    (await individualSend.beforeSend(tab, details)) ??
    sentCopy.amendBeforeSend(tab, details, await sendFlow.beforeSend(tab, details))
  );
});

// Must return nothing: a returned value once left compose.sendMessage() unsettled.
browser.compose.onAfterSend.addListener((tab, sendInfo) => {
  sendFlow.afterSend(tab, sendInfo).catch(logError);
  sentCopy.afterSend(tab, sendInfo).catch(logError);
});

browser.tabs.onRemoved.addListener((tabId) => {
  sendFlow.forgetTab(tabId).catch(logError);
  sentCopy.forgetTab(tabId).catch(logError);
  reminders.forgetTab(tabId).catch(logError);
});

// A copy filed in the staging folder later (Send Later) is finished when it arrives;
// a late second copy of an import a crash interrupted is deleted when Sent shows it.
browser.folders.onFolderInfoChanged.addListener((folder, info) => {
  sentCopy.stagingChanged(folder, info).catch(logError);
  sentCopy.settleDuplicates(folder).catch(logError);
});

browser.tabs.onCreated.addListener((tab) => {
  if (tab.type === "messageCompose") {
    // The button says at once if the helper is down: such a mail would go out untracked.
    refreshComposeAction(tab.id, { helper }).catch(logError);
  }
});

browser.compose.onIdentityChanged.addListener((tab) => {
  // Another identity may track by default where this one did not: ask the helper again.
  refreshComposeAction(tab.id, { helper }).catch(logError);
});

// <all_urls> because the pixel server is only known at run time; the listener
// only sees origins the user granted (see README.md), i.e. the pixel server.
browser.webRequest.onBeforeRequest.addListener(
  createRequestBlocker(() => loadPixelBases()),
  { urls: ["<all_urls>"] },
  ["blocking"],
);

browser.messageDisplay.onMessagesDisplayed.addListener((tab, messages) => {
  onMessagesDisplayed(tab, messages).catch(logError);
});

// Every folder (true: monitorAllFolders), so a reply the user's filters moved is seen too.
browser.messages.onNewMailReceived.addListener((folder, messages) => {
  replyWatch.onNewMail(folder, messages).catch(logError);
}, true);

browser.action.onClicked.addListener(() => {
  browser.tabs.create({ url: TRACKED_PAGE }).catch(logError);
});

// A staged Sent copy left by a crash or a restart is finished at the next start.
// Reminders that came due while Thunderbird was closed are caught here too.
function start() {
  refreshPixelConfig().catch(logError);
  sentCopy
    .finishStaged()
    .then(() => sentCopy.settleDuplicates())
    .catch(logError);
  openWatch.restoreBadge().catch(logError);
  openWatch.refresh().catch(logError);
  // Replies that arrived while Thunderbird was closed.
  replyWatch.catchUp().catch(logError);
  // Older Thunderbirds return nothing here rather than a promise.
  Promise.resolve(browser.alarms.create(CHECK_ALARM, { periodInMinutes: 5 })).catch(logError);
}

browser.runtime.onStartup.addListener(start);
browser.runtime.onInstalled.addListener(start);

browser.alarms.onAlarm.addListener((alarm) => {
  if (alarm.name === REMINDER_ALARM || alarm.name === CHECK_ALARM) {
    openWatch.refresh().catch(logError);
  }
});

browser.notifications.onClicked.addListener((notificationId) => {
  openWatch.openMailOf(notificationId).catch(logError);
});

browser.runtime.onMessage.addListener((message) => {
  // The Tracked mail page was opened: the user has seen the new opens.
  if (message?.command === BADGE_SEEN) {
    return openWatch.clearBadge();
  }
  // A page's request to the helper, over the background's port (no process per request).
  if (message?.command === HELPER_RELAY && message.request && typeof message.request === "object") {
    return helper.relay(message.request);
  }
  // "Write a follow-up" on the Tracked mail page or in the Opens popup.
  if (message?.command === FOLLOW_UP) {
    return followUp.write({ tagId: String(message.tagId ?? ""), messageId: String(message.messageId ?? "") });
  }
  return undefined;
});

// Block rules only take effect on granted origins, so re-apply them when the grant changes.
browser.permissions.onAdded.addListener(() => {
  loadPixelBases().then(syncBlockRules).catch(logError);
});

browser.storage.onChanged.addListener((changes, areaName) => {
  if (areaName === "local" && changes.pixelBases) {
    syncBlockRules(changes.pixelBases.newValue ?? []).catch(logError);
  }
  // A clean Sent copy just arrived: the state it should show may have been waiting for it.
  if (areaName === "local" && changes.sentCopyStatus) {
    openWatch.refresh().catch(logError);
  }
});
