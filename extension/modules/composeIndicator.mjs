// Works out what the Track button shows for one compose tab, and shows it.

import { createTabStore } from "./composeTabs.mjs";
import { t } from "./i18n.mjs";
import { loadSettings } from "./settings.mjs";
import { describeCompose, isTrackingWanted } from "./tracking.mjs";

const ICONS = {
  tracked: "/icons/track-on.svg",
  off: "/icons/track-off.svg",
  untrackable: "/icons/track-off.svg",
};

/** {details, view, choice} for the compose tab; view comes from tracking.describeCompose. */
export async function composeView(tabId, tabStore = createTabStore()) {
  const [details, settings, state] = await Promise.all([
    browser.compose.getComposeDetails(tabId),
    loadSettings(),
    tabStore.get(tabId),
  ]);
  const wanted = isTrackingWanted({
    identityId: details.identityId,
    tabChoice: state.choice,
    identityDefaults: settings.identityDefaults,
  });
  return { details, view: describeCompose({ wanted, details }), choice: state.choice };
}

/** Sets the Track button's icon and tooltip for the tab. */
export async function refreshComposeAction(tabId) {
  const { view } = await composeView(tabId);
  await browser.composeAction.setIcon({ tabId, path: ICONS[view.status] });
  await browser.composeAction.setTitle({ tabId, title: t(`buttonTitle_${view.status}`) });
}
