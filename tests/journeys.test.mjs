// Shoppers' journeys, played in headless Chromium through the built Worker in front of the demo
// storefront (its pages, Ajax cart and checkout; Shopify's webhooks for what the demo has no page
// for: express wallets and "Buy it now"), each a few times: the share of purchases and
// InitiateCheckouts reaching TikTok with each match key is printed and asserted per journey type.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { waitFor, eventsAt, deliverWebhook, loadFixture, big } from "./support/harness.mjs";
import { startStorefront } from "./support/browser.mjs";
import { PRODUCTS, SHOP_DOMAIN } from "../demo/origin.mjs";

const RUNS = 3;
const KEYS = ["ttp", "ttclid", "ip", "user_agent"];
const SDK_STUB = "window.ttq = window.ttq || [];";

let storefront, chromium, tiktok, demo;
const workers = {};

before(async () => {
  storefront = await startStorefront(SDK_STUB);
  ({ chromium, tiktok, demo } = storefront);
  for (const consent of ["allowed", "denied"]) {
    workers[consent] = await storefront.worker({ CONSENT_DEFAULT: consent, WEBHOOK_WAIT_MS: "240000" }, { collectLimit: 100_000 });
  }
});
after(async () => {
  for (const w of Object.values(workers)) await w.dispose();
  await storefront?.close();
});

const sent = () => eventsAt(tiktok);
const received = (id) => waitFor(`TikTok to receive ${id}`, () => sent().find((e) => e.event_id === id));
const kv = (worker) => worker.mf.getKVNamespace("SESSIONS");
let visitors = 0;

/**
 * A fresh visitor of `worker` (empty profile, its own IP and user agent as Cloudflare would see
 * them). `banner`: Shopify's consent banner, unanswered until `accept()`.
 */
async function visitor(worker, { banner = false } = {}) {
  const n = ++visitors;
  const context = await chromium.newContext({
    userAgent: `JourneyBrowser/${n}`,
    extraHTTPHeaders: { "cf-connecting-ip": `198.51.100.${n % 250}` },
  });
  if (banner) {
    await context.addInitScript(() => {
      const chosen = () => sessionStorage.getItem("banner") === "accepted";
      window.Shopify = { customerPrivacy: {
        marketingAllowed: () => chosen(), saleOfDataAllowed: () => true,
        currentVisitorConsent: () => ({ marketing: chosen() ? "yes" : "", analytics: "", preferences: "", sale_of_data: "" }),
      } };
    });
  }
  const page = await context.newPage();
  const requests = [];
  page.on("request", (r) => requests.push(r));
  const go = (path) => page.goto(`${worker.url}${path}`);
  const follow = (href) => Promise.all([page.waitForURL(`${worker.url}${href}`), page.click(`a[href="${href}"]`)]);
  const accept = async () => {
    await page.evaluate(() => {
      sessionStorage.setItem("banner", "accepted");
      document.dispatchEvent(new CustomEvent("visitorConsentCollected",
        { detail: { marketingAllowed: true, saleOfDataAllowed: true, analyticsAllowed: true, preferencesAllowed: true } }));
    });
    const report = await waitFor("POST /tt/consent", () => requests.find((r) => r.url().endsWith("/tt/consent")));
    await report.response();
  };
  const cookie = async (name) => (await context.cookies()).find((c) => c.name === name)?.value;
  /** Adds the product on the current page, and waits for the session's keys in the cart. */
  const add = async (on = page) => {
    const before = await on.locator("#added").textContent();
    await on.click("#add-to-cart");
    await on.waitForFunction((b) => document.getElementById("added").textContent !== b, before);
  };
  const cartSynced = () => waitFor("the cart attributes", async () =>
    (await page.evaluate(() => fetch("/cart.js").then((r) => r.json()))).attributes._tt_sid);
  /** The demo's checkout of the cookie's cart: its webhooks; the purchase's and IC's ids. */
  const checkOut = async () => {
    demo.workerUrl = worker.url; // the demo checkout sends its webhooks to this visitor's Worker
    await go("/cart");
    await Promise.all([page.waitForSelector("#order"), page.click("#checkout")]);
    return {
      purchase: await page.getAttribute("#order", "data-order-id"),
      initiate: `ic:${await page.getAttribute("#order", "data-checkout-token")}`,
    };
  };
  return { context, page, go, follow, accept, cookie, add, cartSynced, checkOut, ip: `198.51.100.${n % 250}`, userAgent: `JourneyBrowser/${n}` };
}

