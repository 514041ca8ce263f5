// Shopify webhooks → TikTok: a browsing journey joined to its webhooks, exactly once.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { startShop, waitFor, adminJson, countOf, loadFixture, toJson, big, signWebhook, deliverWebhook, setCookieValue } from "./support/harness.mjs";

const sha256 = (s) => createHash("sha256").update(s).digest("hex");

const setup = (extra = {}) => startShop({ bindings: { SHOPIFY_WEBHOOK_SECRET_PREVIOUS: "whsec-test-previous", ...extra } });

test("browse → cart → checkout → order: one event per step with the session's keys, however often and in whatever order webhooks come", async () => {
  const env = await setup();
  try {
    const browser = { "cf-connecting-ip": "203.0.113.50", "user-agent": "JourneyBrowser/1.0" };
    const landing = await env.worker.fetch("/products/demo-mug?ttclid=E.C.P.journey1", { headers: browser });
    const ttp = setCookieValue(landing, "_ttp");
    assert.match(ttp, /^[0-9A-HJKMNP-TV-Z]{26}_\.tt\.1$/);
    assert.equal(setCookieValue(landing, "ttclid"), "E.C.P.journey1");
    // The shop has set its cart cookie; the next navigation links the cart to the session.
    await env.worker.fetch("/cart", { headers: { ...browser, cookie: `_ttp=${ttp}; _tt_s=1; cart=c1-journey%3Fkey%3Dsecretkey` } });
    const kv = await env.worker.mf.getKVNamespace("SESSIONS");
    await waitFor("the cart link in KV", () => kv.get("cart:c1-journey"));
    assert.equal(await kv.get("cart:c1-journey"), ttp);
    const keys = (await kv.list()).keys.map((k) => k.name);
    assert.ok(!keys.some((k) => k.includes("secretkey")), "the cart key secret is never stored");

    const cart = { ...loadFixture("cart_update.json"), id: "c1-journey", token: "c1-journey" };
    const checkout = { ...loadFixture("checkout_update.json"), token: "chk-journey", cart_token: "c1-journey", note_attributes: [] };
    const checkoutCreate = { ...checkout, shipping_lines: [], email: null };
    const order = { ...loadFixture("order_create.json"), id: big("5900000000000000777"), cart_token: "c1-journey", checkout_token: "chk-journey", note_attributes: [] };
    const deliveries = [
      ["orders/create", order, "w-order"],
      ["checkouts/update", checkout, "w-chk-upd"],
      ["carts/update", cart, "w-cart"],
      ["checkouts/create", checkoutCreate, "w-chk-new"],
      ["orders/paid", order, "w-paid"],
      ["orders/updated", order, "w-updated"],
    ];
    for (let round = 0; round < 3; round++) {
      for (const [topic, payload, id] of round === 1 ? [...deliveries].reverse() : deliveries) {
        const { status } = await deliverWebhook(env.worker, topic, payload, { webhookId: id });
        assert.equal(status, 200, topic);
      }
    }
    // The same order from a second subscription (another webhook id) changes nothing either.
    await deliverWebhook(env.worker, "orders/create", order, { webhookId: "w-order-second-subscription" });

    const steps = ["AddToCart", "InitiateCheckout", "AddPaymentInfo", "Purchase"];
    await waitFor("all four steps sent", async () => {
      const admin = await adminJson(env.worker);
      return steps.every((s) => countOf(admin, s, "sent") === 1) && admin.queue.depth === 0;
    });
    const events = env.sentEvents();
    assert.deepEqual(events.map((e) => e.event).sort(), [...steps].sort(), "exactly one of each");
    for (const e of events) {
      assert.equal(e.user.ttp, ttp, `${e.event} ttp`);
      assert.equal(e.user.ttclid, "E.C.P.journey1", `${e.event} ttclid`);
      assert.equal(e.user.ip, "203.0.113.50", `${e.event} ip`);
      assert.equal(e.user.user_agent, "JourneyBrowser/1.0", `${e.event} ua`);
    }
    const byName = Object.fromEntries(events.map((e) => [e.event, e]));
    assert.equal(byName.AddToCart.event_id, "atc:c1-journey:42001234567890123:2");
    assert.equal(byName.InitiateCheckout.event_id, "ic:chk-journey");
    assert.equal(byName.AddPaymentInfo.event_id, "api:chk-journey");
    const purchase = byName.Purchase;
    assert.equal(purchase.event_id, "5900000000000000777");
    assert.equal(purchase.properties.order_id, "5900000000000000777");
    assert.equal(purchase.user.email, sha256("buyer.person@example.com"));
    assert.equal(purchase.user.phone, sha256("+12133734253"));
    assert.equal(purchase.properties.currency, "EUR");
    assert.equal(purchase.properties.value, 38.6);
    assert.deepEqual(purchase.properties.contents, [{ content_id: "42001234567890123", content_type: "product", content_name: "Demo Mug", quantity: 2, price: 17 }]);
  } finally {
    await env.close();
  }
});

