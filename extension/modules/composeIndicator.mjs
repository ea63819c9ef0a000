// Works out what the Track button shows for one compose tab, and shows it.

import { createTabStore } from "./composeTabs.mjs";
import { helperProblemText, t } from "./i18n.mjs";
import { HelperError, PROTOCOL } from "./nativeHost.mjs";
import { isServerDown, serverSeenText } from "./serverSeen.mjs";
import { loadSettings } from "./settings.mjs";
import { describeCompose, isTrackingWanted } from "./tracking.mjs";

const ICONS = {
  tracked: "/icons/track-on.svg",
  off: "/icons/track-off.svg",
  untrackable: "/icons/track-off.svg",
  helperDown: "/icons/track-off.svg",
  cannotMint: "/icons/track-off.svg",
  unreachable: "/icons/track-on.svg",
  serverDown: "/icons/track-on.svg",
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
 * Whether a mail sent now would really be tracked, as the helper says before Send:
 *   {state: "ready"}                  - it answers and can mint, and its server is public;
 *   {state: "helperDown", problem}    - no helper answers (or one of another protocol): untracked;
 *   {state: "cannotMint", problem}    - it answers but cannot mint (no secret, paused): untracked;
 *   {state: "unreachable", problem}   - tracked, but the server URL is loopback or private, so no
 *                                       recipient can load the pixel;
 *   {state: "serverDown", problem}    - tracked, but the pixel server did not answer this computer's
 *                                       pulls when last seen (or refused them): opens show later.
 * problem is the text with the one fix that applies. "ready" may carry a note: when opens last
 * arrived through a sync tool (nothing else is known of a server this computer does not pull).
 */
export async function helperReadiness(helper, { timeoutMs = HELPER_CHECK_MS } = {}) {
  const timeout = new Promise((_, reject) =>
    setTimeout(() => reject(new HelperError("timeout", t("helperTimeout"))), timeoutMs),
  );
  let config;
  try {
    const info = await Promise.race([helper.ping(), timeout]);
    if (info.protocol !== PROTOCOL) {
      return {
        state: "helperDown",
        problem: t("helperProtocolMismatch", [String(info.protocol), String(PROTOCOL)]),
      };
    }
    config = await Promise.race([helper.config(), timeout]);
  } catch (error) {
    return { state: "helperDown", problem: helperProblemText(error) };
  }
  if (config.mint_problem) {
    const { code, message, hint } = config.mint_problem;
    return { state: "cannotMint", code, problem: `${message} ${hint}` };
  }
  if (config.unreachable) {
    return { state: "unreachable", problem: config.unreachable };
  }
  const seen = config.server_seen;
  if (isServerDown(seen)) {
    return { state: "serverDown", problem: t("composeTrackedBut", [serverSeenText(seen)]) };
  }
  if (seen?.how === "sync" && seen.hits_changed) {
    return { state: "ready", note: serverSeenText(seen) };
  }
  return { state: "ready" };
}

/**
 * What the Track button shows: the view's status, or, for a mail that would be tracked, what
 * the helper's readiness changes ("helperDown", "cannotMint": it would go out untracked;
 * "unreachable": tracked, but no recipient can load the pixel). No readiness: the view's status.
 */
export function buttonStatus(view, readiness) {
  if (view.status !== "tracked" || !readiness || readiness.state === "ready") {
    return view.status;
  }
  return readiness.state;
}

/**
 * Sets the Track button's icon and tooltip for the tab. A mail that would be tracked shows the
 * helper's readiness (given, or asked of ``helper``), so the button tells the truth before Send.
 */
export async function refreshComposeAction(tabId, { helper, readiness } = {}) {
  const { view } = await composeView(tabId);
  if (!readiness && helper && view.status === "tracked") {
    readiness = await helperReadiness(helper);
  }
  const status = buttonStatus(view, readiness);
  await browser.composeAction.setIcon({ tabId, path: ICONS[status] });
  await browser.composeAction.setTitle({ tabId, title: t(`buttonTitle_${status}`) });
}
