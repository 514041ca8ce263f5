// Every webhook among the real Shopify payloads in shared/fixtures/external (Shopify's 2026-07
// samples, test- and dev-store captures, a redacted live order), signed as Shopify signs them
// and sent byte for byte (ids above 2^53 stay exact), through the built Worker: none is parked,
// and the played TikTok receives exactly the event each stands for, valued from the payload's
// own presentment figures. CI puts shared/ beside the repository (../shared).
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import { ROOT, startShop, waitFor, adminJson, deliverWebhook, loadFixture, big, SHOP_DOMAIN } from "./support/harness.mjs";

const DIR = path.join(ROOT, "../shared/fixtures/external");
const sha256 = (s) => createHash("sha256").update(s).digest("hex");
const FIVE_DAYS = 5 * 24 * 3600; // TikTok's assumed 7-day limit less the queue's 48 h of retries

// The topic named by each payload's .source.txt ("topic: carts/create|carts/update …" → the first).
const topicOf = (file) => /^topic: ([a-z_]+\/[a-z_]+)/m.exec(readFileSync(path.join(DIR, file.replace(/\.json$/, ".source.txt")), "utf8"))[1];
const pointer = (obj, p) => p.split("/").slice(1).reduce((o, k) => o?.[k], obj);

// What TikTok must receive per payload: [event, event_id] and the JSON pointers of the amount
// and currency `value` must equal. Payloads not listed send nothing (empty cart, cancelled or
// pending order, checkout before payment, orders/paid|updated, privacy and unsubscribed topics).
const SENDS = {
  "devstore_2023_inr_checkouts_create.json": [["InitiateCheckout", "ic:3d58ad45d661cd34d882fda5c68a36b8"], "/subtotal_price", "/presentment_currency"],
  "devstore_2023_inr_orders_create.json": [["Purchase", "5159806763157"], "/total_price_set/presentment_money/amount", "/total_price_set/presentment_money/currency_code"],
  "real_2026-02_au_order_redacted.json": [["Purchase", "6674573197567"], "/total_price_set/presentment_money/amount", "/total_price_set/presentment_money/currency_code"],
  "rudderstack_2024_checkouts_create.json": [["InitiateCheckout", "ic:84ad78572dae52a8cbea7d55371afe89"], "/subtotal_price", "/presentment_currency"],
  "rudderstack_2024_checkouts_update.json": [["AddPaymentInfo", "api:e89d4437003b6b8480f8bc7f8036a659"], "/subtotal_price", "/presentment_currency"],
  "rudderstack_2024_orders_create.json": [["Purchase", "5778367414385"], "/total_price", "/currency"],
  "shopify_docs_2026-07_carts_create.json": [["AddToCart", "atc:exampleCartId:704912205188288575:3"], "/line_items/0/line_price_set/presentment_money/amount", "/line_items/0/line_price_set/presentment_money/currency_code"],
  "shopify_docs_2026-07_checkouts_create.json": [["InitiateCheckout", "ic:123123123"], "/subtotal_price", "/presentment_currency"],
  "shopify_python_api_cart.json": [["AddToCart", "atc:3eed8183d4281db6ea82ee2b8f23e9cc:1:1"], null, null],
  "trigger_dev_CartsCreate.json": [["AddToCart", "atc:eeafa272cebfd4b22385bc4b645e762c:704912205188288500:3"], "/line_items/0/line_price_set/presentment_money/amount", "/line_items/0/line_price_set/presentment_money/currency_code"],
};

