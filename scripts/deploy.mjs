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
//
// With a shop registry (shops.json, or SHOPS_FILE) it deploys every shop of it instead, each as
// its own Worker (deployShops below; docs/agencies.md): `-- <shop>…` for some, `--check` for the
// checks and the plan only, `--prune [--yes]` to delete the shops the registry no longer lists.
import { createHash, randomBytes } from "node:crypto";
import { spawn } from "node:child_process";
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { Problem, ROOT, checkSettings, isMain, prompter, readSettings, readSettingsFile, report, request, settingsPath, wranglerRunner } from "./lib/cli.mjs";
import {
  HOSTNAME, KNOWN_SECRETS, deployDir, fieldOf, kvTitle, readRegistry, registryPath, routesOf, shopConfig, shopOfKvTitle, shopSettingsPath, workerName, workerVars, zoneOf,
} from "./lib/registry.mjs";
import { COMPLIANCE_NOTE, adminAuth, syncWebhooks, webhookUri } from "./lib/shopify-admin.mjs";
import { varsOf, withKvId, withRoutes, withVar } from "./lib/wrangler-config.mjs";

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

/** Every KV namespace of the account, as { id, title }. */
async function listKvNamespaces(run) {
  const listed = await run(["kv", "namespace", "list"]);
  if (listed.code !== 0) throw wranglerProblem("listing KV namespaces", listed);
  return jsonOut(listed.stdout) ?? [];
}

/** The namespace titled `title`, found in `namespaces` (listed when not given) or created. */
async function ensureKvNamespace(run, title, namespaces) {
  const found = (namespaces ?? await listKvNamespaces(run)).find((n) => n.title === title);
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
 * Puts one Worker up (`config`, whose text is `toml`) with `secrets` (name → value): bundles it
 * (`wrangler deploy --dry-run`, which also builds when the config has a [build]), and deploys
 * only when the bundle, the config or a secret differs from the last deploy recorded in
 * `state` ({ deployed, secrets: name → sha256 }), putting only the secrets that changed or are
 * missing. Returns whether it deployed (the caller saves `state`).
 */
async function uploadWorker(run, { config, toml, secrets, state, log }) {
  const cfg = ["--config", config];
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
      return false;
    }
    const secretsFile = path.join(outdir, "secrets.json");
    writeFileSync(secretsFile, JSON.stringify(toPut), { mode: 0o600 });
    const args = ["deploy", ...cfg, ...(Object.keys(toPut).length ? ["--secrets-file", secretsFile] : [])];
    const done = await run(args);
    rmSync(secretsFile, { force: true });
    if (done.code !== 0) throw wranglerProblem("deploying", done);
    for (const k of Object.keys(toPut)) state.secrets[k] = sha256(toPut[k]);
    state.deployed = print;
    log(`  deployed${Object.keys(toPut).length ? ` with secrets ${Object.keys(toPut).join(", ")}` : ""}`);
    return true;
  } finally {
    rmSync(outdir, { recursive: true, force: true });
  }
}

/** Shopify's webhooks delivering to `uri` when the settings hold Admin API credentials; { changed, left }. */
async function webhooksStep(settings, uri, log) {
  const admin = await adminAuth(settings);
  if (!admin) {
    log("  skipped: SHOPIFY_STORE with SHOPIFY_ADMIN_TOKEN (or SHOPIFY_CLIENT_ID and SHOPIFY_CLIENT_SECRET) is not set (see the list below)");
    return { changed: false, left: true };
  }
  const result = await syncWebhooks(admin, uri, log);
  log(`  ${uri}: ${result.created.length} created, ${result.updated.length} moved, ${result.unchanged.length} already there`);
  return { changed: Boolean(result.created.length || result.updated.length), left: false };
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
  plan(settings, { host, prefix, zone: zoneOf(host, settings.CLOUDFLARE_ZONE), log });
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
  let next = withRoutes(withKvId(toml, kv.id), [{ pattern: `${host}/*`, zone: zoneOf(host, settings.CLOUDFLARE_ZONE) }]);
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
  if (await uploadWorker(run, { config, toml, secrets: Object.fromEntries(SECRETS.map((k) => [k, settings[k]])), state, log })) {
    saveState();
    changed.push("deploy");
  }

  log("== health");
  const health = await waitForHealth(shopUrl, prefix, { timeoutMs: Number(settings.DEPLOY_HEALTH_TIMEOUT_MS || 120_000), log });
  log(`  ${shopUrl}${prefix}/health: ${health.status}, mode ${health.mode}, version ${health.version}`);
  if (health.queue_paused) log(`  warning: sending to TikTok is paused: ${health.queue_paused.reason}`);
  for (const p of health.status === "degraded" ? health.problems : []) log(`  warning: ${p.name}: ${p.message}`);

  log("== Shopify webhooks");
  const uri = webhookUri(`https://${host}`, prefix);
  const webhooks = await webhooksStep(settings, uri, log);
  if (webhooks.changed) changed.push("webhooks");
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
  if (webhooks.left) {
    todo.push(`Webhooks: set SHOPIFY_STORE and the app's credentials (SHOPIFY_ADMIN_TOKEN, or SHOPIFY_CLIENT_ID and SHOPIFY_CLIENT_SECRET; scope read_orders) and run this again, or subscribe ${uri} by hand (README, Deploy).`);
  }
  todo.forEach((t, i) => log(`  ${i + 1}. ${t}`));
  log(`Admin: https://${host}${prefix}/admin (ADMIN_TOKEN is in ${settingsPath(env)})`);
  log(`Check the live shop any time: npm run doctor -- https://${host}`);
  return { changed, health };
}

