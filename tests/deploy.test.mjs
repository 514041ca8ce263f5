// `npm run deploy` (scripts/deploy.mjs): Cloudflare is played by a wrangler runner that records
// every call and answers as wrangler does, except `wrangler deploy --dry-run`, which is the real
// build and bundle; Shopify's Admin API and TikTok are played by local servers; the "deployed"
// Worker whose /tt/health the script waits for is the built Worker in workerd.
import { test } from "node:test";
import assert from "node:assert/strict";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync, readdirSync } from "node:fs";
import { spawn, spawnSync } from "node:child_process";
import { homedir, tmpdir } from "node:os";
import { createHash } from "node:crypto";
import path from "node:path";
import { ROOT, startShop, startServer, PIXEL_ID, WEBHOOK_SECRET } from "./support/harness.mjs";
import { startShopifyAdmin, SHOPIFY_TOKEN, INVALID_TOKEN_ANSWER, CLIENT_ID, CLIENT_SECRET } from "./support/shopify-admin.mjs";
import { deploy, deployShops } from "../scripts/deploy.mjs";
import { wranglerRunner } from "../scripts/lib/cli.mjs";
import { WEBHOOK_TOPICS, COMPLIANCE_TOPICS } from "../scripts/lib/shopify-admin.mjs";

const HOST = "shop.example.com";
const URI = `https://${HOST}/tt/webhooks/shopify`;
const escape = (text) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
const KV_ID = "5f3c0a1e9b7d4c2a8e6f1b3d5a7c9e0f";

/**
 * Cloudflare as wrangler shows it, per Worker (named by the config's `name`). `dryRun: "real"`
 * runs the real `wrangler deploy --dry-run` (build + bundle); otherwise it writes a stand-in
 * bundle (`cf.bundle`). `cf.dryRun` may change between runs. Failures print wrangler's own words.
 */
function playedCloudflare({ authenticated = true, kvLimit = false, routeTakenBy, dryRun = "played" } = {}) {
  const cf = {
    calls: [], namespaces: [{ id: "0a1b2c3d4e5f60718293a4b5c6d7e8f9", title: "other-app-CACHE" }], workers: new Map(), deploys: [], dryRuns: [],
    dryRun, bundle: "export default {}",
  };
  const worker = (name) => {
    if (!cf.workers.has(name)) cf.workers.set(name, { secrets: new Map(), deployed: false });
    return cf.workers.get(name);
  };
  /** The single-shop Worker's secrets (wrangler.toml's name). */
  Object.defineProperty(cf, "secrets", { get: () => worker("tiktok-edge").secrets });
  const nameOf = (args) => readFileSync(args[args.indexOf("--config") + 1], "utf8").match(/^name = "([^"]+)"/m)[1];
  const ok = (stdout) => ({ code: 0, stdout, stderr: "" });
  const fail = (text) => ({ code: 1, stdout: "", stderr: `\n✘ [ERROR] ${text}\n\n` });
  const real = wranglerRunner();
  cf.run = async (args) => {
    cf.calls.push(args.filter((a) => !a.startsWith("/")).join(" "));
    const [a, b, c] = args;
    if (a === "whoami") {
      return ok(authenticated
        ? "Getting User settings...\n👋 You are logged in with an User API Token, associated with the email merchant@example.com.\n"
        : "Getting User settings...\nYou are not authenticated. Please run `wrangler login`.\n");
    }
    if (a === "kv" && c === "list") return ok(JSON.stringify(cf.namespaces, null, 2));
    if (a === "kv" && c === "create") {
      if (kvLimit) {
        return fail("A request to the Cloudflare API (/accounts/9a7b/storage/kv/namespaces) failed.\n\n  exceeded the maximum number of namespaces for this account");
      }
      const id = args[3] === "tiktok-edge-SESSIONS" ? KV_ID : createHash("md5").update(args[3]).digest("hex");
      cf.namespaces.push({ id, title: args[3] });
      return ok(`🌀 Creating namespace with title "${args[3]}"\n✨ Success!\nTo access your new KV Namespace in your Worker, add the following snippet to your configuration file:\n[[kv_namespaces]]\nbinding = "tiktok_edge_SESSIONS"\nid = "${id}"\n`);
    }
    if (a === "kv" && c === "delete") {
      const id = args[args.indexOf("--namespace-id") + 1];
      cf.namespaces = cf.namespaces.filter((n) => n.id !== id);
      return ok(`Deleting KV namespace ${id}.\nDeleted KV namespace ${id}.`);
    }
    if (a === "secret" && b === "list") {
      const name = nameOf(args);
      return cf.workers.get(name)?.deployed
        ? ok(JSON.stringify([...worker(name).secrets.keys()].map((s) => ({ name: s, type: "secret_text" }))))
        : fail(`A request to the Cloudflare API (/accounts/9a7b/workers/scripts/${name}/secrets) failed.\n\n  This Worker does not exist on your account. [code: 10007]`);
    }
    if (a === "deploy" && args.includes("--dry-run")) {
      const outdir = args[args.indexOf("--outdir") + 1];
      if (cf.dryRun === "real") {
        const result = await real(args);
        cf.dryRuns.push(result.stdout);
        return result;
      }
      writeFileSync(path.join(outdir, "index.js"), cf.bundle);
      return ok("--dry-run: exiting now.");
    }
    if (a === "deploy") {
      if (routeTakenBy) {
        return fail(`Can't deploy routes that are assigned to another worker.\n"${routeTakenBy}" is already assigned to routes:\n  - ${HOST}/*\n\nUnassign other workers from the routes you want to deploy to, and then try again.\nVisit https://dash.cloudflare.com/9a7b/workers/overview to unassign a worker from a route.`);
      }
      const name = nameOf(args);
      const file = args.includes("--secrets-file") ? args[args.indexOf("--secrets-file") + 1] : null;
      const put = file ? JSON.parse(readFileSync(file, "utf8")) : {};
      for (const [k, v] of Object.entries(put)) worker(name).secrets.set(k, v);
      worker(name).deployed = true;
      cf.deploys.push({ worker: name, secrets: Object.keys(put), config: readFileSync(args[args.indexOf("--config") + 1], "utf8") });
      return ok(`Uploaded ${name}\nDeployed ${name} triggers\n  ${HOST}/* (zone name: example.com)\nCurrent Version ID: 00000000-0000-0000-0000-00000000000${cf.deploys.length}`);
    }
    if (a === "delete") {
      const name = args[args.indexOf("--name") + 1];
      if (!cf.workers.delete(name)) return fail(`This Worker does not exist on your account. [code: 10007]`);
      return ok(`Successfully deleted ${name}`);
    }
    throw new Error(`played wrangler has no answer for: ${args.join(" ")}`);
  };
  return cf;
}

