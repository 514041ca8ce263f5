// A click finds its session: the edge links the ad click a visitor lands with (`?ttclid=`) to
// their session in KV, so a checkout and an order that pass no page of the shop (Shop Pay,
// Apple Pay, Google Pay from the product page: no cart attributes, no checkout page, no
// thank-you pixel) join it through the click their `landing_site` names. A click two sessions
// landed with (an ad URL shared between people) joins neither; a declined visitor's click
// leads to the refusal.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  startShop, waitFor, deliverWebhook, loadFixture, big, settled, postCollect, inOneRateWindow, cookieJar,
} from "./support/harness.mjs";

const PURCHASE = "Purchase";

async function shop(bindings = {}) {
  return startShop({ bindings: { PURCHASE_EVENT_NAME: PURCHASE, WEBHOOK_WAIT_MS: "60000", ...bindings } });
}

/** A browser: its address, its user agent and its cookies. */
function browser(ip, userAgent, initial = {}) {
  return { ip, userAgent, ...cookieJar(initial) };
}

async function navigate(env, visitor, path) {
  const res = await env.worker.fetch(path, { headers: { cookie: visitor.header(), "cf-connecting-ip": visitor.ip, "user-agent": visitor.userAgent } });
  assert.equal(res.status, 200);
  visitor.take(res);
  await res.arrayBuffer();
  return res;
}

const kv = (env) => env.worker.mf.getKVNamespace("SESSIONS");
/** What KV holds under `key`, once the edge's write (after the response) landed as `check` wants. */
const kvValue = (env, key, check = Boolean) => waitFor(`KV ${key}`, async () => {
  const value = await (await kv(env)).get(key);
  return check(value) && value;
});

// An express-wallet checkout and its order, as Shopify sends them: a cart of their own (no
// attributes of the storefront's), the landing page the visit began on, and nothing of the
// browser (no client_details or browser_ip: only a join can give IP and user agent).
function walletCheckout(token, landing) {
  return {
    ...loadFixture("checkout_update.json"), token, cart_token: `Z2NwLXdhbGxldC${token.slice(0, 8)}`,
    note_attributes: [], landing_site: landing,
  };
}
function walletOrder(id, checkout) {
  return {
    ...loadFixture("order_create.json"), id: big(id), cart_token: checkout.cart_token, checkout_token: checkout.token,
    note_attributes: [], client_details: null, browser_ip: null, landing_site: checkout.landing_site,
  };
}

async function payByWallet(env, checkoutToken, orderId, landing) {
  const checkout = walletCheckout(checkoutToken, landing);
  const created = await deliverWebhook(env.worker, "checkouts/create", checkout);
  const ordered = await deliverWebhook(env.worker, "orders/create", walletOrder(orderId, checkout));
  return { created: created.body, ordered: ordered.body };
}

test("an express-wallet checkout and order join the landing session through its click: ttp, ttclid, IP and user agent", async () => {
  const env = await shop();
  try {
    const visitor = browser("203.0.113.61", "WalletPhone/1.0");
    await navigate(env, visitor, "/products/mug?ttclid=E.C.P.wallet1&utm_source=tiktok");
    const ttp = visitor.get("_ttp");
    assert.ok(ttp && visitor.get("ttclid") === "E.C.P.wallet1");
    assert.equal(await kvValue(env, "click:E.C.P.wallet1"), ttp, "the click leads to the session");

    const checkoutToken = "a1a0c0ffee0000000000000000000001";
    const orderId = "5900000000000000801";
    const { created, ordered } = await payByWallet(env, checkoutToken, orderId, "/products/mug?ttclid=E.C.P.wallet1&utm_source=tiktok");
    assert.ok(created.queued >= 1 && ordered.queued === 1, JSON.stringify({ created, ordered }));

    const sent = await settled(env);
    for (const id of [`ic:${checkoutToken}`, orderId]) {
      const e = sent.find((e) => e.event_id === id);
      assert.ok(e, `${id} sent`);
      assert.deepEqual(
        { ttp: e.user.ttp, ttclid: e.user.ttclid, ip: e.user.ip, user_agent: e.user.user_agent },
        { ttp, ttclid: "E.C.P.wallet1", ip: "203.0.113.61", user_agent: "WalletPhone/1.0" },
        `${id} carries the landing session`,
      );
    }
  } finally {
    await env.close();
  }
});

