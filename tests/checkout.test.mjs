// Every checkout finds its visitor: checkouts that do not start from the browser's `cart` cookie
// ("Buy it now", express buttons, cart permalinks check out a new cart) join through the checkout
// page's URL as it passes the Worker; a visitor's refusal reaches every event of the checkout
// and its order, whether it was seen at the edge or reported by the checkout pixel, and whether
// the webhooks or the pixel come first; a click's `ttclid` keeps the expiry of the click.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  startShop, waitFor, adminJson, deliverWebhook, loadFixture, big, setCookieLine, postCollect, settled,
  cookieJar,
} from "./support/harness.mjs";

const PURCHASE = "Purchase";
const DAY = 86400;

async function shop() {
  // Browser copies of checkout steps would wait a minute for their webhook: long enough that
  // nothing in a test goes out alone.
  return startShop({ bindings: { PURCHASE_EVENT_NAME: PURCHASE, WEBHOOK_WAIT_MS: "60000" } });
}

async function navigate(env, jar, path) {
  const res = await env.worker.fetch(path, { headers: { cookie: jar.header(), "cf-connecting-ip": "203.0.113.44", "user-agent": "CheckoutTest/1.0" } });
  assert.equal(res.status, 200);
  jar.take(res);
  await res.arrayBuffer();
  return res;
}

/** What KV links `key` to, once the edge's write (after the response) landed. */
const linked = (env, key) => waitFor(`KV ${key}`, async () => (await env.worker.mf.getKVNamespace("SESSIONS")).get(key));

// A new cart's checkout: Shopify's webhooks carry the new cart's token, no attributes of the
// storefront's cart, and nothing of the browser (no client_details, IP or landing site).
function checkoutOf(cart, token) {
  return { ...loadFixture("checkout_update.json"), token, cart_token: cart, note_attributes: [] };
}
function orderOf(cart, checkout, id, noteAttributes = []) {
  return {
    ...loadFixture("order_create.json"), id: big(id), cart_token: cart, checkout_token: checkout,
    note_attributes: noteAttributes, client_details: null, browser_ip: null, landing_site: null,
  };
}

/** The checkout pixel's report from Shopify's sandbox (`Origin: null`, no cookies). */
async function checkoutPixel(env, body) {
  const res = await postCollect(env.worker, body, { "content-type": "text/plain;charset=UTF-8", origin: "null" });
  assert.equal(res.status, 202);
  return res.json();
}
const declined = { marketing: false, sale_of_data: false };

/** The queue's states of the events with these ids, from the admin's recent list. */
async function statesOf(env, ids) {
  const recent = (await adminJson(env.worker)).queue.recent;
  return Object.fromEntries(recent.filter((e) => ids.includes(e.event_id)).map((e) => [`${e.event}:${e.event_id}`, e.state]));
}

test("Buy it now: a consenting visitor's new-cart checkout joins through the checkout URL, and the purchase carries their ttp and ttclid", async () => {
  const env = await shop();
  try {
    const jar = cookieJar({ cart: encodeURIComponent("c1-storefrontcart0000000000000001?key=s") });
    await navigate(env, jar, "/products/mug?ttclid=E.C.P.buynow1");
    const ttp = jar.get("_ttp");
    assert.ok(ttp && jar.get("ttclid") === "E.C.P.buynow1");
    assert.equal(await linked(env, "cart:c1-storefrontcart0000000000000001"), ttp);

    // "Buy it now" checks out a new cart; the storefront's cart cookie stays as it was.
    const cart = "Z2NwLXVzLWVhc3QxOjAxSkJaTUVRSjgzNUJUN1BTNjEzRFdRUFFQ";
    await navigate(env, jar, `/checkouts/cn/${cart}?key=c0ffee&locale=en-US`);
    assert.equal(await linked(env, `cart:${cart}`), ttp, "the checkout's cart is the visitor's");

    const checkoutToken = "b1a0c0ffee0000000000000000000001";
    assert.ok((await deliverWebhook(env.worker, "checkouts/create", checkoutOf(cart, checkoutToken))).body.queued >= 1);
    const orderId = "5900000000000000701";
    assert.equal((await deliverWebhook(env.worker, "orders/create", orderOf(cart, checkoutToken, orderId))).body.queued, 1);

    const sent = await settled(env);
    const purchase = sent.find((e) => e.event_id === orderId);
    assert.equal(purchase?.event, PURCHASE);
    assert.equal(purchase.user.ttp, ttp, "the visitor's _ttp");
    assert.equal(purchase.user.ttclid, "E.C.P.buynow1", "the visitor's click");
    assert.equal(purchase.user.ip, "203.0.113.44", "the session's IP (the order has none)");
    assert.equal(sent.find((e) => e.event_id === `ic:${checkoutToken}`)?.user.ttp, ttp);
  } finally {
    await env.close();
  }
});

