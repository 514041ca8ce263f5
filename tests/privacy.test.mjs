// Consent, privacy webhooks and hostile input: nothing set or sent without consent, redaction
// that really deletes (checked by reading KV and by the Durable Objects' behaviour), bad
// input answered with 4xx (or 2xx-and-parked when signed) and never a 5xx, nothing leaked.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  startShop, waitFor, adminJson, countOf, loadFixture,
  big, toJson, deliverWebhook, setCookieValue, setCookieLine, signWebhook, postCollect, inOneRateWindow,
} from "./support/harness.mjs";

const RAW_EMAIL = "buyer.person@example.com";
const RAW_PHONES = ["373-4253", "3734253"];
const PAGE = "<!doctype html><html><head><title>Shop</title></head><body>shop</body></html>";

async function setup(options = {}) {
  const shop = await startShop({ origin: (req, res) => res.writeHead(200, { "content-type": "text/html" }).end(PAGE), ...options });
  const kv = await shop.worker.mf.getKVNamespace("SESSIONS");
  return {
    ...shop,
    kv,
    kvKeys: async () => (await kv.list()).keys.map((k) => k.name),
    collect: (body, headers = {}) => postCollect(shop.worker, body, { "cf-connecting-ip": "198.51.100.1", ...headers }),
  };
}

/** Log lines must never hold a raw email, phone or the cart's `?key=` secret. */
function assertNothingLeaked(logs, secrets) {
  for (const line of logs) {
    for (const secret of [RAW_EMAIL, ...RAW_PHONES, ...secrets]) {
      assert.ok(!line.toLowerCase().includes(secret.toLowerCase()), `log line leaks ${secret}: ${line}`);
    }
  }
}

test("a visitor who declines: no tracking cookies, no browser events kept, and their order is not sent", async () => {
  const env = await setup();
  try {
    const cartCookie = `cart=${encodeURIComponent("c1-declined?key=declinedsecret")}`;
    const first = await env.worker.fetch("/products/mug", { headers: { cookie: cartCookie } });
    const ttp = setCookieValue(first, "_ttp");
    assert.ok(ttp, "unknown consent follows CONSENT_DEFAULT (allowed)");
    await first.arrayBuffer();

    const declined = await env.worker.fetch("/tt/consent", {
      method: "POST",
      headers: { "content-type": "application/json", cookie: `_ttp=${ttp}; ${cartCookie}` },
      body: JSON.stringify({ marketing: false, sale_of_data: true }),
    });
    assert.equal(declined.status, 200);
    assert.deepEqual(await declined.json(), { consent: "denied" });
    assert.equal(setCookieValue(declined, "_tt_consent"), "denied");
    for (const name of ["_ttp", "ttclid"]) assert.match(setCookieLine(declined, name), /Max-Age=0/, `${name} expired`);
    assert.deepEqual(JSON.parse(await env.kv.get(`session:${ttp}`)), { marketing_allowed: false, limited_data_use: false }, "identifiers forgotten");
    assert.equal(await env.kv.get("cart:c1-declined"), ttp, "the cart carries the refusal");

    const jar = `_tt_consent=denied; ${cartCookie}`;
    const later = await env.worker.fetch("/products/mug?ttclid=E.C.P.declined", { headers: { cookie: jar } });
    assert.equal(setCookieValue(later, "_ttp"), undefined);
    assert.equal(setCookieValue(later, "ttclid"), undefined);
    assert.match(await later.text(), /pixel\.js/, "the pixel still loads: it reports consent changes");

    const view = await env.collect({ event: "ViewContent", event_id: "vc:declined1" }, { cookie: jar });
    assert.equal(view.status, 202);
    assert.deepEqual(await view.json(), { event_id: "vc:declined1", queued: false, reason: "consent" });
    const sandboxed = await env.collect({ event: "ViewContent", event_id: "vc:declined2", consent: { marketing: false } }, { origin: "null" });
    assert.equal((await sandboxed.json()).queued, false, "a refusal reported in the body counts too");

    const order = { ...loadFixture("order_create.json"), id: big("5900000000000000901"), cart_token: "c1-declined", checkout_token: null, note_attributes: [] };
    const hook = await deliverWebhook(env.worker, "orders/create", order);
    assert.equal(hook.status, 200);
    assert.equal(hook.body.queued, 0);
    assert.match(hook.body.skipped, /declined/);

    // A consenting visitor's event goes through the same queue and arrives; the declined ones never were queued.
    assert.equal((await env.collect({ event: "ViewContent", event_id: "vc:control" })).status, 202);
    await waitFor("the control event at TikTok", () => env.sentEvents().some((e) => e.event_id === "vc:control"));
    assert.deepEqual(env.sentEvents().map((e) => e.event_id), ["vc:control"]);
    const admin = await adminJson(env.worker);
    assert.equal(countOf(admin, "Purchase", "sent") + countOf(admin, "Purchase", "queued"), 0);
    assertNothingLeaked(env.worker.logs, ["declinedsecret"]);
  } finally {
    await env.close();
  }
});

