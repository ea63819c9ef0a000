import assert from "node:assert/strict";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { describe, test } from "node:test";

import { enMessages } from "./fixtures.mjs";

const root = new URL("../", import.meta.url);
const read = (path) => readFileSync(new URL(path, root), "utf8");
const manifest = JSON.parse(read("manifest.json"));

function filesUnder(dir, suffixes) {
  return readdirSync(new URL(dir, root), { recursive: true })
    .filter((name) => suffixes.some((suffix) => name.endsWith(suffix)))
    .map((name) => `${dir}${name}`);
}

const UI_DIRS = ["compose_popup/", "message_popup/", "options/", "tracked/"];
const sources = ["background.js", ...filesUnder("modules/", [".mjs"]), ...UI_DIRS.flatMap((d) => filesUnder(d, [".js"]))];
const pages = UI_DIRS.flatMap((d) => filesUnder(d, [".html"]));

describe("manifest and strings", () => {
  test("the manifest's version equals the helper package's __version__", (t) => {
    const init = new URL("../helper/mailtracker/__init__.py", root);
    if (!existsSync(init)) {
      t.skip("helper/mailtracker/__init__.py is not there yet");
      return;
    }
    const match = readFileSync(init, "utf8").match(/^__version__\s*=\s*["']([^"']+)["']/m);
    assert.equal(manifest.version, match?.[1]);
  });

  test("the manifest asks for no host access at install time, only the optional kind", () => {
    assert.equal(manifest.host_permissions, undefined);
    assert.ok(manifest.optional_host_permissions.length > 0);
    assert.ok(!manifest.permissions.some((p) => p.includes("://") || p === "<all_urls>"));
  });

  test("every permission the manifest asks for is explained, in the options page and the README", async () => {
    const { PERMISSION_REASONS } = await import(new URL("modules/permissions.mjs", root));
    assert.deepEqual(PERMISSION_REASONS.map(([permission]) => permission), manifest.permissions);
    const readme = readFileSync(new URL("../README.md", root), "utf8");
    for (const [permission, key] of PERMISSION_REASONS) {
      assert.ok(enMessages[key]?.message, key);
      assert.ok(readme.includes(`| \`${permission}\` | ${enMessages[key].message} |`), `README explains ${permission}`);
    }
  });

  test("every file the manifest and the pages point at exists", () => {
    const referenced = [
      ...manifest.background.scripts,
      manifest.compose_action.default_popup,
      manifest.compose_action.default_icon,
      manifest.message_display_action.default_popup,
      manifest.message_display_action.default_icon,
      manifest.action.default_icon,
      manifest.options_ui.page,
      ...Object.values(manifest.icons),
    ];
    for (const page of pages) {
      const dir = page.slice(0, page.lastIndexOf("/") + 1);
      for (const [, ref] of read(page).matchAll(/(?:src|href)="([^"#][^"]*)"/g)) {
        referenced.push(new URL(ref, new URL(dir, "file:///")).pathname.slice(1));
      }
    }
    for (const path of referenced) {
      assert.ok(existsSync(new URL(path, root)), `${path} is missing`);
    }
  });

  test("every string the manifest, pages and scripts name exists in _locales/en", () => {
    const names = new Set();
    for (const [, name] of JSON.stringify(manifest).matchAll(/__MSG_(\w+)__/g)) names.add(name);
    for (const page of pages) {
      for (const [, name] of read(page).matchAll(/data-i18n(?:-title)?="(\w+)"/g)) names.add(name);
    }
    for (const source of sources) {
      for (const [, name] of read(source).matchAll(/\bt\("(\w+)"/g)) names.add(name);
    }
    // Names built at run time from a state.
    for (const state of ["tracked", "off", "untrackable"]) names.add(`composeHeadline_${state}`).add(`buttonTitle_${state}`);
    for (const state of ["tracked", "off", "plainTextEditor", "plainTextDelivery", "redirect"]) names.add(`composeExplain_${state}`);
    for (const label of ["open", "proxy", "prefetch", "self"]) names.add(`label_${label}`);
    for (const status of ["pending", "sent", "unsent"]) names.add(`status_${status}`);
    const missing = [...names].filter((name) => !(name in enMessages));
    assert.deepEqual(missing, []);
    assert.ok(names.size > 40, "the scan found the strings");
  });

  test("every module imports in node with no browser global (nothing runs at import time)", async () => {
    assert.equal(globalThis.browser, undefined);
    for (const module of filesUnder("modules/", [".mjs"])) {
      await import(new URL(module, root));
    }
  });
});