test("every real Shopify webhook: signed, none parked, TikTok gets the event each stands for with its presentment value and currency", async () => {
  // The dev-store order is a Shopify test order: sent only with SEND_TEST_ORDERS.
  const env = await startShop({ bindings: { SEND_TEST_ORDERS: "true" } });
  try {
    const files = readdirSync(DIR).filter((f) => f.endsWith(".json")).sort();
    assert.ok(files.length >= 20, `the payloads are at ${DIR}`);
    const before = Math.floor(Date.now() / 1000);
    for (const file of files) {
      const topic = topicOf(file);
      // Shopify's privacy samples name their shop `{shop}.myshopify.com`: a real request names
      // the shop it is for, which must be the configured one.
      const raw = readFileSync(path.join(DIR, file), "utf8").replaceAll("{shop}.myshopify.com", SHOP_DOMAIN);
      const { status, body } = await deliverWebhook(env.worker, topic, raw);
      assert.equal(status, 200, file);
      assert.equal(body.parked, undefined, `${file} (${topic}) parked: ${body.parked}`);
    }
    const after = Math.floor(Date.now() / 1000);
    const expected = Object.values(SENDS).map(([e]) => e.join(" ")).sort();
    await waitFor("every expected event sent", async () => env.sentEvents().length >= expected.length && (await adminJson(env.worker)).queue.depth === 0);
    const sent = env.sentEvents();
    assert.deepEqual(sent.map((e) => `${e.event} ${e.event_id}`).sort(), expected, "exactly these, once each");
    assert.equal((await adminJson(env.worker)).parked_webhooks.length, 0);

    for (const [file, [[name, id], amountAt, currencyAt]] of Object.entries(SENDS)) {
      const payload = JSON.parse(readFileSync(path.join(DIR, file), "utf8"));
      const e = sent.find((s) => s.event === name && s.event_id === id);
      if (amountAt) {
        assert.equal(e.properties.value, Number(pointer(payload, amountAt)), `${file} value`);
        assert.equal(e.properties.currency, pointer(payload, currencyAt), `${file} currency`);
      } else {
        assert.ok(!("value" in e.properties) && !("currency" in e.properties), `${file}: no currency, so no money`);
      }
      assert.ok(e.properties.contents.length > 0, `${file} contents`);
      // Every payload is older than TikTok takes: dated as old as is safe, never "now".
      assert.ok(e.event_time >= before - FIVE_DAYS && e.event_time <= after - FIVE_DAYS, `${file} event_time ${e.event_time}`);
    }

    const au = sent.find((e) => e.event_id === "6674573197567");
    assert.deepEqual(au.properties.contents, [{ content_id: "45251862331647", content_type: "product", content_name: "TOTO Washlet S2 TOTOTCF33320GAU (D-Shape) (Side Control) Washlet only", quantity: 1, price: 1599 }]);
    assert.equal(au.properties.value, 1569, "the total after the 30.00 discount, not Σ prices");
    assert.deepEqual(au.user, {
      ip: "203.0.113.140",
      user_agent: "Mozilla/5.0 (iPhone; CPU iPhone OS 18_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/26.2 Mobile/15E148 Safari/604.1",
      // `printf '%s' VALUE | sha256sum`
      email: "3e63c6f1a583adecebbd5545cb13513a1c023f5bdaf4f89c6675fd9fb751e09b", // jane.citizen@example.com
      phone: "bc65da54a3ddbacfdc93a0400f0a2d78e41c2180c8255015e9616facfe56f58a", // +61412345678
      external_id: "7d0db0c3c1fa11a3308a62c4ac143ed96e1a012812df685c9827bbf1123fb83b", // 8759459283199
      first_name: "81f8f6dde88365f3928796ec7aa53f72820b06db8664f5fe76a7eb13e24546a2", // jane
      last_name: "6e5f6170d4e1f2560ecb8d0db7aebe03576a7504b7e305ba338f9b635ad02f67", // citizen
      zip_code: "dfc04c940f3b91d8a8316579ecd027fb98be2ead43b0a0bacf78a12babae4d05", // 3149
      city: "mountwaverley", state: "vic", country: "au", locale: "en-AU",
    });
    const india = sent.find((e) => e.event_id === "5159806763157");
    assert.equal(india.user.phone, sha256("+919090909090"), "national '90909 09090' completed from the billing country");
    assert.equal(india.user.first_name, undefined, "the billing person has no first name; none is borrowed");
    const cart = sent.find((e) => e.event_id === "atc:exampleCartId:704912205188288575:3");
    assert.deepEqual(cart.properties.contents, [{ content_id: "704912205188288575", content_type: "product", content_name: "Example T-Shirt - Small", quantity: 3, price: 19.99 }]);
  } finally {
    await env.close();
  }
});

test("Shopify's sample order as a live order: lines without variants are product groups, bundle parts their SKU; a renewal is excluded with its reason", async () => {
  const env = await startShop();
  try {
    const sample = loadFixture("shopify_docs_2026-07_orders_create.json", DIR);
    const { body } = await deliverWebhook(env.worker, "orders/create", sample);
    assert.equal(body.skipped, "test order (set SEND_TEST_ORDERS=true to send)");
    const live = { ...sample, id: big("820982911946154509"), test: false, cancelled_at: null };
    assert.equal((await deliverWebhook(env.worker, "orders/create", live)).body.queued, 1);
    const renewal = { ...live, id: big("820982911946154510"), source_name: "subscription_contract_checkout_one" };
    const skipped = await deliverWebhook(env.worker, "orders/create", renewal);
    assert.equal(skipped.body.skipped, "source_name `subscription_contract_checkout_one` is not an ad conversion (EXCLUDED_SOURCES)");
    await waitFor("the live sample sent", () => env.sentEvents().length === 1);
    const [e] = env.sentEvents();
    assert.equal(e.event, "Purchase");
    assert.deepEqual(e.properties.contents.map((c) => [c.content_id, c.content_type, c.price]), [
      ["788032119674292922", "product_group", 89.99],
      ["LENS-PROTECT-2YR", "product", 19.99],
      ["CASE-LEATHER-PREM", "product", 24.99],
      ["788032119674292922", "product_group", 159.99],
      ["788032119674292922", "product_group", 119.99],
    ]);
    assert.equal(e.properties.content_type, undefined, "mixed item types share no top-level type");
    assert.equal(e.properties.value, Number(sample.total_price_set.presentment_money.amount));
    assert.equal(e.properties.currency, sample.total_price_set.presentment_money.currency_code);
    // Billing (Steve Shipper, Kentucky), not the customer (John Smith, Ottawa).
    assert.equal(e.user.first_name, sha256("steve"));
    assert.deepEqual([e.user.city, e.user.state, e.user.country], ["shippington", "ky", "us"]);
    assert.equal(e.event_id, "820982911946154509", "the id exact above 2^53");
  } finally {
    await env.close();
  }
});
