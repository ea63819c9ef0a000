// A DOMParser like Thunderbird's for node: jsdom parses HTML with the spec's
// algorithm (html/head/body are implied), as Firefox's parser does; lighter DOMs
// such as linkedom do not, and would test themselves rather than our code.

import { JSDOM } from "jsdom";

export const { DOMParser } = new JSDOM("").window;