/** A scratch deployment: its own wrangler.toml (in the project root, where its paths resolve), settings and state files. */
function scratch(settings) {
  const dir = mkdtempSync(path.join(tmpdir(), "deploy-test-"));
  const config = path.join(ROOT, `wrangler.deploy-test-${process.pid}.toml`);
  copyFileSync(path.join(ROOT, "wrangler.toml"), config);
  const envFile = path.join(dir, "deploy.env");
  writeFileSync(envFile, Object.entries(settings).map(([k, v]) => `${k}=${v}\n`).join(""));
  return {
    config, envFile,
    env: { DEPLOY_ENV_FILE: envFile, DEPLOY_STATE_FILE: path.join(dir, "state.json") },
    cleanup: () => { rmSync(config, { force: true }); rmSync(dir, { recursive: true, force: true }); },
  };
}

/** Runs deploy, collecting what it printed. */
async function runDeploy(options) {
  const lines = [];
  try {
    const result = await deploy({ ...options, log: (l) => lines.push(l) });
    return { ...result, output: lines.join("\n") };
  } catch (error) {
    return { error, output: lines.join("\n") };
  }
}

// The merchant's settings, pointing Shopify, TikTok and the shop at played servers.
const settingsFor = (env, shopify, extra = {}) => ({
  SHOP_HOSTNAME: HOST,
  TIKTOK_PIXEL_ID: PIXEL_ID,
  TIKTOK_ACCESS_TOKEN: "tok-test",
  SHOPIFY_WEBHOOK_SECRET: WEBHOOK_SECRET,
  SHOPIFY_STORE: "demo.myshopify.com",
  SHOPIFY_ADMIN_TOKEN: SHOPIFY_TOKEN,
  SHOPIFY_ADMIN_API_BASE: shopify.url,
  SHOP_URL: env.worker.url,
  TIKTOK_API_BASE: env.tiktok.url,
  ...extra,
});

test("first run creates everything (KV, route, vars, secrets, deploy, webhooks, test event); a second run changes nothing", async () => {
  const env = await startShop();
  // The app already has 100 unrelated subscriptions (so the list takes two pages), an
  // ORDERS_CREATE of an earlier deployment in XML on another host, and an ERP's ORDERS_CREATE.
  const shopify = await startShopifyAdmin({
    subscriptions: [
      ...Array.from({ length: 100 }, (_, i) => ({ topic: "PRODUCTS_UPDATE", uri: `https://feeds.example.net/p/${i}` })),
      { topic: "ORDERS_CREATE", uri: "https://old-shop.example.com/tt/webhooks/shopify", format: "XML" },
      { topic: "ORDERS_CREATE", uri: "https://erp.example.net/hooks/orders" },
    ],
  });
  const cf = playedCloudflare({ dryRun: "real" });
  const s = scratch(settingsFor(env, shopify, { TIKTOK_TEST_EVENT_CODE: "TEST31337" }));
  try {
    const first = await runDeploy({ env: s.env, run: cf.run, config: s.config });
    assert.ifError(first.error);
    assert.deepEqual(first.changed, ["kv", "config", "deploy", "webhooks"]);
    assert.deepEqual(cf.calls, [
      "whoami", "kv namespace list", "kv namespace create tiktok-edge-SESSIONS",
      "secret list --format json --config", "deploy --dry-run --outdir --config", "deploy --config --secrets-file",
    ]);

    // wrangler.toml: the new namespace's id, the route on the shop's zone, the pixel id; the
    // real dry run bundled the Worker with that namespace.
    const toml = readFileSync(s.config, "utf8");
    assert.match(toml, new RegExp(`binding = "SESSIONS"\\n[^\\[]*id = "${KV_ID}"`));
    assert.match(toml, /^routes = \[\{ pattern = "shop\.example\.com\/\*", zone_name = "example\.com" \}\]$/m);
    assert.match(toml, new RegExp(`^\\[vars\\]\\n(.*\\n)*?TIKTOK_PIXEL_ID = "${PIXEL_ID}"$`, "m"));
    assert.match(toml, /^SHOPIFY_SHOP_DOMAIN = "demo\.myshopify\.com"$/m, "webhooks are taken from the Admin API's shop only");
    assert.match(cf.dryRuns[0], new RegExp(`env\\.SESSIONS \\(${KV_ID}\\)`));
    assert.match(cf.dryRuns[0], /--dry-run: exiting now/);

    // Secrets went up with the deploy; ADMIN_TOKEN was generated and kept in the settings file.
    const adminToken = readFileSync(s.envFile, "utf8").match(/^ADMIN_TOKEN=(.{32})$/m)?.[1];
    assert.ok(adminToken, "ADMIN_TOKEN saved");
    assert.deepEqual(Object.fromEntries(cf.secrets), { TIKTOK_ACCESS_TOKEN: "tok-test", SHOPIFY_WEBHOOK_SECRET: WEBHOOK_SECRET, ADMIN_TOKEN: adminToken });

    // Webhooks: every topic the Worker handles delivers to it as JSON; the old subscription
    // was moved (not duplicated), the ERP's and the other topics' were left alone.
    const mine = shopify.subscriptions.filter((x) => x.uri === URI);
    assert.deepEqual(mine.map((x) => x.topic).sort(), [...WEBHOOK_TOPICS].sort());
    assert.ok(mine.every((x) => x.format === "JSON"));
    assert.equal(mine.find((x) => x.topic === "ORDERS_CREATE").id, "gid://shopify/WebhookSubscription/101", "moved, same subscription");
    assert.ok(shopify.subscriptions.some((x) => x.uri === "https://erp.example.net/hooks/orders"));
    assert.equal(shopify.subscriptions.length, 102 + 7);
    assert.match(first.output, /7 created, 1 moved, 0 already there/);
    for (const req of shopify.requests) {
      assert.equal(req.url, "/admin/api/2026-10/graphql.json");
      assert.equal(req.headers["x-shopify-access-token"], SHOPIFY_TOKEN);
    }

    // The test event reached TikTok with the code at the top level.
    const test = env.tiktok.requests.map((r) => JSON.parse(r.body)).find((b) => b.test_event_code);
    assert.equal(test.test_event_code, "TEST31337");
    assert.equal(test.event_source_id, PIXEL_ID);
    assert.equal(env.tiktok.requests.find((r) => r.body.includes("TEST31337")).headers["access-token"], "tok-test");

    // What is left by hand, and why privacy topics are not subscribed.
    assert.match(first.output, /health: ok, mode live/);
    assert.match(first.output, /Checkout pixel: open https:\/\/shop\.example\.com\/tt\/custom-pixel\.js/);
    assert.match(first.output, /TikTok app for Shopify: turn its data sharing off/);
    assert.match(first.output, /Privacy topics \(customers\/data_request, customers\/redact, shop\/redact\) are Shopify compliance webhooks: the Admin API cannot subscribe them/);
    assert.match(first.output, /Admin: https:\/\/shop\.example\.com\/tt\/admin/);

    // Second run, same settings (no test code this time): nothing is created, put or deployed.
    writeFileSync(s.envFile, readFileSync(s.envFile, "utf8").replace(/^TIKTOK_TEST_EVENT_CODE=.*\n/m, ""));
    const tikTokCalls = env.tiktok.requests.length;
    const shopifyOps = shopify.operations.length;
    cf.calls.length = 0;
    const second = await runDeploy({ env: s.env, run: cf.run, config: s.config });
    assert.ifError(second.error);
    assert.deepEqual(second.changed, []);
    assert.deepEqual(cf.calls, ["whoami", "kv namespace list", "secret list --format json --config", "deploy --dry-run --outdir --config"]);
    assert.equal(readFileSync(s.config, "utf8"), toml);
    assert.equal(cf.deploys.length, 1);
    assert.deepEqual(shopify.operations.slice(shopifyOps), ["webhookSubscriptions", "webhookSubscriptions"], "listed only");
    assert.equal(env.tiktok.requests.length, tikTokCalls);
    assert.match(second.output, /not redeployed/);
    assert.match(second.output, /0 created, 0 moved, 8 already there/);

  } finally {
    s.cleanup();
    await shopify.close();
    await env.close();
  }
});

