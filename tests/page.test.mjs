// The page's rewrite on its way out (src/page.js) as pure JavaScript: every page shape split at every
// byte, as a network may cut it. workerd's native IdentityTransformStream is played by a
// standard TransformStream; the Worker's own path through workerd is in edge.test.mjs.
import { test } from "node:test";
import assert from "node:assert/strict";
import { headEnd, rewritePage, SCAN_LIMIT } from "../src/page.js";

globalThis.IdentityTransformStream ??= class {
  constructor() {
    const { readable, writable } = new TransformStream();
    Object.assign(this, { readable, writable });
  }
};

const TAG = '<script src="/tt/pixel.js" async></script>';
const bytes = (s) => new TextEncoder().encode(s);

// Each page with what the browser must receive (null: unchanged).
const PAGES = [
  ["a theme's page", "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Mug</title></head><body>€17</body></html>",
    `<!doctype html><html lang="en"><head>${TAG}<meta charset="utf-8"><title>Mug</title></head><body>€17</body></html>`],
  ["upper case, attributes, a quoted >", "<!DOCTYPE html>\n<HTML>\n<HEAD data-x='a>b' class=\"x\">\n<title>M</title></HEAD><BODY></BODY>",
    `<!DOCTYPE html>\n<HTML>\n<HEAD data-x='a>b' class="x">${TAG}\n<title>M</title></HEAD><BODY></BODY>`],
  ["a comment naming <head> before the real one", "<!-- <head> is below --><html><head><title>M</title></head>",
    `<!-- <head> is below --><html><head>${TAG}<title>M</title></head>`],
  ["<header> is not <head>; <head/>", "<html><header>x</header><head/><title>M</title>",
    `<html><header>x</header><head/>${TAG}<title>M</title>`],
  ["a tab after the name", "<html><head\tid=h><title>M</title>", `<html><head\tid=h>${TAG}<title>M</title>`],
  ["empty comments, then the head", "<!--><!---><head><title>M</title>", `<!--><!---><head>${TAG}<title>M</title>`],
  ["a quote that opens no value", "<html><head it's data-a = \"x>y\"><title>M</title>", `<html><head it's data-a = "x>y">${TAG}<title>M</title>`],
  ["no head: <body> first", "<html><body><head>late</head></body></html>", null],
  ["no head at all", "<p>fragment</p>", null],
  ["an unclosed comment", "<html><!-- <head>", null],
  ["empty", "", null],
];

/** The page `rewritePage` makes of a body delivered in `chunks` (byte arrays). */
async function inject(chunks) {
  const body = new ReadableStream({
    start(controller) {
      for (const c of chunks) controller.enqueue(c);
      controller.close();
    },
  });
  const resp = rewritePage(new Response(body, { headers: { "content-type": "text/html", "content-length": "999" } }), "a=1; Path=/\nb=2", TAG);
  assert.deepEqual(resp.headers.getSetCookie(), ["a=1; Path=/", "b=2"]);
  assert.equal(resp.headers.get("content-length"), null, "the length changes: no Content-Length");
  assert.equal(resp.headers.get("content-type"), "text/html");
  return new TextDecoder().decode(await resp.arrayBuffer());
}

test("the tag lands right after the first <head> start tag, wherever the page is cut", async () => {
  for (const [name, page, expected] of PAGES) {
    const b = bytes(page);
    const want = expected ?? page;
    assert.equal(await inject([b]), want, `${name}: one chunk`);
    assert.equal(await inject([...b].map((x) => Uint8Array.of(x))), want, `${name}: a byte a chunk`);
    for (let cut = 1; cut < b.length; cut++) {
      assert.equal(await inject([b.subarray(0, cut), b.subarray(cut)]), want, `${name}: cut at ${cut}`);
    }
  }
});

test("a page that shows no <head> within the scan limit passes unchanged, and nothing past the limit is held", async () => {
  const meta = "<meta name=x content=y>";
  const filler = `<!doctype html><html>${meta.repeat(Math.ceil(SCAN_LIMIT / meta.length))}`;
  assert.equal(headEnd(bytes(filler)), -2, "undecided past the limit means no head");
  assert.equal(headEnd(bytes(filler.slice(0, 1000))), -1, "undecided before it means more bytes are needed");
  const page = bytes(`${filler}<head><title>late</title></head>`);
  const same = (got) => assert.ok(got === new TextDecoder().decode(page), "the page is unchanged");
  same(await inject([page]));
  same(await inject([page.subarray(0, SCAN_LIMIT), page.subarray(SCAN_LIMIT)]));
  same(await inject([page.subarray(0, SCAN_LIMIT - 3), page.subarray(SCAN_LIMIT - 3)]));
});

test("an origin that breaks off before <head> fails the visitor's read instead of leaving it waiting", { timeout: 10_000 }, async () => {
  let cancelled = null;
  const body = new ReadableStream({
    start(controller) {
      controller.enqueue(bytes("<html><he"));
      controller.error(new Error("origin reset"));
    },
    cancel(reason) {
      cancelled = reason;
    },
  });
  const resp = rewritePage(new Response(body, { headers: { "content-type": "text/html" } }), "", TAG);
  await assert.rejects(resp.arrayBuffer());
  assert.equal(cancelled, null, "an errored origin is not cancelled again");
});

test("a visitor who leaves before <head> came cancels the origin's body", { timeout: 10_000 }, async () => {
  let cancelled;
  const originCancelled = new Promise((resolve) => (cancelled = resolve));
  const body = new ReadableStream({
    start(controller) {
      controller.enqueue(bytes("<html><he")); // and nothing more: the origin stalls
    },
    cancel: (reason) => cancelled(reason),
  });
  const resp = rewritePage(new Response(body, { headers: { "content-type": "text/html" } }), "", TAG);
  await resp.body.cancel(new Error("tab closed"));
  assert.ok(await originCancelled, "the origin's body is cancelled with a reason");
});

test("an empty body stays empty; without a body or a tag only the cookies change", async () => {
  assert.equal(await inject([]), "");
  const none = rewritePage(new Response(null, { status: 204 }), "a=1", TAG);
  assert.equal(none.status, 204);
  assert.deepEqual(none.headers.getSetCookie(), ["a=1"]);
  const asIs = rewritePage(new Response("<head>", { headers: { "content-length": "6" } }), "", "");
  assert.equal(asIs.headers.get("content-length"), "6");
  assert.deepEqual(asIs.headers.getSetCookie(), []);
  assert.equal(await asIs.text(), "<head>");
});
