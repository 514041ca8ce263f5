// Shopify's Admin GraphQL API played at the network boundary, for scripts/deploy.mjs and
// scripts/doctor.mjs: the client credentials grant (POST /admin/oauth/access_token), and
// POST /admin/api/<version>/graphql.json with X-Shopify-Access-Token,
// answering webhookSubscriptions (cursor pages), webhookSubscriptionCreate and
// webhookSubscriptionUpdate in Shopify's published shapes, including its refusals: 401 for an
// unknown token, ACCESS_DENIED without the read_orders scope, and the userError for a second
// subscription to the same topic and address.
import { startServer } from "./harness.mjs";

export const SHOPIFY_TOKEN = "shpat_0123456789abcdef0123456789abcdef";
// A Dev Dashboard app's credentials, exchanged for SHOPIFY_TOKEN (client credentials grant).
export const CLIENT_ID = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";
export const CLIENT_SECRET = "shpss_0123456789abcdef0123456789abcdef";
export const INVALID_TOKEN_ANSWER = { errors: "[API] Invalid API key or access token (unrecognized login or wrong password)" };

/**
 * `subscriptions`: the app's existing ones ({ topic, uri, format }). `scopes`: granted scopes.
 * Returns the server plus `subscriptions` (live list) and `operations` (each call's operation name).
 */
export async function startShopifyAdmin({ token = SHOPIFY_TOKEN, scopes = ["read_orders"], subscriptions = [] } = {}) {
  let seq = 0;
  const subs = subscriptions.map((s) => ({ id: `gid://shopify/WebhookSubscription/${++seq}`, format: "JSON", ...s }));
  const operations = [];
  const json = (res, status, body) => res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
  const node = (s) => ({ id: s.id, topic: s.topic, uri: s.uri, format: s.format });
  const denied = (field) => ({
    message: `Access denied for ${field} field. Required access: \`read_orders\` access scope.`,
    locations: [{ line: 2, column: 3 }],
    path: [field],
    extensions: { code: "ACCESS_DENIED", documentation: "https://shopify.dev/api/usage/access-scopes", requiredAccess: "`read_orders` access scope." },
  });
  const taken = (s) => s && { field: ["webhookSubscription", "callbackUrl"], message: "Address for this topic has already been taken" };

  const server = await startServer((req, res) => {
    if (req.method === "POST" && req.url === "/admin/oauth/access_token") {
      const grant = JSON.parse(req.body);
      return grant.grant_type === "client_credentials" && grant.client_id === CLIENT_ID && grant.client_secret === CLIENT_SECRET
        ? json(res, 200, { access_token: token, scope: scopes.join(","), expires_in: 86399 })
        : json(res, 400, { error: "invalid_client" });
    }
    if (req.method !== "POST" || !/^\/admin\/api\/\d{4}-\d{2}\/graphql\.json$/.test(req.url)) return json(res, 404, { errors: "Not Found" });
    if (req.headers["x-shopify-access-token"] !== token) return json(res, 401, INVALID_TOKEN_ANSWER);
    const { query, variables } = JSON.parse(req.body);
    const op = query.match(/\b(webhookSubscriptionCreate|webhookSubscriptionUpdate|webhookSubscriptions)\(/)?.[1];
    operations.push(op);
    if (op === "webhookSubscriptions") {
      const start = variables.after ? subs.findIndex((s) => s.id === variables.after) + 1 : 0;
      const page = subs.slice(start, start + variables.first);
      return json(res, 200, {
        data: {
          webhookSubscriptions: {
            edges: page.map((s) => ({ cursor: s.id, node: node(s) })),
            pageInfo: { hasNextPage: start + page.length < subs.length, endCursor: page.at(-1)?.id ?? null },
          },
        },
      });
    }
    const input = variables.webhookSubscription;
    if (op === "webhookSubscriptionCreate") {
      if (!scopes.includes("read_orders")) return json(res, 200, { data: { webhookSubscriptionCreate: null }, errors: [denied("webhookSubscriptionCreate")] });
      const dup = taken(subs.find((s) => s.topic === variables.topic && s.uri === input.uri));
      if (dup) return json(res, 200, { data: { webhookSubscriptionCreate: { webhookSubscription: null, userErrors: [dup] } } });
      const s = { id: `gid://shopify/WebhookSubscription/${++seq}`, topic: variables.topic, uri: input.uri, format: input.format ?? "JSON" };
      subs.push(s);
      return json(res, 200, { data: { webhookSubscriptionCreate: { webhookSubscription: node(s), userErrors: [] } } });
    }
    if (op === "webhookSubscriptionUpdate") {
      const s = subs.find((x) => x.id === variables.id);
      if (!s) {
        return json(res, 200, { data: { webhookSubscriptionUpdate: { webhookSubscription: null, userErrors: [{ field: ["id"], message: "Webhook subscription does not exist" }] } } });
      }
      Object.assign(s, { uri: input.uri ?? s.uri, format: input.format ?? s.format });
      return json(res, 200, { data: { webhookSubscriptionUpdate: { webhookSubscription: node(s), userErrors: [] } } });
    }
    return json(res, 200, { errors: [{ message: "played Shopify does not know this operation" }] });
  });
  return { ...server, subscriptions: subs, operations };
}
