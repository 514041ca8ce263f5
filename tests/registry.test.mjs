// The shop registry (scripts/lib/registry.mjs): its checks name the shop and the field of every
// problem, agree with shops.schema.json, and each shop's Worker config is derived from it alone.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { ROOT } from "./support/harness.mjs";
import {
  HOSTNAME, HOSTNAME_FIELDS, MARKET, MYSHOPIFY, PIXEL_FIELDS, SECRET_NAME, SHOP_FIELDS, SHOP_NAME,
  checkRegistry, kvTitle, rateLimitIds, shopConfig, shopOfKvTitle, workerVars,
} from "../scripts/lib/registry.mjs";
import { varsOf } from "../scripts/lib/wrangler-config.mjs";

const example = JSON.parse(readFileSync(path.join(ROOT, "shops.example.json"), "utf8"));
const schema = JSON.parse(readFileSync(path.join(ROOT, "shops.schema.json"), "utf8"));
const shop = (over = {}) => ({
  name: "acme", shopify_domain: "acme.myshopify.com", hostnames: [{ host: "www.acme.com" }],
  pixels: [{ id: "C9Q2MJ3C77U4P674RPG0" }], secrets: ["SHOPIFY_WEBHOOK_SECRET", "TIKTOK_ACCESS_TOKEN"], ...over,
});
const problemsOf = (...shops) => checkRegistry({ shops }).problems.map((p) => `${p.shop}: ${p.field}: ${p.message}`);

test("the example registry is valid, and the schema has exactly the fields and patterns the checks know", () => {
  assert.deepEqual(checkRegistry(example).problems, []);
  const defs = schema.$defs;
  assert.deepEqual(Object.keys(defs.shop.properties).sort(), [...SHOP_FIELDS].sort());
  assert.deepEqual(Object.keys(defs.hostname.properties).sort(), [...HOSTNAME_FIELDS].sort());
  assert.deepEqual(Object.keys(defs.pixel.properties).sort(), [...PIXEL_FIELDS].sort());
  assert.equal(defs.shop.properties.name.pattern, SHOP_NAME.source);
  assert.equal(defs.shop.properties.shopify_domain.pattern, MYSHOPIFY.source);
  assert.equal(defs.hostname.properties.host.pattern, HOSTNAME.source);
  assert.equal(defs.hostname.properties.market.pattern, MARKET.source);
  assert.equal(defs.pixel.properties.token.pattern, SECRET_NAME.source);
  assert.equal(defs.shop.properties.secrets.items.pattern, SECRET_NAME.source);
});

test("every problem names its shop and field", () => {
  const cases = [
    [shop({ name: "Acme Shop" }), "Acme Shop: name: must be 1 to 40 lowercase letters"],
    [shop({ shopify_domain: "www.acme.com" }), "acme: shopify_domain: must be the shop's permanent domain"],
    [shop({ hostnames: [] }), "acme: hostnames: must list at least one hostname"],
    [shop({ hostnames: [{ host: "https://www.acme.com/" }] }), "acme: hostnames[0].host: must be a lowercase hostname"],
    [shop({ hostnames: [{ host: "www.acme.com" }, { host: "acme.fr", market: "FR" }] }), "acme: hostnames[1].market: must be a Shopify market handle"],
    [shop({ hostnames: [{ host: "www.acme.com", zone: "other.com" }] }), "acme: hostnames[0].zone: must be the Cloudflare zone holding the host"],
    [shop({ hostnames: [{ host: "www.acme.com", markets: "fr" }] }), "acme: hostnames[0].markets: is not a hostname field"],
    [shop({ pixels: [] }), "acme: pixels: must list at least one TikTok pixel"],
    [shop({ pixels: [{ token: "TIKTOK_ACCESS_TOKEN" }] }), "acme: pixels[0].id: is required"],
    [shop({ pixels: [{ id: "A" }, { id: "A" }] }), "acme: pixels[1].id: A is listed twice"],
    [shop({ pixels: [{ id: "A" }, { id: "B", token: "TIKTOK_TOKEN_FR" }] }), "acme: pixels[1].token: names the secret TIKTOK_TOKEN_FR, which is not in the shop's secrets"],
    [shop({ pixels: [{ id: "A", markets: "fr" }] }), "acme: pixels[0].markets: must be a list of strings"],
    [shop({ pixels: [{ id: "A", market: ["fr"] }] }), "acme: pixels[0].market: is not a pixel field"],
    [shop({ secrets: ["TIKTOK_ACCESS_TOKEN"] }), "acme: secrets: lacks SHOPIFY_WEBHOOK_SECRET"],
    [shop({ secrets: ["SHOPIFY_WEBHOOK_SECRET", "shopify-secret"] }), "acme: secrets: must list the names of the shop's Worker secrets"],
    [shop({ vars: { ADMIN_TOKEN: "0123456789abcdef0123" } }), "acme: vars.ADMIN_TOKEN: is a secret"],
    [shop({ vars: { TIKTOK_PIXEL_ID: "C9" } }), "acme: vars.TIKTOK_PIXEL_ID: is written from the shop's pixels"],
    [shop({ vars: { INJECT_PIXEL: false } }), "acme: vars.INJECT_PIXEL: must be a string"],
    [shop({ webhook_secret: "x" }), "acme: webhook_secret: is not a shop field"],
  ];
  for (const [entry, want] of cases) {
    const problems = problemsOf(entry);
    assert.ok(problems.some((p) => p.startsWith(want)), `${want}\n  got: ${problems.join("\n  ")}`);
    assert.ok(checkRegistry({ shops: [entry] }).problems.every((p) => p.fix), "each with its fix");
  }
  // Across shops: a name, a Shopify shop or a hostname used twice.
  assert.deepEqual(problemsOf(shop(), shop({ shopify_domain: "b.myshopify.com", hostnames: [{ host: "b.com" }] })), ["acme: name: is used by two shops (shops[0] too)"]);
  assert.deepEqual(problemsOf(shop(), shop({ name: "b", hostnames: [{ host: "b.com" }] })), ["b: shopify_domain: acme.myshopify.com is also shop acme's: two Workers would take the same shop's webhooks"]);
  assert.deepEqual(problemsOf(shop(), shop({ name: "b", shopify_domain: "b.myshopify.com" })), ["b: hostnames[0].host: www.acme.com is also listed by acme: a hostname's route goes to one Worker"]);
  // A shop without a usable name is named by its place.
  assert.ok(problemsOf(shop(), { ...shop(), name: 7 }).some((p) => p.startsWith("shops[1]: name:")));
  assert.deepEqual(checkRegistry([]).problems.map((p) => p.field), ["shops"]);
});

