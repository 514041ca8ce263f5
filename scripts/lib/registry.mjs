// The shop registry (shops.json at the project root, or SHOPS_FILE): every shop an agency or a
// merchant runs, each deployed as its own Worker. Pure: reading the file, naming every problem
// of it (shop and field, with the fix), and deriving each shop's Worker (name, vars, routes,
// wrangler config) from it. scripts/deploy.mjs and scripts/doctor.mjs do the I/O.
// The format, for editors: shops.schema.json; for people: docs/agencies.md.
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { ROOT } from "./cli.mjs";
import { withKvId, withRateLimitId, withRoutes, withTopLevel, withVarsOnly, withoutBuild } from "./wrangler-config.mjs";

/** The registry's path: SHOPS_FILE, else shops.json in the project root. */
export const registryPath = (env) => env.SHOPS_FILE || path.join(ROOT, "shops.json");

/** Where each shop's secrets file and the deploy state live: DEPLOY_DIR, else .deploy/. */
export const deployDir = (env) => env.DEPLOY_DIR || path.join(ROOT, ".deploy");
/** A shop's own settings file: its secrets' values and its operator credentials (Shopify Admin API). */
export const shopSettingsPath = (env, shop) => path.join(deployDir(env), `${shop}.env`);

export const SHOP_FIELDS = ["name", "shopify_domain", "hostnames", "pixels", "vars", "secrets"];
export const HOSTNAME_FIELDS = ["host", "market", "zone"];
/** A pixel's fields: the TIKTOK_PIXELS object of the Worker (docs/configuration.md). */
export const PIXEL_FIELDS = ["id", "token", "test_event_code", "markets", "events"];

/** The Worker secret a pixel's Events API token is in when its `token` is not given. */
export const DEFAULT_TOKEN = "TIKTOK_ACCESS_TOKEN";
/** Secrets every shop has: Shopify signs its webhooks with it. */
export const REQUIRED_SECRETS = ["SHOPIFY_WEBHOOK_SECRET"];
/** Worker settings that are secrets whatever a shop calls its own: never in `vars`. */
export const KNOWN_SECRETS = ["TIKTOK_ACCESS_TOKEN", "SHOPIFY_WEBHOOK_SECRET", "SHOPIFY_WEBHOOK_SECRET_PREVIOUS", "ADMIN_TOKEN"];
/** Worker vars the registry writes from its own fields, and which field that is. */
export const DERIVED_VARS = {
  SHOPIFY_SHOP_DOMAIN: "shopify_domain",
  STOREFRONT_HOSTS: "hostnames",
  TIKTOK_PIXELS: "pixels",
  TIKTOK_PIXEL_ID: "pixels[0].id",
  TIKTOK_TEST_EVENT_CODE: "pixels[0].test_event_code",
};

export const SHOP_NAME = /^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$/;
export const HOSTNAME = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/;
export const MYSHOPIFY = /^[a-z0-9][a-z0-9-]*\.myshopify\.com$/;
export const MARKET = /^[a-z0-9][a-z0-9_-]{0,63}$/;
export const SECRET_NAME = /^[A-Z][A-Z0-9_]{0,63}$/;

/** One problem of the registry: the shop (its name, or its place in the list), the field, what is wrong and the fix. */
export class RegistryProblem {
  constructor(shop, field, message, fix) {
    Object.assign(this, { shop, field, message, fix });
  }

  toString() {
    return `${this.shop ? `${this.shop}: ` : ""}${this.field ? `${this.field}: ` : ""}${this.message}${this.fix ? ` (fix: ${this.fix})` : ""}`;
  }
}

const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
const isStringArray = (v) => Array.isArray(v) && v.every((x) => typeof x === "string" && x.trim() !== "");

/**
 * The registry file: `null` when it does not exist (the single-shop deploy of wrangler.toml
 * applies), else `{ shops, problems }`, the shops as written and every problem found.
 */
export function readRegistry(env) {
  const file = registryPath(env);
  if (!existsSync(file)) return null;
  let json;
  try {
    json = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    return { file, shops: [], problems: [new RegistryProblem(null, null, `${path.basename(file)} is not JSON: ${e.message}`, "correct the syntax (an editor with shops.schema.json shows where)")] };
  }
  return { file, ...checkRegistry(json) };
}