for (const first of ["webhooks", "pixel"]) {
  test(`Buy it now by a visitor who declined sends nothing at all (${first} first)`, async () => {
    const env = await shop();
    try {
      // The visitor declined on the storefront: _tt_consent=denied, no _ttp.
      const jar = cookieJar({ _tt_consent: "denied", cart: "c1-storefrontcart0000000000000002" });
      const cart = `Z2NwLXVzLWVhc3QxOjAxSkJaTUVRSjgzNUJUN1BTNjEzR${first === "pixel" ? "P" : "W"}`;
      const res = await navigate(env, jar, `/checkouts/cn/${cart}`);
      assert.equal(setCookieLine(res, "_ttp"), undefined, "no tracking cookie");
      assert.match(await linked(env, `cart:${cart}`), /^declined-/, "the checkout's cart is linked to the refusal");

      const checkoutToken = `d0d0c0ffee00000000000000000000${first === "pixel" ? "0p" : "0w"}`;
      const orderId = first === "pixel" ? "5900000000000000712" : "5900000000000000711";
      const pageUrl = `https://shop.example/checkouts/cn/${cart}`;
      const webhooks = async () => {
        for (const [topic, body] of [["checkouts/create", checkoutOf(cart, checkoutToken)], ["orders/create", orderOf(cart, checkoutToken, orderId)]]) {
          const { body: result } = await deliverWebhook(env.worker, topic, body);
          assert.equal(result.queued, 0, topic);
          assert.equal(result.skipped, "the visitor declined marketing", topic);
        }
      };
      const pixel = async () => {
        // The checkout pixel knows the refusal too, and says so instead of reporting the steps.
        for (const [event, eventId] of [["InitiateCheckout", `ic:${checkoutToken}`], [PURCHASE, orderId]]) {
          const answer = await checkoutPixel(env, { event, event_id: eventId, checkout_token: checkoutToken, page: { url: pageUrl }, consent: declined });
          assert.deepEqual(answer, { event_id: eventId, queued: false, reason: "consent" });
        }
      };
      if (first === "pixel") { await pixel(); await webhooks(); } else { await webhooks(); await pixel(); }

      const sent = await settled(env);
      assert.deepEqual(sent.filter((e) => [orderId, `ic:${checkoutToken}`, `api:${checkoutToken}`].includes(e.event_id)), []);
      // The pixel's refusal holds the checkout's keys (their ids name its token): no later copy
      // can go; the order, which names the checkout, never reached the queue.
      assert.deepEqual(await statesOf(env, [orderId, `ic:${checkoutToken}`, `api:${checkoutToken}`]), {
        [`InitiateCheckout:ic:${checkoutToken}`]: "refused",
        [`AddPaymentInfo:api:${checkoutToken}`]: "refused",
      });
    } finally {
      await env.close();
    }
  });
}

