// The browser side, for real: headless Chromium browses the demo storefront through the built
// Worker. The pixel the Worker injects loads TikTok's SDK first-party and reports every event twice,
// to ttq and to /tt/collect, with the same event_id; the Worker forwards the server copy to TikTok.
// TikTok's SDK and API are played by local servers; the SDK stand-in records what the page asked of ttq.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, waitFor, eventsAt, PIXEL_ID, deliverWebhook, loadFixture, big } from "./support/harness.mjs";
import { startStorefront } from "./support/browser.mjs";
import { PRODUCTS, DEMO_MARKET, SHOP_DOMAIN as DEMO_SHOP_DOMAIN } from "../demo/origin.mjs";

const MUG = String(PRODUCTS["demo-mug"].variant);
const CAP = String(PRODUCTS["demo-cap"].variant);
const TEE = String(PRODUCTS["demo-tee"].variant);

// TikTok's events.js stand-in. Like the real SDK it takes over window.ttq, replaying the calls the
// stub queued; every call ends up in window.__ttqCalls as [method, ...args].
const SDK_STUB = `(function () {
  var stub = window.ttq, calls = (window.__ttqCalls = []), sdk = {};
  calls.push(["load", Object.keys(stub._i || {}), stub._o]);
  for (var i = 0; i < stub.length; i++) calls.push(stub[i]);
  stub.methods.forEach(function (m) { sdk[m] = function () { calls.push([m].concat([].slice.call(arguments))); }; });
  window.ttq = sdk;
})();`;

let storefront, chromium, sdk, tiktok, demo, worker;

before(async () => {
  storefront = await startStorefront(SDK_STUB);
  ({ chromium, sdk, tiktok, demo } = storefront);
  // Browser copies of checkout steps wait this long for their webhook before going alone.
  worker = await storefrontWorker({ WEBHOOK_WAIT_MS: "300" });
  demo.workerUrl = worker.url; // the demo checkout sends its webhooks here
});
after(async () => {
  await worker?.dispose();
  await storefront?.close();
});

/** The Worker in front of the demo shop, with the played SDK and TikTok; `settings` added. */
const storefrontWorker = (settings = {}) => storefront.worker(settings);

const sentEvents = () => eventsAt(tiktok);
const cookieOf = async (context, name) => (await context.cookies()).find((c) => c.name === name)?.value;
const cartToken = async (context) => decodeURIComponent(await cookieOf(context, "cart")).split("?")[0];
const ttqCalls = (page) => page.evaluate(() => window.__ttqCalls || []);

/** A fresh visitor (empty profile) whose page records every request it makes. */
async function visitor(init) {
  const context = await chromium.newContext();
  if (init) await context.addInitScript(init);
  const page = await context.newPage();
  const requests = [];
  page.on("request", (r) => requests.push(r));
  return { context, page, requests, paths: () => requests.map((r) => new URL(r.url()).pathname) };
}

/** The page's ttq.track call for `event` (with event_id `eventId` when given), once it happened. */
function tracked(page, event, eventId) {
  return waitFor(`ttq.track("${event}"${eventId ? `, …, {event_id: "${eventId}"}` : ""}) in the page`, async () =>
    (await ttqCalls(page)).find((c) => c[0] === "track" && c[1] === event && (!eventId || c[3]?.event_id === eventId)));
}

/** Every /tt/collect the page made was accepted (202); the Worker's answer otherwise. */
async function assertCollectsAccepted(requests) {
  for (const r of requests.filter((r) => new URL(r.url()).pathname === "/tt/collect")) {
    const status = (await r.response())?.status();
    assert.equal(status, 202, `collect ${r.postData()} answered ${status}`);
  }
}

/** TikTok received `event` with `eventId`, exactly once; returns it. */
async function receivedOnce(event, eventId) {
  const found = await waitFor(`TikTok to receive ${event} ${eventId}`, () => sentEvents().find((e) => e.event_id === eventId));
  assert.equal(found.event, event);
  assert.equal(sentEvents().filter((e) => e.event_id === eventId).length, 1, `${eventId} sent once`);
  return found;
}