test("POS and draft orders send nothing", async () => {
  const env = await setup();
  try {
    for (const source of ["pos", "shopify_draft_order"]) {
      const order = { ...loadFixture("order_create.json"), id: source === "pos" ? 11 : 12, source_name: source };
      const { status, body } = await deliverWebhook(env.worker, "orders/create", order);
      assert.equal(status, 200);
      assert.equal(body.queued, 0);
      assert.equal(body.skipped, `source_name \`${source}\` is not an ad conversion (EXCLUDED_SOURCES)`);
    }
    const admin = await adminJson(env.worker);
    assert.deepEqual(admin.queue.counts, []);
    assert.equal(env.tiktok.requests.length, 0);
  } finally {
    await env.close();
  }
});

test("an upsell sends only the added products, priced from the order, in either arrival order", async () => {
  const env = await setup();
  try {
    const order = loadFixture("order_create.json");
    const updated = structuredClone(order);
    updated.line_items.push({ id: big("14000000000000000002"), variant_id: big("42001234567890124"), product_id: 7001234567891, title: "Demo Tee", quantity: 1, price: "26.00",
      price_set: { shop_money: { amount: "26.00", currency_code: "USD" }, presentment_money: { amount: "24.00", currency_code: "EUR" } } });
    assert.equal((await deliverWebhook(env.worker, "orders/create", order)).status, 200);
    const edited = await deliverWebhook(env.worker, "orders/edited", loadFixture("order_edited.json"));
    assert.equal(edited.body.queued, 0, "not priced yet");
    const priced = await deliverWebhook(env.worker, "orders/updated", updated);
    assert.equal(priced.body.queued, 1);
    await waitFor("purchase and upsell sent", async () => countOf(await adminJson(env.worker), "Purchase", "sent") === 2);
    const upsell = env.sentEvents().find((e) => e.event_id === "upsell:77000000000000001");
    assert.deepEqual(upsell.properties.contents, [{ content_id: "42001234567890124", content_type: "product", content_name: "Demo Tee", quantity: 1, price: 24 }]);
    assert.equal(upsell.properties.value, 24);
    assert.equal(upsell.properties.order_id, "5900000000000000123");
    assert.equal(upsell.user.email, sha256("buyer.person@example.com"));
  } finally {
    await env.close();
  }
});

test("a forged, missing or wrong-secret HMAC is refused and leaves no trace", async () => {
  const env = await setup();
  try {
    const order = toJson(loadFixture("order_create.json"));
    const attempts = [
      { hmac: signWebhook(order, "not-the-secret") },
      { hmac: null },
      { hmac: "invalid_hmac" },
      { hmac: signWebhook(order.replace("42.00", "0.01")) },
    ];
    for (const opts of attempts) {
      const { status, body } = await deliverWebhook(env.worker, "orders/create", order, { ...opts, webhookId: "wh-forged" });
      assert.equal(status, 401);
      assert.equal(body.error, "unauthorized");
    }
    // The one trace: the shop's count of refused webhooks (counts and times, nothing sent).
    const kv = await env.worker.mf.getKVNamespace("SESSIONS");
    await waitFor("the refusals counted", async () => (await kv.list()).keys.length > 0);
    assert.deepEqual((await kv.list()).keys.map((k) => k.name), ["webhooks:refused"]);
    const refused = JSON.parse(await kv.get("webhooks:refused"));
    assert.deepEqual(Object.keys(refused).sort(), ["bad_hmac", "first_ms", "last_ms", "setup", "wrong_shop"]);
    assert.ok(refused.bad_hmac >= 1 && refused.wrong_shop === 0);
    const admin = await adminJson(env.worker);
    assert.deepEqual(admin.queue.counts, []);
    assert.equal(admin.queue.depth, 0);
    // The same webhook id is still new afterwards: the forgeries marked nothing as seen.
    const ok = await deliverWebhook(env.worker, "orders/create", order, { webhookId: "wh-forged" });
    assert.equal(ok.body.queued, 1);
    // The previous secret is accepted during a rotation.
    const rotated = { ...loadFixture("order_create.json"), id: 42 };
    assert.equal((await deliverWebhook(env.worker, "orders/create", rotated, { secret: "whsec-test-previous" })).status, 200);
  } finally {
    await env.close();
  }
});

test("a signed but unusable body is acknowledged and parked without personal data; oversized bodies get 413", async () => {
  const env = await setup();
  try {
    const broken = JSON.stringify({ email: "leak.me@example.com", note: "no id here" });
    const { status, body } = await deliverWebhook(env.worker, "orders/create", broken);
    assert.equal(status, 200);
    assert.equal(body.parked, "id: missing, expected an id (a number or numeric string) in an order");
    const garbage = await deliverWebhook(env.worker, "carts/update", "\u0000not json at all");
    assert.equal(garbage.status, 200);
    const admin = await adminJson(env.worker);
    assert.equal(admin.parked_webhooks.length, 2);
    const text = JSON.stringify(admin);
    assert.ok(!text.includes("leak.me"), "no raw email in the parked record");
    assert.ok(admin.parked_webhooks.some((p) => p.topic === "orders/create" && p.shape.includes("<string, 19 chars>")));

    const huge = JSON.stringify({ id: 1, pad: "x".repeat(1024 * 1024) });
    assert.equal((await deliverWebhook(env.worker, "orders/create", huge, { alone: true })).status, 413);
  } finally {
    await env.close();
  }
});
