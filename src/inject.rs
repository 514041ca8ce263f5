//! Streaming injection of the pixel's script tag into HTML pages, by the runtime's own
//! HTMLRewriter (lol-html inside workerd): the page streams through chunk by chunk, never
//! buffered, and the wasm carries no HTML parser of its own.

use wasm_bindgen::prelude::*;
use worker::{web_sys, Response};

#[wasm_bindgen(inline_js = "
export function prependToHead(response, html) {
  return new HTMLRewriter()
    .on('head', { element(head) { head.prepend(html, { html: true }); } })
    .transform(response);
}")]
extern "C" {
    #[wasm_bindgen(js_name = prependToHead, catch)]
    fn prepend_to_head(
        response: web_sys::Response,
        html: &str,
    ) -> Result<web_sys::Response, JsValue>;
}

/// `resp` with `html` at the start of its `<head>`; pages without one pass unchanged.
pub fn into_head(resp: Response, html: &str) -> worker::Result<Response> {
    let rewritten = prepend_to_head(resp.into(), html)?;
    Ok(Response::from(rewritten))
}