test("a refusal reported by the checkout pixel alone stops the checkout's waiting events and its order", async () => {
  const env = await shop();
  try {
    // On the storefront the visitor made no choice (allowed by default): a session, a linked cart.
    const cart = "c1-pixelalonecart000000000000003";
    const jar = cookieJar({ cart });
    await navigate(env, jar, "/products/mug?ttclid=E.C.P.pixelalone");
    const ttp = jar.get("_ttp");
    assert.equal(await linked(env, `cart:${cart}`), ttp);

    // In the checkout: the first step is reported (its browser copy waits for the webhook) ...
    const checkoutToken = "a1a1c0ffee000000000000000000000a";
    const pageUrl = `https://shop.example/checkouts/cn/${cart}`;
    const started = await checkoutPixel(env, {
      event: "InitiateCheckout", event_id: `ic:${checkoutToken}`, checkout_token: checkoutToken, page: { url: pageUrl },
      user: { ttp, ttclid: "E.C.P.pixelalone" }, consent: { marketing: null, sale_of_data: null },
    });
    assert.equal(started.queued, true);
    // ... then the visitor declines in Shopify's banner: the pixel reports the refusal.
    const refusal = await checkoutPixel(env, {
      event: "AddPaymentInfo", event_id: `api:${checkoutToken}`, checkout_token: checkoutToken, page: { url: pageUrl },
      user: { ttp }, consent: declined,
    });
    assert.equal(refusal.queued, false);
    const kv = await env.worker.mf.getKVNamespace("SESSIONS");
    // The sandbox can name any _ttp: its refusal declines a session of its own, linked to the
    // checkout token it proves; the storefront session is declined by the storefront's report.
    assert.equal(JSON.parse(await kv.get(`session:${ttp}`)).ttclid, "E.C.P.pixelalone", "a _ttp in the body declines nothing");
    const refusedBy = await kv.get(`checkout:${checkoutToken}`);
    assert.match(refusedBy, /^declined-/);
    assert.deepEqual(JSON.parse(await kv.get(`session:${refusedBy}`)), { marketing_allowed: false, limited_data_use: false });

    // Shopify's webhooks follow; the order still names the storefront session in its attributes.
    const orderId = "5900000000000000721";
    for (const [topic, body] of [
      ["checkouts/create", { ...checkoutOf(cart, checkoutToken), note_attributes: [{ name: "_tt_sid", value: ttp }] }],
      ["orders/create", orderOf(cart, checkoutToken, orderId, [{ name: "_tt_sid", value: ttp }, { name: "_ttp", value: ttp }])],
    ]) {
      const { body: result } = await deliverWebhook(env.worker, topic, body);
      assert.equal(result.queued, 0, topic);
      assert.equal(result.skipped, "the visitor declined marketing", topic);
    }
    await checkoutPixel(env, { event: PURCHASE, event_id: orderId, checkout_token: checkoutToken, page: { url: `${pageUrl}/thank-you` }, user: { ttp }, consent: declined });

    const sent = await settled(env);
    assert.deepEqual(sent.filter((e) => e.event_id.includes(checkoutToken) || e.event_id === orderId), []);
    assert.deepEqual(await statesOf(env, [`ic:${checkoutToken}`, `api:${checkoutToken}`, orderId]), {
      [`InitiateCheckout:ic:${checkoutToken}`]: "refused",
      [`AddPaymentInfo:api:${checkoutToken}`]: "refused",
    }, "the waiting browser copy was stopped; the later key is held refused");
  } finally {
    await env.close();
  }
});

test("the ttclid cookie's expiry stays where the click set it across later page views", async () => {
  const env = await shop();
  try {
    const jar = cookieJar();
    const landing = await navigate(env, jar, "/products/mug?ttclid=E.C.P.expiry1");
    const clickedAt = Number(jar.get("_tt_click"));
    const expiresAt = (res) => Math.floor(Date.now() / 1000) + Number(/Max-Age=(\d+)/.exec(setCookieLine(res, "ttclid"))[1]);
    assert.ok(Math.abs(clickedAt - Date.now() / 1000) < 5, "the click's time");
    assert.ok(Math.abs(expiresAt(landing) - (clickedAt + 30 * DAY)) <= 2, "30 days from the click");

    // Later page views refresh the cookie (a script's copy is capped by ITP) with the same expiry.
    const again = await navigate(env, jar, "/collections/all");
    assert.equal(jar.get("ttclid"), "E.C.P.expiry1");
    assert.ok(Math.abs(expiresAt(again) - (clickedAt + 30 * DAY)) <= 2, "not extended");

    // Ten days after the click (the browser sends the click's time back): 20 days are left.
    jar.take({ headers: { getSetCookie: () => [`_tt_click=${clickedAt - 10 * DAY}`] } });
    const later = await navigate(env, jar, "/products/mug");
    assert.ok(Math.abs(expiresAt(later) - (clickedAt + 20 * DAY)) <= 2, "the click's 30 days, not the view's");
    assert.equal(jar.get("_tt_click"), String(clickedAt - 10 * DAY));

    // A ttclid cookie of unknown age (no click time) is left to its own expiry.
    const unknown = cookieJar({ _ttp: jar.get("_ttp"), _tt_s: "1", ttclid: "E.C.P.unknownage" });
    const res = await navigate(env, unknown, "/products/mug");
    assert.equal(setCookieLine(res, "ttclid"), undefined);
  } finally {
    await env.close();
  }
});

