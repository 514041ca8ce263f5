// Hostile outsiders, tried as an attacker would against the built Worker: replayed signed
// bodies under another topic or from another shop, address-rotating floods, SDK cache
// flooding, oversized headers and unsized bodies, crafted numbers, values in parked reasons,
// tokens in URLs, a bad optional setting. Each costs the shop nothing.
import { test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import {
  startShop, startServer, waitFor, adminJson, loadFixture, big, toJson, deliverWebhook,
  setCookieValue, signWebhook, ADMIN_TOKEN, PIXEL_ID, SHOP_DOMAIN, WEBHOOK_SECRET, postCollect, inOneRateWindow,
} from "./support/harness.mjs";

const RAW_EMAIL = "replayed.buyer@example.com";

async function setup(options = {}) {
  const shop = await startShop(options);
  const kv = await shop.worker.mf.getKVNamespace("SESSIONS");
  return {
    ...shop,
    kv,
    /** KV keys, without the parked webhooks (refusing writes those, on purpose). */
    kept: async () => (await kv.list()).keys.map((k) => k.name).filter((k) => !k.startsWith("parked:")).sort(),
    /** Events the queue holds (a dry run keeps them all). */
    held: async () => (await adminJson(shop.worker)).queue.recent.length,
    collect: (body, headers = {}) => postCollect(shop.worker, body, { "cf-connecting-ip": "198.51.100.1", ...headers }),
  };
}

test("a signed orders/paid body replayed as shop/redact or customers/redact deletes nothing; another shop's webhooks change nothing", async () => {
  const env = await setup({ bindings: { TIKTOK_ACCESS_TOKEN: "" } }); // dry run: events stay queued
  try {
    // A visitor whose _ttp came back with its proof (the second page), so the session is written.
    const first = await env.worker.fetch("/");
    await first.arrayBuffer();
    const proven = `_ttp=${setCookieValue(first, "_ttp")}; _tt_p=${setCookieValue(first, "_tt_p")}`;
    const visit = await env.worker.fetch("/products/mug", { headers: { cookie: `cart=c1-replay; ${proven}` } });
    const ttp = setCookieValue(visit, "_ttp");
    await visit.arrayBuffer();
    for (const id of ["vc:r1", "vc:r2", "vc:r3"]) {
      assert.equal((await env.collect({ event: "ViewContent", event_id: id }, { cookie: `_ttp=${ttp}` })).status, 202);
    }
    const order = { ...loadFixture("order_create.json"), id: big("5900000000000000777"), email: RAW_EMAIL, note_attributes: [] };
    const paid = toJson(order);
    assert.equal((await deliverWebhook(env.worker, "orders/create", paid, { webhookId: "wh-create" })).body.queued, 1);
    assert.equal((await deliverWebhook(env.worker, "orders/paid", paid, { webhookId: "wh-paid" })).status, 200);
    await waitFor("session, link and resource in KV", async () => (await env.kept()).length >= 3);
    const keys = await env.kept();
    assert.equal(await env.held(), 4);

    for (const topic of ["shop/redact", "customers/redact", "customers/data_request"]) {
      const replay = await deliverWebhook(env.worker, topic, paid, { webhookId: `wh-replay-${topic}` });
      assert.equal(replay.status, 200, topic);
      assert.match(replay.body.parked, /^shop_id: missing, expected an id/, topic);
    }
    // A genuine privacy request of another shop (a public app signs every shop's with one
    // secret), sent with this shop's header: its body names the other shop.
    for (const [topic, body] of [
      ["shop/redact", '{"shop_id":2,"shop_domain":"other-shop.myshopify.com"}'],
      ["customers/redact", '{"shop_id":2,"shop_domain":"other-shop.myshopify.com","customer":{"id":1},"orders_to_redact":[5900000000000000777]}'],
    ]) {
      const res = await deliverWebhook(env.worker, topic, body);
      assert.match(res.body.parked, /^shop_domain: expected the configured shop/, topic);
    }
    // Another shop's header, even with a valid signature and a well-formed body.
    const foreign = await deliverWebhook(env.worker, "shop/redact", `{"shop_id":2,"shop_domain":"${SHOP_DOMAIN}"}`, { shop: "other-shop.myshopify.com" });
    assert.equal(foreign.status, 403);
    assert.equal(foreign.body.error, "wrong_shop");

    await waitFor("the refusal counted", async () => (await env.kept()).includes("webhooks:refused"));
    assert.deepEqual(await env.kept(), [...keys, "webhooks:refused"].sort(), "every KV key is still there, and the refusal counted");
    assert.equal(await env.held(), 4, "every queued event is still there");
    const again = await deliverWebhook(env.worker, "orders/create", paid, { webhookId: "wh-create" });
    assert.equal(again.body.duplicate, true, "the order's ShopState still remembers its delivery");

    const parked = (await adminJson(env.worker)).parked_webhooks;
    assert.equal(parked.length, 5);
    for (const line of [...env.worker.logs, JSON.stringify(parked)]) assert.ok(!line.includes(RAW_EMAIL), line);

    // The shop's own redaction still works, and only for what it names.
    const real = await deliverWebhook(env.worker, "shop/redact", `{"shop_id":1,"shop_domain":"${SHOP_DOMAIN}"}`);
    assert.equal(real.status, 200);
    assert.deepEqual(await env.kept(), []);
  } finally {
    await env.close();
  }
});

test("parked reasons name the field path and the expected type, never the value (log, KV, admin page)", async () => {
  const env = await setup();
  try {
    const order = loadFixture("order_create.json");
    order.line_items[0].quantity = RAW_EMAIL;
    const res = await deliverWebhook(env.worker, "orders/create", order);
    assert.equal(res.status, 200);
    assert.equal(res.body.parked, "payload does not match the topic: line_items[0].quantity: expected u64");
    const cart = { ...loadFixture("cart_update.json"), token: 42 };
    assert.equal((await deliverWebhook(env.worker, "carts/update", cart)).body.parked, "token: expected a string in a cart");
    const stored = (await env.kv.list({ prefix: "parked:" })).keys;
    assert.equal(stored.length, 2);
    const page = await (await env.worker.fetch("/tt/admin", { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).text();
    assert.ok(page.includes("line_items[0].quantity: expected u64"));
    for (const text of [page, ...env.worker.logs, ...(await Promise.all(stored.map((k) => env.kv.get(k.name))))]) {
      assert.ok(!text.includes(RAW_EMAIL) && !text.includes("replayed.buyer"), text.slice(0, 200));
    }
  } finally {
    await env.close();
  }
});

test("a flood from one IPv6 /64 is limited like one address; a shop-wide budget caps many addresses", async () => {
  const env = await setup({ collectLimit: 5, shopLimit: 20 });
  try {
    await inOneRateWindow(async () => {
      const from = (ip, i) => env.collect({ event: "ViewContent", event_id: `vc:f${i}` }, { "cf-connecting-ip": ip });
      const statuses = [];
      for (let i = 0; i < 130; i++) statuses.push((await from(`2001:db8:1:2::${(i + 1).toString(16)}`, i)).status);
      assert.deepEqual(statuses.slice(0, 5), [202, 202, 202, 202, 202]);
      assert.ok(statuses.slice(5).every((s) => s === 429), "the other 125 addresses of the /64 are limited");
      assert.equal((await from("2001:db8:1:3::1", 200)).status, 202, "the next /64 is another client");
      assert.equal((await from("192.0.2.60", 201)).status, 202, "an IPv4 address is its own client");

      // 7 calls so far passed the client limits; the shop's budget of 20 takes 13 more.
      const spread = [];
      for (let i = 0; i < 16; i++) spread.push((await from(`192.0.2.${100 + i}`, 300 + i)).status);
      assert.deepEqual(spread.filter((s) => s === 202).length, 13);
      const over = await from("192.0.2.250", 400);
      assert.equal(over.status, 429);
      assert.match((await over.json()).message, /shop's budget/);
    });
  } finally {
    await env.close();
  }
});

test("1,000 distinct sdkids leave one SDK copy in KV, with a TTL, and reach TikTok once", async () => {
  const sdk = await startServer((req, res) => res.writeHead(200, { "content-type": "application/javascript" }).end("/* sdk */"));
  const env = await setup({ bindings: { TIKTOK_SDK_URL: `${sdk.url}/events.js` } });
  try {
    const ours = await env.worker.fetch(`/tt/sdk.js?sdkid=${PIXEL_ID}&lib=ttq`);
    assert.equal(ours.status, 200);
    assert.equal(await ours.text(), "/* sdk */");
    for (let i = 0; i < 1000; i++) {
      const res = await env.worker.fetch(`/tt/sdk.js?sdkid=ATTACKER${i}&lib=ttq`);
      assert.equal(res.status, 404);
      assert.match(res.headers.get("content-type"), /^application\/javascript/);
      await res.arrayBuffer();
    }
    const copies = await waitFor("the copy", async () => {
      const keys = (await env.kv.list({ prefix: "sdk:" })).keys;
      return keys.length > 0 && keys;
    });
    assert.equal(copies.length, 1);
    assert.ok(copies[0].expiration > Date.now() / 1000, "the copy expires");
    assert.equal(sdk.requests.length, 1, "TikTok was asked once");
  } finally {
    await env.close();
    await sdk.close();
  }
});

test("a 128 KB user agent is stored and sent capped", async () => {
  const env = await setup();
  try {
    // 128 kB: as large as workerd takes a header block (128 KiB in all).
    const ua = `Mozilla/5.0 ${"X".repeat(128_000)}`;
    // The consent report starts the session (the played shop origin, a Node server, would
    // refuse such a header block itself; the Worker reads the visit the same way on both paths).
    const consented = await env.worker.fetch("/tt/consent", {
      method: "POST",
      headers: { "content-type": "application/json", "user-agent": ua, "cf-connecting-ip": "203.0.113.5", referer: `https://shop.example/products/${"p".repeat(2100)}?utm_source=tiktok` },
      body: JSON.stringify({ marketing: true, sale_of_data: true }),
    });
    assert.equal(consented.status, 200);
    const ttp = setCookieValue(consented, "_ttp");
    const session = await waitFor("the session", async () => JSON.parse((await env.kv.get(`session:${ttp}`)) ?? "null"));
    assert.equal(session.user_agent.length, 512);
    assert.ok(ua.startsWith(session.user_agent));
    assert.equal(session.landing_url.length, 2048);

    const res = await env.collect({ event: "ViewContent", event_id: "vc:ua", properties: { contents: [{ content_id: "1", content_name: "n".repeat(5000) }] } }, { "user-agent": ua, cookie: `_ttp=${ttp}` });
    assert.equal(res.status, 202);
    const [sent] = await waitFor("the event at TikTok", () => env.sentEvents().length === 1 && env.sentEvents());
    assert.equal(sent.user.user_agent.length, 512);
    assert.equal(sent.properties.contents[0].content_name.length, 512);
  } finally {
    await env.close();
  }
});

/**
 * Streams `total` bytes without a Content-Length (chunked) to `path`, as fast as the Worker
 * reads them; resolves with the answer's status and how many bytes had been written when it
 * came. Writing stops at the answer.
 */
function streamUnsized(url, path, total, headers = {}) {
  return new Promise((resolve, reject) => {
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    let written = 0;
    let answered = false;
    const req = http.request(new URL(path, url), { method: "POST", headers: { "content-type": "application/json", ...headers } }, (res) => {
      answered = true;
      const at = written;
      res.resume();
      res.on("end", () => { req.destroy(); resolve({ status: res.statusCode, written: at }); });
    });
    // Having answered, workerd closes the connection; a write racing that close may see the
    // reset before the answer is read: the body was cut off all the same.
    req.on("error", (e) => {
      if (answered) return;
      if (e.code === "ECONNRESET" || e.code === "EPIPE") setTimeout(() => answered || resolve({ status: "reset", written }), 200);
      else reject(e);
    });
    const pump = () => {
      while (!answered && written < total) {
        written += chunk.length;
        if (!req.write(chunk)) return req.once("drain", pump);
      }
      if (!answered) req.end();
    };
    pump();
  });
}

test("an unsized 50 MB body is cut off early: 413 long before it is read", async () => {
  const env = await setup();
  try {
    const total = 50 * 1024 * 1024;
    for (const [path, headers] of [
      ["/tt/collect", { "cf-connecting-ip": "198.51.100.9" }],
      ["/tt/consent", { "cf-connecting-ip": "198.51.100.9" }],
      ["/tt/webhooks/shopify", { "x-shopify-topic": "orders/create", "x-shopify-shop-domain": SHOP_DOMAIN, "x-shopify-hmac-sha256": signWebhook("x", WEBHOOK_SECRET) }],
    ]) {
      const { status, written } = await streamUnsized(env.worker.url, path, total, headers);
      assert.ok(status === 413 || status === "reset", `${path}: ${status}`);
      assert.ok(written < total / 5, `${path}: answered after ${written} of ${total} bytes`);
      console.log(`${path}: ${status} after ${(written / 1024 / 1024).toFixed(1)} MB of an unsized 50 MB body`);
    }
  } finally {
    await env.close();
  }
});

test("crafted numbers get a 4xx at the edge and never a 5xx anywhere", async () => {
  const env = await setup();
  try {
    const cases = [
      { contents: [{ content_id: "1", quantity: 10000, price: "99999999999999.99" }] }, // price × quantity near 1e18
      { market_id: "__U64_MAX__" },
      { value: "1e18" },
      { value: "1000000000000.01" },
      { currency: "usd" },
      { contents: [{ content_id: "1", quantity: 18446744073709551615 }] },
    ];
    for (const properties of cases) {
      const body = JSON.stringify({ event: "AddToCart", event_id: "atc:crafted", properties }).replace('"__U64_MAX__"', "18446744073709551615");
      const res = await env.collect(body);
      assert.equal(res.status, 400, body);
      assert.equal((await res.json()).error, "invalid_event");
    }
    // At the bounds: accepted, and sent exactly as the browser said.
    const edge = await env.collect(`{"event":"AddToCart","event_id":"atc:bounds","properties":{"currency":"JPY","contents":[{"content_id":"1","quantity":10000,"price":"100000000"}],"market_id":9007199254740991}}`);
    assert.equal(edge.status, 202);
    const [sent] = await waitFor("the bounded event at TikTok", () => env.sentEvents().length === 1 && env.sentEvents());
    assert.equal(sent.properties.value, 1e12);
    assert.equal(sent.properties.market_id, 9007199254740991);

    // Signed webhooks with absurd amounts and ids: acknowledged (queued or parked), never a 5xx.
    const order = loadFixture("order_create.json");
    order.id = big("18446744073709551615");
    order.line_items[0].quantity = big("18446744073709551615");
    order.line_items[0].price = "99999999999999999999.999999999";
    order.total_price = "99999999999999999999.999999999";
    order.note_attributes = [{ name: "_tt_market_id", value: "18446744073709551615" }];
    const res = await deliverWebhook(env.worker, "orders/create", order);
    assert.equal(res.status, 200, JSON.stringify(res.body));
  } finally {
    await env.close();
  }
});

test("cookies as long as the Worker takes them (their KV keys would be too long) never make a 5xx", async () => {
  const env = await setup();
  try {
    const long = "A".repeat(510);
    const jar = `_ttp=${long}; cart=${long}`;
    const consent = await env.worker.fetch("/tt/consent", { method: "POST", headers: { cookie: jar, "content-type": "application/json" }, body: '{"marketing":false}' });
    assert.equal(consent.status, 200);
    assert.equal((await env.collect({ event: "AddToCart", event_id: "atc:long" }, { cookie: jar })).status, 202);
    const page = await env.worker.fetch("/products/mug", { headers: { cookie: jar } });
    assert.equal(page.status, 200);
    await page.arrayBuffer();
    const checkout = { ...loadFixture("checkout_update.json"), token: "t".repeat(300) };
    assert.match((await deliverWebhook(env.worker, "checkouts/create", checkout)).body.parked, /^token: expected a string of at most 256 bytes/);
  } finally {
    await env.close();
  }
});

test("a short ADMIN_TOKEN turns off the admin page only: collect, webhooks and the pixel work, health names it", async () => {
  const env = await setup({ bindings: { ADMIN_TOKEN: "too-short" } });
  try {
    const health = await env.worker.fetch("/tt/health");
    assert.equal(health.status, 424, "degraded: a monitor sees it");
    const report = await health.json();
    assert.equal(report.status, "degraded");
    assert.equal(report.mode, "live");
    assert.deepEqual(report.problems.map((p) => [p.name, p.disables]), [["ADMIN_TOKEN", "the admin page"]]);
    assert.ok(!JSON.stringify(report).includes("too-short"));

    assert.equal((await env.worker.fetch("/tt/pixel.js")).status, 200);
    assert.equal((await env.collect({ event: "ViewContent", event_id: "vc:degraded" })).status, 202);
    assert.equal((await deliverWebhook(env.worker, "orders/create", loadFixture("order_create.json"))).body.queued, 1);
    await waitFor("both events at TikTok", () => env.sentEvents().length === 2);

    for (const p of ["/tt/admin", "/tt/admin.json"]) {
      const off = await env.worker.fetch(p, { headers: { authorization: "Bearer too-short" } });
      assert.equal(off.status, 503, p);
      assert.match((await off.json()).message, /^ADMIN_TOKEN: must be at least 16 characters/);
    }
  } finally {
    await env.close();
  }
});

test("webhooks need SHOPIFY_SHOP_DOMAIN: without it they answer 503 and health names it, the rest works", async () => {
  const env = await setup({ bindings: { SHOPIFY_SHOP_DOMAIN: "" } });
  try {
    const res = await deliverWebhook(env.worker, "orders/create", loadFixture("order_create.json"));
    assert.equal(res.status, 503);
    assert.match(res.body.message, /^SHOPIFY_SHOP_DOMAIN: must be set/);
    const report = await (await env.worker.fetch("/tt/health")).json();
    assert.equal(report.status, "degraded");
    assert.equal(report.shop_domain_configured, false);
    assert.deepEqual(report.problems.map((p) => [p.name, p.disables]), [["SHOPIFY_SHOP_DOMAIN", "webhooks"]]);
    assert.equal((await env.collect({ event: "ViewContent", event_id: "vc:nodomain" })).status, 202);
  } finally {
    await env.close();
  }
});

test("the admin token never rides in a URL: ?token= opens nothing; the sign-in form sets a short-lived HttpOnly, Secure, SameSite=Strict cookie", async () => {
  const env = await setup();
  try {
    const viaUrl = await env.worker.fetch(`/tt/admin?token=${ADMIN_TOKEN}`);
    assert.equal(viaUrl.status, 401);
    const form = await viaUrl.text();
    assert.match(form, /<form method="post" action="\/tt\/admin">/);
    assert.ok(!form.includes("<table"), "no data");
    assert.equal((await env.worker.fetch(`/tt/admin.json?token=${ADMIN_TOKEN}`)).status, 401);

    const post = (token) => env.worker.fetch("/tt/admin", {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ token }).toString(),
    });
    const wrong = await post("wrong-token-0123456789");
    assert.equal(wrong.status, 401);
    assert.equal(wrong.headers.get("set-cookie"), null);

    const signedIn = await post(ADMIN_TOKEN);
    assert.equal(signedIn.status, 303);
    assert.equal(signedIn.headers.get("location"), "/tt/admin");
    const cookie = signedIn.headers.get("set-cookie");
    for (const part of ["HttpOnly", "Secure", "SameSite=Strict", "Path=/tt", "Max-Age=3600"]) assert.ok(cookie.includes(part), cookie);
    assert.ok(!cookie.includes(ADMIN_TOKEN), "the cookie is a session, not the token");
    const session = cookie.split(";")[0];
    const page = await env.worker.fetch("/tt/admin", { headers: { cookie: session } });
    assert.equal(page.status, 200);
    assert.match(await page.text(), /tiktok-edge status/);
    assert.equal((await env.worker.fetch("/tt/admin.json", { headers: { cookie: session } })).status, 200);
    const forged = session.replace(/=(\d+)\./, (_, t) => `=${Number(t) + 60}.`);
    assert.equal((await env.worker.fetch("/tt/admin", { headers: { cookie: forged } })).status, 401);
  } finally {
    await env.close();
  }
});