/** Every problem of a parsed registry, each naming its shop and field; `{ shops, problems }`. */
export function checkRegistry(json) {
  const problems = [];
  const say = (shop, field, message, fix) => problems.push(new RegistryProblem(shop, field, message, fix));
  if (!isObject(json) || !Array.isArray(json.shops) || !json.shops.length) {
    say(null, "shops", "the registry must be an object whose `shops` is a non-empty list", 'write {"shops": [{"name": …}]} (docs/agencies.md has an example)');
    return { shops: [], problems };
  }
  for (const key of Object.keys(json)) {
    if (key !== "shops" && key !== "$schema") say(null, key, "is not a registry field", "remove it; the registry has `shops` (and `$schema`) only");
  }
  const names = new Map();
  const domains = new Map();
  const hosts = new Map();
  json.shops.forEach((shop, i) => {
    const label = isObject(shop) && typeof shop.name === "string" && shop.name ? shop.name : `shops[${i}]`;
    if (!isObject(shop)) return say(label, null, "must be an object", "write the shop as {\"name\": …, \"shopify_domain\": …, …}");
    for (const key of Object.keys(shop)) {
      if (!SHOP_FIELDS.includes(key)) say(label, key, "is not a shop field", `remove it or correct its name; a shop has ${SHOP_FIELDS.join(", ")}`);
    }
    checkName(shop, i, label, names, say);
    if (typeof shop.shopify_domain !== "string" || !MYSHOPIFY.test(shop.shopify_domain)) {
      say(label, "shopify_domain", "must be the shop's permanent domain, like example.myshopify.com", "Shopify admin → Settings → Domains shows it");
    } else if (domains.has(shop.shopify_domain)) {
      say(label, "shopify_domain", `${shop.shopify_domain} is also shop ${domains.get(shop.shopify_domain)}'s: two Workers would take the same shop's webhooks`, "keep one entry per Shopify shop; put all its hostnames in that entry");
    } else {
      domains.set(shop.shopify_domain, label);
    }
    checkHostnames(shop.hostnames, label, hosts, say);
    checkPixelsAndSecrets(shop, label, say);
    checkVars(shop.vars, label, say);
  });
  return { shops: json.shops, problems };
}

function checkName(shop, i, label, names, say) {
  if (typeof shop.name !== "string" || !SHOP_NAME.test(shop.name)) {
    say(label, "name", "must be 1 to 40 lowercase letters, digits or `-` (not at either end): it names the Worker tiktok-edge-<name>", 'e.g. "acme-fr"');
  } else if (names.has(shop.name)) {
    say(label, "name", `is used by two shops (shops[${names.get(shop.name)}] too)`, "give each shop its own name");
  } else {
    names.set(shop.name, i);
  }
}

function checkHostnames(list, label, hosts, say) {
  if (!Array.isArray(list) || !list.length) {
    return say(label, "hostnames", "must list at least one hostname", 'e.g. [{"host": "shop.example.com"}, {"host": "shop.example.fr", "market": "fr"}]');
  }
  list.forEach((h, j) => {
    const field = `hostnames[${j}]`;
    if (!isObject(h)) return say(label, field, 'must be an object like {"host": "shop.example.com", "market": "fr"}', "write each hostname as an object");
    for (const key of Object.keys(h)) {
      if (!HOSTNAME_FIELDS.includes(key)) say(label, `${field}.${key}`, "is not a hostname field", `remove it; a hostname has ${HOSTNAME_FIELDS.join(", ")}`);
    }
    if (typeof h.host !== "string" || !HOSTNAME.test(h.host)) {
      say(label, `${field}.host`, "must be a lowercase hostname, without scheme or path", "e.g. shop.example.com");
    } else if (hosts.has(h.host)) {
      say(label, `${field}.host`, `${h.host} is also listed by ${hosts.get(h.host)}: a hostname's route goes to one Worker`, "list each hostname under one shop only");
    } else {
      hosts.set(h.host, label);
    }
    if (h.market !== undefined && (typeof h.market !== "string" || !MARKET.test(h.market))) {
      say(label, `${field}.market`, "must be a Shopify market handle (lowercase letters, digits, `-` or `_`)", "Shopify admin → Settings → Markets → the market → its handle");
    }
    if (h.zone !== undefined && (typeof h.zone !== "string" || !HOSTNAME.test(h.zone) || !(h.host === h.zone || String(h.host).endsWith(`.${h.zone}`)))) {
      say(label, `${field}.zone`, "must be the Cloudflare zone holding the host (the host itself or a parent domain of it)", "e.g. example.com for shop.example.com; leave it out to take the host without its first label");
    }
  });
}

