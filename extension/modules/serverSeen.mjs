// The words for the helper's server_seen (its config answer): how the pixel server answered this
// computer's pulls when last seen, or, where a sync tool brings the hits, when they last arrived.
// The one owner of that wording: the Track button's popup and the options page both say it.

import { formatMoment, t } from "./i18n.mjs";

/** Whether server_seen (or one of its servers) says the server did not answer, or refused. */
export function isServerDown(seen) {
  return seen?.state === "unreachable" || seen?.state === "failing";
}

/**
 * One server as last seen (server_seen itself, or one entry of its servers), in a sentence:
 *   unreachable - "the pixel server did not answer at 4:39 AM (connection refused); opens will show
 *                 once it is back." and the hint for its error code (the helper's one fix);
 *   failing     - "this computer could not take opens from the pixel server at 4:39 AM: <message>"
 *                 and its hint;
 *   reachable   - "the pixel server has answered this computer's pulls since 4:39 AM.";
 *   unknown     - with how "pull": not pulled from yet; with how "sync": when the hits last arrived
 *                 (never an alarm: nothing here knows whether that server answers).
 * "" when there is nothing to say (a helper too old to answer server_seen).
 */
export function serverSeenText(seen, now = new Date()) {
  if (!seen) {
    return "";
  }
  const at = (stamp) => formatMoment(new Date(stamp), now);
  if (seen.how === "sync") {
    return seen.hits_changed ? t("serverHitsSynced", [at(seen.hits_changed)]) : t("serverHitsSyncedNone");
  }
  let what;
  if (seen.state === "unreachable") {
    what = t("serverNotAnswered", [at(seen.since), seen.reason || seen.message]);
  } else if (seen.state === "failing") {
    what = t("serverPullFailing", [at(seen.since), seen.message]);
  } else if (seen.state === "reachable") {
    return t("serverAnswering", [at(seen.since)]);
  } else {
    return t("serverNotPulledYet");
  }
  return seen.hint ? `${what} ${seen.hint}` : what;
}

/**
 * The options page's lines for server_seen, each {text, down}: every pull server's own
 * ("Last seen: …", named by its host when there are several), or the sync tool's one line.
 */
export function serverSeenLines(seen, now = new Date()) {
  if (!seen) {
    return [];
  }
  if (seen.how === "sync") {
    return [{ text: serverSeenText(seen, now), down: false }];
  }
  const servers = seen.servers?.length ? seen.servers : [seen];
  return servers.map((server) => ({
    text:
      servers.length > 1
        ? t("optionsServerSeenOf", [server.server, serverSeenText(server, now)])
        : t("optionsServerSeen", [serverSeenText(server, now)]),
    down: isServerDown(server),
  }));
}
