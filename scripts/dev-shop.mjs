#!/usr/bin/env node
// `bash scripts/dev.sh --shop <name>`: the settings of one shop of the demo registry
// (demo/shops.json, secrets' demo values in demo/shops/<name>.env), printed as shell for dev.sh
// to eval: the ports (the registry's n-th shop: Worker on 8787 + 10n, its demo storefront on
// 8788 + 10n), the demo storefront's shop domain and webhook secret, and wrangler dev's
// arguments: the Worker's vars and secrets (--var), and storage of its own (--persist-to), so
// two shops run side by side as two Workers do.
import path from "node:path";
import { Problem, ROOT, readSettingsFile, report } from "./lib/cli.mjs";
import { readRegistry, shopSettingsPath, workerVars } from "./lib/registry.mjs";

const quote = (s) => `'${String(s).replace(/'/g, "'\\''")}'`;

function devShop(name, env = { SHOPS_FILE: path.join(ROOT, "demo/shops.json"), DEPLOY_DIR: path.join(ROOT, "demo/shops") }) {
  const registry = readRegistry(env);
  if (registry.problems.length) throw new Problem(`demo/shops.json: ${registry.problems.map(String).join("; ")}`, "correct it");
  const index = registry.shops.findIndex((s) => s.name === name);
  if (index < 0) throw new Problem(`no demo shop named ${name}`, `name one of: ${registry.shops.map((s) => s.name).join(", ")}`);
  const shop = registry.shops[index];
  const port = 8787 + 10 * index;
  const origin = `http://127.0.0.1:${port + 1}`;
  const secrets = readSettingsFile(shopSettingsPath(env, name));
  const vars = { ...workerVars(shop), ORIGIN_URL: origin, TIKTOK_SDK_URL: `${origin}/tiktok/events.js` };
  // Locally the shop is 127.0.0.1:<port>, none of its registry hostnames: any host is served.
  delete vars.STOREFRONT_HOSTS;
  for (const secret of shop.secrets) vars[secret] = secrets[secret] ?? ""; // empty: not set (nothing of .dev.vars leaks in)
  return [
    `export PORT=${port} DEMO_ORIGIN_PORT=${port + 1} WORKER_URL=${quote(`http://127.0.0.1:${port}`)} DEMO_SHOP_DOMAIN=${quote(shop.shopify_domain)} SHOPIFY_WEBHOOK_SECRET=${quote(secrets.SHOPIFY_WEBHOOK_SECRET ?? "")}`,
    `shop_args=(${Object.entries(vars).map(([k, v]) => `--var ${quote(`${k}:${v}`)}`).join(" ")} --persist-to ${quote(`.wrangler/state/${name}`)} --inspector-port ${9229 + 10 * index})`,
  ].join("\n");
}

try {
  console.log(devShop(process.argv[2]));
} catch (e) {
  report(e);
  process.exitCode = 1;
}
