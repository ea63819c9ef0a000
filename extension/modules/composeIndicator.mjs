// Works out what the Track button shows for one compose tab, and shows it.

import { createTabStore } from "./composeTabs.mjs";
import { t } from "./i18n.mjs";
import { loadSettings } from "./settings.mjs";
import { describeCompose, isTrackingWanted } from "./tracking.mjs";

const ICONS = {
  tracked: "/icons/track-on.svg",
  off: "/icons/track-off.svg",
  untrackable: "/icons/track-off.svg",
  helperDown: "/icons/track-off.svg",
};
// How long the compose window waits for the helper before it says it cannot be reached.
export const HELPER_CHECK_MS = 3000;

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

/**
 * What the Track button shows: the view's status, or "helperDown" when a mail that would
 * be tracked cannot be, because the helper does not answer (it would go out untracked).
 */
export function buttonStatus(view, helperReachable) {
  return view.status === "tracked" && helperReachable === false ? "helperDown" : view.status;
}

/**
 * Sets the Track button's icon and tooltip for the tab. With a helper, a mail that would
 * be tracked first checks that the helper answers, so the button says so before Send.
 */
export async function refreshComposeAction(tabId, { helper } = {}) {
  const { view } = await composeView(tabId);
  let reachable = null;
  if (helper && view.status === "tracked") {
    reachable = await Promise.race([
      helper.ping().then(() => true, () => false),
      new Promise((resolve) => setTimeout(() => resolve(false), HELPER_CHECK_MS)),
    ]);
  }
  const status = buttonStatus(view, reachable);
  await browser.composeAction.setIcon({ tabId, path: ICONS[status] });
  await browser.composeAction.setTitle({ tabId, title: t(`buttonTitle_${status}`) });
}