// ---- several shops: the registry (shops.json) ----

/** Builds the Worker once for every shop (their generated configs have no [build]). */
function buildWorker() {
  return new Promise((resolve, reject) => {
    const child = spawn("bash", [path.join(ROOT, "scripts/build.sh")], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d) => { out += d; });
    child.stderr.on("data", (d) => { out += d; });
    child.on("error", reject);
    child.on("close", (code) => (code === 0 ? resolve() : reject(new Problem(`building the Worker failed (bash scripts/build.sh exited ${code}):\n${out.trim().split("\n").slice(-8).join("\n")}`,
      "run `bash scripts/setup.sh` once, then `bash scripts/build.sh` to see the whole error"))));
  });
}

/** Every problem of the registry or of its shops' settings, in one message; nothing was done. */
function registryRefused(file, problems) {
  const lines = problems.map((p) => `    ${p.shop ? `${p.shop}: ` : ""}${p.field ? `${p.field}: ` : ""}${p.message}${p.fix ? `\n      fix: ${p.fix}` : ""}`);
  return new Problem(`${path.basename(file)}: ${problems.length} problem(s):\n${lines.join("\n")}`,
    "correct them and run this again; nothing was created or uploaded");
}

/**
 * One shop's settings as its Worker will get them, judged by the Worker's own rules: its vars
 * (from the registry) and its secrets (values from .deploy/<shop>.env, ADMIN_TOKEN generated
 * there when listed and missing). Returns what deploying it needs, and its problems.
 */
async function prepareShop(shop, env, log) {
  const file = shopSettingsPath(env, shop.name);
  const settings = readSettingsFile(file);
  settings.SHOPIFY_WEBHOOK_SECRET ||= settings.SHOPIFY_CLIENT_SECRET;
  settings.SHOPIFY_STORE = shop.shopify_domain;
  if (shop.secrets.includes("ADMIN_TOKEN") && !settings.ADMIN_TOKEN) {
    mkdirSync(path.dirname(file), { recursive: true });
    settings.ADMIN_TOKEN = randomBytes(24).toString("base64url");
    appendFileSync(file, `ADMIN_TOKEN=${settings.ADMIN_TOKEN}\n`, { mode: 0o600 });
    log(`  ${shop.name}: ADMIN_TOKEN generated and saved to ${file}`);
  }
  const problems = [];
  const say = (field, message, fix) => problems.push({ shop: shop.name, field, message, fix });
  for (const name of shop.secrets.filter((n) => !settings[n])) {
    say(`secrets: ${name}`, `has no value in ${file}`, `add the line ${name}=<value> to it${REQUIRED[name] ? ` (${REQUIRED[name]})` : ""}`);
  }
  const vars = workerVars(shop);
  const secrets = Object.fromEntries(shop.secrets.map((n) => [n, settings[n] ?? ""]));
  const health = await checkSettings({ ...vars, ...secrets });
  for (const name of Object.keys(shop.vars ?? {})) {
    if (!(name in health.settings) && !KNOWN_SECRETS.includes(name)) say(`vars.${name}`, "is not a setting the Worker reads", "correct its name (docs/configuration.md lists every setting)");
  }
  for (const p of health.problems) say(fieldOf(shop, p.name), `${p.name}: ${p.message}`);
  return { shop, settings, vars, secrets, file, problems, prefix: vars.ROUTE_PREFIX || "/tt" };
}

/** The shops deployed before (a KV namespace of theirs, or this machine's state) that the registry no longer lists. */
function removedShops(registry, namespaces, state) {
  const listed = new Set(registry.shops.map((s) => s.name));
  const names = new Set([...namespaces.map((n) => shopOfKvTitle(n.title)).filter(Boolean), ...Object.keys(state.shops)]);
  return [...names].filter((n) => !listed.has(n)).sort().map((name) => ({ name, kv: namespaces.find((n) => n.title === kvTitle(name)) }));
}

