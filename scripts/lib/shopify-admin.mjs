// Shopify's Admin GraphQL API, as far as deploy and doctor need it: the Worker's webhook
// subscriptions, listed (all pages), created or pointed at this Worker. Shapes from Shopify's
// published reference (webhookSubscriptions, webhookSubscriptionCreate/Update, `uri` field).
import { Problem, request } from "./cli.mjs";

/** The Admin API version the calls use (Shopify's current stable release). */
export const ADMIN_API_VERSION = "2026-10";

/**
 * Every topic the Worker acts on (crates/core/src/shopify/mod.rs `Topic`), in the Admin API's
 * enum form. All need the `read_orders` scope.
 */
export const WEBHOOK_TOPICS = [
  "CARTS_CREATE", "CARTS_UPDATE", "CHECKOUTS_CREATE", "CHECKOUTS_UPDATE",
  "ORDERS_CREATE", "ORDERS_UPDATED", "ORDERS_PAID", "ORDERS_EDITED",
];
/** The privacy topics the Worker honours, which the Admin API cannot subscribe. */
export const COMPLIANCE_TOPICS = ["customers/data_request", "customers/redact", "shop/redact"];
export const COMPLIANCE_NOTE =
  `Privacy topics (${COMPLIANCE_TOPICS.join(", ")}) are Shopify compliance webhooks: the Admin API cannot subscribe them. ` +
  "An app made in the Dev Dashboard declares them as `compliance_topics` in its shopify.app.toml (README, Deploy); " +
  "an app made in the Shopify admin has no way to receive them.";

const SCOPE_FIX = "give the app the read_orders scope and install it again (an app made in the Shopify admin: Develop apps → your app → " +
  "Configuration, then use the new Admin API access token; a Dev Dashboard app: a new version with read_orders, then update it on the shop)";
const TOKEN_FIX = "set SHOPIFY_ADMIN_TOKEN to the Admin API access token (shpat_…) of a custom app installed on SHOPIFY_STORE " +
  "(Shopify admin → Settings → Apps and sales channels → Develop apps → your app → API credentials; reinstalling an app gives a new token), " +
  "or set SHOPIFY_CLIENT_ID and SHOPIFY_CLIENT_SECRET of a Dev Dashboard app installed on it instead";

/**
 * How to call the shop's Admin API: SHOPIFY_ADMIN_TOKEN (an app made in the Shopify admin, shpat_…),
 * or SHOPIFY_CLIENT_ID + SHOPIFY_CLIENT_SECRET of a Dev Dashboard app installed on the shop,
 * exchanged for a token (client credentials grant). `null` when neither is set.
 */
export async function adminAuth(settings) {
  const { SHOPIFY_STORE: store, SHOPIFY_ADMIN_TOKEN: token, SHOPIFY_CLIENT_ID: clientId, SHOPIFY_CLIENT_SECRET: clientSecret } = settings;
  if (!store || !(token || (clientId && clientSecret))) return null;
  if (!/^[a-z0-9][a-z0-9-]*\.myshopify\.com$/.test(store)) {
    throw new Problem(`SHOPIFY_STORE is "${store}", not a myshopify.com domain`,
      "set SHOPIFY_STORE to the shop's permanent domain, e.g. my-shop.myshopify.com (Shopify admin → Settings → Domains)");
  }
  const base = (settings.SHOPIFY_ADMIN_API_BASE || `https://${store}`).replace(/\/$/, "");
  if (token) return { store, token, base };
  const res = await request(`${base}/admin/oauth/access_token`, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json" },
    body: JSON.stringify({ client_id: clientId, client_secret: clientSecret, grant_type: "client_credentials" }),
  }, { what: `Shopify's token endpoint for ${store}` });
  const body = await res.json().catch(() => ({}));
  if (!res.ok || !body.access_token) {
    throw new Problem(`Shopify gave no access token for the client id and secret on ${store} (${res.status}: ${body.error_description ?? body.error ?? body.errors ?? "no reason given"})`,
      "use the Client ID and Client secret from the Dev Dashboard → your app → Settings, and install that app on SHOPIFY_STORE (the client credentials grant works only for your own organisation's stores)");
  }
  return { store, token: body.access_token, base };
}