test("a session found through the click binds the browser copy of that session, like a cart or checkout link", async () => {
  const env = await shop({ WEBHOOK_WAIT_MS: "240000" });
  try {
    const visitor = browser("203.0.113.62", "WalletPhone/2.0");
    await navigate(env, visitor, "/products/mug?ttclid=E.C.P.wallet2");
    await kvValue(env, "click:E.C.P.wallet2");
    const checkoutToken = "a1a0c0ffee0000000000000000000002";
    // The landing session's own browser reports the step (its page URL names the checkout, which
    // its copy therefore does not prove): only the session the click leads to binds it.
    const page = { url: "https://shop.example/products/mug", referrer: "" };
    const browserCopy = (ttp) => postCollect(env.worker, {
      event: "InitiateCheckout", event_id: `ic:${checkoutToken}`, page,
      properties: { contents: [{ content_id: "1", quantity: 1, price: "1.00" }], currency: "USD", value: "1.00", market_handle: "eu", market_id: 5 },
    }, { cookie: `_ttp=${ttp}`, "cf-connecting-ip": visitor.ip, "user-agent": "BrowserCopy/1.0" });
    assert.equal((await browserCopy(visitor.get("_ttp"))).status, 202);
    const { created } = await payByWallet(env, checkoutToken, "5900000000000000802", "/?ttclid=E.C.P.wallet2");
    assert.ok(created.queued >= 1);
    const sent = await settled(env);
    const started = sent.filter((e) => e.event_id === `ic:${checkoutToken}`);
    assert.equal(started.length, 1, "one server event");
    assert.equal(started[0].user.ttp, visitor.get("_ttp"));
    assert.equal(started[0].properties.market_handle, "eu", "the bound browser copy added its market");
    assert.notEqual(started[0].properties.value, 1, "the signed checkout's values, not the browser's");
  } finally {
    await env.close();
  }
});

test("a click two sessions landed with (an ad URL shared between people) joins neither", async () => {
  const env = await shop();
  try {
    const sharer = browser("203.0.113.63", "Sharer/1.0");
    const friend = browser("198.51.100.7", "Friend/1.0");
    await navigate(env, sharer, "/products/mug?ttclid=E.C.P.shared");
    assert.equal(await kvValue(env, "click:E.C.P.shared"), sharer.get("_ttp"));
    await navigate(env, friend, "/products/mug?ttclid=E.C.P.shared");
    assert.equal(await kvValue(env, "click:E.C.P.shared", (v) => v === "ambiguous click"), "ambiguous click");
    // The sharer landing again changes nothing: the click stays ambiguous.
    await navigate(env, sharer, "/?ttclid=E.C.P.shared");
    await kvValue(env, `session:${sharer.get("_ttp")}`);

    const checkoutToken = "a1a0c0ffee0000000000000000000003";
    const orderId = "5900000000000000803";
    await payByWallet(env, checkoutToken, orderId, "/products/mug?ttclid=E.C.P.shared");
    assert.equal(await (await kv(env)).get("click:E.C.P.shared"), "ambiguous click");
    const sent = await settled(env);
    for (const id of [`ic:${checkoutToken}`, orderId]) {
      const e = sent.find((e) => e.event_id === id);
      assert.ok(e, `${id} sent`);
      assert.equal(e.user.ttclid, "E.C.P.shared", "the order's own landing_site still names the click");
      assert.deepEqual([e.user.ttp, e.user.ip, e.user.user_agent], [undefined, undefined, undefined], `${id}: nobody's session`);
    }
  } finally {
    await env.close();
  }
});

test("a declined visitor's click leads to the refusal: their wallet order sends nothing, and a consenting sharer is not joined", async () => {
  const env = await shop();
  try {
    const declined = browser("203.0.113.64", "Declined/1.0", { _tt_consent: "denied" });
    const res = await navigate(env, declined, "/products/mug?ttclid=E.C.P.declined");
    assert.deepEqual(res.headers.getSetCookie(), [], "no cookie at all");
    assert.match(await kvValue(env, "click:E.C.P.declined"), /^declined-/);
    const { created, ordered } = await payByWallet(env, "a1a0c0ffee0000000000000000000004", "5900000000000000804", "/?ttclid=E.C.P.declined");
    assert.equal(created.skipped, "the visitor declined marketing");
    assert.equal(ordered.skipped, "the visitor declined marketing");

    // Someone else lands with the same click and consents: the click is ambiguous, so their
    // wallet order is sent with what it says itself, and nothing of either session.
    const sharer = browser("203.0.113.65", "Sharer/2.0");
    await navigate(env, sharer, "/products/mug?ttclid=E.C.P.declined");
    await kvValue(env, "click:E.C.P.declined", (v) => v === "ambiguous click");
    const second = await payByWallet(env, "a1a0c0ffee0000000000000000000005", "5900000000000000805", "/?ttclid=E.C.P.declined");
    assert.equal(second.ordered.queued, 1);
    const sent = await settled(env);
    assert.ok(!sent.some((e) => e.event_id === "5900000000000000804" || e.event_id.endsWith("0000000000000004")), "nothing of the declined order");
    const order = sent.find((e) => e.event_id === "5900000000000000805");
    assert.equal(order.user.ttp, undefined);
  } finally {
    await env.close();
  }
});

