//! Requests the Worker makes itself (to Durable Objects and TikTok), built straight on the
//! runtime's `Request`: worker's `Request::new_with_init` carries its whole `cf` options
//! serialiser into the wasm (~11 KB), and none of it is used here.

use worker::{web_sys, Env, Headers, Request, Response, Result};

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

/// Operation `op` of the Durable Object named `name` in namespace `binding`: a POST of `body`
/// when there is one, else a GET. The clients `queue.rs` and `shop.rs` go through here.
pub async fn object(
    env: &Env,
    binding: &str,
    name: &str,
    op: &str,
    body: Option<String>,
) -> Result<Response> {
    let stub = env
        .durable_object(binding)?
        .id_from_name(name)?
        .get_stub()?;
    // Only the path (the operation) means anything to the object.
    stub.fetch_with_request(request(&format!("https://object/{op}"), body, None)?)
        .await
}