test("a shop's Worker vars: one plain pixel as today's TIKTOK_PIXEL_ID, anything more as TIKTOK_PIXELS; hostnames as STOREFRONT_HOSTS", () => {
  assert.deepEqual(workerVars(shop({ pixels: [{ id: "C1", test_event_code: "TEST1" }], vars: { CONSENT_DEFAULT: "denied" } })), {
    CONSENT_DEFAULT: "denied", SHOPIFY_SHOP_DOMAIN: "acme.myshopify.com", STOREFRONT_HOSTS: "www.acme.com",
    TIKTOK_PIXEL_ID: "C1", TIKTOK_TEST_EVENT_CODE: "TEST1",
  });
  const [, bravo] = example.shops;
  const vars = workerVars(bravo);
  assert.equal(vars.STOREFRONT_HOSTS, "shop.bravo.com=us, www.bravo.fr=fr");
  assert.deepEqual(JSON.parse(vars.TIKTOK_PIXELS), [{ id: "CB1111111111111111US" }, { id: "CB2222222222222222FR", token: "TIKTOK_TOKEN_FR", markets: ["fr"] }]);
  assert.ok(!("TIKTOK_PIXEL_ID" in vars), "never both (the Worker refuses that)");
  // A single pixel scoped to events is more than TIKTOK_PIXEL_ID can say.
  assert.ok("TIKTOK_PIXELS" in workerVars(shop({ pixels: [{ id: "C1", events: ["Purchase"] }] })));
});

test("a shop's wrangler config: its own name, routes, KV id, vars and rate-limiter namespaces; the bindings of wrangler.toml; no build step", () => {
  const base = readFileSync(path.join(ROOT, "wrangler.toml"), "utf8");
  const [acme, bravo] = example.shops;
  const configDir = path.join(ROOT, "build/shops/bravo");
  const toml = shopConfig(base, bravo, { kvId: "b".repeat(32), configDir });
  assert.match(toml, /^name = "tiktok-edge-bravo"$/m);
  assert.match(toml, /^main = "\.\.\/\.\.\/\.\.\/src\/entry\.js"$/m, "src/entry.js seen from build/shops/bravo");
  assert.doesNotMatch(toml, /^\[build\]|^command =/m);
  assert.match(toml, /^routes = \[\{ pattern = "shop\.bravo\.com\/\*", zone_name = "bravo\.com" \}, \{ pattern = "www\.bravo\.fr\/\*", zone_name = "bravo\.fr" \}\]$/m);
  assert.match(toml, new RegExp(`binding = "SESSIONS"\\n[^\\[]*id = "${"b".repeat(32)}"`));
  assert.deepEqual(varsOf(toml), workerVars(bravo));
  for (const binding of ["EVENT_QUEUE", "SHOP_STATE"]) assert.match(toml, new RegExp(`name = "${binding}"`));
  assert.match(toml, /new_sqlite_classes = \["EventQueue", "ShopState"\]/);
  const ids = [rateLimitIds("acme"), rateLimitIds("bravo")];
  assert.match(toml, new RegExp(`name = "COLLECT_RATE_LIMITER"\\nnamespace_id = "${ids[1].COLLECT_RATE_LIMITER}"`));
  assert.match(toml, new RegExp(`name = "SHOP_RATE_LIMITER"\\nnamespace_id = "${ids[1].SHOP_RATE_LIMITER}"`));
  assert.equal(new Set([...Object.values(ids[0]), ...Object.values(ids[1]), "1001", "1002"]).size, 6, "no shop shares a limiter with another or with the single-shop Worker");
  // Derived from the registry alone: the same input gives the same text (a re-run changes nothing).
  assert.equal(shopConfig(base, bravo, { kvId: "b".repeat(32), configDir }), toml);
  assert.notEqual(shopConfig(base, acme, { kvId: "a".repeat(32), configDir }), toml);
});

test("KV titles name their shop; the single-shop namespace belongs to none", () => {
  assert.equal(shopOfKvTitle(kvTitle("acme-fr")), "acme-fr");
  assert.equal(shopOfKvTitle("tiktok-edge-SESSIONS"), undefined);
  assert.equal(shopOfKvTitle("other-app-CACHE"), undefined);
});