/** One Admin GraphQL call; every refusal becomes a Problem with its fix. */
export async function adminGraphql({ store, token, base }, query, variables = {}) {
  const url = `${base}/admin/api/${ADMIN_API_VERSION}/graphql.json`;
  const res = await request(url, {
    method: "POST",
    headers: { "content-type": "application/json", "x-shopify-access-token": token },
    body: JSON.stringify({ query, variables }),
  }, { what: `Shopify's Admin API for ${store}` });
  const text = await res.text();
  let body;
  try { body = JSON.parse(text); } catch { body = undefined; }
  const said = typeof body?.errors === "string" ? body.errors : text.slice(0, 200);
  if (res.status === 401) throw new Problem(`Shopify refused the Admin API token for ${store} (401: ${said})`, TOKEN_FIX);
  if (res.status === 403) throw new Problem(`Shopify denied the app access on ${store} (403: ${said})`, SCOPE_FIX);
  if (res.status === 404) {
    throw new Problem(`${store} has no Admin API at ${url} (404)`,
      "set SHOPIFY_STORE to the shop's permanent myshopify.com domain (Shopify admin → Settings → Domains)");
  }
  if (res.status === 429 || res.status >= 500) {
    throw new Problem(`Shopify's Admin API answered ${res.status} (busy or down)`, "run the command again in a minute");
  }
  if (res.status !== 200 || !body) throw new Problem(`Shopify's Admin API answered ${res.status}: ${said}`);
  if (Array.isArray(body.errors) && body.errors.length) {
    const denied = body.errors.find((e) => e.extensions?.code === "ACCESS_DENIED");
    if (denied) throw new Problem(`Shopify denied the app access: ${denied.message}`, SCOPE_FIX);
    throw new Problem(`Shopify's Admin API refused the request: ${body.errors.map((e) => e.message).join("; ")}`);
  }
  return body.data;
}

const LIST = `query WebhookSubscriptions($first: Int!, $after: String) {
  webhookSubscriptions(first: $first, after: $after) {
    edges { node { id topic uri format } }
    pageInfo { hasNextPage endCursor }
  }
}`;
const FIELDS = "webhookSubscription { id topic uri format } userErrors { field message }";
const CREATE = `mutation WebhookSubscriptionCreate($topic: WebhookSubscriptionTopic!, $webhookSubscription: WebhookSubscriptionInput!) {
  webhookSubscriptionCreate(topic: $topic, webhookSubscription: $webhookSubscription) { ${FIELDS} }
}`;
const UPDATE = `mutation WebhookSubscriptionUpdate($id: ID!, $webhookSubscription: WebhookSubscriptionInput!) {
  webhookSubscriptionUpdate(id: $id, webhookSubscription: $webhookSubscription) { ${FIELDS} }
}`;

/** Every webhook subscription the app has on the shop, across all pages. */
export async function listSubscriptions(admin) {
  const all = [];
  let after = null;
  for (;;) {
    const { webhookSubscriptions: page } = await adminGraphql(admin, LIST, { first: 100, after });
    all.push(...page.edges.map((e) => e.node));
    if (!page.pageInfo.hasNextPage) return all;
    after = page.pageInfo.endCursor;
  }
}

/** The address Shopify should deliver to. */
export const webhookUri = (origin, prefix) => `${origin}${prefix}/webhooks/shopify`;

// A subscription made for a tiktok-edge Worker (any host or prefix): deploy moves such a
// subscription to the current address instead of adding a second one, and leaves the app's
// other subscriptions alone.
const isWorkerUri = (uri) => /^https?:\/\/[^/]+(\/[^?#]*)?\/webhooks\/shopify$/.test(uri ?? "");

/** Per topic: the subscription delivering to `uri` as JSON, one of this Worker's at another address, and others. */
export function subscriptionStatus(subscriptions, uri) {
  return WEBHOOK_TOPICS.map((topic) => {
    const mine = subscriptions.filter((s) => s.topic === topic);
    return {
      topic,
      current: mine.find((s) => s.uri === uri && s.format === "JSON"),
      movable: mine.find((s) => s.uri === uri || isWorkerUri(s.uri)),
      others: mine.filter((s) => s.uri !== uri && !isWorkerUri(s.uri)),
    };
  });
}

/** Makes every topic deliver to `uri` as JSON: creates what is missing, moves this Worker's old ones, changes nothing else. */
export async function syncWebhooks(admin, uri, log) {
  const changes = { created: [], updated: [], unchanged: [] };
  for (const { topic, current, movable } of subscriptionStatus(await listSubscriptions(admin), uri)) {
    if (current) {
      changes.unchanged.push(topic);
      continue;
    }
    const input = { webhookSubscription: { uri, format: "JSON" } };
    const [verb, data] = movable
      ? ["update", (await adminGraphql(admin, UPDATE, { id: movable.id, ...input })).webhookSubscriptionUpdate]
      : ["create", (await adminGraphql(admin, CREATE, { topic, ...input })).webhookSubscriptionCreate];
    if (data.userErrors.length) {
      throw new Problem(`Shopify refused to ${verb} the ${topic} webhook: ${data.userErrors.map((e) => e.message).join("; ")}`,
        `check that ${uri} is the shop's public https address of the Worker, and ${SCOPE_FIX}`);
    }
    if (movable) {
      changes.updated.push(topic);
      log(`  ${topic}: moved from ${movable.uri} (${movable.format})`);
    } else {
      changes.created.push(topic);
      log(`  ${topic}: created`);
    }
  }
  return changes;
}
