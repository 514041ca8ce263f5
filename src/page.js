// The shop's HTML page on its way out: its Set-Cookie lines added and the pixel's script tag
// put at the start of its <head>, in one copy of the response.
//
// Only the bytes up to the <head> start tag are looked at (a Shopify theme sends it within the
// first few hundred bytes): they are held until the tag closes, the script tag goes in after
// it, and the rest of the body is piped on natively, never chunk by chunk through JavaScript
// or the wasm. Parsing the whole page with the runtime's HTMLRewriter cost more on every page
// (BENCHMARKS.md, "HTML injection").

// The page passes unchanged when this many bytes came without a <head> start tag.
export const SCAN_LIMIT = 65536;

const LT = 0x3c, GT = 0x3e, BANG = 0x21, DASH = 0x2d, SLASH = 0x2f, DQUOTE = 0x22, SQUOTE = 0x27;
const EQUALS = 0x3d;
const NOT_YET = -1;
const NONE = -2;

const isSpace = (c) => c === 0x20 || (c >= 0x09 && c <= 0x0d);
const lower = (c) => (c >= 0x41 && c <= 0x5a ? c | 0x20 : c);

/** Whether the tag name at `b[i]` is `name` (ASCII, any case) followed by the end of the name. */
function tagNamed(b, i, name) {
  for (let k = 0; k < name.length; k++) if (lower(b[i + k]) !== name.charCodeAt(k)) return false;
  const after = b[i + name.length];
  return after === GT || after === SLASH || isSpace(after);
}

/**
 * Where the pixel tag goes in `b`, the page's first bytes: the index just past the `>` of the
 * first <head> start tag outside comments; NOT_YET when more bytes are needed to tell; NONE
 * when the page has no such tag (a <body> start tag came first, or none closed within the
 * first SCAN_LIMIT bytes). Only those bytes are read, so however the page is cut into chunks
 * the answer is the same.
 */
export function headEnd(page) {
  const b = page.subarray(0, SCAN_LIMIT);
  const undecided = () => (page.length >= SCAN_LIMIT ? NONE : NOT_YET);
  for (let i = 0; i < b.length; i++) {
    if (b[i] !== LT) continue;
    if (i + 6 > b.length) return undecided(); // "<head" plus the byte after the name
    if (b[i + 1] === BANG && b[i + 2] === DASH && b[i + 3] === DASH) {
      // The closing "-->" may share the opening's dashes: "<!-->" and "<!--->" are whole.
      let j = i + 2;
      while (j + 2 < b.length && !(b[j] === DASH && b[j + 1] === DASH && b[j + 2] === GT)) j++;
      if (j + 2 >= b.length) return undecided();
      i = j + 2;
    } else if (tagNamed(b, i + 1, "body")) {
      return NONE;
    } else if (tagNamed(b, i + 1, "head")) {
      // A quote opens an attribute value only right after "=" (spaces allowed between).
      let quote = 0;
      let afterEquals = false;
      for (let j = i + 5; j < b.length; j++) {
        if (quote) {
          if (b[j] === quote) quote = 0;
        } else if (afterEquals && (b[j] === DQUOTE || b[j] === SQUOTE)) {
          quote = b[j];
        } else if (b[j] === GT) {
          return j + 1;
        }
        if (!isSpace(b[j])) afterEquals = !quote && b[j] === EQUALS;
      }
      return undecided();
    }
  }
  return undecided();
}

/** The byte arrays `parts`, one after another, in a new array. */
function concat(...parts) {
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.length;
  }
  return all;
}

/** For promises whose failure is already handled elsewhere (or cannot be handled at all). */
const ignore = () => {};

/**
 * Copies `body` into `writable` with `tag` (bytes) after the <head> start tag. Until the rest
 * is handed to `pipeTo`, a failure on either side (the origin's body breaking off, the visitor
 * leaving) ends both: the visitor's read fails instead of waiting, and the origin is cancelled.
 */
async function pump(body, writable, tag) {
  const reader = body.getReader();
  const writer = writable.getWriter();
  // Settles only if the visitor goes away: a read still waiting on the origin then ends too.
  const visitorGone = writer.closed.then(() => {
    throw new Error("the page was closed");
  });
  visitorGone.catch(ignore);
  try {
    let held = new Uint8Array(0);
    let end = NOT_YET;
    while (end === NOT_YET) {
      const { value, done } = await Promise.race([reader.read(), visitorGone]);
      if (done) {
        if (held.length) await writer.write(held);
        return await writer.close();
      }
      held = concat(held, value instanceof Uint8Array ? value : new Uint8Array(value));
      end = headEnd(held);
    }
    await writer.write(end === NONE ? held : concat(held.subarray(0, end), tag, held.subarray(end)));
  } catch (e) {
    writer.abort(e).catch(ignore);
    reader.cancel(e).catch(ignore);
    return;
  }
  writer.releaseLock();
  reader.releaseLock();
  // Errors and cancellation now travel through the pipe itself.
  return body.pipeTo(writable).catch(ignore);
}

/**
 * `response` with `cookies` (Set-Cookie values, one per line; none when empty) appended and, when
 * `tag` is not empty, `tag` right after the <head> start tag (pages without one pass unchanged).
 * A fetched response's headers are immutable: this copies them once, with the body stream.
 */
export function rewritePage(response, cookies, tag) {
  let body = response.body;
  if (tag && body) {
    const { readable, writable } = new IdentityTransformStream();
    pump(body, writable, new TextEncoder().encode(tag)).catch((e) => writable.abort(e).catch(ignore));
    body = readable;
  }
  const copy = new Response(body, response);
  if (body !== response.body) copy.headers.delete("content-length");
  if (cookies) for (const cookie of cookies.split("\n")) copy.headers.append("Set-Cookie", cookie);
  return copy;
}
