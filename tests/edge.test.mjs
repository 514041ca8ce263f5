// The first-party edge: server-set cookies, the pixel script injected into HTML while it
// streams, the scripts served from the shop's own origin, CORS on the browser endpoints, and
// browser events and webhooks sharing event ids (one server event per funnel step).
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import {
  startServer, startShop, waitFor, adminJson, countOf, PIXEL_ID, loadFixture,
  deliverWebhook, setCookieValue, setCookieLine, postCollect,
} from "./support/harness.mjs";

const TAG = '<script src="/tt/pixel.js" async></script>';
const PAGE = "<!doctype html><html><head><meta charset=utf-8><title>Mug</title></head><body><h1>Mug</h1></body></html>";
// 100 KB of markup, the size of a real theme's product page.
const BIG_PAGE = `<!doctype html><html><head><title>Big</title></head><body>${"<p>lorem ipsum dolor sit amet</p>\n".repeat(3000)}</body></html>`;
const PNG = Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919) % 256));
const APP_JS = "document.querySelector('head'); // '<head>' in a script is not HTML\n";
const SDK = "/* TikTok events.js, as played by the test */ window.__sdk = true;\n";

function serveOrigin(req, res) {
  const types = { "/logo.png": ["image/png", PNG], "/app.js": ["application/javascript", APP_JS], "/big": ["text/html; charset=utf-8", BIG_PAGE] };
  const [type, body] = types[req.url.split("?")[0]] ?? ["text/html; charset=utf-8", PAGE];
  res.writeHead(200, { "content-type": type, "set-cookie": "cart=c1-origin%3Fkey%3Dsecret; Path=/" }).end(body);
}

async function setup({ bindings = {}, sdk, persistDir } = {}) {
  const sdkServer = await startServer(sdk ?? ((req, res) => res.writeHead(200, { "content-type": "application/javascript" }).end(SDK)));
  const shop = await startShop({ origin: serveOrigin, persistDir, bindings: { TIKTOK_SDK_URL: `${sdkServer.url}/events.js`, ...bindings } });
  return { ...shop, sdkServer, close: async () => { await shop.close(); await sdkServer.close(); } };
}

const maxAge = (line) => Number(/Max-Age=(\d+)/.exec(line)?.[1]);

test("an HTML page gets server-set _ttp and ttclid, the session in KV, and the pixel tag at the start of <head>", async () => {
  const env = await setup();
  try {
    const browser = { "cf-connecting-ip": "203.0.113.7", "user-agent": "EdgeTest/1.0" };
    const landing = await env.worker.fetch("/products/mug?ttclid=E.C.P.landing1&utm_source=tiktok", { headers: browser });
    assert.equal(landing.status, 200);
    const ttpLine = setCookieLine(landing, "_ttp");
    assert.match(ttpLine, /^_ttp=[0-9A-HJKMNP-TV-Z]{26}_\.tt\.1;/, "TikTok's _ttp shape");
    for (const attr of ["Secure", "SameSite=Lax", "Path=/"]) assert.ok(ttpLine.includes(attr), `${attr} in ${ttpLine}`);
    assert.ok(maxAge(ttpLine) > 0 && maxAge(ttpLine) <= 400 * 86400, "_ttp lives at most 400 days");
    assert.ok(!/HttpOnly/i.test(ttpLine), "the pixel reads _ttp in the browser");
    const clickLine = setCookieLine(landing, "ttclid");
    assert.equal(setCookieValue(landing, "ttclid"), "E.C.P.landing1");
    assert.ok(maxAge(clickLine) >= 28 * 86400, "ttclid outlives TikTok's 28-day click window");
    assert.ok(setCookieLine(landing, "cart"), "the shop's own cookies still reach the browser");

    const html = await landing.text();
    assert.equal(html, PAGE.replace("<head>", `<head>${TAG}`), "exactly one tag, first in <head>, page otherwise unchanged");

    const ttp = setCookieValue(landing, "_ttp");
    const kv = await env.worker.mf.getKVNamespace("SESSIONS");
    const session = await waitFor("the session record", async () => JSON.parse((await kv.get(`session:${ttp}`)) ?? "null"));
    assert.equal(session.ttp, ttp);
    assert.equal(session.ttclid, "E.C.P.landing1");
    assert.equal(session.ip, "203.0.113.7");
    assert.equal(session.user_agent, "EdgeTest/1.0");
    assert.match(session.landing_url, /\/products\/mug\?ttclid=E\.C\.P\.landing1/);

    // A returning visitor keeps the value, refreshed.
    const again = await env.worker.fetch("/products/mug", { headers: { ...browser, cookie: `_ttp=${ttp}; _tt_s=1` } });
    assert.equal(setCookieValue(again, "_ttp"), ttp);
    assert.ok(maxAge(setCookieLine(again, "_ttp")) > 0);
    await again.arrayBuffer();
  } finally {
    await env.close();
  }
});

