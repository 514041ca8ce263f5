// One conversion, one server event: the browser's copy and the signed webhook's copy of the same
// event meet in the queue shard that owns the event's key and leave as one, whichever came
// first; browser checkout steps wait (bounded) for their webhook; a purchase goes to TikTok only
// when a signed order confirms it.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  startShop, waitFor, adminJson, countOf, loadFixture, deliverWebhook, big, postCollect, settled,
} from "./support/harness.mjs";

const PURCHASE = "Purchase";
const WAIT_MS = 4000;
const BROWSER_TTP = "01JY68AFXQXP2232M0V748XS0P_.tt.1";
const SHA256 = /^[0-9a-f]{64}$/;

/** A purchase order nobody's browsing session is joined to: the ttp can only come from the browser. */
function order(id, checkoutToken) {
  return { ...loadFixture("order_create.json"), id: big(id), note_attributes: [], checkout_token: checkoutToken, cart_token: null };
}

function checkout(token) {
  return { ...loadFixture("checkout_update.json"), token, note_attributes: [], cart_token: null };
}

/** The custom pixel's post from Shopify's sandbox: no cookies, Origin "null", keys in the body. */
async function pixel(env, body, ttp = BROWSER_TTP) {
  const res = await postCollect(env.worker, { user: { ttp }, ...body }, { "content-type": "text/plain", origin: "null", "cf-connecting-ip": "203.0.113.50", "user-agent": "CheckoutBrowser/2.0" });
  assert.equal(res.status, 202, await res.clone().text());
  return res.json();
}

const later = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function shop(bindings = {}) {
  return startShop({ bindings: { PURCHASE_EVENT_NAME: PURCHASE, WEBHOOK_WAIT_MS: String(WAIT_MS), ...bindings } });
}

function assertTheSignedPurchase(event, orderId) {
  assert.equal(event.event, PURCHASE);
  assert.equal(event.event_id, orderId);
  assert.equal(event.properties.value, 38.6, "the webhook's presentment total, not the browser's");
  assert.equal(event.properties.currency, "EUR");
  assert.equal(event.properties.order_id, orderId);
  assert.match(event.user.email, SHA256);
  assert.match(event.user.phone, SHA256);
  assert.equal(event.user.ttp, BROWSER_TTP, "the browser's ttp");
}

test("purchase: the custom pixel first and the signed order 2 s later, or the order first, give one purchase with the order's value and keys and the browser's ttp", async () => {
  const env = await shop();
  try {
    // Pixel first: the browser's copy waits for confirmation; the webhook merges into it.
    const first = "5900000000000000201";
    const browser = await pixel(env, { event: PURCHASE, event_id: first, checkout_token: "chk-201", properties: { value: "99.00", currency: "USD", order_id: first } });
    assert.equal(browser.queued, true);
    await later(2000);
    const signed = await deliverWebhook(env.worker, "orders/create", order(first, "chk-201"));
    assert.equal(signed.status, 200);
    assert.equal(signed.body.queued, 1, "the signed copy merged into the waiting one");

    // Order first: the custom pixel's checkout_started linked the checkout to the visitor, so
    // the webhook's join finds the ttp; the browser's purchase after it changes nothing.
    const second = "5900000000000000202";
    await pixel(env, { event: "InitiateCheckout", event_id: "ic:chk-202", checkout_token: "chk-202" });
    const kv = await env.worker.mf.getKVNamespace("SESSIONS");
    await waitFor("the checkout linked to the visitor", async () => (await kv.get("checkout:chk-202")) === BROWSER_TTP);
    assert.equal((await deliverWebhook(env.worker, "orders/create", order(second, "chk-202"))).body.queued, 1);
    const late = await pixel(env, { event: PURCHASE, event_id: second, checkout_token: "chk-202", properties: { value: "1.00", currency: "USD", order_id: second } });
    assert.equal(late.queued, false);

    const sent = (await settled(env)).filter((e) => e.event === PURCHASE);
    assert.deepEqual(sent.map((e) => e.event_id).sort(), [first, second]);
    for (const e of sent) assertTheSignedPurchase(e, e.event_id);
  } finally {
    await env.close();
  }
});

