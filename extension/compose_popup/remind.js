// The Track popup's reminder row: "remind me in N days if not opened / if no reply" for this email.
// Shown while the email is tracked; starts from the identity's default days and condition
// (options), and the
// choice is kept for this compose tab until it is sent (reminders.mjs).

import { composeView } from "../modules/composeIndicator.mjs";
import { popupComposeTabId } from "../modules/composeTabs.mjs";
import { localizePage } from "../modules/i18n.mjs";
import {
  DEFAULT_REMIND_DAYS,
  loadTabChoice,
  loadTabRemindIf,
  remindDaysFor,
  remindIfFor,
  saveTabChoice,
} from "../modules/reminders.mjs";
import { cleanDays, loadSetting } from "../modules/settings.mjs";

const byId = (id) => document.getElementById(id);

async function render(tabId) {
  const { details, view } = await composeView(tabId);
  const [choice, defaults, tabRemindIf, ifDefaults] = await Promise.all([
    loadTabChoice(tabId), loadSetting("remindDefaults"), loadTabRemindIf(tabId), loadSetting("remindIfDefaults")]);
  const days = remindDaysFor({ tabChoice: choice, identityDefault: defaults[details.identityId] });
  const remindIf = remindIfFor({ tabChoice: tabRemindIf, identityDefault: ifDefaults[details.identityId] });
  byId("remindRow").hidden = view.status !== "tracked";
  byId("remind").checked = days > 0;
  byId("remindDays").value = String(days || cleanDays(defaults[details.identityId]) || DEFAULT_REMIND_DAYS);
  byId("remindDays").disabled = days === 0;
  byId("remindIf").value = remindIf;
  byId("remindIf").disabled = days === 0;
}

async function main() {
  localizePage(byId("remindRow"));
  const tabId = await popupComposeTabId();
  const save = async () => {
    const days = cleanDays(byId("remindDays").value) || DEFAULT_REMIND_DAYS;
    await saveTabChoice(tabId, byId("remind").checked ? days : 0, undefined, byId("remindIf").value);
    await render(tabId);
  };
  byId("remind").addEventListener("change", save);
  byId("remindDays").addEventListener("change", save);
  byId("remindIf").addEventListener("change", save);
  // The Track toggle (popup.js) changes whether there is anything to remind of.
  browser.storage.onChanged.addListener((changes, area) => {
    if (area === "session" && `compose:${tabId}` in changes) {
      render(tabId);
    }
  });
  await render(tabId);
}

main().catch((error) => console.error("mailtracker: reminder row: %s", error));