test("a Dev Dashboard app: its client id and secret get the Admin API token, its secret signs the webhooks; a rotated secret is put again", async () => {
  const env = await startShop();
  const shopify = await startShopifyAdmin();
  const cf = playedCloudflare();
  const settings = settingsFor(env, shopify, { SHOPIFY_ADMIN_TOKEN: "", SHOPIFY_WEBHOOK_SECRET: "", SHOPIFY_CLIENT_ID: CLIENT_ID, SHOPIFY_CLIENT_SECRET: CLIENT_SECRET });
  const s = scratch(settings);
  try {
    const run = await runDeploy({ env: s.env, run: cf.run, config: s.config });
    assert.ifError(run.error);
    assert.equal(cf.secrets.get("SHOPIFY_WEBHOOK_SECRET"), CLIENT_SECRET);
    assert.equal(shopify.subscriptions.filter((x) => x.uri === URI).length, WEBHOOK_TOPICS.length);
    assert.equal(shopify.requests[0].url, "/admin/oauth/access_token");
    assert.ok(shopify.requests.slice(1).every((r) => r.headers["x-shopify-access-token"] === SHOPIFY_TOKEN));

    // A rotated secret is put again, with a deploy; nothing else moves.
    writeFileSync(s.envFile, `${readFileSync(s.envFile, "utf8")}TIKTOK_ACCESS_TOKEN=tok-rotated\n`);
    const rotated = await runDeploy({ env: s.env, run: cf.run, config: s.config });
    assert.ifError(rotated.error);
    assert.deepEqual(rotated.changed, ["deploy"]);
    assert.deepEqual(cf.deploys.map((d) => d.secrets), [["TIKTOK_ACCESS_TOKEN", "SHOPIFY_WEBHOOK_SECRET", "ADMIN_TOKEN"], ["TIKTOK_ACCESS_TOKEN"]]);
    assert.equal(cf.secrets.get("TIKTOK_ACCESS_TOKEN"), "tok-rotated");

    writeFileSync(s.envFile, `${readFileSync(s.envFile, "utf8")}SHOPIFY_CLIENT_SECRET=shpss_wrong\nSHOPIFY_WEBHOOK_SECRET=${CLIENT_SECRET}\n`);
    const wrong = await runDeploy({ env: s.env, run: cf.run, config: s.config });
    assert.match(wrong.error?.message, /Shopify gave no access token for the client id and secret on demo\.myshopify\.com \(400: invalid_client\)/);
    assert.match(wrong.error.fix, /Dev Dashboard → your app → Settings/);
  } finally {
    s.cleanup();
    await shopify.close();
    await env.close();
  }
});

