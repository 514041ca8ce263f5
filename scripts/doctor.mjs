#!/usr/bin/env node
// `npm run doctor -- shop.example.com`: checks a live shop from outside, as a visitor and as its
// operator, and says what is wrong and how to fix it. Exit code 1 when anything is.
//   health and mode (/tt/health: settings, refused webhooks, pause) · the injected pixel tag on
//   a product page · `_ttp` set first-party · webhook subscriptions delivering to this Worker
//   (SHOPIFY_STORE and the app's credentials) · recent failures and parked webhooks
//   (/tt/admin.json, ADMIN_TOKEN)
// A check it cannot make is marked skipped (–), never passed. The shop is a hostname (https)
// or a URL, or with a registry (shops.json) a shop's name: no argument checks every shop of
// the registry, one line each (health, webhooks refused, last event sent, failures).
// Settings as for deploy: the environment, else .deploy.env (or DEPLOY_ENV_FILE); for a local
// Worker (127.0.0.1, localhost) the Worker's own .dev.vars (or DEV_VARS_FILE); for a registry
// shop its .deploy/<shop>.env.
import { existsSync } from "node:fs";
import path from "node:path";
import { Problem, ROOT, isMain, readSettings, readSettingsFile, report, request } from "./lib/cli.mjs";
import { readRegistry, shopSettingsPath } from "./lib/registry.mjs";
import { adminAuth, listSubscriptions, subscriptionStatus, webhookUri } from "./lib/shopify-admin.mjs";

/** A check that could not be made, and why: shown as skipped, never as passed. */
class Skipped {
  constructor(message) {
    this.message = message;
  }
}

const isLocal = (hostname) => ["127.0.0.1", "localhost", "[::1]"].includes(hostname);

/** The shop's origin from a hostname (`shop.example.com`, https; a local one http) or a URL. */
export function shopOrigin(shop) {
  const text = (shop ?? "").trim();
  if (!text) return undefined;
  const withScheme = /^https?:\/\//i.test(text) ? text : `${isLocal(text.split(/[:/]/)[0]) ? "http" : "https"}://${text}`;
  try {
    const url = new URL(withScheme);
    return url.hostname.includes(".") || isLocal(url.hostname) ? url.origin : undefined;
  } catch {
    return undefined;
  }
}

const BROWSER = { accept: "text/html", "user-agent": "tiktok-edge-doctor", "sec-fetch-mode": "navigate", "sec-fetch-dest": "document" };

async function checkHealth(base, prefix) {
  // ?queue=1: the queue depth too (it asks every queue shard, so monitors leave it off).
  const url = `${base}${prefix}/health`;
  const res = await request(`${url}?queue=1`);
  const text = await res.text();
  let health;
  try { health = JSON.parse(text); } catch { /* not the Worker */ }
  if (!health?.status) {
    throw new Problem(`${url} is not the Worker's (HTTP ${res.status}, ${res.headers.get("content-type") ?? "no content type"})`,
      "the hostname does not reach the Worker: its DNS record must be proxied (orange cloud) in Cloudflare, and wrangler.toml's route must match it (`npm run deploy` writes the route)");
  }
  return health;
}

function healthFindings(health) {
  const out = [];
  if (health.queue_paused) {
    // A Worker whose queue pauses on a refused token reports why (main's pause, status "paused").
    out.push(new Problem(`sending to TikTok is paused: ${health.queue_paused.reason}`,
      "correct the TikTok setting it names (.deploy.env, then `npm run deploy`); sending resumes by itself once TikTok accepts it"));
  } else if (health.status !== "ok") {
    for (const p of health.problems) {
      out.push(new Problem(`health: ${health.status}: ${p.name}: ${p.message}`,
        "correct that setting (wrangler.toml [vars], `npm run wrangler -- secret put NAME`, or locally .dev.vars), or run `npm run deploy` again"));
    }
  }
  if (!health.queue_paused && health.mode === "dry_run") {
    out.push(new Problem("mode dry_run: events are recorded but not sent to TikTok",
      "set TIKTOK_ACCESS_TOKEN (.deploy.env, then `npm run deploy`, or `npm run wrangler -- secret put TIKTOK_ACCESS_TOKEN`)"));
  }
  if (!health.webhook_secret_configured) {
    out.push(new Problem("SHOPIFY_WEBHOOK_SECRET is not set: every webhook is refused (401)",
      "set it to the app's client secret, or an admin-made app's API secret key (.deploy.env, then `npm run deploy`)"));
  }
  return out;
}

/** A product page: the first product of the storefront's public /products.json, else the home page. */
async function productPath(base, settings) {
  if (settings.DOCTOR_PRODUCT_PATH) return settings.DOCTOR_PRODUCT_PATH;
  try {
    const res = await request(`${base}/products.json?limit=1`, { headers: { accept: "application/json" } });
    const handle = res.ok ? (await res.json()).products?.[0]?.handle : undefined;
    if (handle) return `/products/${encodeURIComponent(handle)}`;
  } catch { /* fall back to the home page */ }
  return "/";
}