test("product view and adds to cart by fetch, XHR and plain form: ttq and TikTok's server events share event ids and the visitor's _ttp", async () => {
  const { context, page, requests, paths } = await visitor();
  await page.goto(`${worker.url}/products/demo-mug`);
  const ttp = await cookieOf(context, "_ttp");
  assert.ok(ttp, "the Worker set _ttp on the page");
  assert.ok(requests.some((r) => r.url() === `${worker.url}/tt/pixel.js`), "the injected pixel came from the shop's origin");

  const [, , viewProps, { event_id: viewId }] = await tracked(page, "ViewContent");
  assert.match(viewId, /^vc:[0-9a-f]{20}$/);
  assert.deepEqual(viewProps.contents, [{ content_id: MUG, content_type: "product", content_name: "Demo Mug", quantity: 1, price: 18.5 }]);
  assert.equal(viewProps.currency, "USD");
  assert.ok(requests.some((r) => r.url() === `${worker.url}/tt/sdk.js?sdkid=${PIXEL_ID}&lib=ttq`), "the SDK came from the shop's origin");
  assert.ok(sdk.requests.some((r) => r.url === `/events.js?sdkid=${PIXEL_ID}&lib=ttq`), "the Worker fetched TikTok's SDK");
  const [load] = await ttqCalls(page);
  assert.deepEqual(load, ["load", [PIXEL_ID], { [PIXEL_ID]: {} }], "loaded once, without limited data use");

  // Ajax JSON via fetch, twice: the id carries the variant's quantity in the cart after each add.
  await page.click("#add-to-cart");
  await page.waitForSelector("text=Added (1)");
  const token = await cartToken(context);
  const [, , addProps] = await tracked(page, "AddToCart", `atc:${token}:${MUG}:1`);
  assert.deepEqual(addProps.contents, [{ content_id: MUG, content_type: "product", content_name: "Demo Mug", quantity: 1, price: 18.5 }]);
  await page.click("#add-to-cart");
  await page.waitForSelector("text=Added (2)");
  await tracked(page, "AddToCart", `atc:${token}:${MUG}:2`);
  // The session's keys went into the cart once, so the order's note_attributes carry them.
  const attributes = await waitFor("the cart attributes", async () => {
    const cart = await page.evaluate(() => fetch("/cart.js").then((r) => r.json()));
    return cart.attributes._tt_sid && cart.attributes;
  });
  assert.deepEqual(attributes, { _tt_sid: ttp, _ttp: ttp, _tt_market: DEMO_MARKET.handle, _tt_market_id: String(DEMO_MARKET.id) });
  assert.equal(paths().filter((p) => p === "/cart/update.js").length, 1, "attributes written once per cart and _ttp");
  await assertCollectsAccepted(requests);

  // Form-encoded via XMLHttpRequest.
  await page.goto(`${worker.url}/products/demo-cap`);
  await page.click("#add-to-cart");
  await page.waitForSelector("text=Added (1)");
  await tracked(page, "AddToCart", `atc:${token}:${CAP}:1`);
  await assertCollectsAccepted(requests);

  // A plain form post navigates to /cart: reported from the next page.
  await page.goto(`${worker.url}/products/demo-tee`);
  await Promise.all([page.waitForURL(`${worker.url}/cart`), page.click("#add-to-cart")]);
  await tracked(page, "AddToCart", `atc:${token}:${TEE}:1`);
  await assertCollectsAccepted(requests);

  const view = await receivedOnce("ViewContent", viewId);
  assert.equal(view.user.ttp, ttp);
  assert.equal(view.properties.contents[0].content_id, MUG);
  for (const [variant, quantity] of [[MUG, 1], [MUG, 2], [CAP, 1], [TEE, 1]]) {
    const add = await receivedOnce("AddToCart", `atc:${token}:${variant}:${quantity}`);
    assert.equal(add.user.ttp, ttp, "server copy carries the visitor's _ttp");
    assert.equal(add.properties.contents[0].content_id, variant);
  }
  await context.close();
});