/** Deletes a removed shop's Worker (its routes, secrets and Durable Objects with it) and KV namespace. */
async function deleteShop(run, { name, kv }, log) {
  const gone = await run(["delete", "--name", workerName(name), "--force"]);
  if (gone.code !== 0 && !/not found|does not exist|10007/i.test(wranglerSaid(gone))) throw wranglerProblem(`deleting the Worker ${workerName(name)}`, gone);
  if (kv) {
    const dropped = await run(["kv", "namespace", "delete", "--namespace-id", kv.id, "--skip-confirmation"]);
    if (dropped.code !== 0) throw wranglerProblem(`deleting the KV namespace ${kv.title}`, dropped);
  }
  log(`  ${name}: deleted ${workerName(name)}${kv ? ` and ${kv.title}` : ""}`);
}

/**
 * Deploys every shop of the registry (or those named in `only`), each as its own Worker from a
 * generated config (build/shops/<shop>/wrangler.toml): its KV namespace, routes, vars, secrets.
 * Nothing reaches Cloudflare before every chosen shop's settings pass. A shop no longer in the
 * registry is named with what would be deleted; deleted only with `prune`, once confirmed
 * (typed at the terminal, or `confirmed`). `check`: stop after the checks and the plan.
 * Returns per shop what changed, for tests.
 */