/** The `_ttp` Set-Cookie of a page, as { value, attributes }. */
function ttpCookie(res) {
  const line = res.headers.getSetCookie().find((c) => c.startsWith("_ttp="));
  if (!line) return undefined;
  const [pair, ...attrs] = line.split(";").map((s) => s.trim());
  return { value: pair.slice(5), attrs: Object.fromEntries(attrs.map((a) => { const [k, v = ""] = a.split("="); return [k.toLowerCase(), v]; })) };
}

async function checkPage(base, prefix, settings) {
  const out = [];
  const page = await productPath(base, settings);
  const res = await request(`${base}${page}`, { headers: BROWSER });
  const html = await res.text();
  if (res.status !== 200) {
    // The first cause only: a page that does not load says nothing about the tag or cookies.
    let said;
    try { said = JSON.parse(html); } catch { /* the shop's own error page */ }
    if (said?.error === "origin_unreachable") {
      return [new Problem(`${page}: HTTP ${res.status} from the Worker: ${said.message}`,
        "the hostname reaches the Worker, but the shop behind it did not answer: check that the shop itself is up (Shopify's status page), and ORIGIN_URL when it is set (leave it unset in production)")];
    }
    return [new Problem(`${page} answered HTTP ${res.status}, so the pixel tag and cookies were not checked`,
      "open it in a browser; if the shop itself is down, check Shopify's status; otherwise pass a page that loads with DOCTOR_PRODUCT_PATH=/products/<handle>")];
  }
  const tag = `<script src="${prefix}/pixel.js"`;
  if (html.includes(tag)) out.push(`${page}: ${tag}> is on the page`);
  else {
    out.push(new Problem(`${page} (HTTP ${res.status}) has no ${tag}>`,
      "set INJECT_PIXEL=true (the default) in wrangler.toml [vars], or add <script src=\"" + prefix + "/pixel.js\" async></script> to theme.liquid"));
  }

  const host = new URL(base).hostname;
  let cookie = ttpCookie(res);
  let note = "";
  if (!cookie) {
    // Without a consent choice, CONSENT_DEFAULT=denied sets nothing; a visitor who accepted must get it.
    const again = await request(`${base}${page}`, { headers: { ...BROWSER, cookie: "_tt_consent=granted" } });
    await again.arrayBuffer();
    cookie = ttpCookie(again);
    note = cookie ? " (only after consent: CONSENT_DEFAULT is denied, as opt-in regions need)" : "";
  }
  if (!cookie) {
    out.push(new Problem(`${page} set no _ttp cookie, even for a visitor who accepted marketing`,
      "the page did not come through the Worker: check the proxied DNS record and the route (`npm run deploy` writes the route)"));
  } else {
    const domain = cookie.attrs.domain?.replace(/^\./, "");
    if (domain && host !== domain && !host.endsWith(`.${domain}`)) {
      out.push(new Problem(`_ttp is set for Domain=${domain}, which is not ${host}'s: browsers drop it`,
        `set COOKIE_DOMAIN to ${host} or a parent of it (or remove it)`));
    } else if (!("secure" in cookie.attrs) || (cookie.attrs.samesite ?? "").toLowerCase() !== "lax") {
      out.push(new Problem("_ttp lacks Secure or SameSite=Lax", "redeploy the Worker (`npm run deploy`): its cookies always carry both"));
    } else {
      const days = cookie.attrs["max-age"] ? `, ${Math.round(cookie.attrs["max-age"] / 86400)} days` : "";
      out.push(`_ttp set first-party by ${host} (${domain ? `Domain=${domain}` : "host-only"}, Secure, SameSite=Lax${days})${note}`);
    }
  }
  return out;
}

async function checkWebhooks(base, prefix, settings) {
  const admin = await adminAuth(settings);
  if (!admin) return [new Skipped("webhook subscriptions: skipped (set SHOPIFY_STORE and SHOPIFY_ADMIN_TOKEN, or SHOPIFY_CLIENT_ID and SHOPIFY_CLIENT_SECRET, to check them)")];
  const uri = webhookUri(new URL(base).origin, prefix);
  const status = subscriptionStatus(await listSubscriptions(admin), uri);
  const missing = status.filter((s) => !s.current);
  if (!missing.length) return [`webhooks: all ${status.length} topics deliver to ${uri} as JSON`];
  const detail = missing.map((s) => (s.movable ? `${s.topic} (delivers to ${s.movable.uri}, ${s.movable.format})` : s.topic));
  return [new Problem(`webhooks missing for ${uri}: ${detail.join(", ")}`,
    "run `npm run deploy` (it creates them and moves old ones). Webhooks made in Shopify admin → Settings → Notifications belong to no app and are not seen here")];
}