test("the demo checkout's webhooks reach TikTok joined to the browsing session", async () => {
  const { context, page } = await visitor();
  await page.goto(`${worker.url}/products/demo-mug`);
  const ttp = await cookieOf(context, "_ttp");
  await page.click("#add-to-cart");
  await page.waitForSelector("text=Added (1)"); // the cart exists: reading it now cannot start another
  await waitFor("the cart attributes", async () =>
    (await page.evaluate(() => fetch("/cart.js").then((r) => r.json()))).attributes._tt_sid === ttp);
  await page.goto(`${worker.url}/cart`);
  await Promise.all([page.waitForSelector("#order"), page.click("#checkout")]);
  const orderId = await page.getAttribute("#order", "data-order-id");
  const checkoutToken = await page.getAttribute("#order", "data-checkout-token");
  assert.match(orderId, /^\d{19}$/);

  const purchase = await receivedOnce("Purchase", orderId);
  assert.equal(purchase.user.ttp, ttp);
  assert.equal(purchase.properties.order_id, orderId);
  assert.equal(purchase.properties.contents[0].content_id, MUG);
  const started = await receivedOnce("InitiateCheckout", `ic:${checkoutToken}`);
  assert.equal(started.user.ttp, ttp);
  await context.close();
});

test("a visitor who declines marketing: consent reported, cookies dropped, nothing tracked", async () => {
  // Shopify's Customer Privacy API, as loadFeatures would provide it for a visitor who said no.
  const { context, page, requests, paths } = await visitor(() => {
    window.Shopify = {
      loadFeatures(features, callback) {
        window.Shopify.customerPrivacy = {
          marketingAllowed: () => false,
          saleOfDataAllowed: () => false,
          currentVisitorConsent: () => ({ marketing: "no", analytics: "no", preferences: "no", sale_of_data: "no" }),
        };
        setTimeout(callback, 0); // the real API arrives asynchronously
      },
    };
  });
  await page.goto(`${worker.url}/products/demo-mug`);
  const consent = await waitFor("POST /tt/consent", () => requests.find((r) => r.url() === `${worker.url}/tt/consent`));
  assert.deepEqual(JSON.parse(consent.postData()), { marketing: false, sale_of_data: false });
  assert.equal((await consent.response()).status(), 200);
  assert.equal(await cookieOf(context, "_tt_consent"), "denied");
  assert.equal(await cookieOf(context, "_ttp"), undefined, "the Worker expired _ttp");

  // The pixel decided (revokeConsent is queued in the same step); then an add to cart: the
  // wrapper's work happens before the theme's own continuation ("Added"), so by then any
  // tracking would have started with a /cart.js read.
  await waitFor("ttq.revokeConsent()", () => page.evaluate(() => Array.from(window.ttq).some((c) => c[0] === "revokeConsent")));
  await page.click("#add-to-cart");
  await page.waitForSelector("text=Added (1)");
  const queued = await page.evaluate(() => Array.from(window.ttq).map((c) => c[0]));
  assert.ok(!queued.includes("track"), `ttq got no events: ${queued}`);
  for (const path of ["/tt/collect", "/tt/sdk.js", "/cart.js", "/cart/update.js"]) {
    assert.ok(!paths().includes(path), `no ${path} request for a visitor who declined`);
  }
  await context.close();
});