test("a Worker paused on a TikTok refusal counts as up: deploy finishes and says why it is paused", async () => {
  const env = await startShop();
  const shopify = await startShopifyAdmin();
  // /tt/health of a Worker whose queue paused (crates/core Health: status "paused", queue_paused).
  const paused = await startServer((req, res) => res.writeHead(503, { "content-type": "application/json" }).end(JSON.stringify({
    status: "paused", version: "0.1.0", mode: "live", problems: [],
    queue_paused: { reason: "TikTok code 40105: Access token is invalid; set a new one", since_ms: 1, next_check_ms: 2, checks: 1 },
  })));
  const s = scratch(settingsFor(env, shopify, { SHOP_URL: paused.url }));
  try {
    const run = await runDeploy({ env: s.env, run: playedCloudflare().run, config: s.config });
    assert.ifError(run.error);
    assert.match(run.output, /health: paused, mode live.*\n {2}warning: sending to TikTok is paused: TikTok code 40105/);
  } finally {
    s.cleanup();
    await paused.close();
    await shopify.close();
    await env.close();
  }
});

test("the webhook topics are every topic the Worker handles; privacy topics are named as compliance topics", () => {
  // Topic::parse in crates/core is the Worker's list; each of its topics is subscribed or explained.
  const source = readFileSync(path.join(ROOT, "crates/core/src/shopify/mod.rs"), "utf8");
  const parse = source.slice(source.indexOf("pub fn parse(header"), source.indexOf("_ => Topic::Other"));
  const handled = [...parse.matchAll(/"([a-z]+(?:\/[a-z]+)+)"/g)].map((m) => m[1]).sort();
  const ours = [...WEBHOOK_TOPICS.map((t) => t.toLowerCase().replace("_", "/")), ...COMPLIANCE_TOPICS.map((t) => t.replace("_", "/"))].sort();
  assert.deepEqual(ours, handled);
});

