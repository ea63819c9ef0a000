// The options page's reminder defaults: per identity, the days after which an unopened
// tracked email is reminded of (0: none, the default). The Track popup changes it per email.

import { t } from "../modules/i18n.mjs";
import { MAX_REMIND_DAYS, cleanDays, loadRemindDefaults, saveRemindDefault } from "../modules/reminders.mjs";

const byId = (id) => document.getElementById(id);

async function main() {
  // The section's heading and help are localised with the page (options.js).
  const list = byId("remindIdentities");
  const defaults = await loadRemindDefaults();
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
      await saveRemindDefault(identity.id, days.value);
      byId("saved").hidden = false;
      setTimeout(() => {
        byId("saved").hidden = true;
      }, 1500);
    });
    const name = identity.name ? `${identity.name} <${identity.email}>` : identity.email;
    label.append(days, ` ${t("composeRemindDays")} — ${name}`);
    item.append(label);
    list.append(item);
  }
}

main().catch((error) => console.error("mailtracker: reminder defaults: %s", error));
