//! The shop's HTML page on its way out (`src/page.js`): Set-Cookie lines added and the pixel's
//! script tag put after the `<head>` start tag, in one copy of the response. Only the bytes up
//! to that tag are read; the rest of the page is piped natively, so no chunk of it enters the
//! wasm and the wasm carries no HTML parser.

use wasm_bindgen::prelude::*;
use worker::{web_sys, Result};

#[wasm_bindgen(module = "/src/page.js")]
extern "C" {
    /// `cookies`: `Set-Cookie` values, one per line (a value never holds a line break);
    /// `tag`: the markup for `<head>`, or empty.
    #[wasm_bindgen(js_name = rewritePage, catch)]
    fn rewrite_page(
        response: web_sys::Response,
        cookies: &str,
        tag: &str,
    ) -> std::result::Result<web_sys::Response, JsValue>;
}

/// `resp` with `cookies` set and, when given, `head_tag` at the start of its `<head>`.
pub fn rewrite(
    resp: web_sys::Response,
    cookies: &[String],
    head_tag: Option<&str>,
) -> Result<web_sys::Response> {
    if cookies.is_empty() && head_tag.is_none() {
        return Ok(resp);
    }
    Ok(rewrite_page(
        resp,
        &cookies.join("\n"),
        head_tag.unwrap_or(""),
    )?)
}
