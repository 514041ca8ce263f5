//! Requests the Worker makes itself (to Durable Objects and TikTok), built straight on the
//! runtime's `Request`: worker's `Request::new_with_init` carries its whole `cf` options
//! serialiser into the wasm (~11 KB), and none of it is used here.

use futures_util::future::Either;
use worker::{web_sys, AbortController, Delay, Env, Fetch, Headers, Request, Response, Result};

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

/// POSTs `body` to TikTok's `url` with the access token; `(None, …)` when no answer came
/// within `timeout_ms` (or the request could not be made).
pub async fn post_tiktok(
    url: &str,
    token: &str,
    body: String,
    timeout_ms: u64,
) -> (Option<u16>, String) {
    let headers = Headers::new();
    let set = headers
        .set("Content-Type", "application/json")
        .and_then(|()| headers.set("Access-Token", token));
    let request = match (set, request(url, Some(body), Some(&headers))) {
        (Ok(()), Ok(request)) => request,
        (Err(e), _) | (_, Err(e)) => return (None, e.to_string()),
    };
    let controller = AbortController::default();
    let signal = controller.signal();
    let send = async {
        let mut resp = Fetch::Request(request).send_with_signal(&signal).await?;
        let text = resp.text().await?;
        Ok::<_, worker::Error>((resp.status_code(), text))
    };
    let timeout = Delay::from(std::time::Duration::from_millis(timeout_ms));
    futures_util::pin_mut!(send, timeout);
    match futures_util::future::select(send, timeout).await {
        Either::Left((Ok((status, text)), _)) => (Some(status), text),
        Either::Left((Err(_), _)) => (None, String::new()),
        Either::Right(_) => {
            controller.abort();
            (None, String::new())
        }
    }
}
