//! Requests the Worker makes itself (to Durable Objects and TikTok), built straight on the
//! runtime's `Request`: worker's `Request::new_with_init` carries its whole `cf` options
//! serialiser into the wasm (~11 KB), and none of it is used here.

use worker::{web_sys, Headers, Request, Result};

/// A POST of `body` to `url` when there is one, else a GET; `headers` as given.
pub fn request(url: &str, body: Option<String>, headers: Option<&Headers>) -> Result<Request> {
    let init = web_sys::RequestInit::new();
    if let Some(body) = body {
        init.set_method("POST");
        init.set_body(&body.into());
    }
    if let Some(headers) = headers {
        init.set_headers(&headers.0);
    }
    Ok(web_sys::Request::new_with_str_and_init(url, &init)?.into())
}
