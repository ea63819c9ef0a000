// The Track popup: shows whether this compose tab's email will be tracked, and changes that.

import { refreshComposeAction, composeView } from "../modules/composeIndicator.mjs";
import { createTabStore } from "../modules/composeTabs.mjs";
import { helperProblemText, localizePage, t } from "../modules/i18n.mjs";
import { individualOffer, loadIndividualMax } from "../modules/individual.mjs";
import { PROTOCOL, createHelper } from "../modules/nativeHost.mjs";
import { loadSettings } from "../modules/settings.mjs";
import { TRACKED_PAGE } from "../modules/trackedView.mjs";

const tabStore = createTabStore();
const helper = createHelper();
const byId = (id) => document.getElementById(id);

async function composeTabId() {
  // ?tab=N: the popup of that compose tab (opened as a page, e.g. by the e2e tests).
  const asked = Number(new URLSearchParams(location.search).get("tab"));
  if (Number.isInteger(asked) && asked > 0) {
    return asked;
  }
  const [tab] = await browser.tabs.query({ active: true, currentWindow: true });
  return tab.id;
}

// "Send individually": offered for a tracked mail to 2..N recipients, never on by itself.
async function renderIndividual(tabId, details, view) {
  const state = await tabStore.get(tabId);
  const offer = individualOffer(details, { max: await loadIndividualMax() });
  const tracked = view.status === "tracked";
  byId("individual").hidden = !(tracked && offer.offered);
  byId("individually").checked = state.individually === true;
  byId("individualExplain").textContent = t("composeIndividuallyExplain", [String(offer.count)]);
  byId("individualLists").hidden = offer.lists === 0;
  byId("individualTooMany").hidden = !(tracked && offer.reason === "tooMany");
  byId("individualTooMany").textContent = t("composeIndividuallyTooMany", [String(offer.max), String(offer.count)]);
  // Sent individually, "any of them" is no longer true.
  if (tracked && offer.offered && state.individually === true) {
    byId("several").hidden = true;
  }
}

function explanationKey(view) {
  return view.status === "untrackable" ? `composeExplain_${view.reason}` : `composeExplain_${view.status}`;
}

async function render(tabId) {
  const { view, details } = await composeView(tabId, tabStore);
  byId("headline").textContent = t(`composeHeadline_${view.status}`);
  byId("explanation").textContent = t(explanationKey(view));
  byId("several").hidden = !(view.several && view.status === "tracked");
  const toggle = byId("toggle");
  toggle.textContent = t(view.wanted ? "composeTurnOff" : "composeTurnOn");
  // Where no pixel can go, the choice changes nothing that would be sent.
  toggle.hidden = view.reason === "plainTextEditor" || view.reason === "redirect";
  byId("switchFormat").hidden = !view.canSwitchToHtml;
  await renderIndividual(tabId, details, view);
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
  byId("individually").addEventListener("change", async () => {
    await tabStore.update(tabId, { individually: byId("individually").checked });
    view = await render(tabId);
  });
  byId("switchFormat").addEventListener("click", async () => {
    await browser.compose.setComposeDetails(tabId, { deliveryFormat: "both" });
    view = await render(tabId);
    checkHelper(view);
  });
  byId("openTracked").addEventListener("click", async (event) => {
    event.preventDefault();
    await browser.tabs.create({ url: TRACKED_PAGE });
    window.close();
  });
  byId("openOptions").addEventListener("click", async (event) => {
    event.preventDefault();
    await browser.runtime.openOptionsPage();
    window.close();
  });
  // Every control now answers (the e2e tests wait for this).
  document.body.dataset.ready = "true";
}

main().catch((error) => {
  byId("helperProblem").textContent = String(error?.message ?? error);
  byId("helperProblem").hidden = false;
});
