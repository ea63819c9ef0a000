// The options page: default tracking and link tracking per identity, the "block sending" option,
// the clean Sent copy, the pixel server's host permission and how it was last seen, and the
// helper's health. Every option is read and written through settings.mjs's table.

import { helperProblemText, localizePage, t } from "../modules/i18n.mjs";
import { PROTOCOL, createHelper } from "../modules/nativeHost.mjs";
import { PERMISSION_REASONS } from "../modules/permissions.mjs";
import { originPatternOf } from "../modules/pixelBlocker.mjs";
import { filesOwnSentCopy } from "../modules/sentCopy.mjs";
import { serverSeenLines } from "../modules/serverSeen.mjs";
import { loadSettings, maxIndividual, rememberPixelBase, saveIdentitySetting, saveSetting } from "../modules/settings.mjs";
import { DEFAULT_TRACKING } from "../modules/tracking.mjs";

const helper = createHelper();
const byId = (id) => document.getElementById(id);

function flashSaved() {
  byId("saved").hidden = false;
  setTimeout(() => {
    byId("saved").hidden = true;
  }, 1500);
}

async function renderOwnCopyServers() {
  const accounts = await browser.accounts.list(false);
  const concerned = accounts
    .flatMap((account) => account.identities ?? [])
    .filter((identity) => filesOwnSentCopy(identity.email));
  byId("ownCopyServers").textContent = t("optionsSentCopyOwnServer", [concerned.map((i) => i.email).join(", ")]);
  byId("ownCopyServers").hidden = concerned.length === 0;
}

// One checkbox per identity for a per-identity setting (settings[key][identity.id]).
async function renderIdentities(settings, listId, key, fallback) {
  const list = byId(listId);
  list.replaceChildren();
  const accounts = await browser.accounts.list(false);
  const identities = accounts.flatMap((account) => account.identities ?? []);
  if (identities.length === 0) {
    const item = document.createElement("li");
    item.textContent = t("optionsNoIdentities");
    list.append(item);
    return;
  }
  for (const identity of identities) {
    const item = document.createElement("li");
    const label = document.createElement("label");
    const box = document.createElement("input");
    box.type = "checkbox";
    box.checked = settings[key][identity.id] ?? fallback;
    box.addEventListener("change", async () => {
      await saveIdentitySetting(key, identity.id, box.checked);
      flashSaved();
    });
    const name = identity.name ? `${identity.name} <${identity.email}>` : identity.email;
    label.append(box, ` ${name}`);
    item.append(label);
    list.append(item);
  }
}

async function renderGrantState(pattern) {
  const granted = await browser.permissions.contains({ origins: [pattern] });
  byId("grantState").textContent = t(granted ? "optionsBlockGranted" : "optionsBlockDenied");
  byId("grant").hidden = granted;
}

async function renderServer() {
  let config;
  try {
    config = await helper.config();
  } catch (error) {
    byId("server").textContent = `${t("optionsServerUnknown")} ${helperProblemText(error)}`;
    byId("server").className = "problem";
    return;
  }
  await rememberPixelBase(config.pixel_base);
  const pattern = originPatternOf(config.pixel_base);
  byId("server").textContent = t("optionsServerIs", [config.pixel_base]);
  if (config.problem) {
    // The helper's daemon cannot fold: counts shown anywhere are stale until this is fixed.
    byId("server").textContent += ` ${t("optionsNotCounting", [config.problem])}`;
    byId("server").className = "problem";
  }
  renderServerSeen(config.server_seen);
  // A loopback or private server URL: the helper says no recipient can load the pixel, and the fix.
  byId("unreachable").textContent = config.unreachable ?? "";
  byId("unreachable").hidden = !config.unreachable;
  if (!pattern) {
    return;
  }
  const grant = byId("grant");
  grant.textContent = t("optionsBlockGrant", [pattern]);
  // permissions.request must run in the click itself (a user action), so the
  // pattern is worked out beforehand and nothing is awaited before the call.
  grant.addEventListener("click", () => {
    browser.permissions
      .request({ origins: [pattern] })
      .then(() => renderGrantState(pattern))
      .catch((error) => {
        byId("grantState").textContent = String(error?.message ?? error);
      });
  });
  await renderGrantState(pattern);
}

// How the pixel server answered this computer's pulls when last seen (each server's own line when
// there are several), or when a sync tool last brought opens.
function renderServerSeen(seen) {
  const list = byId("serverSeen");
  list.replaceChildren(
    ...serverSeenLines(seen).map(({ text, down }) => {
      const item = document.createElement("li");
      item.textContent = text;
      item.className = down ? "problem" : "note";
      return item;
    }),
  );
  list.hidden = list.childElementCount === 0;
}

async function renderHelper() {
  const target = byId("helper");
  try {
    const info = await helper.ping();
    const problems = [];
    if (info.protocol !== PROTOCOL) {
      problems.push(t("helperProtocolMismatch", [String(info.protocol), String(PROTOCOL)]));
    }
    const ours = browser.runtime.getManifest().version;
    if (info.version !== ours) {
      problems.push(t("helperVersionMismatch", [String(info.version), ours]));
    }
    target.textContent = problems.length
      ? problems.join(" ")
      : t("optionsHelperOk", [String(info.version), String(info.protocol)]);
    target.className = problems.length ? "problem" : "";
  } catch (error) {
    target.textContent = helperProblemText(error);
    target.className = "problem";
  }
}

// Each permission the manifest asks for, with why (modules/permissions.mjs; the README says the same).
function renderPermissions() {
  const list = byId("permissions");
  for (const [permission, key] of PERMISSION_REASONS) {
    const item = document.createElement("li");
    const name = document.createElement("code");
    name.textContent = permission;
    item.append(name, ` — ${t(key)}`);
    list.append(item);
  }
}

async function main() {
  localizePage();
  renderPermissions();
  const settings = await loadSettings();
  const block = byId("blockOnHelperFailure");
  block.checked = settings.blockOnHelperFailure;
  block.addEventListener("change", async () => {
    await saveSetting("blockOnHelperFailure", block.checked);
    flashSaved();
  });
  const cleanCopy = byId("cleanSentCopy");
  cleanCopy.checked = settings.cleanSentCopy;
  cleanCopy.addEventListener("change", async () => {
    await saveSetting("cleanSentCopy", cleanCopy.checked);
    flashSaved();
  });
  const individualMax = byId("individualMax");
  individualMax.value = String(settings.individualMax);
  individualMax.addEventListener("change", async () => {
    // Out of range falls back to the default, and the field shows what is kept.
    const kept = maxIndividual(individualMax.value);
    individualMax.value = String(kept);
    await saveSetting("individualMax", kept);
    flashSaved();
  });
  await renderOwnCopyServers();
  await renderIdentities(settings, "identities", "identityDefaults", DEFAULT_TRACKING);
  // Links are tracked wherever the pixel is, unless turned off here.
  await renderIdentities(settings, "linkIdentities", "trackLinks", true);
  // Both spawn the helper; run them side by side.
  await Promise.all([renderServer(), renderHelper()]);
}

main().catch((error) => {
  byId("helper").textContent = String(error?.message ?? error);
  byId("helper").className = "problem";
});