/**
 * Shopify's webhooks for a checkout that passed no page of the shop's own cart (an express
 * wallet's, or "Buy it now"'s new cart `cart`): no cart attributes, no client details; its
 * `landing_site` is where the visit began.
 */
async function signedCheckout(worker, { cart, landing }) {
  const token = randomBytes(16).toString("hex");
  const id = String(5900000000000000000n + BigInt(`0x${randomBytes(6).toString("hex")}`));
  const checkout = { ...loadFixture("checkout_update.json"), token, cart_token: cart, note_attributes: [], landing_site: landing };
  const order = {
    ...loadFixture("order_create.json"), id: big(id), cart_token: cart, checkout_token: token,
    note_attributes: [], client_details: null, browser_ip: null, landing_site: landing,
  };
  await deliverWebhook(worker, "checkouts/create", checkout, { shop: SHOP_DOMAIN });
  await deliverWebhook(worker, "orders/create", order, { shop: SHOP_DOMAIN });
  return { purchase: id, initiate: `ic:${token}` };
}

const click = () => `E.C.P.${randomBytes(9).toString("base64url")}`;
const landingPath = (ttclid) => `/products/demo-mug?ttclid=${ttclid}`;
/** Waits until the edge's writes after the landing page's response are in KV. */
const landed = (worker, ttclid) => waitFor(`the click ${ttclid} linked`, async () => (await kv(worker)).get(`click:${ttclid}`));

// Each journey plays one shopper and answers the ids of their purchase and InitiateCheckout,
// and what the visit's keys were.
const JOURNEYS = {
  "consent on the landing page": async () => {
    const w = workers.denied, v = await visitor(w, { banner: true }), ttclid = click();
    await v.go(landingPath(ttclid));
    await v.accept();
    await v.add();
    await v.cartSynced();
    return { ids: await v.checkOut(), v, ttclid };
  },
  "consent on the second page": async () => {
    const w = workers.denied, v = await visitor(w, { banner: true }), ttclid = click();
    await v.go(landingPath(ttclid));
    await v.follow("/");
    await v.accept();
    await v.follow("/products/demo-mug");
    await v.add();
    await v.cartSynced();
    return { ids: await v.checkOut(), v, ttclid };
  },
  "express wallet": async () => {
    const w = workers.allowed, v = await visitor(w), ttclid = click();
    await v.go(landingPath(ttclid));
    await landed(w, ttclid);
    const ids = await signedCheckout(w, { cart: `Z2NwLXdhbGxldC${randomBytes(8).toString("hex")}`, landing: landingPath(ttclid) });
    return { ids, v, ttclid };
  },
  "express wallet, ad URL shared": async () => {
    // Someone else opened the same ad URL first: the click joins neither of them.
    const w = workers.allowed, sharer = await visitor(w), v = await visitor(w), ttclid = click();
    await sharer.go(landingPath(ttclid));
    await landed(w, ttclid);
    await sharer.context.close();
    await v.go(landingPath(ttclid));
    await waitFor("the click ambiguous", async () => (await (await kv(w)).get(`click:${ttclid}`)) === "ambiguous click");
    const ids = await signedCheckout(w, { cart: `Z2NwLXNoYXJlZC${randomBytes(8).toString("hex")}`, landing: landingPath(ttclid) });
    return { ids, v, ttclid };
  },
  "buy it now": async () => {
    const w = workers.allowed, v = await visitor(w), ttclid = click();
    await v.go(landingPath(ttclid));
    const cart = `Z2NwLWJ1eW5vd${randomBytes(8).toString("hex")}`;
    await v.go(`/checkouts/cn/${cart}`);
    await waitFor("the checkout page's cart linked", async () => (await kv(w)).get(`cart:${cart}`));
    return { ids: await signedCheckout(w, { cart, landing: null }), v, ttclid };
  },
  "returning after 35 days": async () => {
    const w = workers.allowed, v = await visitor(w), ttclid = click();
    await v.go(landingPath(ttclid));
    await landed(w, ttclid);
    // 35 days on: the click's cookies (30 days) and every KV record (30 days) expired; _ttp and
    // its proof (13 months) remain.
    const ttp = await v.cookie("_ttp");
    await v.context.clearCookies({ name: "ttclid" });
    await v.context.clearCookies({ name: "_tt_click" });
    await v.context.clearCookies({ name: "_tt_s" });
    const store = await kv(w);
    for (const key of [`session:${ttp}`, `click:${ttclid}`]) await store.delete(key);
    await v.go("/products/demo-mug");
    await v.add();
    await v.cartSynced();
    return { ids: await v.checkOut(), v, ttclid: null };
  },
  "two tabs": async () => {
    const w = workers.allowed, v = await visitor(w), ttclid = click();
    await v.go(landingPath(ttclid));
    const tab = await v.context.newPage();
    await tab.goto(`${w.url}/products/demo-cap`);
    await v.add();
    await v.add(tab);
    await v.cartSynced();
    const cart = decodeURIComponent(await v.cookie("cart")).split("?")[0];
    const adds = [`atc:${cart}:${PRODUCTS["demo-mug"].variant}:1`, `atc:${cart}:${PRODUCTS["demo-cap"].variant}:1`];
    for (const id of adds) await received(id);
    const ids = await v.checkOut();
    return { ids, v, ttclid, adds };
  },
};

