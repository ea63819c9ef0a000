import assert from "node:assert/strict";
import { describe, test } from "node:test";

import {
  binaryToBytes,
  bytesToBinary,
  decodeBase64,
  decodeQuotedPrintable,
  encodeQuotedPrintable,
  findPixelTags,
  parseContentType,
  removePixelsFromMessage,
  removeTracking,
  stripLocalStatusHeaders,
} from "../modules/mime.mjs";
import { clickTarget } from "../modules/links.mjs";
import { isPixelUrl } from "../modules/pixel.mjs";
import { BASE, TOKEN, clickUrl, pixelUrl } from "./fixtures.mjs";

const isPixel = (src) => isPixelUrl(src, [BASE]);
const CRLF = "\r\n";
const bytes = (text) => binaryToBytes(text);
const text = (b) => bytesToBinary(b);
const clean = (message) => {
  const result = removePixelsFromMessage(bytes(message), isPixel);
  return { ...result, text: text(result.bytes) };
};

const PIXEL_TAG = `<img src="${pixelUrl()}" width="1" height="1" alt="" moz-do-not-send="true">`;
const HTML = `<html><head><meta http-equiv="content-type" content="text/html; charset=UTF-8"></head><body><p>Hello <b>th\u00e9re</b> \u2014 caf\u00e9</p><img src="cid:logo@x" alt="logo">${PIXEL_TAG}</body></html>`;
const utf8 = (s) => bytesToBinary(new TextEncoder().encode(s));
const HTML_BYTES = utf8(HTML);
const EXPECTED_HTML = HTML_BYTES.replace(PIXEL_TAG, "");

const HEADERS = [
  "Message-ID: <abc@example.org>",
  "Date: Tue, 1 Dec 2026 18:00:00 +0000",
  "MIME-Version: 1.0",
  "From: Sender <sender@example.org>",
  "To: rcpt@example.net",
  "Subject: Hi",
].join(CRLF);

function qpMessage(eol = CRLF, html = HTML_BYTES) {
  const body = encodeQuotedPrintable(html, eol);
  return [
    HEADERS.replaceAll(CRLF, eol),
    "Content-Type: text/html; charset=UTF-8",
    "Content-Transfer-Encoding: quoted-printable",
    "",
    body,
    "",
  ].join(eol);
}

function htmlPartOf(message) {
  const start = message.indexOf("Content-Type: text/html");
  return message.slice(message.indexOf(`${CRLF}${CRLF}`, start) + 4);
}

describe("transfer encodings", () => {
  test("quoted-printable round-trips bytes and keeps lines at most 76 long", () => {
    const sample = `${HTML_BYTES}\r\nline two with trailing space \r\n=equals= and \t tab`;
    const encoded = encodeQuotedPrintable(sample, CRLF);
    for (const line of encoded.split(CRLF)) {
      assert.ok(line.length <= 76, `line too long: ${line.length}`);
    }
    assert.equal(decodeQuotedPrintable(encoded), sample);
  });

  test('a line starting "From " is encoded so that no mbox store escapes it', () => {
    const encoded = encodeQuotedPrintable("<p>x</p>\r\nFrom here on\r\n", CRLF);
    assert.ok(!/^From /m.test(encoded));
    assert.equal(decodeQuotedPrintable(encoded), "<p>x</p>\r\nFrom here on\r\n");
  });

  test("Content-Type parameters are read with and without quotes", () => {
    assert.deepEqual(parseContentType('multipart/alternative; boundary="------------a b;c"'), {
      type: "multipart/alternative",
      params: { boundary: "------------a b;c" },
    });
    assert.equal(parseContentType("Text/HTML; charset=UTF-8").params.charset, "UTF-8");
  });
});

describe("findPixelTags", () => {
  test("finds our <img> even when Thunderbird wrapped lines inside the tag and its src", () => {
    const src = pixelUrl();
    const html = `<p>x</p><img\r\n src="${src.slice(0, 20)}\r\n${src.slice(20)}"\r\n  width="1" height="1" alt=""\r\n moz-do-not-send="true"><p>y</p>`;
    const ranges = findPixelTags(html, isPixel);
    assert.equal(ranges.length, 1);
    assert.equal(html.slice(0, ranges[0][0]) + html.slice(ranges[0][1]), "<p>x</p><p>y</p>");
  });

  test("leaves other images, quoted '>' in attributes, comments and look-alike text alone", () => {
    const html = [
      `<img alt="a > b" src="https://t.example.org/p/notatoken.gif">`,
      `<!-- <img src="${pixelUrl()}"> -->`,
      `<p>&lt;img src="${pixelUrl()}"&gt;</p>`,
      `<img src='${pixelUrl()}'>`,
      `<IMG SRC=${pixelUrl()}>`,
    ].join("");
    const ranges = findPixelTags(html, isPixel);
    assert.equal(ranges.length, 2, "the single-quoted and the unquoted upper-case ones");
  });

  test("an &amp; (or a numeric reference) in the src is decoded before it is judged", () => {
    // The judge sees the URL the mail client loads, never the HTML's spelling of it.
    const judged = [];
    const judge = (src) => {
      judged.push(src);
      return isPixel(src) && src.endsWith("#a&b");
    };
    for (const spelling of ["&amp;", "&#38;", "&#x26;"]) {
      assert.equal(findPixelTags(`<img src="${pixelUrl()}#a${spelling}b">`, judge).length, 1, spelling);
    }
    assert.deepEqual(judged, Array(3).fill(`${pixelUrl()}#a&b`));
  });
});