test("failures stop with what went wrong and the fix: not logged in, missing settings, KV limit, route taken, no Worker on the hostname, wrong Shopify token, missing scope", async () => {
  const env = await startShop();
  const shopify = await startShopifyAdmin({ scopes: [] });
  const cases = [
    { name: "not logged in", cf: { authenticated: false }, want: /not logged in to Cloudflare/, fix: /wrangler -- login.*CLOUDFLARE_API_TOKEN/ },
    { name: "missing settings", settings: { TIKTOK_ACCESS_TOKEN: "", SHOP_HOSTNAME: "" }, want: /missing settings: SHOP_HOSTNAME, TIKTOK_ACCESS_TOKEN/, fix: /TikTok Events Manager/ },
    { name: "KV limit", cf: { kvLimit: true }, want: /KV namespace limit is reached/, fix: /kv namespace delete/ },
    { name: "route taken", cf: { routeTakenBy: "old-proxy" }, want: /route is taken.*"old-proxy" is already assigned/s, fix: /remove its route/ },
    { name: "wrong Shopify token", settings: { SHOPIFY_ADMIN_TOKEN: "shpat_wrong" }, want: new RegExp(`Shopify refused the Admin API token for demo\\.myshopify\\.com \\(401: ${escape(INVALID_TOKEN_ANSWER.errors)}\\)`), fix: /SHOPIFY_ADMIN_TOKEN to the Admin API access token/ },
    { name: "hostname not reaching the Worker", settings: { SHOP_URL: env.origin.url, DEPLOY_HEALTH_TIMEOUT_MS: "0" }, want: /\/tt\/health did not answer status ok within 0 s \(last: 200 <!doctype html>/, fix: /proxied \(orange cloud\)/ },
    { name: "no read_orders scope", want: /Shopify denied the app access: Access denied for webhookSubscriptionCreate field/, fix: /read_orders scope/ },
  ];
  try {
    for (const c of cases) {
      const s = scratch({ ...settingsFor(env, shopify), ...c.settings });
      try {
        const cf = playedCloudflare(c.cf);
        const { error } = await runDeploy({ env: s.env, run: cf.run, config: s.config });
        assert.ok(error, `${c.name}: fails`);
        assert.match(error.message, c.want, c.name);
        assert.match(error.fix, c.fix, c.name);
      } finally {
        s.cleanup();
      }
    }
  } finally {
    await shopify.close();
    await env.close();
  }
});

// The Rust toolchain the settings check runs with, for commands started with a scratch HOME.
const RUST_ENV = {
  RUSTUP_HOME: process.env.RUSTUP_HOME || path.join(homedir(), ".rustup"),
  CARGO_HOME: process.env.CARGO_HOME || path.join(homedir(), ".cargo"),
};

test("settings the Worker would refuse (a bad pixel id, a short admin token, a bad shop domain) stop deploy before any Cloudflare or Shopify call", async () => {
  const env = await startShop();
  const shopify = await startShopifyAdmin();
  const cases = [
    { settings: { TIKTOK_PIXEL_ID: "my pixel" }, want: /^ {4}TIKTOK_PIXEL_ID: must be letters, digits, `_` or `-` \(at most 64\): the pixel code from TikTok Events Manager/m },
    { settings: { ADMIN_TOKEN: "short" }, want: /^ {4}ADMIN_TOKEN: must be at least 16 characters; generate one with `openssl rand -hex 24`$/m },
    { settings: { SHOPIFY_SHOP_DOMAIN: "https://demo.myshopify.com" }, want: /^ {4}SHOPIFY_SHOP_DOMAIN: must be the shop's permanent domain, like example\.myshopify\.com/m },
    { settings: { SHOPIFY_STORE: "shop.example.com" }, want: /^ {4}SHOPIFY_SHOP_DOMAIN \(taken from SHOPIFY_STORE\): must be the shop's permanent domain/m },
  ];
  try {
    for (const c of cases) {
      const s = scratch({ ...settingsFor(env, shopify), ...c.settings });
      const toml = readFileSync(s.config, "utf8");
      try {
        const cf = playedCloudflare();
        const run = await runDeploy({ env: s.env, run: cf.run, config: s.config });
        assert.ok(run.error, JSON.stringify(c.settings));
        assert.match(run.error.message, /^the Worker would refuse these settings:\n/);
        assert.match(run.error.message, c.want);
        assert.match(run.error.fix, /nothing was created or uploaded/);
        assert.deepEqual(cf.calls, [], "no Cloudflare call");
        assert.equal(readFileSync(s.config, "utf8"), toml, "wrangler.toml untouched");
        assert.ok(!existsSync(s.env.DEPLOY_STATE_FILE));
      } finally {
        s.cleanup();
      }
    }
    assert.deepEqual(shopify.requests, [], "no Shopify call");
    assert.deepEqual(env.tiktok.requests, [], "no TikTok call");
  } finally {
    await shopify.close();
    await env.close();
  }
});

test("deploy says what it will do before it does it", async () => {
  const env = await startShop();
  const shopify = await startShopifyAdmin();
  const cf = playedCloudflare();
  const s = scratch(settingsFor(env, shopify));
  try {
    const calls = [];
    const run = await runDeploy({ env: s.env, run: (args) => { calls.push(args[0]); return cf.run(args); }, config: s.config });
    assert.ifError(run.error);
    const planned = run.output.indexOf("  This run will:");
    assert.ok(planned > 0 && planned < run.output.indexOf("== Cloudflare login"), run.output);
    assert.match(run.output, /1\. find or create the KV namespace tiktok-edge-SESSIONS/);
    assert.match(run.output, /2\. write the route shop\.example\.com\/\* \(zone example\.com\) and \[vars\] TIKTOK_PIXEL_ID, SHOPIFY_SHOP_DOMAIN into wrangler\.toml/);
    assert.match(run.output, /5\. subscribe the Shopify webhooks of demo\.myshopify\.com to https:\/\/shop\.example\.com\/tt\/webhooks\/shopify/);
    assert.ok(!run.output.includes("tok-test") && !run.output.includes(WEBHOOK_SECRET), "no secret printed");
  } finally {
    s.cleanup();
    await shopify.close();
    await env.close();
  }
});

test("secrets typed at the prompt (a real terminal) are never echoed or printed; a bad value typed there is refused before Cloudflare", async () => {
  const home = mkdtempSync(path.join(tmpdir(), "deploy-home-"));
  const envFile = path.join(home, "deploy.env");
  writeFileSync(envFile, "SHOP_HOSTNAME=shop.example.com\nSHOPIFY_SHOP_DOMAIN=demo.myshopify.com\n");
  const typed = { TIKTOK_PIXEL_ID: "my pixel", TIKTOK_ACCESS_TOKEN: "tok-TYPED-7f3a9c", SHOPIFY_WEBHOOK_SECRET: "whsec-TYPED-1b2d4e" };
  try {
    // `script` gives the command a pseudo-terminal, which echoes what is typed unless the
    // command turns echo off: what a merchant's screen (or a screen recording) would show.
    const child = spawn("script", ["-qfec", "node scripts/deploy.mjs", "/dev/null"], {
      cwd: ROOT, env: { PATH: process.env.PATH, HOME: home, DEPLOY_ENV_FILE: envFile, DEPLOY_STATE_FILE: path.join(home, "state.json"), ...RUST_ENV },
    });
    let screen = "";
    const answered = new Set();
    const onOutput = (d) => {
      screen += d;
      for (const [name, value] of Object.entries(typed)) {
        if (!answered.has(name) && screen.includes(`${name} (`)) {
          answered.add(name);
          child.stdin.write(`${value}\r`);
        }
      }
    };
    child.stdout.on("data", onOutput);
    child.stderr.on("data", onOutput);
    const code = await new Promise((resolve) => child.on("close", resolve));
    assert.equal(code, 1, screen);
    assert.deepEqual([...answered], ["TIKTOK_PIXEL_ID", "TIKTOK_ACCESS_TOKEN", "SHOPIFY_WEBHOOK_SECRET"], screen);
    assert.ok(screen.includes("my pixel"), "a setting that is not secret shows as typed");
    assert.ok(!screen.includes(typed.TIKTOK_ACCESS_TOKEN) && !screen.includes(typed.SHOPIFY_WEBHOOK_SECRET), screen);
    assert.match(screen, /TIKTOK_ACCESS_TOKEN \(.*; typing is not shown\): /);
    assert.match(screen, /TIKTOK_PIXEL_ID: must be letters, digits/);
    assert.ok(!screen.includes("Cloudflare:"), "stopped before the Cloudflare login check");
    const saved = readFileSync(envFile, "utf8");
    assert.match(saved, /^TIKTOK_ACCESS_TOKEN=tok-TYPED-7f3a9c$/m, "kept in the settings file, for the next run");
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
});

test("the command itself, with real wrangler and no Cloudflare login: the documented message and exit code 1", () => {
  const home = mkdtempSync(path.join(tmpdir(), "deploy-home-"));
  try {
    const envFile = path.join(home, "deploy.env");
    writeFileSync(envFile, `SHOP_HOSTNAME=${HOST}\nTIKTOK_PIXEL_ID=${PIXEL_ID}\nTIKTOK_ACCESS_TOKEN=tok-test\nSHOPIFY_WEBHOOK_SECRET=${WEBHOOK_SECRET}\nSHOPIFY_SHOP_DOMAIN=demo.myshopify.com\n`);
    const env = { PATH: process.env.PATH, HOME: home, DEPLOY_ENV_FILE: envFile, DEPLOY_STATE_FILE: path.join(home, "state.json"), ...RUST_ENV };
    const run = spawnSync("node", ["scripts/deploy.mjs"], { cwd: ROOT, env, encoding: "utf8", timeout: 60_000 });
    assert.equal(run.status, 1, run.stdout + run.stderr);
    assert.match(run.stderr, /✗ not logged in to Cloudflare\n {2}fix: run `npm run wrangler -- login`/);
    assert.ok(!existsSync(path.join(home, "state.json")));
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
  assert.deepEqual(readdirSync(ROOT).filter((f) => f.startsWith("wrangler.deploy-test")), []);
});

// ---- several shops from one registry (shops.json) ----

const ACME = {
  name: "acme", shopify_domain: "acme.myshopify.com", hostnames: [{ host: "www.acme.com" }],
  pixels: [{ id: PIXEL_ID }], secrets: ["SHOPIFY_WEBHOOK_SECRET", "ADMIN_TOKEN", "TIKTOK_ACCESS_TOKEN"],
};
const BRAVO = {
  name: "bravo", shopify_domain: "bravo-store.myshopify.com",
  hostnames: [{ host: "shop.bravo.com", market: "us" }, { host: "www.bravo.fr", market: "fr", zone: "bravo.fr" }],
  pixels: [{ id: "CB1111111111111111US" }, { id: "CB2222222222222222FR", token: "TIKTOK_TOKEN_FR", markets: ["fr"] }],
  vars: { CONSENT_DEFAULT: "denied" },
  secrets: ["SHOPIFY_WEBHOOK_SECRET", "ADMIN_TOKEN", "TIKTOK_ACCESS_TOKEN", "TIKTOK_TOKEN_FR"],
};

/** A scratch registry: the file, each shop's settings file (.deploy/<shop>.env), its configs' directory. */
function scratchRegistry(shops, shopSettings) {
  const dir = mkdtempSync(path.join(tmpdir(), "deploy-shops-test-"));
  const env = { SHOPS_FILE: path.join(dir, "shops.json"), DEPLOY_DIR: path.join(dir, "deploy"), SHOPS_BUILD_DIR: path.join(dir, "configs") };
  const write = (list) => writeFileSync(env.SHOPS_FILE, JSON.stringify({ shops: list }, null, 2));
  write(shops);
  mkdirSync(env.DEPLOY_DIR);
  for (const [name, settings] of Object.entries(shopSettings)) {
    writeFileSync(path.join(env.DEPLOY_DIR, `${name}.env`), Object.entries(settings).map(([k, v]) => `${k}=${v}\n`).join(""));
  }
  return { env, write, settingsFile: (name) => path.join(env.DEPLOY_DIR, `${name}.env`), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

async function runShops(options) {
  const lines = [];
  try {
    const result = await deployShops({ build: async () => {}, ...options, log: (l) => lines.push(l) });
    return { ...result, output: lines.join("\n") };
  } catch (error) {
    return { error, output: lines.join("\n") };
  }
}

test("a two-shop registry deploys two Workers with their own KV namespace, secrets, routes and vars; a second run changes nothing; a code change redeploys each; a removed shop is deleted only with --prune", async () => {
  const shops = { acme: await startShop(), bravo: await startShop() };
  const admins = { acme: await startShopifyAdmin(), bravo: await startShopifyAdmin() };
  const cf = playedCloudflare({ dryRun: "real" });
  const r = scratchRegistry([ACME, BRAVO], {
    acme: { SHOPIFY_WEBHOOK_SECRET: "whsec-acme", TIKTOK_ACCESS_TOKEN: "tok-acme", SHOPIFY_ADMIN_TOKEN: SHOPIFY_TOKEN, SHOPIFY_ADMIN_API_BASE: admins.acme.url, SHOP_URL: shops.acme.worker.url },
    bravo: { SHOPIFY_WEBHOOK_SECRET: "whsec-bravo", TIKTOK_ACCESS_TOKEN: "tok-bravo-us", TIKTOK_TOKEN_FR: "tok-bravo-fr", SHOPIFY_ADMIN_TOKEN: SHOPIFY_TOKEN, SHOPIFY_ADMIN_API_BASE: admins.bravo.url, SHOP_URL: shops.bravo.worker.url },
  });
  try {
    const first = await runShops({ env: r.env, run: cf.run });
    assert.ifError(first.error);
    assert.deepEqual(first.shops.acme.changed, ["kv", "deploy", "webhooks"]);
    assert.deepEqual(first.shops.bravo.changed, ["kv", "deploy", "webhooks"]);
    assert.deepEqual(cf.calls, [
      "whoami", "kv namespace list",
      "kv namespace create tiktok-edge-acme-SESSIONS", "secret list --format json --config", "deploy --dry-run --outdir --config", "deploy --config --secrets-file",
      "kv namespace create tiktok-edge-bravo-SESSIONS", "secret list --format json --config", "deploy --dry-run --outdir --config", "deploy --config --secrets-file",
    ]);

    // Two Workers, each with its own namespace, routes, vars and rate limiters.
    const [acme, bravo] = cf.deploys;
    assert.deepEqual(cf.deploys.map((d) => d.worker), ["tiktok-edge-acme", "tiktok-edge-bravo"]);
    const kvId = (name) => cf.namespaces.find((n) => n.title === `tiktok-edge-${name}-SESSIONS`).id;
    assert.notEqual(kvId("acme"), kvId("bravo"));
    assert.match(acme.config, new RegExp(`binding = "SESSIONS"\\n[^\\[]*id = "${kvId("acme")}"`));
    assert.match(bravo.config, new RegExp(`binding = "SESSIONS"\\n[^\\[]*id = "${kvId("bravo")}"`));
    assert.match(acme.config, /^routes = \[\{ pattern = "www\.acme\.com\/\*", zone_name = "acme\.com" \}\]$/m);
    assert.match(bravo.config, /^routes = \[\{ pattern = "shop\.bravo\.com\/\*", zone_name = "bravo\.com" \}, \{ pattern = "www\.bravo\.fr\/\*", zone_name = "bravo\.fr" \}\]$/m);
    assert.match(acme.config, new RegExp(`^TIKTOK_PIXEL_ID = "${PIXEL_ID}"$`, "m"));
    assert.match(bravo.config, /^TIKTOK_PIXELS = ".*CB2222222222222222FR.*TIKTOK_TOKEN_FR.*"$/m);
    assert.match(bravo.config, /^SHOPIFY_SHOP_DOMAIN = "bravo-store\.myshopify\.com"$/m);
    assert.doesNotMatch(acme.config, /bravo/);
    const limiter = (toml) => toml.match(/name = "COLLECT_RATE_LIMITER"\nnamespace_id = "(\d+)"/)[1];
    assert.notEqual(limiter(acme.config), limiter(bravo.config));
    // The real dry run bundled each generated config, with its own namespace.
    assert.match(cf.dryRuns[0], new RegExp(`env\\.SESSIONS \\(${kvId("acme")}\\)`));
    assert.match(cf.dryRuns[1], new RegExp(`env\\.SESSIONS \\(${kvId("bravo")}\\)`));

    // Each Worker got its own secrets, and only those; ADMIN_TOKEN was generated into each shop's file.
    const adminToken = (name) => readFileSync(r.settingsFile(name), "utf8").match(/^ADMIN_TOKEN=(.{32})$/m)[1];
    assert.notEqual(adminToken("acme"), adminToken("bravo"));
    assert.deepEqual(Object.fromEntries(cf.workers.get("tiktok-edge-acme").secrets), { SHOPIFY_WEBHOOK_SECRET: "whsec-acme", ADMIN_TOKEN: adminToken("acme"), TIKTOK_ACCESS_TOKEN: "tok-acme" });
    assert.deepEqual(Object.fromEntries(cf.workers.get("tiktok-edge-bravo").secrets), {
      SHOPIFY_WEBHOOK_SECRET: "whsec-bravo", ADMIN_TOKEN: adminToken("bravo"), TIKTOK_ACCESS_TOKEN: "tok-bravo-us", TIKTOK_TOKEN_FR: "tok-bravo-fr",
    });
    // Each shop's webhooks deliver to its own first hostname.
    assert.deepEqual(new Set(admins.acme.subscriptions.map((s) => s.uri)), new Set(["https://www.acme.com/tt/webhooks/shopify"]));
    assert.deepEqual(new Set(admins.bravo.subscriptions.map((s) => s.uri)), new Set(["https://shop.bravo.com/tt/webhooks/shopify"]));
    assert.ok(!first.output.includes("tok-bravo-fr") && !first.output.includes("whsec-acme"), "no secret printed");
    assert.match(first.output, /Left by hand, per shop .*https:\/\/www\.acme\.com\/tt\/custom-pixel\.js, https:\/\/shop\.bravo\.com\/tt\/custom-pixel\.js/);

    // Second run: nothing created, put or deployed.
    cf.calls.length = 0;
    const second = await runShops({ env: r.env, run: cf.run });
    assert.ifError(second.error);
    assert.deepEqual([second.shops.acme.changed, second.shops.bravo.changed], [[], []]);
    assert.deepEqual(cf.calls, ["whoami", "kv namespace list", ...Array(2).fill(["secret list --format json --config", "deploy --dry-run --outdir --config"]).flat()]);
    assert.equal(cf.deploys.length, 2);
    assert.match(second.output, /acme: unchanged.*\n.*bravo: unchanged/);

    // A code change (another bundle) redeploys each Worker, with no secret put again.
    cf.dryRun = "played";
    cf.bundle = "export default { version: 2 }";
    const changed = await runShops({ env: r.env, run: cf.run });
    assert.ifError(changed.error);
    assert.deepEqual(cf.deploys.slice(2).map((d) => [d.worker, d.secrets]), [["tiktok-edge-acme", []], ["tiktok-edge-bravo", []]]);

    // One shop by name: a rotated token of bravo's goes up; acme is not touched.
    writeFileSync(r.settingsFile("bravo"), `${readFileSync(r.settingsFile("bravo"), "utf8")}TIKTOK_TOKEN_FR=tok-bravo-fr-2\n`);
    cf.calls.length = 0;
    const one = await runShops({ env: r.env, run: cf.run, only: ["bravo"] });
    assert.ifError(one.error);
    assert.deepEqual(Object.keys(one.shops), ["bravo"]);
    assert.deepEqual(cf.deploys.slice(4).map((d) => [d.worker, d.secrets]), [["tiktok-edge-bravo", ["TIKTOK_TOKEN_FR"]]]);
    assert.equal(cf.workers.get("tiktok-edge-bravo").secrets.get("TIKTOK_TOKEN_FR"), "tok-bravo-fr-2");
    assert.equal(cf.calls.filter((c) => c.startsWith("secret list")).length, 1);

    // bravo leaves the registry: said, not done.
    r.write([ACME]);
    cf.calls.length = 0;
    const kept = await runShops({ env: r.env, run: cf.run });
    assert.ifError(kept.error);
    assert.deepEqual(kept.removed, ["bravo"]);
    assert.match(kept.output, new RegExp(`bravo: its Worker tiktok-edge-bravo \\(with its routes, secrets and Durable Objects: the send queue\\) and KV namespace tiktok-edge-bravo-SESSIONS \\(${kvId("bravo")}\\) would be deleted`));
    assert.match(kept.output, /npm run deploy -- --prune/);
    assert.ok(!cf.calls.some((c) => c.startsWith("delete") || c.startsWith("kv namespace delete")), "nothing deleted");
    assert.ok(cf.workers.has("tiktok-edge-bravo"));

    // --prune without a confirmation deletes nothing: not on a terminal, nor when the names typed differ.
    const unconfirmed = await runShops({ env: r.env, run: cf.run, prune: true });
    assert.match(unconfirmed.error?.message, /nothing deleted: the deletion was not confirmed/);
    assert.match(unconfirmed.error.fix, /--yes/);
    const asked = [];
    const mistyped = await runShops({ env: r.env, run: cf.run, prune: true, interactive: true, ask: async (q) => { asked.push(q); return q.startsWith("Go ahead") ? "y" : "brav"; } });
    assert.match(mistyped.error?.message, /nothing deleted/);
    assert.match(mistyped.error.fix, /type exactly: bravo/);
    assert.deepEqual(asked, ["Go ahead? [y/N] ", "Type the shop names to delete (bravo): "]);
    assert.ok(cf.workers.has("tiktok-edge-bravo"));
    assert.ok(!cf.calls.some((c) => c.startsWith("delete")));
    // Confirmed (--yes), it deletes bravo's Worker and namespace only.
    const bravoKv = kvId("bravo");
    cf.calls.length = 0;
    const pruned = await runShops({ env: r.env, run: cf.run, prune: true, confirmed: true });
    assert.ifError(pruned.error);
    assert.deepEqual(pruned.deleted, ["bravo"]);
    assert.deepEqual(cf.calls.slice(-2), ["delete --name tiktok-edge-bravo --force", `kv namespace delete --namespace-id ${bravoKv} --skip-confirmation`]);
    assert.deepEqual([...cf.workers.keys()], ["tiktok-edge-acme"]);
    assert.ok(cf.namespaces.some((n) => n.title === "tiktok-edge-acme-SESSIONS") && !cf.namespaces.some((n) => n.title === "tiktok-edge-bravo-SESSIONS"));
    const after = await runShops({ env: r.env, run: cf.run });
    assert.deepEqual(after.removed, [], "nothing left to prune");
  } finally {
    r.cleanup();
    await Promise.all([...Object.values(admins).map((a) => a.close()), ...Object.values(shops).map((s) => s.close())]);
  }
});

test("an invalid registry entry, or a shop setting the Worker would refuse, stops deploy before any Cloudflare call, naming the shop and the field", async () => {
  const cases = [
    { shops: [ACME, { ...BRAVO, hostnames: [BRAVO.hostnames[0], { host: "https://www.bravo.fr/" }] }], want: /^ {4}bravo: hostnames\[1\]\.host: must be a lowercase hostname, without scheme or path\n {6}fix: e\.g\. shop\.example\.com$/m },
    { shops: [ACME, { ...BRAVO, pixels: [{ id: "CB1", token: "TIKTOK_TOKEN_DE" }] }], want: /^ {4}bravo: pixels\[0\]\.token: names the secret TIKTOK_TOKEN_DE, which is not in the shop's secrets/m },
    { shops: [ACME, { ...BRAVO, name: "acme" }], want: /^ {4}acme: name: is used by two shops \(shops\[0\] too\)/m },
    { shops: [{ ...ACME, pixels: [{ id: "my pixel" }] }, BRAVO], want: /^ {4}acme: pixels\[0\]\.id: TIKTOK_PIXEL_ID: must be letters, digits, `_` or `-`/m },
    { shops: [ACME, { ...BRAVO, vars: { CONSENT_DEFAULT: "maybe" } }], want: /^ {4}bravo: vars\.CONSENT_DEFAULT: CONSENT_DEFAULT: /m },
    { shops: [ACME, { ...BRAVO, vars: { CONSENT_DEFUALT: "denied" } }], want: /^ {4}bravo: vars\.CONSENT_DEFUALT: is not a setting the Worker reads/m },
    // A value in the environment is nobody's: each shop's secrets come from its own file only.
    { shops: [ACME, BRAVO], env: { TIKTOK_TOKEN_FR: "tok-from-the-environment" }, settings: { bravo: { SHOPIFY_WEBHOOK_SECRET: "whsec-bravo", TIKTOK_ACCESS_TOKEN: "tok" } }, want: /^ {4}bravo: secrets: TIKTOK_TOKEN_FR: has no value in .*bravo\.env\n {6}fix: add the line TIKTOK_TOKEN_FR=<value> to it$/m },
    { shops: [{ ...ACME, secrets: [...ACME.secrets] }, BRAVO], settings: { acme: { SHOPIFY_WEBHOOK_SECRET: "whsec-acme", TIKTOK_ACCESS_TOKEN: "tok", ADMIN_TOKEN: "short" } }, want: /^ {4}acme: secrets: ADMIN_TOKEN \(its value in \.deploy\/acme\.env\): ADMIN_TOKEN: must be at least 16 characters/m },
  ];
  const valid = { SHOPIFY_WEBHOOK_SECRET: "whsec", TIKTOK_ACCESS_TOKEN: "tok", TIKTOK_TOKEN_FR: "tok-fr" };
  for (const c of cases) {
    const r = scratchRegistry(c.shops, { acme: valid, bravo: valid, ...c.settings });
    const cf = playedCloudflare();
    let built = false;
    try {
      const run = await runShops({ env: { ...c.env, ...r.env }, run: cf.run, build: async () => { built = true; } });
      assert.ok(run.error, String(c.want));
      assert.match(run.error.message, /^shops\.json: \d+ problem\(s\):\n/);
      assert.match(run.error.message, c.want);
      assert.match(run.error.fix, /nothing was created or uploaded/);
      assert.deepEqual(cf.calls, [], "no Cloudflare call");
      assert.ok(!built, "nothing built");
      assert.ok(!existsSync(path.join(r.env.DEPLOY_DIR, "state.json")));
    } finally {
      r.cleanup();
    }
  }
});

test("a shop name that is not in the registry, and --prune for one shop, are refused before anything is done", async () => {
  const r = scratchRegistry([ACME], { acme: { SHOPIFY_WEBHOOK_SECRET: "whsec", TIKTOK_ACCESS_TOKEN: "tok" } });
  const cf = playedCloudflare();
  try {
    const unknown = await runShops({ env: r.env, run: cf.run, only: ["acmee"] });
    assert.match(unknown.error?.message, /no shop named acmee in .*shops\.json/);
    assert.match(unknown.error.fix, /name one of: acme/);
    const prune = await runShops({ env: r.env, run: cf.run, only: ["acme"], prune: true });
    assert.match(prune.error?.message, /--prune deletes the shops the registry no longer lists/);
    assert.deepEqual(cf.calls, []);
  } finally {
    r.cleanup();
  }
});