test("a consent report's click: kept as on a landing for the reporting visitor only, never from a value no cookie could hold", async () => {
  const env = await shop({ CONSENT_DEFAULT: "denied" });
  try {
    const visitor = browser("203.0.113.66", "Late/1.0");
    await navigate(env, visitor, "/products/mug?ttclid=E.C.P.late1");
    await navigate(env, visitor, "/products/cap");
    const store = await kv(env);
    assert.deepEqual((await store.list()).keys, [], "nothing written before the choice");
    assert.equal(visitor.header(), "", "no cookie before the choice");

    const report = (body, headers = {}) => env.worker.fetch("/tt/consent", {
      method: "POST",
      headers: { "content-type": "application/json", cookie: visitor.header(), "cf-connecting-ip": visitor.ip,
        "user-agent": visitor.userAgent, referer: "https://shop.example/products/cap", ...headers },
      body: JSON.stringify(body),
    });
    // Values no cookie could hold are no click: consent is kept, the click is not.
    const forged = await report({ marketing: true, sale_of_data: true, ttclid: "a;b" }, { cookie: "" });
    assert.equal(forged.status, 200);
    assert.equal(forged.headers.getSetCookie().some((c) => c.startsWith("ttclid=")), false);
    assert.equal((await report({ marketing: true, ttclid: "x".repeat(2000) })).status, 413);

    const res = await report({ marketing: true, sale_of_data: true, ttclid: "E.C.P.late1" });
    assert.equal(res.status, 200);
    visitor.take(res);
    assert.equal(visitor.get("ttclid"), "E.C.P.late1");
    assert.match(visitor.get("_tt_click"), /^\d+$/);
    const ttp = visitor.get("_ttp");
    assert.equal(await store.get("click:E.C.P.late1"), ttp, "written before the answer");
    const session = JSON.parse(await store.get(`session:${ttp}`));
    assert.equal(session.ttclid, "E.C.P.late1");
    assert.equal(session.ip, "203.0.113.66");
  } finally {
    await env.close();
  }
});

test("a consent given writes within the client's page-write budget; a refusal is written whatever the budget", async () => {
  // Two KV writes per address and minute: one landing with a click spends them.
  const env = await startShop({ collectLimit: 2, bindings: { CONSENT_DEFAULT: "denied", WEBHOOK_WAIT_MS: "60000" } });
  try {
    await inOneRateWindow(async () => {
      const spender = browser("203.0.113.70", "Spender/1.0", { _tt_consent: "granted" });
      await navigate(env, spender, "/products/mug?ttclid=E.C.P.spent");
      await kvValue(env, "click:E.C.P.spent");
      const late = browser("203.0.113.70", "Late/2.0");
      const consent = (body) => env.worker.fetch("/tt/consent", {
        method: "POST",
        headers: { "content-type": "application/json", "cf-connecting-ip": late.ip, referer: "https://shop.example/" },
        body: JSON.stringify(body),
      });
      const res = await consent({ marketing: true, sale_of_data: true, ttclid: "E.C.P.overbudget" });
      assert.equal(res.status, 200);
      late.take(res);
      assert.equal(late.get("ttclid"), "E.C.P.overbudget", "the visitor's own cookies are set all the same");
      const store = await kv(env);
      assert.equal(await store.get("click:E.C.P.overbudget"), null, "no write over the budget");
      assert.equal(await store.get(`session:${late.get("_ttp")}`), null);
      const refusal = await env.worker.fetch("/tt/consent", {
        method: "POST",
        headers: { "content-type": "application/json", "cf-connecting-ip": "203.0.113.70", cookie: "cart=c1-overbudget0000000000000000001", referer: "https://shop.example/" },
        body: JSON.stringify({ marketing: false }),
      });
      assert.equal(refusal.status, 200);
      assert.match(await store.get("cart:c1-overbudget0000000000000000001"), /^declined-/);
    });
  } finally {
    await env.close();
  }
});
