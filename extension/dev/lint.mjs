// Runs `web-ext lint` and fails on anything but the warnings Thunderbird makes inevitable;
// then ESLint's recommended rules over every script (the add-on, its tests and these tools),
// which web-ext does not apply: above all a name used but never defined (no-undef), which
// would otherwise show only when that line runs in Thunderbird.
//
// web-ext lints against Firefox's schemas, so every Thunderbird API
// (compose.*, messageDisplay.*, ...) and permission (compose, messagesRead,
// accountsRead) is reported as unsupported. Those, and only those, are
// expected; any error, and any other warning or notice, fails the lint.
// Run from the extension directory: `npm run lint`.

import { spawnSync } from "node:child_process";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

import js from "@eslint/js";
import { ESLint } from "eslint";
import globals from "globals";

const extensionDir = join(dirname(fileURLToPath(import.meta.url)), "..");
// The copy `npm ci` put here, not a global one: package-lock.json pins it.
const webExtBin = join(extensionDir, "node_modules", "web-ext", "bin", "web-ext.js");

// Not part of the extension: web-ext must not lint them (node_modules and dot
// files are skipped by web-ext itself).
const IGNORED = ["tests/**", "dev/**", "package.json", "package-lock.json", "README.md"];

// Namespaces that exist only in Thunderbird.
const THUNDERBIRD_NAMESPACES = new Set([
  "accounts",
  "addressBooks",
  "cloudFile",
  "compose",
  "composeAction",
  "composeScripts",
  "folders",
  "identities",
  "mailTabs",
  "messageDisplay",
  "messageDisplayAction",
  "messageDisplayScripts",
  "messages",
  "messengerUtilities",
  "spaces",
  "spacesToolbar",
]);
const THUNDERBIRD_PERMISSIONS = new Set([
  "accountsFolders",
  "accountsRead",
  "compose",
  "compose.send",
  "messagesDelete",
  "messagesImport",
  "messagesMove",
  "messagesTags",
  "messagesTagsList",
  "messagesUpdate",
  "messagesRead",
]);

/** Why a lint message is expected for a Thunderbird extension, or null if it is not. */
function thunderbirdOnly(message) {
  if (message.code === "UNSUPPORTED_API") {
    const api = message.message.match(/^([\w.]+) is not supported/)?.[1] ?? "";
    return THUNDERBIRD_NAMESPACES.has(api.split(".")[0]) ? `Thunderbird API ${api}` : null;
  }
  if (message.code === "MANIFEST_PERMISSIONS") {
    const permission = message.message.match(/Invalid permissions "([^"]+)"/)?.[1];
    return THUNDERBIRD_PERMISSIONS.has(permission) ? `Thunderbird permission ${permission}` : null;
  }
  // The data-collection declaration addons.thunderbird.net asks for is a Firefox 140 key:
  // Thunderbird ignores it, which is all these two warnings say.
  if (/UNSUPPORTED_BY_MIN_VERSION$/.test(message.code) &&
      /"browser_specific_settings\.gecko\.data_collection_permissions"/.test(message.description ?? "")) {
    return "data_collection_permissions (Firefox 140+ key; Thunderbird ignores it)";
  }
  return null;
}

const run = spawnSync(
  process.execPath,
  [
    webExtBin,
    "lint",
    "--source-dir",
    extensionDir,
    "--self-hosted",
    "--no-config-discovery",
    "--output",
    "json",
    "--ignore-files",
    ...IGNORED,
  ],
  { encoding: "utf8" },
);

let report;
try {
  report = JSON.parse(run.stdout.slice(run.stdout.indexOf("{")));
} catch {
  process.stderr.write(run.stdout + run.stderr);
  console.error("web-ext lint did not produce a JSON report");
  process.exit(2);
}

const where = (m) => (m.file ? `${m.file}${m.line ? `:${m.line}` : ""}` : "");
const expected = [];
const problems = [...report.errors];
for (const message of [...report.warnings, ...report.notices]) {
  const reason = thunderbirdOnly(message);
  (reason ? expected : problems).push(reason ? { reason, at: where(message) } : message);
}

for (const { reason, at } of expected) {
  console.log(`expected  ${reason} (${at})`);
}
for (const message of problems) {
  console.log(`${message._type.toUpperCase().padEnd(9)} ${message.code}: ${message.message} ${where(message)}`);
}
console.log(
  `web-ext lint: ${report.summary.errors} errors, ${report.summary.warnings} warnings, ` +
    `${report.summary.notices} notices; ${expected.length} expected for Thunderbird, ${problems.length} problems`,
);

// The add-on's scripts run in Thunderbird (browser and WebExtension globals, `messenger` its
// alias of `browser`); the tests and these tools in node.
const eslint = new ESLint({
  cwd: extensionDir,
  overrideConfigFile: true,
  overrideConfig: [
    { ignores: ["node_modules/**"] },
    js.configs.recommended,
    {
      files: ["**/*.js", "**/*.mjs"],
      languageOptions: {
        ecmaVersion: "latest",
        sourceType: "module",
        globals: { ...globals.browser, ...globals.webextensions, messenger: "readonly" },
      },
      linterOptions: { reportUnusedDisableDirectives: "error" },
      rules: { "no-unused-vars": ["error", { ignoreRestSiblings: true }] },
    },
    { files: ["tests/**", "dev/**"], languageOptions: { globals: { ...globals.node } } },
  ],
});
const linted = await eslint.lintFiles(["."]);
let found = 0;
for (const file of linted) {
  for (const message of file.messages) {
    found += 1;
    const rule = message.ruleId ?? "eslint";
    console.log(`ERROR     ${rule}: ${message.message} ${relative(extensionDir, file.filePath)}:${message.line}`);
  }
}
console.log(`eslint: ${linted.length} scripts, ${found} problems`);
process.exit(problems.length || found ? 1 : 0);