test("a visitor without _ttp gets one but no session write until the cookie comes back (crawlers and bounces cost no KV write)", async () => {
  const env = await setup();
  try {
    const browser = { "cf-connecting-ip": "203.0.113.8", "user-agent": "EdgeTest/2.0" };
    const first = await env.worker.fetch("/products/mug?utm_source=organic", { headers: browser });
    const ttp = setCookieValue(first, "_ttp");
    assert.ok(ttp, "the cookie is set at once");
    assert.equal(setCookieLine(first, "_tt_s"), undefined, "no session marker yet");
    await first.arrayBuffer();
    const kv = await env.worker.mf.getKVNamespace("SESSIONS");
    // The next navigation brings _ttp back with its proof: its session is written, marked once.
    const second = await env.worker.fetch("/collections/all", { headers: { ...browser, cookie: `_ttp=${ttp}; _tt_p=${setCookieValue(first, "_tt_p")}` } });
    assert.equal(setCookieValue(second, "_tt_s"), "1");
    await second.arrayBuffer();
    const session = await waitFor("the session record", async () => JSON.parse((await kv.get(`session:${ttp}`)) ?? "null"));
    assert.equal(session.ip, "203.0.113.8");
    assert.match(session.landing_url, /\/collections\/all$/);
    assert.equal((await kv.list({ prefix: "session:" })).keys.length, 1, "the first, cookie-less request wrote nothing");
  } finally {
    await env.close();
  }
});

test("non-HTML is byte-identical and cookie-free; a 100 KB page keeps every byte around the tag; INJECT_PIXEL=false leaves HTML alone", async () => {
  const env = await setup();
  try {
    const png = await env.worker.fetch("/logo.png");
    assert.deepEqual(Buffer.from(await png.arrayBuffer()), PNG);
    assert.equal(setCookieValue(png, "_ttp"), undefined);
    const js = await env.worker.fetch("/app.js");
    assert.equal(await js.text(), APP_JS);
    const big = await env.worker.fetch("/big", { headers: { "accept-encoding": "identity" } });
    assert.equal(await big.text(), BIG_PAGE.replace("<head>", `<head>${TAG}`));
  } finally {
    await env.close();
  }
  const plain = await setup({ bindings: { INJECT_PIXEL: "false" } });
  try {
    const page = await plain.worker.fetch("/products/mug");
    assert.equal(await page.text(), PAGE);
    assert.ok(setCookieValue(page, "_ttp"), "cookies do not depend on injection");
  } finally {
    await plain.close();
  }
});

test("only HTML navigations are pages, however the origin labels its answers; the route prefix is ours, a look-alike path the shop's", async () => {
  const asked = [];
  const origin = (req, res) => {
    asked.push(`${req.method} ${req.url}`);
    const [status, type] = {
      "/upper": [200, "TEXT/HTML; Charset=UTF-8"],
      "/missing": [404, "text/html; charset=utf-8"],
      "/feed.xhtml": [200, "application/xhtml+xml"],
      "/untyped": [200, undefined],
    }[req.url] ?? [200, "text/html; charset=utf-8"];
    res.writeHead(status, type ? { "content-type": type } : {}).end(PAGE);
  };
  const env = await startShop({ origin });
  try {
    const tagged = PAGE.replace("<head>", `<head>${TAG}`);
    for (const [what, path, init, want] of [
      ["a page", "/products/mug", {}, tagged],
      ["a page labelled in capitals", "/upper", {}, tagged],
      ["a look-alike of the prefix", "/ttx/page", {}, tagged],
      ["an error page", "/missing", {}, PAGE],
      ["XHTML", "/feed.xhtml", {}, PAGE],
      ["an answer without a type", "/untyped", {}, PAGE],
      ["the answer to a form post", "/cart/add", { method: "POST", body: "id=1" }, PAGE],
    ]) {
      const res = await env.worker.fetch(path, init);
      assert.equal(await res.text(), want, what);
      assert.equal(setCookieValue(res, "_ttp") !== undefined, want === tagged, `${what}: _ttp only on pages`);
    }
    const before = asked.length;
    for (const path of ["/tt", "/tt?x=1", "/tt/"]) {
      const res = await env.worker.fetch(path);
      assert.equal(res.status, 404, path);
      assert.equal((await res.json()).error, "not_found", path);
    }
    assert.equal(asked.length, before, "the prefix's own paths never reach the shop");
  } finally {
    await env.close();
  }
});

