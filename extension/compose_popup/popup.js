// The Track popup: shows whether this compose tab's email will be tracked, and changes that.

import { refreshComposeAction, composeView } from "../modules/composeIndicator.mjs";
import { createTabStore } from "../modules/composeTabs.mjs";
import { helperProblemText, localizePage, t } from "../modules/i18n.mjs";
import { PROTOCOL, createHelper } from "../modules/nativeHost.mjs";
import { loadSettings } from "../modules/settings.mjs";

const tabStore = createTabStore();
const helper = createHelper();
const byId = (id) => document.getElementById(id);

async function composeTabId() {
  const [tab] = await browser.tabs.query({ active: true, currentWindow: true });
  return tab.id;
}

function explanationKey(view) {
  return view.status === "untrackable" ? `composeExplain_${view.reason}` : `composeExplain_${view.status}`;
}

async function render(tabId) {
  const { view } = await composeView(tabId, tabStore);
  byId("headline").textContent = t(`composeHeadline_${view.status}`);
  byId("explanation").textContent = t(explanationKey(view));
  byId("several").hidden = !(view.several && view.status === "tracked");
  const toggle = byId("toggle");
  toggle.textContent = t(view.wanted ? "composeTurnOff" : "composeTurnOn");
  // Where no pixel can go, the choice changes nothing that would be sent.
  toggle.hidden = view.reason === "plainTextEditor" || view.reason === "redirect";
  byId("switchFormat").hidden = !view.canSwitchToHtml;
  await refreshComposeAction(tabId);
  return view;
}

// Asked only when the mail would be tracked: that is when a broken helper
// changes what happens at Send, and the user should know before pressing it.
async function checkHelper(view) {
  if (view.status !== "tracked") {
    byId("helperProblem").hidden = true;
    return;
  }
  let problem = null;
  try {
    const info = await helper.ping();
    if (info.protocol !== PROTOCOL) {
      problem = t("helperProtocolMismatch", [String(info.protocol), String(PROTOCOL)]);
    }
  } catch (error) {
    const { blockOnHelperFailure } = await loadSettings();
    problem = `${t(blockOnHelperFailure ? "composeHelperWarningBlock" : "composeHelperWarning")} ${helperProblemText(error)}`;
  }
  byId("helperProblem").textContent = problem ?? "";
  byId("helperProblem").hidden = problem === null;
}

async function main() {
  localizePage();
  const tabId = await composeTabId();
  let view = await render(tabId);
  checkHelper(view);

  byId("toggle").addEventListener("click", async () => {
    await tabStore.update(tabId, { choice: !view.wanted });
    view = await render(tabId);
    checkHelper(view);
  });
  byId("switchFormat").addEventListener("click", async () => {
    await browser.compose.setComposeDetails(tabId, { deliveryFormat: "both" });
    view = await render(tabId);
    checkHelper(view);
  });
  byId("openTracked").addEventListener("click", async (event) => {
    event.preventDefault();
    await browser.tabs.create({ url: "/tracked/tracked.html" });
    window.close();
  });
  byId("openOptions").addEventListener("click", async (event) => {
    event.preventDefault();
    await browser.runtime.openOptionsPage();
    window.close();
  });
}

main().catch((error) => {
  byId("helperProblem").textContent = String(error?.message ?? error);
  byId("helperProblem").hidden = false;
});
