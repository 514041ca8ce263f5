// The Worker's entry (wrangler's `main`). Most requests on a storefront are the shop's own
// assets; entering the wasm Worker costs each of them its fixed price (the request, env and
// context taken through wasm-bindgen, the async machinery), measured at 1.07-1.10x a plain
// JavaScript passthrough for a Worker that only forwards. So the shop's traffic is forwarded
// here, and only what may be a page goes into the wasm (BENCHMARKS.md, "Passthrough").
//
// The decisions stay in Rust: the settings, the routes and ORIGIN_URL give the plan applied
// below (`targetOf`), and `serveShop` decides what a page gets. The one test made here, "the
// content type does not mention html", only lets through what can never be a page; anything
// else is handed to Rust with the origin's answer.
import RustWorker, { EventQueue, ShopState } from "../build/index.js";

export { EventQueue, ShopState };

// The wasm's functions as worker-build put them on the entrypoint class, taken once: reading them
// through the instance's proxy wraps each in a new proxy per request. `fetch` below is still
// called through that proxy, which resets the wasm after a fatal error in any of them.
const { passthroughPlan, passthroughTarget, serveShop } = RustWorker.prototype;
if (![passthroughPlan, passthroughTarget, serveShop].every((f) => typeof f === "function")) {
  throw new Error("build/index.js lacks the wasm's passthrough functions: rebuild it with scripts/build.sh (worker-build 0.8.7 puts them on the entrypoint class)");
}

// [route prefix, origin or null] from Rust, once per isolate (its settings never change); false
// when the settings are invalid, and then every request is asked about.
let plan;

/** Where the shop's own request goes, or undefined when it is ours. Even a call into the wasm
 * costs an asset request measurably (BENCHMARKS.md), so the plan's common case is applied here:
 * a path that does not start with the prefix is the shop's, and goes to the origin with its path
 * and query (core's `routes::passthrough_target`). Whatever starts like the prefix (`/tt`,
 * `/tt/…`, a look-alike such as `/ttx`) is decided by Rust. */
function targetOf(url, env) {
  if (plan === undefined) plan = passthroughPlan(env) ?? false;
  const pathAndQuery = url.slice(url.indexOf("/", url.indexOf("//") + 2));
  if (!plan || pathAndQuery.startsWith(plan[0])) return passthroughTarget(url, env);
  return plan[1] === null ? url : plan[1] + pathAndQuery;
}

export default class Worker extends RustWorker {
  async fetch(request) {
    const target = targetOf(request.url, this.env);
    if (target === undefined) return super.fetch(request);
    // Redirects are returned as they are; what a failed fetch throws goes to Rust as its answer.
    let answer;
    try {
      answer = await fetch(target, { method: request.method, headers: request.headers, body: request.body, redirect: "manual" });
    } catch (thrown) {
      answer = thrown;
    }
    if (answer instanceof Response && !/html/i.test(answer.headers.get("content-type") ?? "")) return answer;
    try {
      return serveShop(request, answer, this.env, this.ctx);
    } catch (error) {
      // The shop's page matters more than tracking it: when the Worker's own part fails (a
      // missing binding, a bug), the page goes out as the origin sent it, while it still can.
      if (!(answer instanceof Response) || answer.bodyUsed || answer.body?.locked) throw error;
      console.error(JSON.stringify({ event: "page_untracked", error: String(error) }));
      return answer;
    }
  }
}
