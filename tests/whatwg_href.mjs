// What a browser makes of URLs: reads a JSON list of strings on stdin and prints, for
// each, {href, protocol, host} from the WHATWG parser (Node's URL), or null where it
// fails. tests/test_clicks.py and tests/test_fuzz.py compare the helper with it.
import { readFileSync } from "node:fs";

const urls = JSON.parse(readFileSync(0, "utf8"));
const parsed = urls.map((text) => {
  try {
    const url = new URL(text);
    return { href: url.href, protocol: url.protocol, host: url.host };
  } catch {
    return null;
  }
});
process.stdout.write(JSON.stringify(parsed));