test("Sec-GPC: 1 or a sale-of-data opt-out sends limited_data_use: true", async () => {
  const env = await setup();
  try {
    assert.equal((await env.collect({ event: "ViewContent", event_id: "vc:gpc" }, { "sec-gpc": "1" })).status, 202);
    const limited = await env.worker.fetch("/tt/consent", { method: "POST", body: JSON.stringify({ marketing: true, sale_of_data: false }) });
    assert.deepEqual(await limited.json(), { consent: "limited" });
    const jar = `_tt_consent=${setCookieValue(limited, "_tt_consent")}`;
    assert.equal((await env.collect({ event: "ViewContent", event_id: "vc:optout" }, { cookie: jar })).status, 202);
    assert.equal((await env.collect({ event: "ViewContent", event_id: "vc:plain" })).status, 202);
    const sent = await waitFor("three events", () => env.sentEvents().length >= 3 && env.sentEvents());
    const ldu = Object.fromEntries(sent.map((e) => [e.event_id, e.limited_data_use ?? false]));
    assert.deepEqual(ldu, { "vc:gpc": true, "vc:optout": true, "vc:plain": false });
  } finally {
    await env.close();
  }
});

test("customers/redact deletes the order's state, its cart and checkout, their sessions, links and queued events", async () => {
  const env = await setup({ bindings: { TIKTOK_ACCESS_TOKEN: "" } }); // dry run: rows stay in the queue until redacted
  try {
    const cartCookie = `cart=${encodeURIComponent("c1-redact?key=redactsecret")}`;
    const visit = await env.worker.fetch("/products/mug?ttclid=E.C.P.redact", { headers: { cookie: cartCookie, "cf-connecting-ip": "198.51.100.77" } });
    const ttp = setCookieValue(visit, "_ttp");
    await visit.arrayBuffer();
    await waitFor("session and cart link", async () => (await env.kv.get("cart:c1-redact")) === ttp && (await env.kv.get(`session:${ttp}`)));
    assert.equal((await env.collect({ event: "ViewContent", event_id: "vc:redact" }, { cookie: `_ttp=${ttp}` })).status, 202);

    const cart = { ...loadFixture("cart_update.json"), id: "c1-redact", token: "c1-redact", note_attributes: [] };
    const checkout = { ...loadFixture("checkout_update.json"), token: "chk-redact", cart_token: "c1-redact", note_attributes: [] };
    const order = { ...loadFixture("order_create.json"), id: big("5900000000000000555"), cart_token: "c1-redact", checkout_token: "chk-redact", note_attributes: [] };
    await deliverWebhook(env.worker, "carts/update", cart);
    await deliverWebhook(env.worker, "checkouts/create", checkout);
    const placed = await deliverWebhook(env.worker, "orders/create", order, { webhookId: "wh-order-redact" });
    assert.equal(placed.body.queued, 1);
    const before = await adminJson(env.worker);
    assert.equal(before.queue.recent.length, 5, "ViewContent, AddToCart, InitiateCheckout, AddPaymentInfo, Purchase");
    const keysBefore = await env.kvKeys();
    for (const key of [`session:${ttp}`, "cart:c1-redact", "checkout:chk-redact", "resource:order:5900000000000000555", "resource:cart:c1-redact", "resource:checkout:chk-redact"]) {
      assert.ok(keysBefore.includes(key), `${key} exists before`);
    }

    const redact = await deliverWebhook(env.worker, "customers/redact", `{"shop_id":954889,"shop_domain":"demo.myshopify.com","customer":{"id":191167,"email":"${RAW_EMAIL}","phone":"555-625-1199"},"orders_to_redact":[5900000000000000555]}`);
    assert.equal(redact.status, 200);
    assert.equal(redact.body.redacted_orders, 1);

    // What stays is the shop's own record, no customer's: when a webhook was last accepted.
    assert.deepEqual(await env.kvKeys(), ["webhooks:accepted"], "sessions, links and registrations are gone");
    const after = await adminJson(env.worker);
    assert.deepEqual(after.queue.recent, [], "queued events are gone, the browser's included");
    // The order's Durable Object forgot the delivery: the same webhook is new again.
    const replay = await deliverWebhook(env.worker, "orders/create", order, { webhookId: "wh-order-redact" });
    assert.equal(replay.body.duplicate, false);
    assert.equal(replay.body.queued, 1, "and the queue no longer had the event");
    assertNothingLeaked(env.worker.logs, ["redactsecret", "555-625-1199"]);
  } finally {
    await env.close();
  }
});

