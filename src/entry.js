// The Worker's entry (wrangler's `main`). Most requests on a storefront are the shop's own
// assets; entering the wasm Worker costs each of them its fixed price (the request, env and
// context taken through wasm-bindgen, the async machinery), measured at 1.07-1.10x a plain
// JavaScript passthrough for a Worker that only forwards. So the shop's traffic is forwarded
// here, and only what may be a page goes into the wasm (BENCHMARKS.md, "Passthrough").
//
// Every decision stays in Rust: `passthroughTarget` (routes, settings, ORIGIN_URL) says whether
// a request is the shop's and where it goes; `serveShop` decides what a page gets. The one test
// made here, "the content type does not mention html", only lets through what can never be a
// page; anything else is handed to Rust with the origin's pending response.
import RustWorker, { EventQueue, ShopState } from "../build/index.js";

export { EventQueue, ShopState };

export default class Worker extends RustWorker {
  async fetch(request) {
    const target = this.passthroughTarget(request.url, this.env);
    if (target === undefined) return super.fetch(request);
    // Redirects are returned as they are; a fetch that throws at once counts as failed.
    const origin = (async () => fetch(target, { method: request.method, headers: request.headers, body: request.body, redirect: "manual" }))();
    const response = await origin.catch(() => undefined);
    if (response && !/html/i.test(response.headers.get("content-type") ?? "")) return response;
    return this.serveShop(request, origin, this.env, this.ctx);
  }
}
