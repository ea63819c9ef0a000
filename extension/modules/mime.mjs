// Takes our tracking out of a raw RFC 5322 message: the pixel <img> leaves the
// text/html parts, and our click URLs turn back into the links they stand for
// (in text/html hrefs and in the text/plain alternative, which shows them).
//
// Pure, and byte-exact outside what it must change: the message is handled as a
// "binary string" (one char per byte), every header and every other part is
// copied as it was, and only a text part that held our tracking is decoded,
// edited and re-encoded with its own Content-Transfer-Encoding. Tags are found
// by a small HTML tag scanner (quoted attributes may hold newlines: Thunderbird
// re-wraps long lines inside a tag), not by a one-line regex.
// Signed or encrypted mail is never touched: any change would break it.
// Raw header editing lives here too (replaceAddressHeaders: the one Sent copy of a
// mail sent individually lists every recipient), byte-exact the same way.

const PROTECTED_TYPES = new Set([
  "multipart/signed",
  "multipart/encrypted",
  "application/pkcs7-mime",
  "application/x-pkcs7-mime",
  "application/pkcs7-signature",
  "application/x-pkcs7-signature",
  "application/pgp-encrypted",
  "application/pgp-signature",
]);

/** Uint8Array -> binary string (char code = byte); not TextDecoder("latin1"), which is windows-1252. */
export function bytesToBinary(bytes) {
  let out = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    out += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return out;
}

export function binaryToBytes(binary) {
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i += 1) {
    bytes[i] = binary.charCodeAt(i) & 0xff;
  }
  return bytes;
}

// --- raw header editing ------------------------------------------------------

// RFC 2047 for a display name that is not ASCII; the address itself stays as it is.
function encodeWord(text) {
  const bytes = new TextEncoder().encode(text);
  let binary = "";
  for (const byte of bytes) {
    binary += String.fromCharCode(byte);
  }
  return `=?UTF-8?B?${btoa(binary)}?=`;
}

function headerAddress(entry) {
  // eslint-disable-next-line no-control-regex
  if (/^[\x00-\x7f]*$/.test(entry)) {
    return entry;
  }
  const angle = /^(.*?)\s*<([^<>]+)>\s*$/.exec(entry);
  if (!angle) {
    return entry;
  }
  const name = angle[1].replace(/^"(.*)"$/, "$1");
  return `${encodeWord(name)} <${angle[2]}>`;
}

// The address fields, in the order a message lists them.
const ADDRESS_HEADERS = { to: "To", cc: "Cc", bcc: "Bcc" };

/**
 * A raw message with its To/Cc/Bcc fields replaced by headers ({to, cc, bcc}:
 * lists of addresses): the one Sent copy lists every recipient. Only the top
 * header block changes; the body stays byte for byte.
 */
export function replaceAddressHeaders(bytes, headers) {
  const text = bytesToBinary(bytes);
  const match = /\r?\n\r?\n/.exec(text);
  const end = match ? match.index : text.length;
  const eol = text.slice(0, end + 2).includes("\r\n") ? "\r\n" : "\n";
  const lines = text.slice(0, end).split(/\r?\n/);
  const kept = [];
  let skipping = false;
  for (const line of lines) {
    if (/^[ \t]/.test(line) && skipping) {
      continue;
    }
    skipping = /^(to|cc|bcc):/i.test(line);
    if (!skipping) {
      kept.push(line);
    }
  }
  const added = Object.keys(ADDRESS_HEADERS).filter((field) => headers?.[field]?.length).map(
    (field) => `${ADDRESS_HEADERS[field]}: ${headers[field].map(headerAddress).join(`,${eol} `)}`,
  );
  // After Subject if there is one, as Thunderbird orders them; else at the end.
  const at = kept.findIndex((line) => /^subject:/i.test(line));
  kept.splice(at >= 0 ? at + 1 : kept.length, 0, ...added);
  // A replaced header may be UTF-8 encoded-words only: binary stays binary.
  return binaryToBytes(kept.join(eol) + text.slice(end));
}