// What each journey type must score (share of its events carrying each key). A returning
// visitor's click is over (0 % is right); a shared ad URL joins nobody's session.
const EXPECTED = {
  "returning after 35 days": { ttclid: 0 },
  "express wallet, ad URL shared": { ttp: 0, ip: 0, user_agent: 0 },
};

test("journeys: the share of purchases and InitiateCheckouts carrying each match key, per journey type", async () => {
  const rows = [];
  for (const [name, play] of Object.entries(JOURNEYS)) {
    const tally = { Purchase: Object.fromEntries(KEYS.map((k) => [k, 0])), InitiateCheckout: Object.fromEntries(KEYS.map((k) => [k, 0])) };
    for (let run = 0; run < RUNS; run++) {
      const { ids, v, ttclid, adds } = await play();
      const ttp = await v.cookie("_ttp");
      const want = { ttp, ttclid, ip: v.ip, user_agent: v.userAgent };
      for (const [event, id] of [["Purchase", ids.purchase], ["InitiateCheckout", ids.initiate]]) {
        const e = await received(id);
        assert.equal(sent().filter((s) => s.event_id === id).length, 1, `${name}: one ${event}`);
        for (const key of KEYS) {
          const got = e.user[key];
          if (got !== undefined) assert.equal(got, want[key], `${name}: ${event}'s ${key} is the visitor's own`);
          tally[event][key] += got === undefined ? 0 : 1;
        }
      }
      if (adds) for (const id of adds) assert.equal(sent().filter((s) => s.event_id === id).length, 1, `${name}: ${id} once`);
      await v.context.close();
    }
    for (const event of ["Purchase", "InitiateCheckout"]) {
      const shares = Object.fromEntries(KEYS.map((k) => [k, Math.round((100 * tally[event][k]) / RUNS)]));
      rows.push({ journey: name, event, ...Object.fromEntries(KEYS.map((k) => [k, `${shares[k]} %`])) });
      for (const key of KEYS) {
        const expected = EXPECTED[name]?.[key] ?? 100;
        assert.equal(shares[key], expected, `${name}: ${event} with ${key}`);
      }
    }
  }
  console.log(`\nShare of events carrying each key (${RUNS} runs per journey):`);
  console.log(`| journey | event | ${KEYS.join(" | ")} |\n|---|---|${KEYS.map(() => "---").join("|")}|`);
  for (const r of rows) console.log(`| ${r.journey} | ${r.event} | ${KEYS.map((k) => r[k]).join(" | ")} |`);
});