test("a refusal naming only an order id stops nothing: the order is sent, and its answer says so", async () => {
  const env = await shop();
  try {
    const orderId = "5900000000000000731";
    const refusal = await checkoutPixel(env, { event: PURCHASE, event_id: orderId, consent: declined });
    assert.deepEqual(refusal, { event_id: orderId, queued: false, reason: "consent" });
    const { body } = await deliverWebhook(env.worker, "orders/create", orderOf(null, "c0ffee0000000000000000000000731a", orderId));
    assert.deepEqual(body, { duplicate: false, queued: 1, skipped: null });
    assert.equal((await settled(env)).filter((e) => e.event_id === orderId).length, 1);
  } finally {
    await env.close();
  }
});

test("a refusal carrying a victim's _ttp and an invented checkout token wipes nothing and stops nothing", async () => {
  const env = await shop();
  try {
    const jar = cookieJar();
    await navigate(env, jar, "/products/mug?ttclid=E.C.P.victim1");
    const victim = jar.get("_ttp");
    const kv = await env.worker.mf.getKVNamespace("SESSIONS");
    const before = await waitFor("the victim's session", async () => kv.get(`session:${victim}`));

    const invented = "deadbeef00000000000000000000beef";
    for (const [event, id] of [["InitiateCheckout", `ic:${invented}`], [PURCHASE, "5900000000000000741"]]) {
      await checkoutPixel(env, { event, event_id: id, checkout_token: invented, user: { ttp: victim }, consent: declined });
    }
    assert.equal(await kv.get(`session:${victim}`), before, "the victim's session is as it was");

    // The victim's order joins through their session and is sent with their click.
    const orderId = "5900000000000000741";
    const { body } = await deliverWebhook(env.worker, "orders/create", orderOf(null, "c0ffee0000000000000000000000741a", orderId, [{ name: "_tt_sid", value: victim }]));
    assert.equal(body.queued, 1);
    const purchase = (await settled(env)).find((e) => e.event_id === orderId);
    assert.equal(purchase.user.ttp, victim);
    assert.equal(purchase.user.ttclid, "E.C.P.victim1");
  } finally {
    await env.close();
  }
});

test("a genuine refusal carrying the checkout token stops that checkout's order through the queue, even where KV has not seen its link yet, and the answer names why", async () => {
  const env = await shop();
  try {
    const checkoutToken = "f00dc0ffee000000000000000000751a";
    const orderId = "5900000000000000751";
    // Another order's refusal with this order's id but another token stops nothing of it.
    await checkoutPixel(env, { event: PURCHASE, event_id: orderId, checkout_token: "f00dc0ffee0000000000000000000bad", consent: declined });
    await checkoutPixel(env, { event: PURCHASE, event_id: orderId, checkout_token: checkoutToken, consent: declined });
    // The order webhook reaches a location where the checkout's link to the refusal is not visible yet.
    const kv = await env.worker.mf.getKVNamespace("SESSIONS");
    await kv.delete(`checkout:${checkoutToken}`);
    const { body } = await deliverWebhook(env.worker, "orders/create", orderOf(null, checkoutToken, orderId));
    assert.equal(body.queued, 0);
    assert.match(body.skipped, /declined marketing at checkout/);
    assert.deepEqual((await settled(env)).filter((e) => e.event_id === orderId), []);
    assert.deepEqual(await statesOf(env, [orderId]), { [`${PURCHASE}:${orderId}`]: "refused" });
  } finally {
    await env.close();
  }
});