async function checkAdmin(base, prefix, settings, facts) {
  if (!settings.ADMIN_TOKEN) return [new Skipped("recent failures and parked webhooks: skipped (set ADMIN_TOKEN to read /tt/admin.json)")];
  const url = `${base}${prefix}/admin.json`;
  const res = await request(url, { headers: { authorization: `Bearer ${settings.ADMIN_TOKEN}` } });
  if (res.status === 404) {
    return [new Problem(`${url}: 404, the admin is off`, "set the ADMIN_TOKEN secret (.deploy.env, then `npm run deploy`)")];
  }
  if (res.status === 401) {
    return [new Problem(`${url} refused ADMIN_TOKEN (401)`, "use the ADMIN_TOKEN the Worker was deployed with (.deploy.env)")];
  }
  if (res.status !== 200) throw new Problem(`${url} answered ${res.status}`, "see `npm run wrangler -- tail` for the Worker's logs");
  const view = await res.json();
  facts.view = view;
  const out = [];
  const failures = view.queue.last_failures;
  const count = (state) => view.queue.counts.filter((c) => c.state === state).reduce((n, c) => n + c.count, 0);
  if (failures.length) {
    const shown = failures.slice(0, 3).map((f) => `${f.event} ${f.event_id}: ${f.error}`).join("; ");
    out.push(new Problem(`${failures.length} event(s) refused by TikTok recently: ${shown}`,
      `TikTok's message says what it refused; details and re-sending on ${base}${prefix}/admin`));
  }
  if (view.parked_webhooks.length) {
    const topics = [...new Set(view.parked_webhooks.map((p) => p.topic))].join(", ");
    out.push(new Problem(`${view.parked_webhooks.length} signed webhook(s) parked as unusable (${topics}): ${view.parked_webhooks[0].reason}`,
      `see ${base}${prefix}/admin → parked webhooks; a subscription in XML format or for the wrong shop sends such bodies`));
  }
  const done = view.mode === "dry_run"
    ? `${count("dry_run")} recorded in dry run (not sent: no TIKTOK_ACCESS_TOKEN)`
    : `${count("sent")} sent`;
  return out.length ? out : [`recent events: ${done} in ${view.window_hours} h, none failed, queue depth ${view.queue.depth}`];
}

/** The settings: the environment, else (for a local Worker) its .dev.vars, else .deploy.env. */
function settingsFor(base, env) {
  const settings = readSettings(env);
  const devVars = env.DEV_VARS_FILE || path.join(ROOT, ".dev.vars");
  if (isLocal(new URL(base).hostname) && existsSync(devVars)) {
    // The local Worker's own settings (its ADMIN_TOKEN, ROUTE_PREFIX), not production's.
    for (const [k, v] of Object.entries(readSettings({ DEPLOY_ENV_FILE: devVars }))) if (v && !env[k]) settings[k] = v;
  }
  return settings;
}

/**
 * Runs every check on the shop at `shop` (a hostname or URL) with `settings` (else read as
 * settingsFor says); returns { problems, skipped, health, view } (view: /tt/admin.json when
 * it was read). Every finding is printed through `log`.
 */
export async function doctor(shop, { env = process.env, log = console.log, settings: given } = {}) {
  const base = shopOrigin(shop);
  if (!base) {
    throw new Problem("which shop? give its hostname or address", "npm run doctor -- shop.example.com (or http://127.0.0.1:8787 for the local demo)");
  }
  const settings = given ?? settingsFor(base, env);
  const facts = {};
  const prefix = settings.ROUTE_PREFIX || "/tt";
  const problems = [];
  let skipped = 0;
  // Each check returns its findings in order: a line that passed, a Skipped, or a Problem.
  const check = async (fn) => {
    try {
      for (const finding of await fn()) {
        if (finding instanceof Problem) {
          report(finding, log);
          problems.push(finding);
        } else if (finding instanceof Skipped) {
          log(`– ${finding.message}`);
          skipped += 1;
        } else {
          log(`✓ ${finding}`);
        }
      }
    } catch (e) {
      report(e, log);
      problems.push(e);
    }
  };
  log(`Checking ${base}`);
  let health;
  await check(async () => {
    try {
      health = await checkHealth(base, prefix);
    } catch (e) {
      // Nothing answers: that is the cause, and every other check would only repeat it.
      if (e instanceof Problem && /could not be reached/.test(e.message)) {
        e.fix = isLocal(new URL(base).hostname)
          ? "nothing answers there: start the local Worker (`bash scripts/dev.sh`) or check the port"
          : `nothing answers at ${base}: check the hostname's spelling and its DNS record in Cloudflare (a proxied CNAME to shops.myshopify.com)`;
      }
      throw e;
    }
    const out = healthFindings(health);
    return out.length ? out : [`health: ok, mode ${health.mode}, version ${health.version}, queue depth ${health.queue_depth ?? "?"}`];
  });
  if (health) {
    await check(() => checkPage(base, prefix, settings));
    await check(() => checkWebhooks(base, prefix, settings));
    await check(() => checkAdmin(base, prefix, settings, facts));
  }
  const note = skipped ? ` (${skipped} check${skipped > 1 ? "s" : ""} skipped)` : "";
  log(problems.length ? `\n${problems.length} problem(s) found${note}.` : `\nAll checks passed${note}.`);
  return { problems, skipped, health, view: facts.view };
}