/** Where the header block ends and the body starts, and the line ending the entity uses. */
function splitEntity(entity) {
  const match = /\r?\n\r?\n/.exec(entity);
  const eol = /\r\n/.test(entity.slice(0, 2000)) ? "\r\n" : "\n";
  if (!match) {
    return { headerText: entity, bodyStart: entity.length, eol };
  }
  return { headerText: entity.slice(0, match.index), bodyStart: match.index + match[0].length, eol };
}

/** Header fields, unfolded, names lower-cased: name -> every value of that name, in order. */
export function parseHeaderFields(headerText) {
  const fields = new Map();
  let current = null;
  for (const line of headerText.split(/\r?\n/)) {
    if (/^[ \t]/.test(line) && current) {
      current.value += ` ${line.trim()}`;
      continue;
    }
    const colon = line.indexOf(":");
    if (colon <= 0) {
      current = null;
      continue;
    }
    current = { value: line.slice(colon + 1).trim() };
    const name = line.slice(0, colon).trim().toLowerCase();
    if (!fields.has(name)) {
      fields.set(name, []);
    }
    fields.get(name).push(current);
  }
  return new Map([...fields].map(([name, values]) => [name, values.map((field) => field.value)]));
}

/** Header fields, unfolded, names lower-cased; the first of each name wins. */
export function parseHeaders(headerText) {
  return new Map([...parseHeaderFields(headerText)].map(([name, values]) => [name, values[0]]));
}

/** {type, params} of a Content-Type value; params keys lower-cased, quotes removed. */
export function parseContentType(value) {
  const text = value ?? "";
  const semi = text.indexOf(";");
  const type = (semi < 0 ? text : text.slice(0, semi)).trim().toLowerCase() || "text/plain";
  const params = {};
  const rest = semi < 0 ? "" : text.slice(semi + 1);
  const param = /\s*([^=;\s]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]*))\s*;?/g;
  let m;
  while ((m = param.exec(rest))) {
    params[m[1].toLowerCase()] = m[2] != null ? m[2].replace(/\\(.)/g, "$1") : m[3];
  }
  return { type, params };
}

// --- transfer encodings ------------------------------------------------------

export function decodeQuotedPrintable(text) {
  return text
    .replace(/[ \t]+(?=\r?\n)/g, "")
    .replace(/=\r?\n/g, "")
    .replace(/=([0-9A-Fa-f]{2})/g, (_, hex) => String.fromCharCode(parseInt(hex, 16)));
}

/** Quoted-printable (RFC 2045 6.7) of a binary string, hard line breaks as eol, lines <= 76. */
export function encodeQuotedPrintable(binary, eol) {
  const lines = binary.split(/\r?\n/);
  const encodedLines = lines.map((line) => {
    let out = "";
    let width = 0;
    for (let i = 0; i < line.length; i += 1) {
      const code = line.charCodeAt(i);
      const last = i === line.length - 1;
      let piece;
      if (i === 0 && line.startsWith("From ")) {
        // A line starting "From " would be escaped by an mbox store; =46 keeps the bytes as they are.
        piece = "=46";
      } else if ((code === 0x20 || code === 0x09) && !last) {
        piece = line[i];
      } else if (code >= 33 && code <= 126 && code !== 61) {
        piece = line[i];
      } else {
        piece = `=${code.toString(16).toUpperCase().padStart(2, "0")}`;
      }
      // Keep room for the "=" of a soft line break.
      if (width + piece.length > 75) {
        out += `=${eol}`;
        width = 0;
      }
      out += piece;
      width += piece.length;
    }
    return out;
  });
  return encodedLines.join(eol);
}

export function decodeBase64(text) {
  return atob(text.replace(/[^A-Za-z0-9+/]/g, ""));
}