test("a page whose tracking fails (no SESSIONS binding) goes out as the origin sent it, and the failure is logged", async () => {
  const env = await startShop({ origin: serveOrigin, sessions: false });
  try {
    // An ad click's landing page: its session is written at once, or would be.
    const res = await env.worker.fetch("/products/mug?ttclid=E.C.P.untracked", { headers: { cookie: "_ttp=01JY68AFXQXP2232M0V748XS0P_.tt.1" } });
    assert.equal(res.status, 200);
    assert.equal(await res.text(), PAGE);
    assert.equal(setCookieValue(res, "_ttp"), undefined, "nothing of ours on a page we could not track");
    assert.ok(env.worker.logs.some((line) => line.includes('"event":"page_untracked"') && line.includes("SESSIONS")), env.worker.logs.join("\n"));
    const asset = await env.worker.fetch("/logo.png");
    assert.deepEqual(Buffer.from(await asset.arrayBuffer()), PNG);
  } finally {
    await env.close();
  }
});

test("the tag goes after the first real <head> start tag however the origin sends the page; pages without one pass unchanged", async () => {
  // Cut inside "<head", inside the tag's attributes and after it, with a pause between pieces.
  const pages = {
    "/shout": [["<!DOCTYPE html><!-- <head> in a comment --><HTML><HE", "AD data-a='x>y'", ">\n<title>M</title></HEAD><body>M</body></HTML>"],
      `<!DOCTYPE html><!-- <head> in a comment --><HTML><HEAD data-a='x>y'>${TAG}\n<title>M</title></HEAD><body>M</body></HTML>`],
    "/no-head": [["<html><bo", "dy><p>no head; a <head> later is not one</p></body></html>"], null],
    "/fragment": [["<p>just a fragment</p>"], null],
  };
  const env = await startShop({
    origin: async (req, res) => {
      const [pieces] = pages[req.url];
      const length = pieces.reduce((n, p) => n + Buffer.byteLength(p), 0);
      res.writeHead(200, { "content-type": "text/html; charset=utf-8", "content-length": length });
      for (const piece of pieces) {
        res.write(piece);
        await new Promise((r) => setImmediate(r));
      }
      res.end();
    },
  });
  try {
    for (const [url, [pieces, expected]] of Object.entries(pages)) {
      const resp = await env.worker.fetch(url, { headers: { "accept-encoding": "identity" } });
      assert.equal(resp.status, 200);
      const body = await resp.text();
      assert.equal(body, expected ?? pieces.join(""), url);
      const length = resp.headers.get("content-length");
      if (length !== null) assert.equal(Number(length), Buffer.byteLength(body), `${url}: Content-Length true to the body`);
    }
  } finally {
    await env.close();
  }
});

test("/tt/pixel.js and /tt/custom-pixel.js come from the shop's origin with its settings", async () => {
  const env = await setup({ bindings: { PURCHASE_EVENT_NAME: "Purchase" } });
  try {
    for (const file of ["pixel.js", "custom-pixel.js"]) {
      const res = await env.worker.fetch(`/tt/${file}`);
      assert.equal(res.status, 200, file);
      assert.match(res.headers.get("content-type"), /^application\/javascript/);
      assert.match(res.headers.get("cache-control"), /max-age=300/);
      const body = await res.text();
      assert.ok(!body.includes("__TT_EDGE_CONFIG__"), `${file}: settings filled in`);
      assert.ok(body.includes(`"pixels":[{"id":"${PIXEL_ID}"`), file);
      assert.ok(body.includes('"purchaseEvent":"Purchase"'), file);
      assert.ok(body.includes(`"origin":"${env.worker.url}"`), `${file}: absolute origin for the sandbox`);
      assert.doesNotThrow(() => new Function(body), `${file} is valid JavaScript`);
    }
  } finally {
    await env.close();
  }
});