test("checkout steps: browser first or webhook first, one InitiateCheckout and one AddPaymentInfo with the webhook's values and the browser's ttp", async () => {
  const env = await shop();
  try {
    // Browser first for "chk-a": both steps wait, the webhooks 2 s later merge into them.
    for (const [event, id] of [["InitiateCheckout", "ic:chk-a"], ["AddPaymentInfo", "api:chk-a"]]) {
      assert.equal((await pixel(env, { event, event_id: id, checkout_token: "chk-a", properties: { value: "5.00", currency: "GBP" } })).queued, true);
    }
    await later(2000);
    assert.equal((await deliverWebhook(env.worker, "checkouts/create", checkout("chk-a"))).body.queued, 2);

    // Webhook first for "chk-b" (the checkout linked to the visitor by checkout_started's id).
    await (await env.worker.mf.getKVNamespace("SESSIONS")).put("checkout:chk-b", BROWSER_TTP);
    assert.equal((await deliverWebhook(env.worker, "checkouts/create", checkout("chk-b"))).body.queued, 2);
    for (const [event, id] of [["InitiateCheckout", "ic:chk-b"], ["AddPaymentInfo", "api:chk-b"]]) {
      assert.equal((await pixel(env, { event, event_id: id, checkout_token: "chk-b" })).queued, false);
    }

    const sent = (await settled(env)).filter((e) => e.event !== "ViewContent");
    assert.deepEqual(sent.map((e) => e.event_id).sort(), ["api:chk-a", "api:chk-b", "ic:chk-a", "ic:chk-b"]);
    const byId = Object.fromEntries(sent.map((e) => [e.event_id, e]));
    for (const e of sent) {
      assert.notEqual(e.properties.currency, "GBP", `${e.event_id}: the webhook's currency`);
      assert.notEqual(e.properties.value, 5, `${e.event_id}: the webhook's value`);
      assert.match(e.user.email, SHA256, e.event_id);
      assert.equal(e.user.ttp, BROWSER_TTP, e.event_id);
    }
    // Merged (browser first) and webhook-only copies carry the same webhook values.
    assert.deepEqual(byId["ic:chk-a"].properties, byId["ic:chk-b"].properties);
    assert.deepEqual(byId["api:chk-a"].properties, byId["api:chk-b"].properties);
  } finally {
    await env.close();
  }
});

test("a forged browser purchase never reaches TikTok and shows as unconfirmed; one sent before a real order changes nothing the order sends", async () => {
  const env = await shop();
  try {
    // Anyone can post this, with no Origin at all.
    const forged = await postCollect(env.worker, { event: PURCHASE, event_id: "5900000000000000999", user: { ttp: "01JYATTACKERATTACKERATTACK_.tt.1" }, properties: { value: "99999.99", currency: "XXX" } });
    assert.equal(forged.status, 202);

    // A forgery of a real order's id, with another visitor's ttp and click id, then the order.
    const real = "5900000000000000301";
    const orderWithSession = { ...order(real, "chk-301"), note_attributes: [{ name: "_ttp", value: BROWSER_TTP }] };
    await postCollect(env.worker, { event: PURCHASE, event_id: real, user: { ttp: "01JYATTACKERATTACKERATTACK_.tt.1", ttclid: "E.C.P.attacker" }, properties: { value: "99999.99", currency: "XXX", order_id: real } });
    await deliverWebhook(env.worker, "orders/create", orderWithSession);

    const sent = await settled(env);
    const purchases = sent.filter((e) => e.event === PURCHASE);
    assert.deepEqual(purchases.map((e) => e.event_id), [real], "only the signed order");
    assertTheSignedPurchase(purchases[0], real);
    assert.equal(purchases[0].user.ttclid, "E.C.P.landing123", "the order's own click id, not the forger's");
    assert.notEqual(purchases[0].user.ip, undefined);
    assert.equal(purchases[0].user.ip, "198.51.100.7", "the order's client IP");

    // TikTok has it; the shard records its answer right after (a stats call can come first).
    const admin = await waitFor("TikTok's answer recorded", async () => {
      const view = await adminJson(env.worker);
      return countOf(view, PURCHASE, "sent") >= 1 && view;
    });
    assert.equal(countOf(admin, PURCHASE, "unconfirmed"), 1, "the forgery is kept, visible, unsent");
    assert.equal(countOf(admin, PURCHASE, "sent"), 1);
  } finally {
    await env.close();
  }
});

test("the wait is bounded: a browser InitiateCheckout whose webhook never comes is sent once, after WEBHOOK_WAIT_MS", async () => {
  const env = await shop();
  try {
    const queuedAt = Date.now();
    await pixel(env, { event: "InitiateCheckout", event_id: "ic:chk-lonely", checkout_token: "chk-lonely", properties: { value: "5.00", currency: "USD" } });
    assert.equal(countOf(await adminJson(env.worker), "InitiateCheckout", "waiting"), 1);
    const [sent] = await waitFor("the lone InitiateCheckout at TikTok", () => {
      const found = env.sentEvents().filter((e) => e.event_id === "ic:chk-lonely");
      return found.length > 0 && found;
    }, WAIT_MS + 10_000);
    assert.ok(Date.now() - queuedAt >= WAIT_MS, "not before the wait ended");
    assert.equal(sent.user.ttp, BROWSER_TTP);
    assert.equal(sent.properties.value, 5);
    // Its webhook, late: TikTok already has the one copy it keeps.
    assert.equal((await deliverWebhook(env.worker, "checkouts/create", { ...checkout("chk-lonely"), shipping_lines: [] })).body.queued, 0);
    const all = (await settled(env)).filter((e) => e.event_id === "ic:chk-lonely");
    assert.equal(all.length, 1);
  } finally {
    await env.close();
  }
});