export function encodeBase64(binary, eol, lineLength = 76) {
  const flat = btoa(binary);
  const lines = [];
  for (let i = 0; i < flat.length; i += lineLength) {
    lines.push(flat.slice(i, i + lineLength));
  }
  return lines.join(eol);
}

function base64LineLength(body) {
  const first = body.split(/\r?\n/).find((line) => line.trim() !== "");
  const length = first ? first.trim().length : 76;
  return length >= 4 && length % 4 === 0 ? length : 76;
}

// --- the HTML scan -------------------------------------------------------------

/** Attributes of a tag's text after "<name": [{name, value, start, end}], names lower-cased. */
function tagAttributes(attrText) {
  const attrs = [];
  const attr = /([^\s"'>/=]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?/g;
  let m;
  while ((m = attr.exec(attrText))) {
    attrs.push({ name: m[1].toLowerCase(), value: m[2] ?? m[3] ?? m[4] ?? "", start: m.index, end: attr.lastIndex });
  }
  return attrs;
}

// The first of each name counts, as in an HTML parser.
const attribute = (attrs, name) => attrs.find((a) => a.name === name);

/** The end (exclusive) of the tag starting at html[start] === "<": after its ">", honouring quotes. */
function tagEnd(html, start) {
  let quote = null;
  for (let i = start + 1; i < html.length; i += 1) {
    const c = html[i];
    if (quote) {
      if (c === quote) {
        quote = null;
      }
    } else if (c === '"' || c === "'") {
      quote = c;
    } else if (c === ">") {
      return i + 1;
    }
  }
  return -1;
}

function decodeEntities(value) {
  return value
    .replace(/&#x([0-9a-f]+);?/gi, (_, hex) => String.fromCodePoint(parseInt(hex, 16)))
    .replace(/&#([0-9]+);?/g, (_, dec) => String.fromCodePoint(parseInt(dec, 10)))
    .replace(/&amp;/gi, "&");
}

/** A link target written into a byte string: ASCII only (percent-encoded otherwise), attribute-escaped. */
function asAttributeValue(target) {
  return target
    // eslint-disable-next-line no-control-regex
    .replace(/[^\x00-\x7f]/gu, (c) => encodeURIComponent(c))
    .replaceAll("&", "&amp;")
    .replaceAll('"', "&quot;");
}

/**
 * The edits that take our tracking out of html: [{start, end, text}], in order.
 * Every <img> whose src isPixel() accepts goes; every <a> whose href
 * clickTarget() maps to a link gets that link back. Comments, <script>/<style>
 * contents and other tags are skipped as an HTML tokenizer would; html is a
 * binary string of an ASCII-compatible charset.
 */
export function findTrackingEdits(html, { isPixel, clickTarget = () => null }) {
  const edits = [];
  let i = 0;
  while (i < html.length) {
    const lt = html.indexOf("<", i);
    if (lt < 0) {
      break;
    }
    if (html.startsWith("<!--", lt)) {
      const close = html.indexOf("-->", lt + 4);
      i = close < 0 ? html.length : close + 3;
      continue;
    }
    const name = /^<([A-Za-z][A-Za-z0-9]*)/.exec(html.slice(lt, lt + 40))?.[1]?.toLowerCase();
    if (!name) {
      i = lt + 1;
      continue;
    }
    const end = tagEnd(html, lt);
    if (end < 0) {
      break;
    }
    const attrStart = lt + 1 + name.length;
    if (name === "img") {
      const src = attribute(tagAttributes(html.slice(attrStart, end - 1)), "src");
      if (src && isPixel(decodeEntities(src.value))) {
        edits.push({ start: lt, end, text: "" });
      }
    } else if (name === "a") {
      const href = attribute(tagAttributes(html.slice(attrStart, end - 1)), "href");
      const target = href ? clickTarget(decodeEntities(href.value.trim())) : null;
      if (target) {
        edits.push({
          start: attrStart + href.start,
          end: attrStart + href.end,
          text: `href="${asAttributeValue(target)}"`,
        });
      }
    } else if (name === "script" || name === "style") {
      const close = html.toLowerCase().indexOf(`</${name}`, end);
      i = close < 0 ? html.length : close;
      continue;
    }
    i = end;
  }
  return edits;
}

/** Ranges [start, end) of every <img> in html whose src isPixel() accepts. */
export function findPixelTags(html, isPixel) {
  return findTrackingEdits(html, { isPixel }).map((edit) => [edit.start, edit.end]);
}

/** Edits that turn our click URLs written out in plain text back into their links. */
export function findPlainTextEdits(text, { clickTarget = () => null }) {
  const edits = [];
  const url = /https?:\/\/[^\s<>"]+/g;
  let m;
  while ((m = url.exec(text))) {
    // Punctuation after a URL in running text is not part of it.
    const found = m[0].replace(/[.,;:!?)\]]+$/, "");
    const target = clickTarget(found);
    if (target) {
      edits.push({
        start: m.index,
        end: m.index + found.length,
        // eslint-disable-next-line no-control-regex
        text: target.replace(/[^\x00-\x7f]/gu, encodeURIComponent),
      });
    }
  }
  return edits;
}

function applyEdits(text, edits) {
  let out = "";
  let from = 0;
  for (const { start, end, text: replacement } of edits) {
    out += text.slice(from, start) + replacement;
    from = end;
  }
  return out + text.slice(from);
}

// --- the MIME walk ---------------------------------------------------------------

/** Body parts of a multipart body: [{start, end}] offsets into body, delimiter lines excluded. */
function multipartParts(body, boundary) {
  const delimiter = `--${boundary}`;
  const parts = [];
  let partStart = null;
  let pos = 0;
  while (pos <= body.length) {
    const next = body.indexOf("\n", pos);
    const lineEnd = next < 0 ? body.length : next + 1;
    const line = body.slice(pos, lineEnd).replace(/\r?\n$/, "");
    if (line.startsWith(delimiter)) {
      const rest = line.slice(delimiter.length);
      const closing = rest.startsWith("--");
      if (/^\s*$/.test(closing ? rest.slice(2) : rest)) {
        if (partStart != null) {
          // The line break before a delimiter belongs to the delimiter.
          let end = pos;
          if (body[end - 1] === "\n") end -= 1;
          if (body[end - 1] === "\r") end -= 1;
          parts.push({ start: partStart, end: Math.max(partStart, end) });
        }
        if (closing) {
          return parts;
        }
        partStart = lineEnd;
      }
    }
    if (next < 0) {
      break;
    }
    pos = lineEnd;
  }
  // No closing delimiter: the last part runs to the end.
  if (partStart != null && partStart < body.length) {
    parts.push({ start: partStart, end: body.length });
  }
  return parts;
}

/** body (in its transfer encoding) with edits(decoded) applied and re-encoded the same way. */
function editTextBody(body, encoding, eol, findEdits) {
  let decoded;
  if (encoding === "quoted-printable") {
    decoded = decodeQuotedPrintable(body);
  } else if (encoding === "base64") {
    decoded = decodeBase64(body);
  } else {
    decoded = body;
  }
  const edits = findEdits(decoded);
  if (!edits.length) {
    return { body, edits };
  }
  const cleaned = applyEdits(decoded, edits);
  let encoded;
  if (encoding === "quoted-printable") {
    encoded = encodeQuotedPrintable(cleaned, eol);
    // Keep the body's final line break (or its absence) as it was.
    if (/\r?\n$/.test(body) && !/\r?\n$/.test(encoded)) encoded += eol;
  } else if (encoding === "base64") {
    encoded = encodeBase64(cleaned, eol, base64LineLength(body));
    if (/\r?\n$/.test(body)) encoded += eol;
  } else {
    encoded = cleaned;
  }
  return { body: encoded, edits };
}

const UNCHANGED = { removed: 0, restored: 0 };

function cleanEntity(entity, tracking, depth) {
  const { headerText, bodyStart, eol } = splitEntity(entity);
  const headers = parseHeaders(headerText);
  const { type, params } = parseContentType(headers.get("content-type"));
  if (PROTECTED_TYPES.has(type)) {
    return { entity, ...UNCHANGED, protectedBy: type };
  }
  const body = entity.slice(bodyStart);
  if (type.startsWith("multipart/") && params.boundary && depth < 20) {
    let out = "";
    let from = 0;
    const total = { ...UNCHANGED };
    for (const part of multipartParts(body, params.boundary)) {
      const result = cleanEntity(body.slice(part.start, part.end), tracking, depth + 1);
      if (result.protectedBy) {
        return { entity, ...UNCHANGED, protectedBy: result.protectedBy };
      }
      out += body.slice(from, part.start) + result.entity;
      from = part.end;
      total.removed += result.removed;
      total.restored += result.restored;
    }
    if (!total.removed && !total.restored) {
      return { entity, ...UNCHANGED, protectedBy: null };
    }
    return { entity: entity.slice(0, bodyStart) + out + body.slice(from), ...total, protectedBy: null };
  }
  if (type !== "text/html" && type !== "text/plain") {
    return { entity, ...UNCHANGED, protectedBy: null };
  }
  if (/-----BEGIN PGP (SIGNED )?MESSAGE-----/.test(body)) {
    return { entity, ...UNCHANGED, protectedBy: "inline PGP" };
  }
  const encoding = (headers.get("content-transfer-encoding") ?? "7bit").trim().toLowerCase();
  const findEdits =
    type === "text/html"
      ? (decoded) => findTrackingEdits(decoded, tracking)
      : (decoded) => findPlainTextEdits(decoded, tracking);
  const result = editTextBody(body, encoding, eol, findEdits);
  if (!result.edits.length) {
    return { entity, ...UNCHANGED, protectedBy: null };
  }
  const removed = result.edits.filter((edit) => edit.text === "").length;
  return {
    entity: entity.slice(0, bodyStart) + result.body,
    removed,
    restored: result.edits.length - removed,
    protectedBy: null,
  };
}

// Thunderbird's own bookkeeping at the top of a message kept in a local mbox
// (read and flag state); never part of the mail that was sent.
const LOCAL_STATUS_FIELD = /^X-Mozilla-(Status|Status2|Keys):[^\n]*\n(?:[ \t][^\n]*\n)*/i;

/** bytes without the X-Mozilla-Status/-Status2/-Keys fields a local folder put first. */
export function stripLocalStatusHeaders(bytes) {
  let text = bytesToBinary(bytes);
  let changed = false;
  for (let match = LOCAL_STATUS_FIELD.exec(text); match; match = LOCAL_STATUS_FIELD.exec(text)) {
    text = text.slice(match[0].length);
    changed = true;
  }
  return changed ? binaryToBytes(text) : bytes;
}

/**
 * Takes our tracking out of a raw message: tracking is {isPixel(src),
 * clickTarget(href)} (or just isPixel). Returns {bytes, removed, restored,
 * protectedBy}: removed counts the pixels taken out, restored the links given
 * back; protectedBy names the signature or encryption that kept the message as
 * it was (bytes is then the input).
 */
export function removeTracking(bytes, tracking) {
  const options = typeof tracking === "function" ? { isPixel: tracking } : tracking;
  const result = cleanEntity(bytesToBinary(bytes), options, 0);
  if (!result.removed && !result.restored) {
    return { bytes, removed: 0, restored: 0, protectedBy: result.protectedBy };
  }
  return { bytes: binaryToBytes(result.entity), removed: result.removed, restored: result.restored, protectedBy: null };
}

/** removeTracking for the pixel alone. */
export function removePixelsFromMessage(bytes, isPixel) {
  return removeTracking(bytes, { isPixel });
}