test("CONSENT_DEFAULT=denied: events wait for the visitor's choice, then go out with their original ids", async () => {
  const optIn = await storefrontWorker({ CONSENT_DEFAULT: "denied" });
  try {
    // A visitor who has not answered the banner yet ("" = no interaction).
    const { context, page, requests, paths } = await visitor(() => {
      window.Shopify = { customerPrivacy: {
        marketingAllowed: () => false,
        saleOfDataAllowed: () => true,
        currentVisitorConsent: () => ({ marketing: "", analytics: "", preferences: "", sale_of_data: "" }),
      } };
    });
    await page.goto(`${optIn.url}/products/demo-mug`);
    assert.equal(await cookieOf(context, "_ttp"), undefined, "no tracking cookie before consent");
    await waitFor("ttq.holdConsent()", () => page.evaluate(() => Array.from(window.ttq).some((c) => c[0] === "holdConsent")));
    for (const path of ["/tt/collect", "/tt/consent", "/tt/sdk.js"]) assert.ok(!paths().includes(path), `no ${path} before the choice`);

    await page.evaluate(() => document.dispatchEvent(new CustomEvent("visitorConsentCollected",
      { detail: { marketingAllowed: true, saleOfDataAllowed: true, analyticsAllowed: true, preferencesAllowed: true } })));
    const consent = await waitFor("POST /tt/consent", () => requests.find((r) => r.url() === `${optIn.url}/tt/consent`));
    assert.deepEqual(JSON.parse(consent.postData()), { marketing: true, sale_of_data: true });
    const [, , , { event_id: viewId }] = await tracked(page, "ViewContent");
    const calls = (await ttqCalls(page)).map((c) => c[0]);
    assert.ok(calls.indexOf("holdConsent") < calls.indexOf("grantConsent") && calls.indexOf("grantConsent") < calls.indexOf("track"),
      `held, granted, then tracked: ${calls}`);
    await waitFor("the ViewContent collect", () => requests.find((r) => r.postData()?.includes(viewId)));
    assert.ok(requests.findIndex((r) => r.url().endsWith("/tt/consent")) < requests.findIndex((r) => r.url().endsWith("/tt/collect")),
      "the Worker hears the consent before the first event");
    await assertCollectsAccepted(requests);
    const ttp = await cookieOf(context, "_ttp");
    assert.ok(ttp, "the consent answer started _ttp");
    assert.equal((await receivedOnce("ViewContent", viewId)).user.ttp, ttp, "the first event after the choice carries it");
    await context.close();
  } finally {
    await optIn.dispose();
  }
});

test("late consent in an opt-in region: landing with ?ttclid=, accepting on the second page; nothing kept before, the purchase and InitiateCheckout carry the landing's click and _ttp", async () => {
  const optIn = await storefrontWorker({ CONSENT_DEFAULT: "denied" });
  try {
    // Shopify's banner: no choice until the visitor answers, remembered from then on.
    const { context, page, requests } = await visitor(() => {
      const chosen = () => sessionStorage.getItem("banner") === "accepted";
      window.Shopify = { customerPrivacy: {
        marketingAllowed: () => chosen(),
        saleOfDataAllowed: () => true,
        currentVisitorConsent: () => ({ marketing: chosen() ? "yes" : "", analytics: "", preferences: "", sale_of_data: "" }),
      } };
    });
    const kvKeys = async () => (await (await optIn.mf.getKVNamespace("SESSIONS")).list()).keys.map((k) => k.name);
    await page.goto(`${optIn.url}/products/demo-mug?ttclid=E.C.P.lateconsent`);
    await waitFor("ttq.holdConsent()", () => page.evaluate(() => Array.from(window.ttq).some((c) => c[0] === "holdConsent")));
    // The second page, by a link (so its referrer is the landing page, as Shopify's pages send it).
    await Promise.all([page.waitForURL(`${optIn.url}/`), page.click('header a[href="/"]')]);
    await waitFor("ttq.holdConsent() on the second page", () => page.evaluate(() => Array.from(window.ttq).some((c) => c[0] === "holdConsent")));
    assert.deepEqual(await context.cookies(), [], "no cookie before the choice");
    assert.deepEqual(await kvKeys(), [], "no KV record before the choice");
    assert.ok(!requests.some((r) => new URL(r.url()).pathname === "/tt/consent"), "nothing reported before the choice");

    await page.evaluate(() => {
      sessionStorage.setItem("banner", "accepted");
      document.dispatchEvent(new CustomEvent("visitorConsentCollected",
        { detail: { marketingAllowed: true, saleOfDataAllowed: true, analyticsAllowed: true, preferencesAllowed: true } }));
    });
    const consent = await waitFor("POST /tt/consent", () => requests.find((r) => r.url() === `${optIn.url}/tt/consent`));
    assert.deepEqual(JSON.parse(consent.postData()), { marketing: true, sale_of_data: true, ttclid: "E.C.P.lateconsent" },
      "the click, read from the referrer at the moment of the choice");
    await consent.response();
    const ttp = await cookieOf(context, "_ttp");
    assert.ok(ttp, "tracking started");
    assert.equal(await cookieOf(context, "ttclid"), "E.C.P.lateconsent");

    await Promise.all([page.waitForURL(`${optIn.url}/products/demo-mug`), page.click('a[href="/products/demo-mug"]')]);
    await page.click("#add-to-cart");
    await page.waitForSelector("text=Added (1)");
    await waitFor("the cart attributes", async () =>
      (await page.evaluate(() => fetch("/cart.js").then((r) => r.json()))).attributes._tt_sid === ttp);
    await page.goto(`${optIn.url}/cart`);
    await Promise.all([page.waitForSelector("#order"), page.click("#checkout")]);
    const orderId = await page.getAttribute("#order", "data-order-id");
    const checkoutToken = await page.getAttribute("#order", "data-checkout-token");
    for (const [event, id] of [["Purchase", orderId], ["InitiateCheckout", `ic:${checkoutToken}`]]) {
      const e = await receivedOnce(event, id);
      assert.deepEqual([e.user.ttp, e.user.ttclid], [ttp, "E.C.P.lateconsent"], `${event} carries the landing's keys`);
    }
    await context.close();
  } finally {
    await optIn.dispose();
  }
});

