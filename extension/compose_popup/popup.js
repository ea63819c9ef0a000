// The Track popup: shows whether this compose tab's email will be tracked, and changes that.

import { buttonStatus, composeView, helperReadiness, refreshComposeAction } from "../modules/composeIndicator.mjs";
import { createTabStore, popupComposeTabId } from "../modules/composeTabs.mjs";
import { localizePage, t } from "../modules/i18n.mjs";
import { individualOffer } from "../modules/individual.mjs";
import { TRACKING_PAUSED, createHelper } from "../modules/nativeHost.mjs";
import { loadSetting } from "../modules/settings.mjs";
import { TRACKED_PAGE } from "../modules/trackedView.mjs";

const tabStore = createTabStore();
const helper = createHelper();
const byId = (id) => document.getElementById(id);

// "Send individually": offered for a tracked mail to 2..N recipients, never on by itself.
async function renderIndividual(tabId, details, view) {
  const state = await tabStore.get(tabId);
  const offer = individualOffer(details, { max: await loadSetting("individualMax") });
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
  // Asked only when the mail would be tracked: that is when a helper that cannot add the
  // pixel changes what happens at Send, and the user should know before pressing it.
  const readiness = view.status === "tracked" ? await helperReadiness(helper) : null;
  const status = buttonStatus(view, readiness);
  byId("headline").textContent = t(`composeHeadline_${status}`);
  byId("explanation").textContent = t(status === view.status ? explanationKey(view) : `composeExplain_${status}`);
  await showProblem(readiness);
  byId("several").hidden = !(view.several && view.status === "tracked");
  const toggle = byId("toggle");
  toggle.textContent = t(view.wanted ? "composeTurnOff" : "composeTurnOn");
  // Where no pixel can go, the choice changes nothing that would be sent.
  toggle.hidden = view.reason === "plainTextEditor" || view.reason === "redirect";
  byId("switchFormat").hidden = !view.canSwitchToHtml;
  await renderIndividual(tabId, details, view);
  // The button's tooltip says the same once this popup closes.
  await refreshComposeAction(tabId, { readiness });
  return view;
}

// What stands between this mail and its tracking, with the one fix that applies.
async function showProblem(readiness) {
  let problem = null;
  if (readiness?.state === "unreachable" || readiness?.state === "serverDown") {
    problem = readiness.problem;
  } else if (readiness && readiness.state !== "ready") {
    // Paused from the tray: sent untracked, never stopped; otherwise as the options say.
    const blockOnHelperFailure = await loadSetting("blockOnHelperFailure");
    const stopped = blockOnHelperFailure && readiness.code !== TRACKING_PAUSED;
    problem = `${t(stopped ? "composeHelperWarningBlock" : "composeHelperWarning")} ${readiness.problem}`;
  }
  byId("helperProblem").textContent = problem ?? "";
  byId("helperProblem").hidden = problem === null;
  byId("serverNote").textContent = readiness?.note ?? "";
  byId("serverNote").hidden = !readiness?.note;
}

async function main() {
  localizePage();
  const tabId = await popupComposeTabId();
  let view = await render(tabId);

  byId("toggle").addEventListener("click", async () => {
    await tabStore.update(tabId, { choice: !view.wanted });
    view = await render(tabId);
  });
  byId("individually").addEventListener("change", async () => {
    await tabStore.update(tabId, { individually: byId("individually").checked });
    view = await render(tabId);
  });
  byId("switchFormat").addEventListener("click", async () => {
    await browser.compose.setComposeDetails(tabId, { deliveryFormat: "both" });
    view = await render(tabId);
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