export async function deployShops({
  env = process.env, run = wranglerRunner(), build = buildWorker, only = [], prune = false, confirmed = false, check = false,
  interactive = false, ask = prompter(), log = console.log,
} = {}) {
  checkTools();
  const registry = readRegistry(env);
  if (!registry) throw new Problem(`no registry at ${registryPath(env)}`, "create it (docs/agencies.md), or run without shop names to deploy the single shop of wrangler.toml");
  log(`== registry ${registry.file}`);
  if (registry.problems.length) throw registryRefused(registry.file, registry.problems);
  const unknown = only.filter((n) => !registry.shops.some((s) => s.name === n));
  if (unknown.length) throw new Problem(`no shop named ${unknown.join(", ")} in ${registry.file}`, `name one of: ${registry.shops.map((s) => s.name).join(", ")}`);
  if (prune && only.length) throw new Problem("--prune deletes the shops the registry no longer lists, so it goes with a run over every shop", "run `npm run deploy -- --prune` without shop names");
  const chosen = only.length ? registry.shops.filter((s) => only.includes(s.name)) : registry.shops;
  log("  checking each shop's Worker settings with the Worker's own rules (cargo run -p tiktok-edge-core --bin check-settings)");
  const prepared = [];
  for (const shop of chosen) prepared.push(await prepareShop(shop, env, log));
  const problems = prepared.flatMap((p) => p.problems);
  if (problems.length) throw registryRefused(registry.file, problems);

  log("  This run will, for each shop:");
  for (const { shop, vars } of prepared) {
    log(`    ${shop.name}: Worker ${workerName(shop.name)}, KV namespace ${kvTitle(shop.name)}, routes ${routesOf(shop).map((r) => `${r.pattern} (zone ${r.zone})`).join(", ")}; vars ${Object.keys(vars).join(", ")}; secrets ${shop.secrets.join(", ")}`);
  }
  if (check) {
    log("Checked: every shop's settings pass (--check: nothing was created or uploaded).");
    return { shops: {}, removed: [], deleted: [] };
  }
  if (interactive && !/^y(es)?$/i.test((await ask("Go ahead? [y/N] ")).trim())) {
    throw new Problem("stopped before doing anything", "run this again and answer y to go ahead");
  }

  const statePath = path.join(deployDir(env), "state.json");
  const state = existsSync(statePath) ? JSON.parse(readFileSync(statePath, "utf8")) : { shops: {} };
  const saveState = () => { mkdirSync(path.dirname(statePath), { recursive: true }); writeFileSync(statePath, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 }); };
  log("== Cloudflare login");
  log(`  Cloudflare: ${await checkLogin(run)}`);
  const namespaces = await listKvNamespaces(run);
  log("== build (once, for every shop)");
  await build();

  const configs = env.SHOPS_BUILD_DIR || path.join(ROOT, "build/shops");
  const base = readFileSync(path.join(ROOT, "wrangler.toml"), "utf8");
  const results = {};
  for (const { shop, settings, secrets, prefix } of prepared) {
    const changed = [];
    log(`== ${shop.name}`);
    try {
      const kv = await ensureKvNamespace(run, kvTitle(shop.name), namespaces);
      log(`  ${kvTitle(shop.name)}: ${kv.created ? "created" : "exists"} (${kv.id})`);
      if (kv.created) changed.push("kv");
      const configDir = path.join(configs, shop.name);
      const config = path.join(configDir, "wrangler.toml");
      const toml = shopConfig(base, shop, { kvId: kv.id, configDir });
      mkdirSync(configDir, { recursive: true });
      writeFileSync(config, toml);
      state.shops[shop.name] ??= { secrets: {} };
      if (await uploadWorker(run, { config, toml, secrets, state: state.shops[shop.name], log })) {
        changed.push("deploy");
      }
      saveState();
      const host = shop.hostnames[0].host;
      const shopUrl = (settings.SHOP_URL || `https://${host}`).replace(/\/$/, "");
      const health = await waitForHealth(shopUrl, prefix, { timeoutMs: Number(settings.DEPLOY_HEALTH_TIMEOUT_MS || 120_000), log });
      log(`  ${shopUrl}${prefix}/health: ${health.status}, mode ${health.mode}, version ${health.version}`);
      if (health.queue_paused) log(`  warning: sending to TikTok is paused: ${health.queue_paused.reason}`);
      const webhooks = await webhooksStep(settings, webhookUri(`https://${host}`, prefix), log);
      if (webhooks.changed) changed.push("webhooks");
      results[shop.name] = { changed, health, webhooksLeft: webhooks.left };
    } catch (e) {
      if (e instanceof Problem) e.message = `${shop.name}: ${e.message}`;
      throw e;
    }
  }

  const removed = removedShops(registry, namespaces, state);
  const deleted = [];
  if (removed.length) {
    log("== shops no longer in the registry");
    for (const r of removed) log(`  ${r.name}: its Worker ${workerName(r.name)} (with its routes, secrets and Durable Objects: the send queue)${r.kv ? ` and KV namespace ${r.kv.title} (${r.kv.id})` : ""} ${prune ? "will be" : "would be"} deleted`);
    if (!prune) {
      log("  kept: run `npm run deploy -- --prune` to delete them (it asks first)");
    } else {
      const names = removed.map((r) => r.name).join(" ");
      const yes = confirmed || (interactive && (await ask(`Type the shop names to delete (${names}): `)).trim().split(/\s+/).sort().join(" ") === names);
      if (!yes) throw new Problem("nothing deleted: the deletion was not confirmed", interactive ? `type exactly: ${names}` : "run it on a terminal to confirm, or add --yes");
      for (const r of removed) {
        await deleteShop(run, r, log);
        delete state.shops[r.name];
        deleted.push(r.name);
      }
      saveState();
      log("  their Shopify webhooks still deliver to their hostnames: remove them from the Shopify app (or uninstall it from those shops)");
    }
  }

  log("\nDone:");
  for (const [name, r] of Object.entries(results)) {
    log(`  ${name}: ${r.changed.length ? r.changed.join(", ") : "unchanged"}; health ${r.health.status}, mode ${r.health.mode}${r.webhooksLeft ? "; webhooks left to you (no Admin API credentials in its .env)" : ""}`);
  }
  const hosts = prepared.filter((p) => results[p.shop.name]).map((p) => `https://${p.shop.hostnames[0].host}${p.prefix}/custom-pixel.js`);
  if (hosts.length) {
    log(`Left by hand, per shop (docs/going-live.md, steps 3 and 5): paste its checkout pixel into its Shopify admin → Settings → Customer events (${hosts.join(", ")}), and turn the TikTok app's data sharing off.`);
  }
  log(`  note: ${COMPLIANCE_NOTE}`);
  log("Check them any time: npm run doctor (all shops) or npm run doctor -- <shop>");
  return { shops: results, removed: removed.map((r) => r.name), deleted };
}

if (isMain(import.meta)) {
  const args = process.argv.slice(2);
  const flags = new Set(args.filter((a) => a.startsWith("--")));
  const only = args.filter((a) => !a.startsWith("--"));
  const ask = prompter();
  const run = wranglerRunner({ echo: flags.has("--verbose") });
  const registry = readRegistry(process.env) !== null;
  const done = registry
    ? deployShops({ interactive: process.stdin.isTTY, ask, run, only, prune: flags.has("--prune"), confirmed: flags.has("--yes"), check: flags.has("--check") })
    : only.length || flags.has("--prune") || flags.has("--check")
      ? Promise.reject(new Problem(`shop names, --prune and --check need a registry, and ${registryPath(process.env)} does not exist`, "create it (docs/agencies.md), or run `npm run deploy` alone for the single shop of wrangler.toml"))
      : deploy({ interactive: process.stdin.isTTY, ask, run });
  done.catch((e) => { report(e); process.exitCode = 1; }).finally(() => ask.close());
}