function checkPixelsAndSecrets(shop, label, say) {
  const secrets = shop.secrets;
  if (!isStringArray(secrets) || secrets.some((s) => !SECRET_NAME.test(s))) {
    say(label, "secrets", "must list the names of the shop's Worker secrets (uppercase letters, digits and `_`)", `e.g. ["SHOPIFY_WEBHOOK_SECRET", "ADMIN_TOKEN", "${DEFAULT_TOKEN}"]; their values go in .deploy/<shop>.env`);
  } else {
    for (const name of REQUIRED_SECRETS) {
      if (!secrets.includes(name)) say(label, "secrets", `lacks ${name}, which every shop needs (Shopify signs its webhooks with it)`, `add "${name}"`);
    }
    const seen = new Set();
    for (const name of secrets) {
      if (seen.has(name)) say(label, "secrets", `lists ${name} twice`, "list each secret once");
      seen.add(name);
    }
  }
  const listed = isStringArray(secrets) ? secrets : [];
  if (!Array.isArray(shop.pixels) || !shop.pixels.length) {
    return say(label, "pixels", "must list at least one TikTok pixel", 'e.g. [{"id": "C9Q2MJ3C77U4P674RPG0"}]');
  }
  const ids = new Set();
  shop.pixels.forEach((p, j) => {
    const field = `pixels[${j}]`;
    if (!isObject(p)) return say(label, field, 'must be an object like {"id": "C…"}', "write each pixel as an object");
    for (const key of Object.keys(p)) {
      if (!PIXEL_FIELDS.includes(key)) say(label, `${field}.${key}`, "is not a pixel field", `remove it; a pixel has ${PIXEL_FIELDS.join(", ")}`);
    }
    if (typeof p.id !== "string" || !p.id.trim()) {
      say(label, `${field}.id`, "is required: the pixel code", "TikTok Events Manager → Data sources → your pixel → pixel code");
    } else if (ids.has(p.id)) {
      say(label, `${field}.id`, `${p.id} is listed twice`, "list each pixel once; give it several markets instead");
    } else {
      ids.add(p.id);
    }
    const token = p.token ?? DEFAULT_TOKEN;
    if (typeof token !== "string" || !SECRET_NAME.test(token)) {
      say(label, `${field}.token`, "must be the name of the Worker secret holding the pixel's Events API token", `e.g. "TIKTOK_TOKEN_FR"; leave it out for ${DEFAULT_TOKEN}`);
    } else if (isStringArray(secrets) && !listed.includes(token)) {
      say(label, `${field}.token`, `names the secret ${token}, which is not in the shop's secrets`, `add "${token}" to secrets and its value (TikTok Events Manager → the pixel → Settings → Generate access token) to .deploy/${label}.env`);
    }
    if (p.test_event_code !== undefined && (typeof p.test_event_code !== "string" || !p.test_event_code.trim())) {
      say(label, `${field}.test_event_code`, "must be a string", "copy it from Events Manager → the pixel → Test events, or leave it out");
    }
    for (const key of ["markets", "events"]) {
      if (p[key] !== undefined && !isStringArray(p[key])) say(label, `${field}.${key}`, "must be a list of strings", key === "markets" ? 'Shopify market handles, e.g. ["fr", "de"]; leave it out for every market' : 'TikTok event names, e.g. ["Purchase"]; leave it out for every event');
    }
  });
}

function checkVars(vars, label, say) {
  if (vars === undefined) return;
  if (!isObject(vars)) return say(label, "vars", "must be an object of setting names to string values", 'e.g. {"CONSENT_DEFAULT": "denied"}');
  for (const [name, value] of Object.entries(vars)) {
    if (DERIVED_VARS[name]) say(label, `vars.${name}`, `is written from the shop's ${DERIVED_VARS[name].replace(/\[0\].*/, "")}`, `remove it from vars and set ${DERIVED_VARS[name]} instead`);
    else if (KNOWN_SECRETS.includes(name)) say(label, `vars.${name}`, "is a secret: vars are stored in clear in the Worker's configuration", `remove it from vars, list "${name}" in secrets and put its value in .deploy/${label}.env`);
    else if (typeof value !== "string") say(label, `vars.${name}`, "must be a string", `write it in quotes, e.g. "${value}"`);
  }
}

/** Whether the shop's pixels say no more than today's single-pixel settings can. */
const singlePixel = (pixels) => pixels.length === 1 && (pixels[0].token ?? DEFAULT_TOKEN) === DEFAULT_TOKEN &&
  !pixels[0].markets?.length && !pixels[0].events;