test("shop/redact deletes everything the Worker keeps; customers/data_request is acknowledged without personal data", async () => {
  const env = await setup({ bindings: { TIKTOK_ACCESS_TOKEN: "" } });
  try {
    // The second page of a visit (its _ttp came back with its proof): session and cart link are written.
    const first = await env.worker.fetch("/");
    await first.arrayBuffer();
    const proven = `_ttp=${setCookieValue(first, "_ttp")}; _tt_p=${setCookieValue(first, "_tt_p")}`;
    const visit = await env.worker.fetch("/", { headers: { cookie: `cart=c1-shop; ${proven}` } });
    await visit.arrayBuffer();
    await deliverWebhook(env.worker, "orders/create", { ...loadFixture("order_create.json"), id: 77 });
    await waitFor("some state", async () => (await env.kvKeys()).length >= 3);
    const request = await deliverWebhook(env.worker, "customers/data_request", `{"shop_id":1,"shop_domain":"demo.myshopify.com","customer":{"id":2,"email":"${RAW_EMAIL}"},"orders_requested":[77],"data_request":{"id":9}}`);
    assert.equal(request.status, 200);
    assert.ok(request.body.acknowledged);
    const gone = await deliverWebhook(env.worker, "shop/redact", '{"shop_id":1,"shop_domain":"demo.myshopify.com"}');
    assert.equal(gone.status, 200);
    assert.deepEqual(await env.kvKeys(), []);
    assert.deepEqual((await adminJson(env.worker)).queue.recent, []);
    assert.equal((await deliverWebhook(env.worker, "orders/create", { ...loadFixture("order_create.json"), id: 77 })).body.duplicate, false);
    assertNothingLeaked(env.worker.logs, []);
  } finally {
    await env.close();
  }
});

