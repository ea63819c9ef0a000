// The options page's reminder defaults: per identity, the days after which a tracked email is
// reminded of (0: none, the default) and what the reminder waits for ("if not opened" or "if no
// reply"). The Track popup starts from them and changes them per email.

import { t } from "../modules/i18n.mjs";
import {
  MAX_REMIND_DAYS,
  REMIND_IF,
  cleanDays,
  cleanRemindIf,
  loadSetting,
  saveIdentitySetting,
} from "../modules/settings.mjs";

const byId = (id) => document.getElementById(id);
const CONDITION_LABELS = { not_opened: "composeRemindIfNotOpened", no_reply: "composeRemindIfNoReply" };

function saved() {
  byId("saved").hidden = false;
  setTimeout(() => {
    byId("saved").hidden = true;
  }, 1500);
}

/** The condition's choice for one identity, saved as soon as it changes. */
function conditionSelect(identity, current) {
  const select = document.createElement("select");
  select.className = "remindIf";
  for (const value of REMIND_IF) {
    const option = document.createElement("option");
    option.value = value;
    option.textContent = t(CONDITION_LABELS[value]);
    select.append(option);
  }
  select.value = cleanRemindIf(current);
  select.addEventListener("change", async () => {
    await saveIdentitySetting("remindIfDefaults", identity.id, select.value);
    saved();
  });
  return select;
}

async function main() {
  // The section's heading and help are localised with the page (options.js).
  const list = byId("remindIdentities");
  const [defaults, ifDefaults] = await Promise.all([loadSetting("remindDefaults"), loadSetting("remindIfDefaults")]);
  const accounts = await browser.accounts.list(false);
  const identities = accounts.flatMap((account) => account.identities ?? []);
  list.replaceChildren();
  for (const identity of identities) {
    const item = document.createElement("li");
    const label = document.createElement("label");
    const days = document.createElement("input");
    days.type = "number";
    days.min = "0";
    days.max = String(MAX_REMIND_DAYS);
    days.step = "1";
    days.style.width = "4em";
    days.value = String(cleanDays(defaults[identity.id]) ?? 0);
    days.addEventListener("change", async () => {
      // Not a whole number of days from 0 to MAX_REMIND_DAYS: off, and the field shows it.
      const kept = cleanDays(days.value) ?? 0;
      days.value = String(kept);
      await saveIdentitySetting("remindDefaults", identity.id, kept);
      saved();
    });
    const name = identity.name ? `${identity.name} <${identity.email}>` : identity.email;
    label.append(days, ` ${t("composeRemindDays")} `);
    item.append(label, conditionSelect(identity, ifDefaults[identity.id]), ` — ${name}`);
    list.append(item);
  }
}

main().catch((error) => console.error("mailtracker: reminder defaults: %s", error));