test("the custom pixel, in Shopify's sandbox (opaque origin, no cookies): checkout steps with the storefront's keys from browser.cookie", async () => {
  const source = await (await worker.fetch("/tt/custom-pixel.js")).text();
  // Shopify runs custom pixels in a sandboxed iframe on another origin; a sandboxed page gets an
  // opaque origin, so its requests say `Origin: null` and carry no cookies of the shop.
  const sandbox = await startServer((req, res) => res.writeHead(200, {
    "content-type": "text/html; charset=utf-8", "content-security-policy": "sandbox allow-scripts",
  }).end("<!doctype html><html><head></head><body>custom pixel sandbox</body></html>"));
  const { context, page, requests } = await visitor();
  await page.goto(sandbox.url);
  const ttp = "01JY68AFXQXP2232M0V748XS0Q_.tt.1";
  await page.evaluate((ttp) => {
    // The globals Shopify gives a custom pixel.
    window.__subscribers = {};
    window.analytics = { subscribe: (name, callback) => { window.__subscribers[name] = callback; } };
    window.browser = { cookie: { get: async (name) => ({ _ttp: ttp, ttclid: "E.C.P.custompixel" })[name] || "" } };
    window.init = { customerPrivacy: { marketingAllowed: true, saleOfDataAllowed: true, analyticsProcessingAllowed: true, preferencesProcessingAllowed: true } };
    window.api = { customerPrivacy: { subscribe: (name, callback) => { window.__consentChanged = callback; } } };
  }, ttp);
  await page.addScriptTag({ content: source });

  const checkout = (token, extra = {}) => ({
    token,
    currencyCode: "USD",
    subtotalPrice: { amount: 37.0, currencyCode: "USD" },
    totalPrice: { amount: 42.0, currencyCode: "USD" },
    lineItems: [{ quantity: 2, title: "Demo Mug", variant: { id: `gid://shopify/ProductVariant/${MUG}`, price: { amount: 18.5, currencyCode: "USD" } } }],
    localization: { market: { id: `gid://shopify/Market/${DEMO_MARKET.id}`, handle: DEMO_MARKET.handle } },
    ...extra,
  });
  const fire = (name, data) => page.evaluate(([name, data]) => window.__subscribers[name]({
    id: `ev-${name}`, name, timestamp: new Date().toISOString(),
    context: { document: { location: { href: "https://shop.example/checkouts/cn/abc" }, referrer: "" } }, data,
  }), [name, data]);

  await fire("checkout_started", { checkout: checkout("chk-custom-1") });
  await fire("payment_info_submitted", { checkout: checkout("chk-custom-1") });
  await fire("checkout_completed", { checkout: checkout("chk-custom-1", { order: { id: "gid://shopify/Order/5900000000000000999" } }) });

  const started = await receivedOnce("InitiateCheckout", "ic:chk-custom-1");
  assert.equal(started.user.ttp, ttp, "the storefront's _ttp, sent in the body");
  assert.equal(started.user.ttclid, "E.C.P.custompixel");
  assert.equal(started.properties.market_handle, DEMO_MARKET.handle);
  assert.equal(String(started.properties.market_id), String(DEMO_MARKET.id));
  assert.equal(started.properties.contents[0].content_id, MUG);
  await receivedOnce("AddPaymentInfo", "api:chk-custom-1");
  // The pixel's purchase is evidence only: it goes out when the signed order confirms it, with
  // the order's values and the pixel's _ttp (the order itself carries no session; it names the
  // checkout whose token the pixel's copy carries).
  const order = { ...loadFixture("order_create.json"), id: big("5900000000000000999"), note_attributes: [], cart_token: null, checkout_token: "chk-custom-1" };
  await waitFor("the pixel's purchase collected", () => requests.find((r) => r.postData()?.includes('"5900000000000000999"')));
  await assertCollectsAccepted(requests);
  assert.equal((await deliverWebhook(worker, "orders/create", order, { shop: DEMO_SHOP_DOMAIN })).body.queued, 1);
  const purchase = await receivedOnce("Purchase", "5900000000000000999");
  assert.equal(purchase.properties.order_id, "5900000000000000999");
  assert.equal(purchase.user.ttp, ttp);
  assert.match(purchase.user.email, /^[0-9a-f]{64}$/);
  await tracked(page, "Purchase", "5900000000000000999"); // ttq in the sandbox too, same id
  await assertCollectsAccepted(requests);
  const collect = requests.find((r) => r.url() === `${worker.url}/tt/collect`);
  assert.equal((await collect.allHeaders()).origin, "null", "sent from an opaque origin, as in Shopify's sandbox");

  // The visitor withdraws marketing consent: a later step is not reported, its refusal is (with
  // the checkout's token and nothing of the checkout), so the Worker stops the checkout's events.
  await page.evaluate(() => window.__consentChanged({ customerPrivacy: { marketingAllowed: false, saleOfDataAllowed: false } }));
  await fire("checkout_started", { checkout: checkout("chk-custom-declined") });
  const refusal = await waitFor("the refusal for chk-custom-declined", () => requests.find((r) => r.postData()?.includes("chk-custom-declined")));
  assert.deepEqual(JSON.parse(refusal.postData()), {
    event: "InitiateCheckout", event_id: "ic:chk-custom-declined", checkout_token: "chk-custom-declined",
    page: { url: "https://shop.example/checkouts/cn/abc" }, user: { ttp }, consent: { marketing: false, sale_of_data: false },
  });
  assert.equal((await refusal.response())?.status(), 202);
  assert.ok(!(await ttqCalls(page)).some((c) => c[3]?.event_id === "ic:chk-custom-declined"), "not to ttq either");
  await page.evaluate(() => window.__consentChanged({ customerPrivacy: { marketingAllowed: true, saleOfDataAllowed: true } }));
  await fire("checkout_started", { checkout: checkout("chk-custom-2") });
  await receivedOnce("InitiateCheckout", "ic:chk-custom-2");
  assert.ok(!sentEvents().some((e) => e.event_id.includes("chk-custom-declined")), "nothing of the declined checkout reached TikTok");

  // A checkout whose currencyCode is null: the pixel leaves currency out (never "currency": null).
  await fire("checkout_started", { checkout: checkout("chk-custom-nocurrency", { currencyCode: null }) });
  const noCurrency = await waitFor("the step without a currency", () => requests.find((r) => r.postData()?.includes("chk-custom-nocurrency")));
  const sentBody = JSON.parse(noCurrency.postData());
  assert.ok(!("currency" in sentBody.properties), noCurrency.postData());
  assert.equal((await noCurrency.response())?.status(), 202);
  const [, , ttqProps] = await tracked(page, "InitiateCheckout", "ic:chk-custom-nocurrency");
  assert.ok(!("currency" in ttqProps), "nor to ttq");
  await context.close();
  await sandbox.close();
});