test("hostile bodies: 4xx (or 200 and parked when signed), never a 5xx, nothing queued", async () => {
  const env = await setup();
  try {
    const nested = `{"event":"AddToCart","event_id":"x","properties":${"[".repeat(6000)}${"]".repeat(6000)}}`;
    const collectCases = [
      ["non-UTF-8", Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), 400],
      ["truncated", '{"event":"AddToCart","event_id":"atc:1', 400],
      ["deeply nested", nested, 400],
      ["not an object", "[1,2,3]", 400],
      ["wrong types", '{"event":["AddToCart"],"event_id":{"a":1}}', 400],
      ["unknown event", '{"event":"Hack","event_id":"x"}', 400],
      ["header injection in event_id", '{"event":"AddToCart","event_id":"x\\r\\nSet-Cookie: a=1"}', 400],
      ["oversized", JSON.stringify({ event: "AddToCart", event_id: "big", pad: "a".repeat(20_000) }), 413],
      ["empty", "", 400],
    ];
    for (const [what, body, status] of collectCases) {
      const res = await env.collect(body);
      assert.equal(res.status, status, `collect ${what}`);
      const answer = await res.json();
      assert.equal(typeof answer.error, "string", `collect ${what}: a JSON error`);
      assert.equal(res.headers.get("set-cookie"), null);
    }
    for (const [what, body, status] of [["garbage", "marketing=no", 400], ["oversized", "x".repeat(5000), 413]]) {
      assert.equal((await env.worker.fetch("/tt/consent", { method: "POST", body })).status, status, `consent ${what}`);
    }

    const signedCases = [
      ["non-UTF-8", Buffer.from([0x7b, 0x22, 0x69, 0x64, 0x22, 0x3a, 0xff, 0x7d])],
      ["truncated", toJson(loadFixture("order_create.json")).slice(0, 200)],
      ["deeply nested", `{"id":1,"line_items":${"[".repeat(3000)}${"]".repeat(3000)}}`],
      ["wrong types", '{"id":"not-a-number","line_items":"nope"}'],
    ];
    for (const [what, body] of signedCases) {
      const res = await deliverWebhook(env.worker, "orders/create", body, { webhookId: `wh-hostile-${what}` });
      assert.equal(res.status, 200, `signed ${what}: acknowledged`);
      assert.ok(res.body.parked, `signed ${what}: parked`);
    }
    const huge = `{"id":1,"pad":"${"a".repeat(1024 * 1024)}"}`;
    assert.equal((await deliverWebhook(env.worker, "orders/create", huge, { alone: true })).status, 413);
    assert.equal((await deliverWebhook(env.worker, "orders/create", "{}", { hmac: signWebhook("{}", "wrong") })).status, 401);

    const admin = await adminJson(env.worker);
    assert.deepEqual(admin.queue.counts, [], "nothing queued");
    assert.equal(admin.parked_webhooks.length, signedCases.length);
    for (const parked of admin.parked_webhooks) assert.ok(!parked.shape.includes("Buyer.Person"), "parked shapes hold no values");
    assertNothingLeaked(env.worker.logs, []);
  } finally {
    await env.close();
  }
});

test("/tt/collect is rate-limited per client IP with 429", async () => {
  const env = await setup({ collectLimit: 5 });
  try {
    await inOneRateWindow(async () => {
      const statuses = [];
      for (let i = 0; i < 7; i++) {
        statuses.push((await env.collect({ event: "ViewContent", event_id: `vc:rl${i}` }, { "cf-connecting-ip": "192.0.2.50" })).status);
      }
      assert.deepEqual(statuses, [202, 202, 202, 202, 202, 429, 429]);
      const limited = await env.collect({ event: "ViewContent", event_id: "vc:rl-x" }, { "cf-connecting-ip": "192.0.2.50" });
      assert.equal(limited.headers.get("retry-after"), "60");
      assert.equal((await limited.json()).error, "rate_limited");
      const other = await env.collect({ event: "ViewContent", event_id: "vc:other" }, { "cf-connecting-ip": "192.0.2.51" });
      assert.equal(other.status, 202, "another client is not affected");
    });
  } finally {
    await env.close();
  }
});