/**
 * The Worker's vars for a valid shop: its own `vars`, the shop domain, its hostnames as
 * STOREFRONT_HOSTS (`host` or `host=market`), and its pixels: one plain pixel as today's
 * TIKTOK_PIXEL_ID (and TIKTOK_TEST_EVENT_CODE), anything more as TIKTOK_PIXELS (JSON).
 */
export function workerVars(shop) {
  const vars = { ...shop.vars, SHOPIFY_SHOP_DOMAIN: shop.shopify_domain };
  vars.STOREFRONT_HOSTS = shop.hostnames.map((h) => (h.market ? `${h.host}=${h.market}` : h.host)).join(", ");
  if (singlePixel(shop.pixels)) {
    vars.TIKTOK_PIXEL_ID = shop.pixels[0].id;
    if (shop.pixels[0].test_event_code) vars.TIKTOK_TEST_EVENT_CODE = shop.pixels[0].test_event_code;
  } else {
    vars.TIKTOK_PIXELS = JSON.stringify(shop.pixels.map((p) => Object.fromEntries(PIXEL_FIELDS.filter((k) => p[k] !== undefined).map((k) => [k, p[k]]))));
  }
  return Object.fromEntries(Object.entries(vars).sort(([a], [b]) => a.localeCompare(b)));
}

/** The registry field a Worker setting comes from, for a problem the Worker's rules found in it. */
export function fieldOf(shop, setting) {
  if (DERIVED_VARS[setting]) return DERIVED_VARS[setting];
  if (shop.vars && Object.hasOwn(shop.vars, setting)) return `vars.${setting}`;
  return `secrets: ${setting} (its value in .deploy/${shop.name}.env)`;
}

export const workerName = (shop) => `tiktok-edge-${shop}`;
/** The title of a shop's SESSIONS KV namespace: deploy finds it by it, so a re-run reuses it. */
export const kvTitle = (shop) => `tiktok-edge-${shop}-SESSIONS`;
/** The shop a KV namespace title belongs to, or undefined (the single-shop deploy's tiktok-edge-SESSIONS too). */
export const shopOfKvTitle = (title) => /^tiktok-edge-([a-z0-9](?:[a-z0-9-]*[a-z0-9])?)-SESSIONS$/.exec(title)?.[1];

/** The zone of a hostname: the one given, else the hostname without its first label (an apex stays). */
export const zoneOf = (host, zone) => zone || (host.split(".").length > 2 ? host.split(".").slice(1).join(".") : host);

/** The shop's routes: one `host/*` per hostname, on its zone. */
export const routesOf = (shop) => shop.hostnames.map((h) => ({ pattern: `${h.host}/*`, zone: zoneOf(h.host, h.zone) }));

/**
 * The namespace ids of a shop's two rate limiters. Cloudflare counts a limiter per namespace
 * id across the whole account, so two shops sharing one would share one budget: each shop's are
 * derived from its name (stable across runs and registry orders; a collision between two names
 * has odds of about one in 10^8).
 */
export function rateLimitIds(shop) {
  const n = createHash("sha256").update(shop).digest().readUInt32BE(0) % 400_000_000;
  return { COLLECT_RATE_LIMITER: String(1_000_000 + 2 * n), SHOP_RATE_LIMITER: String(1_000_001 + 2 * n) };
}

/**
 * A shop's wrangler config, from the project's wrangler.toml: its Worker name, `main` seen
 * from `configDir` (where the file is written), no [build] (deploy builds once for all shops),
 * its KV namespace id, its routes, its vars only, and its own rate-limiter namespaces.
 * Durable Objects belong to the Worker, so each shop's are its own.
 */
export function shopConfig(baseToml, shop, { kvId, configDir }) {
  const main = path.relative(configDir, path.join(ROOT, "src/entry.js")).split(path.sep).join("/");
  let toml = withTopLevel(withTopLevel(withoutBuild(baseToml), "name", workerName(shop.name)), "main", main);
  toml = withVarsOnly(withRoutes(withKvId(toml, kvId), routesOf(shop)), workerVars(shop));
  for (const [binding, id] of Object.entries(rateLimitIds(shop.name))) toml = withRateLimitId(toml, binding, id);
  return `# Generated by \`npm run deploy\` from the registry (shop ${shop.name}): edit the registry, not this file.\n${toml}`;
}
