// Keeps the per-compose-tab state: the user's Track choice and the tag minted
// for a send attempt that Thunderbird has not yet confirmed.
//
// It lives in storage.session, not in a variable: a Manifest V3 background can
// be suspended between the popup's toggle and the send, and the state must
// survive that, yet it must not outlive Thunderbird (tab ids are reused).

function sessionArea(area) {
  return area ?? browser.storage.session;
}

function keyOf(tabId) {
  return `compose:${tabId}`;
}

/**
 * The compose tab a popup page speaks for: the active tab, or the tab its address names
 * (`?tab=N`: the Track popup opened as a page, as the e2e tests open it).
 */
export async function popupComposeTabId(search = location.search) {
  const asked = Number(new URLSearchParams(search).get("tab"));
  if (Number.isInteger(asked) && asked > 0) {
    return asked;
  }
  const [tab] = await browser.tabs.query({ active: true, currentWindow: true });
  return tab.id;
}

/** A store of {choice?: boolean, pending?: {tagId, url, html, fingerprint}} per tab id. */
export function createTabStore(area) {
  return {
    async get(tabId) {
      const key = keyOf(tabId);
      const stored = await sessionArea(area).get(key);
      return stored[key] ?? {};
    },
    async update(tabId, patch) {
      const key = keyOf(tabId);
      const current = (await sessionArea(area).get(key))[key] ?? {};
      const next = { ...current, ...patch };
      for (const [name, value] of Object.entries(next)) {
        if (value === undefined) {
          delete next[name];
        }
      }
      await sessionArea(area).set({ [key]: next });
      return next;
    },
    async remove(tabId) {
      await sessionArea(area).remove(keyOf(tabId));
    },
  };
}

/**
 * Runs tasks for one tab one after another. onBeforeSend may fire twice for
 * one send, and onAfterSend races the tab's closing; serialising per tab is
 * what keeps a second mint or an early "unsent" from happening.
 */
export function createTabQueue() {
  const tails = new Map();
  return function runForTab(tabId, task) {
    const previous = tails.get(tabId) ?? Promise.resolve();
    const run = previous.catch(() => {}).then(task);
    const tail = run.catch(() => {});
    tails.set(tabId, tail);
    tail.then(() => {
      if (tails.get(tabId) === tail) {
        tails.delete(tabId);
      }
    });
    return run;
  };
}