test("SEND_UNCONFIRMED_PURCHASES=true: a shop without order webhooks sends browser purchases after the wait", async () => {
  const env = await shop({ SEND_UNCONFIRMED_PURCHASES: "true", WEBHOOK_WAIT_MS: "500" });
  try {
    await pixel(env, { event: PURCHASE, event_id: "5900000000000000401", checkout_token: "chk-401", properties: { value: "12.00", currency: "USD", order_id: "5900000000000000401" } });
    const [sent] = await waitFor("the browser purchase at TikTok", () => {
      const found = env.sentEvents().filter((e) => e.event === PURCHASE);
      return found.length > 0 && found;
    });
    assert.equal(sent.properties.value, 12);
    assert.equal(sent.user.ttp, BROWSER_TTP);
  } finally {
    await env.close();
  }
});

/** An order with no browser evidence of its own (Buy it now, Shop Pay, wallets): no session join, no client_details, no landing page. */
function bareOrder(id, checkoutToken) {
  return { ...order(id, checkoutToken), client_details: null, browser_ip: null, landing_site: null };
}
const ATTACKER = { ttp: "01JYATTACKERATTACKERATTACK_.tt.1", ttclid: "E.C.P.attacker" };
const forgedHeaders = { "content-type": "text/plain", origin: "null", "cf-connecting-ip": "198.51.100.66", "user-agent": "Attacker/1.0" };

for (const [name, eventName, eventId, resource] of [
  ["the order", PURCHASE, "5900000000000000501", "orders/create"],
  ["the checkout's InitiateCheckout", "InitiateCheckout", "ic:b0b0c0ffee000000000000000000501", "checkouts/create"],
]) {
  test(`a forged copy of ${eventName} sent first leaves ${name}'s identity untouched; the genuine copy carrying the checkout token, sent second, still fills it`, async () => {
    const env = await shop();
    try {
      const checkoutToken = "b0b0c0ffee000000000000000000501";
      const signed = resource === "orders/create" ? bareOrder(eventId, checkoutToken) : { ...checkout(checkoutToken), shipping_lines: [], landing_site: null };
      const forged = async (id) => {
        const res = await postCollect(env.worker, { event: eventName, event_id: id, user: ATTACKER }, forgedHeaders);
        assert.equal(res.status, 202);
      };
      // Alone: the forged copy before the signed resource adds nothing to it.
      const aloneToken = "b0b0c0ffee000000000000000000502";
      const aloneId = resource === "orders/create" ? "5900000000000000502" : `ic:${aloneToken}`;
      await forged(aloneId);
      const aloneSigned = resource === "orders/create" ? bareOrder(aloneId, aloneToken) : { ...checkout(aloneToken), shipping_lines: [], landing_site: null };
      assert.equal((await deliverWebhook(env.worker, resource, aloneSigned)).body.queued >= 1, true);

      // Forged first, genuine (the checkout pixel: the checkout token, the buyer's ids) second, then the webhook.
      await forged(eventId);
      const genuine = await pixel(env, { event: eventName, event_id: eventId, checkout_token: checkoutToken });
      assert.equal(genuine.queued, false, "a copy was there first");
      assert.equal((await deliverWebhook(env.worker, resource, signed)).body.queued >= 1, true);

      const sent = await settled(env);
      const one = (id) => {
        const found = sent.filter((e) => e.event === eventName && e.event_id === id);
        assert.equal(found.length, 1, id);
        return found[0];
      };
      const alone = one(aloneId);
      for (const key of ["ttp", "ttclid", "ip", "user_agent"]) assert.equal(alone.user[key], undefined, `${key} of nobody`);
      assert.match(alone.user.email, SHA256, "the signed resource's own keys");
      const filled = one(eventId);
      assert.equal(filled.user.ttp, BROWSER_TTP);
      assert.equal(filled.user.ttclid, undefined, "the genuine copy had no click");
      assert.equal(filled.user.ip, "203.0.113.50", "the genuine copy's IP");
      assert.equal(filled.user.user_agent, "CheckoutBrowser/2.0");
      assert.match(filled.user.email, SHA256);
      for (const e of [alone, filled]) {
        assert.notEqual(e.user.ttp, ATTACKER.ttp);
        assert.notEqual(e.user.ttclid, ATTACKER.ttclid);
        assert.notEqual(e.user.ip, "198.51.100.66");
      }
    } finally {
      await env.close();
    }
  });
}

test("a copy carrying another checkout's token adds nothing to the order", async () => {
  const env = await shop();
  try {
    const id = "5900000000000000601";
    const wrong = { event: PURCHASE, event_id: id, checkout_token: "c0ffee00000000000000000000000bad", user: ATTACKER };
    assert.equal((await postCollect(env.worker, wrong, forgedHeaders)).status, 202);
    assert.equal((await deliverWebhook(env.worker, "orders/create", bareOrder(id, "chk-601"))).body.queued, 1);
    const e = (await settled(env)).find((x) => x.event_id === id);
    assert.match(e.user.email, SHA256);
    for (const key of ["ttp", "ttclid", "ip", "user_agent"]) assert.equal(e.user[key], undefined, key);
  } finally {
    await env.close();
  }
});
