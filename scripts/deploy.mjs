#!/usr/bin/env node
// `npm run deploy`: puts tiktok-edge live on the shop's hostname, and is safe to run again (a
// second run with the same settings changes nothing). Steps: tools → settings (asked for on a
// terminal, secrets without echo) → every Worker setting checked by the Worker's own rules
// (core's check-settings) → the plan, printed → Cloudflare login → KV namespace → route and
// vars in wrangler.toml → secrets + deploy → /tt/health → Shopify webhooks → optional TikTok
// test event → what is left by hand. Nothing reaches Cloudflare or Shopify before the check.
//
// Settings come from the environment, else the settings file (.deploy.env, or DEPLOY_ENV_FILE),
// else a prompt on a terminal. Every Cloudflare step goes through one wrangler runner
// (injectable for tests); Shopify, TikTok and the shop are reached at SHOPIFY_ADMIN_API_BASE,
// TIKTOK_API_BASE and SHOP_URL when those are set. `--verbose` shows wrangler's own output.
import { createHash, randomBytes } from "node:crypto";
import { appendFileSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { Problem, ROOT, checkSettings, isMain, prompter, readSettings, report, request, settingsPath, wranglerRunner } from "./lib/cli.mjs";
import { COMPLIANCE_NOTE, adminAuth, syncWebhooks, webhookUri } from "./lib/shopify-admin.mjs";

/** Settings deploy needs, with where to find each; the prompt and the error message use these. */
const REQUIRED = {
  SHOP_HOSTNAME: "the shop's hostname on Cloudflare, e.g. shop.example.com",
  TIKTOK_PIXEL_ID: "TikTok Events Manager → Data sources → your pixel → pixel code",
  TIKTOK_ACCESS_TOKEN: "TikTok Events Manager → your pixel → Settings → Generate access token",
  SHOPIFY_SHOP_DOMAIN: "the shop's permanent domain, e.g. my-shop.myshopify.com (Shopify admin → Settings → Domains); taken from SHOPIFY_STORE when that is set. The Worker takes webhooks from this shop only",
  SHOPIFY_WEBHOOK_SECRET: "the app's client secret (Dev Dashboard → your app → Settings; taken from SHOPIFY_CLIENT_SECRET when that is set), or the API secret key of an app made in the Shopify admin",
};
/** Worker vars written into wrangler.toml [vars] when set. */
const VARS = ["TIKTOK_PIXEL_ID", "SHOPIFY_SHOP_DOMAIN", "ROUTE_PREFIX", "PURCHASE_EVENT_NAME", "CONSENT_DEFAULT", "COOKIE_DOMAIN", "DEFAULT_COUNTRY"];
const SECRETS = ["TIKTOK_ACCESS_TOKEN", "SHOPIFY_WEBHOOK_SECRET", "ADMIN_TOKEN"];
/** Settings read at the prompt without echo. */
const HIDDEN = new Set([...SECRETS, "SHOPIFY_CLIENT_SECRET", "SHOPIFY_ADMIN_TOKEN"]);
/** The SESSIONS namespace's title: found by it, so a re-run reuses the namespace. */
const KV_TITLE = "tiktok-edge-SESSIONS";
const HOSTNAME = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/;

// ---- wrangler.toml edits: each returns the new text (unchanged text when nothing differs) ----

/** The `id` of the SESSIONS KV namespace entry set to `id`. */
export function withKvId(toml, id) {
  const block = /(\[\[kv_namespaces\]\][^[]*?binding\s*=\s*"SESSIONS"[^[]*?\bid\s*=\s*")[^"]*(")/;
  if (!block.test(toml)) {
    throw new Problem("wrangler.toml has no [[kv_namespaces]] entry with binding = \"SESSIONS\" and an id",
      "restore it: `git checkout wrangler.toml`, then run this again");
  }
  return toml.replace(block, `$1${id}$2`);
}

/** One route, `host/*` in `zone`, as the top-level `routes`. */
export function withRoute(toml, host, zone) {
  const line = `routes = [{ pattern = "${host}/*", zone_name = "${zone}" }]`;
  const existing = /^routes[ \t]*=[ \t]*\[[^\]]*\][ \t]*$/m; // also a multi-line array of inline tables without ']' inside
  if (existing.test(toml)) return toml.replace(existing, line);
  // Top-level keys must come before the first [table].
  return toml.replace(/^compatibility_date\s*=.*$/m, (m) => `${m}\n${line}`);
}

/** The [vars] of wrangler.toml as strings (`NAME = "value"`, `NAME = 'value'`, `NAME = true`). */
export function varsOf(toml) {
  const section = toml.match(/^\[vars\][^\n]*\n([\s\S]*?)(?=^\[|(?![\s\S]))/m);
  const vars = {};
  for (const line of (section?.[1] ?? "").split("\n")) {
    const m = line.match(/^\s*([A-Za-z0-9_]+)\s*=\s*("(?:[^"\\]|\\.)*"|'[^']*'|[^\s#]+)/);
    if (!m) continue;
    const raw = m[2];
    vars[m[1]] = raw.startsWith('"') ? JSON.parse(raw) : raw.startsWith("'") ? raw.slice(1, -1) : raw;
  }
  return vars;
}

/** `name = "value"` under [vars]. */
export function withVar(toml, name, value) {
  const section = toml.match(/^\[vars\][^\n]*\n([\s\S]*?)(?=^\[|(?![\s\S]))/m);
  if (!section) return toml.replace(/\s*$/, `\n\n[vars]\n${name} = ${JSON.stringify(value)}\n`);
  const start = section.index + section[0].length - section[1].length;
  const body = section[1];
  const entry = new RegExp(`^${name}\\s*=.*$`, "m");
  const next = entry.test(body) ? body.replace(entry, `${name} = ${JSON.stringify(value)}`) : `${name} = ${JSON.stringify(value)}\n${body}`;
  return toml.slice(0, start) + next + toml.slice(start + body.length);
}

/** The zone of a hostname: CLOUDFLARE_ZONE, else the hostname without its first label (the apex stays). */
const zoneOf = (host, settings) => settings.CLOUDFLARE_ZONE || (host.split(".").length > 2 ? host.split(".").slice(1).join(".") : host);

const sha256 = (data) => createHash("sha256").update(data).digest("hex");

// ---- wrangler answers turned into operator messages ----

/** The first `[ERROR]` paragraph of a failed wrangler run (its own explanation), else its last lines. */
function wranglerSaid({ stdout, stderr }) {
  const text = `${stdout}\n${stderr}`.replace(/\x1b\[[0-9;]*m/g, "");
  const error = text.match(/\[ERROR\]\s*([\s\S]*?)(?:\n\s*\n(?=\S)|🪵|$)/);
  return (error ? error[1] : text.trim().split("\n").slice(-6).join("\n")).trim();
}

function wranglerProblem(step, result) {
  const said = wranglerSaid(result);
  if (/not authenticated|wrangler login|Authentication error|\[code: 10000\]|Invalid access token/i.test(said)) {
    return new Problem(`Cloudflare refused the credentials while ${step}: ${said}`, LOGIN_FIX);
  }
  if (/assigned to another worker/i.test(said)) {
    return new Problem(`the route is taken while ${step}: ${said}`,
      "another Worker serves this hostname: remove its route (Cloudflare dashboard → Workers Routes, or that Worker's wrangler.toml), then run this again; or choose another SHOP_HOSTNAME");
  }
  if (/Could not find zone/i.test(said)) {
    return new Problem(`Cloudflare has no zone for the route while ${step}: ${said}`,
      "add the domain to this Cloudflare account with the shop's hostname as a proxied (orange cloud) CNAME to shops.myshopify.com, or set CLOUDFLARE_ZONE to the zone's name");
  }
  if (/kv\/namespaces/.test(said) && /limit|maximum|too many|exceeded/i.test(said)) {
    return new Problem(`the account's KV namespace limit is reached while ${step}: ${said}`,
      `delete a namespace you no longer use (\`npm run wrangler -- kv namespace list\`, then \`npm run wrangler -- kv namespace delete --namespace-id <id>\`), or rename an unused one to ${KV_TITLE} (Cloudflare dashboard → Storage & databases → KV) so that this command reuses it`);
  }
  if (/more than one account|multiple accounts/i.test(said)) {
    return new Problem(`wrangler does not know which Cloudflare account to use while ${step}`,
      "set CLOUDFLARE_ACCOUNT_ID to the account holding the shop's zone (`npm run wrangler -- whoami` lists them)");
  }
  return new Problem(`wrangler failed while ${step}: ${said}`, "read wrangler's message above; after fixing it, run this again");
}

const LOGIN_FIX = "run `npm run wrangler -- login` (opens a browser), or set CLOUDFLARE_API_TOKEN to an API token with " +
  "Workers Scripts:Edit, Workers KV Storage:Edit, Workers Routes:Edit and Zone:Read on the shop's zone (and CLOUDFLARE_ACCOUNT_ID)";

/** stdout's JSON array (wrangler may print banners around it). */
function jsonOut(stdout) {
  const text = stdout.slice(stdout.indexOf("["), stdout.lastIndexOf("]") + 1);
  try { return JSON.parse(text); } catch { return undefined; }
}

// ---- the steps ----

async function ensureSettings(env, { interactive, ask, log }) {
  const settings = readSettings(env);
  const file = settingsPath(env);
  const save = (name, value) => {
    appendFileSync(file, `${name}=${value}\n`, { mode: 0o600 });
    settings[name] = value;
  };
  // Shopify signs an app's webhooks with the app's client secret.
  settings.SHOPIFY_WEBHOOK_SECRET ||= settings.SHOPIFY_CLIENT_SECRET;
  // The shop whose webhooks the Worker takes is the one the Admin API talks to.
  settings.SHOPIFY_SHOP_DOMAIN ||= settings.SHOPIFY_STORE;
  const missing = Object.keys(REQUIRED).filter((k) => !settings[k]);
  if (missing.length && interactive) {
    for (const name of missing) {
      const value = (await ask(`${name} (${REQUIRED[name]}${HIDDEN.has(name) ? "; typing is not shown" : ""}): `, { hidden: HIDDEN.has(name) })).trim();
      if (value) save(name, value);
    }
  }
  const still = Object.keys(REQUIRED).filter((k) => !settings[k]);
  if (still.length) {
    throw new Problem(`missing settings: ${still.join(", ")}`,
      `put them in ${file} (NAME=value lines) or the environment:\n${still.map((k) => `    ${k}: ${REQUIRED[k]}`).join("\n")}`);
  }
  settings.SHOP_HOSTNAME = settings.SHOP_HOSTNAME.toLowerCase().replace(/^https?:\/\//, "").replace(/\/.*$/, "");
  if (!HOSTNAME.test(settings.SHOP_HOSTNAME)) {
    throw new Problem(`SHOP_HOSTNAME "${settings.SHOP_HOSTNAME}" is not a hostname`, "set it to the shop's hostname only, e.g. shop.example.com");
  }
  if (!settings.ADMIN_TOKEN) {
    save("ADMIN_TOKEN", randomBytes(24).toString("base64url"));
    log(`  ADMIN_TOKEN: generated and saved to ${file}`);
  }
  return settings;
}

/**
 * The Worker's settings as they will be deployed ([vars] of wrangler.toml with ours written
 * over them, and the secrets), judged by the Worker's own rules: any problem stops here,
 * before anything is created or uploaded.
 */
async function validateSettings(settings, toml, env) {
  const worker = { ...varsOf(toml) };
  for (const name of [...VARS, ...SECRETS]) if (settings[name]) worker[name] = settings[name];
  const health = await checkSettings(worker);
  if (!health.problems.length) return health;
  const from = (name) => (name === "SHOPIFY_SHOP_DOMAIN" && !readSettings(env).SHOPIFY_SHOP_DOMAIN && settings.SHOPIFY_STORE ? " (taken from SHOPIFY_STORE)" : "");
  throw new Problem(`the Worker would refuse these settings:\n${health.problems.map((p) => `    ${p.name}${from(p.name)}: ${p.message}`).join("\n")}`,
    `correct them in ${settingsPath(env)} (or the environment; other vars in wrangler.toml [vars]) and run this again; nothing was created or uploaded`);
}

/** What the run will do, said before it does any of it. */
function plan(settings, { host, prefix, zone, log }) {
  const vars = VARS.filter((k) => settings[k]);
  const steps = [
    `find or create the KV namespace ${KV_TITLE} (Cloudflare) and write its id into wrangler.toml`,
    `write the route ${host}/* (zone ${zone}) and [vars] ${vars.join(", ")} into wrangler.toml`,
    `build the Worker and deploy it with the secrets ${SECRETS.join(", ")} (only those that changed; nothing when nothing did)`,
    `wait for https://${host}${prefix}/health`,
    adminCredentials(settings)
      ? `subscribe the Shopify webhooks of ${settings.SHOPIFY_STORE} to https://${host}${prefix}/webhooks/shopify (missing ones created, older ones moved)`
      : "leave the Shopify webhooks to you (no Admin API credentials)",
  ];
  if (settings.TIKTOK_TEST_EVENT_CODE) steps.push(`send one TikTok test event with code ${settings.TIKTOK_TEST_EVENT_CODE}`);
  log("  This run will:");
  steps.forEach((step, i) => log(`    ${i + 1}. ${step}`));
}

const adminCredentials = (s) => s.SHOPIFY_STORE && (s.SHOPIFY_ADMIN_TOKEN || (s.SHOPIFY_CLIENT_ID && s.SHOPIFY_CLIENT_SECRET));

function checkTools() {
  const [major] = process.versions.node.split(".").map(Number);
  if (major < 20) throw new Problem(`Node ${process.versions.node} is too old`, "install Node 20 or newer");
  if (!existsSync(path.join(ROOT, "node_modules/wrangler"))) {
    throw new Problem("wrangler is not installed", "run `bash scripts/setup.sh` once (installs npm packages and the Rust tools)");
  }
}

async function checkLogin(run) {
  const who = await run(["whoami"]);
  const text = `${who.stdout}\n${who.stderr}`;
  if (/not authenticated/i.test(text)) throw new Problem("not logged in to Cloudflare", LOGIN_FIX);
  if (who.code !== 0) throw wranglerProblem("checking the Cloudflare login (wrangler whoami)", who);
  return text.match(/associated with the email (\S+?)\.?\s/)?.[1] ?? "logged in";
}

async function ensureKvNamespace(run, title) {
  const listed = await run(["kv", "namespace", "list"]);
  if (listed.code !== 0) throw wranglerProblem("listing KV namespaces", listed);
  const found = (jsonOut(listed.stdout) ?? []).find((n) => n.title === title);
  if (found) return { id: found.id, created: false };
  const made = await run(["kv", "namespace", "create", title]);
  if (made.code !== 0) throw wranglerProblem(`creating the KV namespace ${title}`, made);
  const id = made.stdout.match(/\bid\s*[=:]\s*"([0-9a-f]{32})"/)?.[1];
  if (!id) throw new Problem(`wrangler created ${title} but printed no id: ${made.stdout.slice(-300)}`, "run this again (it finds the namespace by its title)");
  return { id, created: true };
}

/**
 * The modules `wrangler deploy --dry-run` bundled, hashed with the config: what a deploy would
 * upload. Source maps are left out (they name the output directory, not the code).
 */
function fingerprint(toml, outdir) {
  const hash = createHash("sha256").update(toml);
  for (const name of readdirSync(outdir).filter((n) => /\.(js|mjs|wasm)$/.test(n)).sort()) {
    hash.update(name).update(readFileSync(path.join(outdir, name)));
  }
  return hash.digest("hex");
}

async function waitForHealth(base, prefix, { timeoutMs, log }) {
  const url = `${base}${prefix}/health`;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let health;
    let last;
    try {
      const res = await request(url, {}, { timeoutMs: 10_000 });
      const text = await res.text();
      try { health = JSON.parse(text); } catch { /* not the Worker's answer */ }
      last = `${res.status} ${text.slice(0, 80).replace(/\s+/g, " ")}`;
    } catch (e) {
      last = e.message;
    }
    // Up: ok; degraded (say webhooks refused under the old settings, which the next accepted
    // one clears; the problems are printed); or paused on a TikTok refusal that the secrets
    // just deployed may cure (doctor tells).
    if (health?.status === "ok" || health?.status === "degraded" || health?.queue_paused) return health;
    if (health?.status === "misconfigured") {
      throw new Problem(`the Worker is up but misconfigured: ${health.problems.map((p) => `${p.name}: ${p.message}`).join("; ")}`,
        "correct those settings (.deploy.env or the environment) and run this again");
    }
    if (Date.now() > deadline) {
      throw new Problem(`${url} did not answer status ok within ${timeoutMs / 1000} s (last: ${last})`,
        "the hostname does not reach the Worker yet: check that its DNS record is proxied (orange cloud) in Cloudflare and that the route matches; then `npm run doctor -- https://<hostname>`");
    }
    log(`  waiting for ${url} (${last})`);
    await new Promise((r) => setTimeout(r, 2000));
  }
}

async function sendTestEvent(settings) {
  const base = (settings.TIKTOK_API_BASE || "https://business-api.tiktok.com").replace(/\/$/, "");
  const res = await request(`${base}/open_api/v1.3/event/track/`, {
    method: "POST",
    headers: { "content-type": "application/json", "access-token": settings.TIKTOK_ACCESS_TOKEN },
    body: JSON.stringify({
      event_source: "web",
      event_source_id: settings.TIKTOK_PIXEL_ID,
      test_event_code: settings.TIKTOK_TEST_EVENT_CODE,
      data: [{
        event: "ViewContent",
        event_time: Math.floor(Date.now() / 1000),
        event_id: `deploy-test:${Date.now()}`,
        page: { url: `https://${settings.SHOP_HOSTNAME}/` },
      }],
    }),
  }, { what: "TikTok's Events API" });
  const body = await res.json().catch(() => ({}));
  if (res.status !== 200 || body.code !== 0) {
    throw new Problem(`TikTok refused the test event (HTTP ${res.status}, code ${body.code}: ${body.message})`,
      "check TIKTOK_ACCESS_TOKEN (generated for this pixel) and TIKTOK_PIXEL_ID in Events Manager, then run this again");
  }
}

/**
 * The whole deploy. `run` is the wrangler runner, args → { code, stdout, stderr };
 * `config` the wrangler.toml to edit and deploy. Returns what changed, for tests.
 */
export async function deploy({
  env = process.env, run = wranglerRunner(), config = path.join(ROOT, "wrangler.toml"),
  interactive = false, ask = prompter(), log = console.log,
} = {}) {
  const changed = [];
  const statePath = env.DEPLOY_STATE_FILE || path.join(ROOT, ".deploy-state.json");
  const state = existsSync(statePath) ? JSON.parse(readFileSync(statePath, "utf8")) : { secrets: {} };
  const saveState = () => writeFileSync(statePath, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
  const cfg = ["--config", config];

  checkTools();
  log("== settings");
  const settings = await ensureSettings(env, { interactive, ask, log });
  const host = settings.SHOP_HOSTNAME;
  const prefix = settings.ROUTE_PREFIX || "/tt";
  const shopUrl = (settings.SHOP_URL || `https://${host}`).replace(/\/$/, "");
  let toml = readFileSync(config, "utf8");
  log("  checking every Worker setting with the Worker's own rules (cargo run -p tiktok-edge-core --bin check-settings)");
  await validateSettings(settings, toml, env);
  log(`  shop: ${host}, pixel ${settings.TIKTOK_PIXEL_ID}, webhooks from ${settings.SHOPIFY_SHOP_DOMAIN}: the Worker accepts these settings`);
  plan(settings, { host, prefix, zone: zoneOf(host, settings), log });
  if (interactive && !/^y(es)?$/i.test((await ask("Go ahead? [y/N] ")).trim())) {
    throw new Problem("stopped before doing anything", "run this again and answer y to go ahead");
  }

  log("== Cloudflare login");
  log(`  Cloudflare: ${await checkLogin(run)}`);
  log("== KV namespace");
  const kv = await ensureKvNamespace(run, KV_TITLE);
  log(`  ${KV_TITLE}: ${kv.created ? "created" : "exists"} (${kv.id})`);
  if (kv.created) changed.push("kv");

  log("== wrangler.toml: KV id, route, vars");
  let next = withRoute(withKvId(toml, kv.id), host, zoneOf(host, settings));
  for (const name of VARS) if (settings[name]) next = withVar(next, name, settings[name]);
  if (next !== toml) {
    writeFileSync(config, next);
    changed.push("config");
    log(`  ${path.basename(config)} updated (route ${host}/*)`);
  } else {
    log("  unchanged");
  }
  toml = next;

  log("== build and deploy");
  const secrets = Object.fromEntries(SECRETS.map((k) => [k, settings[k]]));
  const listed = await run(["secret", "list", "--format", "json", ...cfg]);
  const remote = new Set(listed.code === 0 ? (jsonOut(listed.stdout) ?? []).map((s) => s.name) : []);
  if (listed.code !== 0 && !/not found|does not exist|10007/i.test(wranglerSaid(listed))) throw wranglerProblem("listing secrets", listed);
  const toPut = Object.fromEntries(Object.entries(secrets).filter(([k, v]) => !remote.has(k) || state.secrets[k] !== sha256(v)));

  const outdir = mkdtempSync(path.join(tmpdir(), "tiktok-edge-bundle-"));
  try {
    const dry = await run(["deploy", "--dry-run", "--outdir", outdir, ...cfg]);
    if (dry.code !== 0) throw wranglerProblem("building the Worker (wrangler deploy --dry-run)", dry);
    const print = fingerprint(toml, outdir);
    if (print === state.deployed && !Object.keys(toPut).length) {
      log("  Worker, settings and secrets unchanged since the last deploy: not redeployed");
    } else {
      const secretsFile = path.join(outdir, "secrets.json");
      writeFileSync(secretsFile, JSON.stringify(toPut), { mode: 0o600 });
      const args = ["deploy", ...cfg, ...(Object.keys(toPut).length ? ["--secrets-file", secretsFile] : [])];
      const done = await run(args);
      rmSync(secretsFile, { force: true });
      if (done.code !== 0) throw wranglerProblem("deploying", done);
      for (const k of Object.keys(toPut)) state.secrets[k] = sha256(toPut[k]);
      state.deployed = print;
      saveState();
      changed.push("deploy");
      log(`  deployed${Object.keys(toPut).length ? ` with secrets ${Object.keys(toPut).join(", ")}` : ""}`);
    }
  } finally {
    rmSync(outdir, { recursive: true, force: true });
  }

  log("== health");
  const health = await waitForHealth(shopUrl, prefix, { timeoutMs: Number(settings.DEPLOY_HEALTH_TIMEOUT_MS || 120_000), log });
  log(`  ${shopUrl}${prefix}/health: ${health.status}, mode ${health.mode}, version ${health.version}`);
  if (health.queue_paused) log(`  warning: sending to TikTok is paused: ${health.queue_paused.reason}`);
  for (const p of health.status === "degraded" ? health.problems : []) log(`  warning: ${p.name}: ${p.message}`);

  log("== Shopify webhooks");
  const uri = webhookUri(`https://${host}`, prefix);
  const admin = await adminAuth(settings);
  let webhooksLeft = false;
  if (admin) {
    const result = await syncWebhooks(admin, uri, log);
    log(`  ${uri}: ${result.created.length} created, ${result.updated.length} moved, ${result.unchanged.length} already there`);
    if (result.created.length || result.updated.length) changed.push("webhooks");
  } else {
    webhooksLeft = true;
    log("  skipped: SHOPIFY_STORE with SHOPIFY_ADMIN_TOKEN (or SHOPIFY_CLIENT_ID and SHOPIFY_CLIENT_SECRET) is not set (see the list below)");
  }
  log(`  note: ${COMPLIANCE_NOTE}`);

  if (settings.TIKTOK_TEST_EVENT_CODE) {
    log("== TikTok test event");
    await sendTestEvent(settings);
    log(`  sent a ViewContent with test code ${settings.TIKTOK_TEST_EVENT_CODE}: see Events Manager → your pixel → Test events`);
  }

  log(`\nLive on https://${host} (mode ${health.mode}). Left to do by hand:`);
  const todo = [
    `Checkout pixel: open https://${host}${prefix}/custom-pixel.js, copy it into Shopify admin → Settings → Customer events → Add custom pixel; permissions Marketing and Sale of data; save, Connect.`,
    "TikTok app for Shopify: turn its data sharing off (or connect a different pixel there), so TikTok does not get every event twice.",
  ];
  if (webhooksLeft) {
    todo.push(`Webhooks: set SHOPIFY_STORE and the app's credentials (SHOPIFY_ADMIN_TOKEN, or SHOPIFY_CLIENT_ID and SHOPIFY_CLIENT_SECRET; scope read_orders) and run this again, or subscribe ${uri} by hand (README, Deploy).`);
  }
  todo.forEach((t, i) => log(`  ${i + 1}. ${t}`));
  log(`Admin: https://${host}${prefix}/admin (ADMIN_TOKEN is in ${settingsPath(env)})`);
  log(`Check the live shop any time: npm run doctor -- https://${host}`);
  return { changed, health };
}

if (isMain(import.meta)) {
  const ask = prompter();
  deploy({ interactive: process.stdin.isTTY, ask, run: wranglerRunner({ echo: process.argv.includes("--verbose") }) })
    .catch((e) => { report(e); process.exitCode = 1; })
    .finally(() => ask.close());
}