// ---- the shops of a registry (shops.json) ----

/** How long ago `ms` was, for a person: "40 s ago", "3 min ago", "5 h ago", "2 d ago". */
export function ago(ms, now = Date.now()) {
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86_400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86_400)} d ago`;
}

/**
 * A shop's one line from its checks: health, its webhooks (when one was last accepted, to the
 * hour, and the refused ones since), the last event sent (or recorded, in dry run) and the
 * failures, from /tt/health and /tt/admin.json.
 */
export function shopLine(name, { problems, health, view }, now = Date.now()) {
  const parts = [health ? `health ${health.status} (${health.mode})` : "health: no answer"];
  if (health) {
    const refused = health.webhooks_refused;
    const accepted = health.webhook_accepted_ms;
    parts.push(`last webhook ${accepted ? `accepted ${ago(accepted, now)}` : "never accepted"}` +
      (refused ? `, ${refused.bad_hmac + refused.wrong_shop} refused since, last ${ago(refused.last_ms, now)}` : ", none refused"));
  }
  if (view) {
    const state = view.mode === "dry_run" ? "dry_run" : "sent";
    const last = view.queue.recent?.find((e) => e.state === state);
    parts.push(last ? `last event ${state === "sent" ? "sent" : "recorded (dry run)"} ${ago(last.at_ms, now)} (${last.event})` : `no event ${state === "sent" ? "sent" : "recorded"} in ${view.window_hours} h`);
    parts.push(`${view.queue.last_failures.length} failed, queue depth ${view.queue.depth}`);
  } else if (health) {
    parts.push("events: not read (no ADMIN_TOKEN in its .env)");
  }
  return `${problems.length ? "✗" : "✓"} ${name}: ${parts.join(" · ")}${problems.length ? ` · ${problems.length} problem(s)` : ""}`;
}

/** A registry shop's address (SHOP_URL in its .env, else its first hostname) and its settings file's values. */
function registryShop(shop, env) {
  const settings = readSettingsFile(shopSettingsPath(env, shop.name));
  settings.SHOPIFY_STORE = shop.shopify_domain;
  if (shop.vars?.ROUTE_PREFIX) settings.ROUTE_PREFIX = shop.vars.ROUTE_PREFIX;
  return { base: settings.SHOP_URL || `https://${shop.hostnames[0].host}`, settings };
}

/**
 * Checks the registry's shops (`only`: the ones named, else all). One shop: every check printed,
 * then its line; all: one line per shop, details with `npm run doctor -- <shop>`. Returns the
 * problems of all.
 */
export async function doctorShops(registry, only, { env = process.env, log = console.log } = {}) {
  if (registry.problems.length) {
    throw new Problem(`${registry.file} has ${registry.problems.length} problem(s): ${registry.problems.map(String).join("; ")}`, "correct them (npm run deploy names each with its fix)");
  }
  const chosen = only.length ? registry.shops.filter((s) => only.includes(s.name)) : registry.shops;
  const problems = [];
  for (const shop of chosen) {
    const { base, settings } = registryShop(shop, env);
    const quiet = chosen.length > 1;
    let result;
    try {
      result = await doctor(base, { env, settings, log: quiet ? () => {} : log });
    } catch (e) {
      result = { problems: [e] };
    }
    problems.push(...result.problems);
    log(shopLine(shop.name, result));
  }
  if (chosen.length > 1) {
    log(problems.length ? `\n${problems.length} problem(s) found: \`npm run doctor -- <shop>\` shows each with its fix.` : "\nAll shops passed every check.");
  }
  return problems;
}

if (isMain(import.meta)) {
  const arg = process.argv[2];
  const registry = readRegistry(process.env);
  const done = registry && (!arg || registry.shops.some?.((s) => s.name === arg))
    ? doctorShops(registry, arg ? [arg] : [])
    : doctor(arg).then((r) => r.problems);
  done
    .then((problems) => { process.exitCode = problems.length ? 1 : 0; })
    .catch((e) => { report(e); process.exitCode = 1; });
}