describe("removePixelsFromMessage", () => {
  test("a quoted-printable text/html mail: pixel gone, headers and text intact", () => {
    const message = qpMessage();
    const result = clean(message);
    assert.equal(result.removed, 1);
    assert.ok(!result.text.includes(TOKEN));
    assert.ok(result.text.startsWith(`${HEADERS}${CRLF}Content-Type: text/html; charset=UTF-8${CRLF}`));
    assert.equal(decodeQuotedPrintable(htmlPartOf(result.text)), `${EXPECTED_HTML}${CRLF}`);
  });

  test("LF-only line endings are kept as LF", () => {
    const result = clean(qpMessage("\n"));
    assert.equal(result.removed, 1);
    assert.ok(!result.text.includes("\r"));
    assert.ok(!result.text.includes(TOKEN));
  });

  test("multipart/alternative: only the html part changes; the plain part is byte for byte the same", () => {
    const plain = `Hello th=C3=A9re${CRLF}`;
    const html = encodeQuotedPrintable(HTML_BYTES, CRLF);
    const message = [
      HEADERS,
      'Content-Type: multipart/alternative; boundary="------------alt"',
      "",
      "This is a multi-part message in MIME format.",
      "--------------alt",
      "Content-Type: text/plain; charset=UTF-8; format=flowed",
      "Content-Transfer-Encoding: quoted-printable",
      "",
      plain,
      "--------------alt",
      "Content-Type: text/html; charset=UTF-8",
      "Content-Transfer-Encoding: quoted-printable",
      "",
      html,
      "",
      "--------------alt--",
      "",
    ].join(CRLF);
    const result = clean(message);
    assert.equal(result.removed, 1);
    assert.ok(!result.text.includes(TOKEN));
    const before = message.slice(0, message.indexOf("--------------alt\r\nContent-Type: text/html"));
    assert.ok(result.text.startsWith(before), "everything up to the html part is unchanged");
    assert.ok(result.text.endsWith(`${CRLF}--------------alt--${CRLF}`));
    const htmlPart = result.text.slice(result.text.lastIndexOf(`quoted-printable${CRLF}${CRLF}`) + 20);
    const htmlBody = htmlPart.slice(0, htmlPart.indexOf(`${CRLF}--------------alt--`));
    assert.equal(decodeQuotedPrintable(htmlBody), `${EXPECTED_HTML}${CRLF}`);
  });

  test("multipart/mixed with a base64 html part and attachments: attachments byte for byte the same", () => {
    const attachment = "JVBERi0xLjQKJcOkw7zDtsOfCjIgMCBvYmoKPDwvTGVuZ3RoIDMgMCBSL0ZpbHRlci9GbGF0ZURl";
    const html64 = btoa(HTML_BYTES)
      .match(/.{1,72}/g)
      .join(CRLF);
    const inner = [
      'Content-Type: multipart/related; boundary="rel"',
      "",
      "--rel",
      "Content-Type: text/html; charset=UTF-8",
      "Content-Transfer-Encoding: base64",
      "",
      html64,
      "--rel",
      "Content-Type: image/png; name=logo.png",
      "Content-Transfer-Encoding: base64",
      "Content-ID: <logo@x>",
      "",
      "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk",
      "--rel--",
    ].join(CRLF);
    const message = [
      HEADERS,
      'Content-Type: multipart/mixed; boundary="mix"',
      "",
      "--mix",
      inner,
      "--mix",
      'Content-Type: application/pdf; name="a.pdf"',
      'Content-Disposition: attachment; filename="a.pdf"',
      "Content-Transfer-Encoding: base64",
      "",
      attachment,
      "",
      "--mix--",
      "",
    ].join(CRLF);
    const result = clean(message);
    assert.equal(result.removed, 1);
    assert.ok(!result.text.includes(TOKEN));
    const tail = message.slice(message.indexOf("--rel\r\nContent-Type: image/png"));
    assert.ok(result.text.endsWith(tail), "the inline image and the attachment are untouched");
    const partStart = result.text.indexOf(`base64${CRLF}${CRLF}`) + 10;
    const part = result.text.slice(partStart, result.text.indexOf(`${CRLF}--rel${CRLF}`, partStart));
    assert.equal(decodeBase64(part), EXPECTED_HTML);
    assert.ok(
      part.split(CRLF).every((line) => line.length <= 72),
      "the original base64 line length is kept",
    );
  });

  test("a mail without our pixel comes back as the very same bytes", () => {
    const message = qpMessage(CRLF, HTML_BYTES.replace(TOKEN, "not-a-token"));
    const input = bytes(message);
    const result = removePixelsFromMessage(input, isPixel);
    assert.equal(result.removed, 0);
    assert.equal(result.bytes, input);
  });

  test("signed and encrypted mail is kept as it is and says why", () => {
    for (const type of ["multipart/signed", "multipart/encrypted", "application/pkcs7-mime"]) {
      const message = [
        HEADERS,
        `Content-Type: ${type}; protocol="application/pgp-signature"; boundary="sig"`,
        "",
        "--sig",
        "Content-Type: text/html; charset=UTF-8",
        "",
        HTML_BYTES,
        "--sig--",
        "",
      ].join(CRLF);
      const result = clean(message);
      assert.equal(result.removed, 0);
      assert.equal(result.protectedBy, type);
      assert.equal(result.text, message);
    }
  });

  test("a signed part nested inside multipart/mixed protects the whole mail", () => {
    const message = [
      HEADERS,
      'Content-Type: multipart/mixed; boundary="mix"',
      "",
      "--mix",
      'Content-Type: multipart/signed; boundary="sig"',
      "",
      "--sig",
      "Content-Type: text/html",
      "",
      PIXEL_TAG,
      "--sig--",
      "--mix--",
      "",
    ].join(CRLF);
    assert.equal(clean(message).protectedBy, "multipart/signed");
  });

  test("a 7bit html part is edited in place without re-encoding", () => {
    const message = [HEADERS, "Content-Type: text/html; charset=us-ascii", "", `<p>a</p>${PIXEL_TAG}<p>b</p>`, ""].join(
      CRLF,
    );
    assert.equal(clean(message).text, message.replace(PIXEL_TAG, ""));
  });
});