test("/tt/sdk.js: TikTok's SDK fetched once into the edge cache; the last good copy when TikTok fails; else a harmless 503", async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "tt-sdk-"));
  const sdkPath = `/tt/sdk.js?sdkid=${PIXEL_ID}&lib=ttq`;
  try {
    const env = await setup({ persistDir: dir });
    const sdkUrl = `${env.sdkServer.url}/events.js`;
    try {
      const first = await env.worker.fetch(sdkPath);
      assert.equal(first.status, 200);
      assert.match(first.headers.get("content-type"), /^application\/javascript/);
      assert.match(first.headers.get("cache-control"), /max-age=3600/, "bounded age");
      assert.equal(await first.text(), SDK);
      assert.deepEqual(env.sdkServer.requests.map((r) => r.url), [`/events.js?sdkid=${PIXEL_ID}&lib=ttq`]);
      const kv = await env.worker.mf.getKVNamespace("SESSIONS");
      // The copy is written after the answer (cache first, then KV).
      await waitFor("the last good copy", async () => (await kv.list({ prefix: "sdk:" })).keys.length === 1);
      const second = await env.worker.fetch(sdkPath);
      assert.equal(await second.text(), SDK);
      assert.equal(env.sdkServer.requests.length, 1, "served from the edge cache");
      // Only the configured pixel's SDK is served: another sdkid is refused, never fetched.
      const other = await env.worker.fetch("/tt/sdk.js?sdkid=x%26evil%3D1");
      assert.equal(other.status, 404);
      assert.match(await other.text(), /^\/\* tiktok-edge: .*\*\/\n$/);
      assert.equal(env.sdkServer.requests.length, 1);
    } finally {
      await env.close();
    }
    // TikTok unreachable: same SDK URL, nothing listening any more.
    const down = await setup({ persistDir: dir, bindings: { TIKTOK_SDK_URL: sdkUrl } });
    try {
      const stale = await down.worker.fetch(sdkPath);
      assert.equal(stale.status, 200);
      assert.equal(stale.headers.get("x-tt-sdk"), "stale");
      assert.equal(await stale.text(), SDK);
    } finally {
      await down.close();
    }
    // Unreachable, and no copy of this SDK URL yet.
    const never = await setup({ persistDir: dir, bindings: { TIKTOK_SDK_URL: `${sdkUrl}?v=2` } });
    try {
      const res = await never.worker.fetch(sdkPath);
      assert.equal(res.status, 503);
      assert.match(res.headers.get("content-type"), /^application\/javascript/);
      assert.match(await res.text(), /^\/\* tiktok-edge: .*\*\/\n$/, "a comment: nothing breaks on the page");
    } finally {
      await never.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("every funnel step: the browser's collect and the webhook share the event_id and give one server event, in either order", async () => {
  const env = await setup();
  try {
    // Joins come from the edge alone here (no cart attributes): the visit links the cart.
    const cart = { ...loadFixture("cart_update.json"), note_attributes: [] };
    const checkout = { ...loadFixture("checkout_update.json"), note_attributes: [] };
    const order = { ...loadFixture("order_create.json"), note_attributes: [] };
    const cartCookie = `cart=${encodeURIComponent(`${cart.token}?key=secret`)}`;
    const landing = await env.worker.fetch("/products/demo-mug", { headers: { "cf-connecting-ip": "203.0.113.8", cookie: cartCookie } });
    const ttp = setCookieValue(landing, "_ttp");
    await landing.arrayBuffer();
    const kv = await env.worker.mf.getKVNamespace("SESSIONS");
    await waitFor("the cart linked to the session", async () => (await kv.get(`cart:${cart.token}`)) === ttp);
    const cookie = `_ttp=${ttp}; _tt_s=1; ${cartCookie}; _tt_c=${cart.token}`;
    const collect = async (body) => {
      const res = await postCollect(env.worker, body, { cookie, origin: env.worker.url, "cf-connecting-ip": "203.0.113.8" });
      assert.equal(res.status, 202);
      return res.json();
    };
    const ids = {
      AddToCart: `atc:${cart.token}:42001234567890123:2`,
      InitiateCheckout: `ic:${checkout.token}`,
      AddPaymentInfo: `api:${checkout.token}`,
      Purchase: "5900000000000000123",
    };
    // Browser first: once TikTok has the browser's copy, the webhook's changes nothing.
    assert.equal((await collect({ event: "AddToCart", event_id: ids.AddToCart, properties: { contents: [{ content_id: "42001234567890123", quantity: 2, price: "17.00" }], currency: "EUR" } })).queued, true);
    await waitFor("the browser's AddToCart at TikTok", () => env.sentEvents().some((e) => e.event_id === ids.AddToCart));
    assert.equal((await deliverWebhook(env.worker, "carts/update", cart)).body.queued, 0);
    // Webhooks first: the browser's copies are duplicates.
    const created = await deliverWebhook(env.worker, "checkouts/create", { ...checkout, shipping_lines: [] });
    const updated = await deliverWebhook(env.worker, "checkouts/update", checkout);
    assert.equal(created.body.queued + updated.body.queued, 2, "InitiateCheckout and AddPaymentInfo from webhooks");
    assert.equal((await collect({ event: "InitiateCheckout", event_id: ids.InitiateCheckout, checkout_token: checkout.token })).queued, false);
    assert.equal((await collect({ event: "AddPaymentInfo", event_id: ids.AddPaymentInfo })).queued, false);
    // Purchase: browser first again; it waits for the signed order, which merges into it.
    assert.equal((await collect({ event: "Purchase", event_id: ids.Purchase, properties: { order_id: ids.Purchase } })).queued, true);
    assert.equal((await deliverWebhook(env.worker, "orders/create", order)).body.queued, 1);

    const sent = await waitFor("four events at TikTok", () => {
      const events = env.sentEvents();
      return events.length >= 4 && events;
    });
    assert.deepEqual(Object.fromEntries(sent.map((e) => [e.event, e.event_id])), ids);
    assert.equal(sent.length, 4, "one server event per step");
    for (const e of sent) assert.equal(e.user.ttp, ttp, `${e.event} carries the visitor's _ttp`);
    // TikTok has them; the shards record its answers right after (a stats call can come first).
    const admin = await waitFor("TikTok's answers recorded", async () => {
      const view = await adminJson(env.worker);
      return Object.keys(ids).every((name) => countOf(view, name, "sent") >= 1) && view;
    });
    for (const name of Object.keys(ids)) assert.equal(countOf(admin, name, "sent"), 1, name);
  } finally {
    await env.close();
  }
});

test("browser endpoints answer the shop's origin and Shopify's pixel sandbox only", async () => {
  const env = await setup();
  try {
    const preflight = (origin) => env.worker.fetch("/tt/collect", { method: "OPTIONS", headers: { origin, "access-control-request-method": "POST" } });
    const own = await preflight(env.worker.url);
    assert.equal(own.status, 204);
    assert.equal(own.headers.get("access-control-allow-origin"), env.worker.url);
    assert.match(own.headers.get("access-control-allow-headers"), /content-type/i);
    const sandbox = await preflight("null");
    assert.equal(sandbox.headers.get("access-control-allow-origin"), "null");
    const evil = await preflight("https://evil.example");
    assert.equal(evil.status, 403);
    assert.equal(evil.headers.get("access-control-allow-origin"), null);

    const forged = await postCollect(env.worker, { event: "ViewContent", event_id: "vc:evil" }, { origin: "https://evil.example", "content-type": "text/plain" });
    assert.equal(forged.status, 403);
    assert.equal((await forged.json()).error, "origin_not_allowed");
    const consent = await env.worker.fetch("/tt/consent", { method: "POST", headers: { origin: "https://evil.example" }, body: '{"marketing":false}' });
    assert.equal(consent.status, 403);
    assert.equal(setCookieValue(consent, "_tt_consent"), undefined);
    const admin = await adminJson(env.worker);
    assert.deepEqual(admin.queue.counts, [], "nothing queued from another site");
  } finally {
    await env.close();
  }
});