describe("stripLocalStatusHeaders", () => {
  test("drops the X-Mozilla-Status fields a local folder put first, and nothing else", () => {
    const mail = `${HEADERS}${CRLF}X-Mozilla-Keys: kept${CRLF}${CRLF}body${CRLF}`;
    const stored = `X-Mozilla-Status: 0001${CRLF}X-Mozilla-Status2: 00800000${CRLF}X-Mozilla-Keys:${CRLF}   ${CRLF}${mail}`;
    assert.equal(text(stripLocalStatusHeaders(bytes(stored))), mail);
    const input = bytes(mail);
    assert.equal(stripLocalStatusHeaders(input), input);
  });
});

describe("removeTracking: links", () => {
  const tracking = { isPixel, clickTarget: (href) => clickTarget(href, [BASE]) };
  const ORIGINAL = "https://shop.example.org/offer?a=1&b=2";

  test("our click URLs turn back into their links, in the html href and in the plain text", () => {
    const click = clickUrl(0, ORIGINAL);
    // As Thunderbird sent it: the tag re-wrapped before href, the text/plain showing <url>.
    const html = `<p>See <a\r\nhref="${click.replaceAll("&", "&amp;")}">the\r\n        offer</a>.</p><p><a href="mailto:me@example.org">me</a></p>${PIXEL_TAG}`;
    const message = [
      HEADERS,
      'Content-Type: multipart/alternative; boundary="alt"',
      "",
      "--alt",
      "Content-Type: text/plain; charset=UTF-8; format=flowed",
      "Content-Transfer-Encoding: 8bit",
      "",
      `See the offer${CRLF}<${click}>.${CRLF}`,
      "--alt",
      "Content-Type: text/html; charset=UTF-8",
      "Content-Transfer-Encoding: quoted-printable",
      "",
      encodeQuotedPrintable(html, CRLF),
      "--alt--",
      "",
    ].join(CRLF);
    const result = removeTracking(bytes(message), tracking);
    assert.deepEqual([result.removed, result.restored], [1, 2]);
    const out = text(result.bytes);
    assert.ok(!decodeQuotedPrintable(out).includes(TOKEN), "no token left anywhere");
    assert.ok(out.includes(`See the offer${CRLF}<${ORIGINAL}>.${CRLF}`));
    const htmlOut = decodeQuotedPrintable(out.slice(out.indexOf("quoted-printable") + 20));
    assert.ok(htmlOut.includes(`<a\r\nhref="https://shop.example.org/offer?a=1&amp;b=2">the\r\n        offer</a>`));
    assert.ok(htmlOut.includes('<a href="mailto:me@example.org">me</a>'));
  });

  test("a link that is not one of our click URLs is left alone, even on the pixel server", () => {
    const html = `<a href="${BASE}c/not-a-click-url">x</a><a href="https://example.org/?u=${encodeURIComponent(ORIGINAL)}">y</a>`;
    const message = [HEADERS, "Content-Type: text/html", "", html, ""].join(CRLF);
    const input = bytes(message);
    assert.equal(removeTracking(input, tracking).bytes, input);
  });

  test("a target with characters outside ASCII is written percent-encoded", () => {
    const target = "https://example.org/caf\u00e9?q=\u2014";
    const message = [
      HEADERS,
      "Content-Type: text/html; charset=UTF-8",
      "",
      `<a href="${clickUrl(0, target)}">x</a>`,
      "",
    ].join(CRLF);
    const out = text(removeTracking(bytes(message), tracking).bytes);
    assert.ok(out.includes('<a href="https://example.org/caf%C3%A9?q=%E2%80%94">x</a>'));
  });
});
