//! Small helpers for the answers the Worker itself writes (never for proxied responses).

use futures_util::StreamExt;
use serde::Serialize;
use tiktok_edge_core::cors::{self, Cors};
use worker::{Request, Response, Result};

use crate::failure::{Failure, Outcome};

/// A JSON answer that no cache keeps. Only the serialising is per type: the response is built
/// once, by [`json_text`] (`Response::from_json` built it again for every body type).
pub fn json<T: Serialize>(status: u16, body: &T) -> Result<Response> {
    json_text(status, serde_json::to_string(body)?)
}

/// A JSON answer whose body is JSON text already.
pub fn json_text(status: u16, body: String) -> Result<Response> {
    let resp = Response::from_bytes(body.into_bytes())?.with_status(status);
    resp.headers().set("Content-Type", "application/json")?;
    resp.headers().set("Cache-Control", "no-store")?;
    Ok(resp)
}

/// A JSON error `{"error": code, "message": ...}`.
pub fn error(status: u16, code: &str, message: &str) -> Result<Response> {
    json(
        status,
        &serde_json::json!({ "error": code, "message": message }),
    )
}

/// The request body, or a 413 refusal when it is (or declares itself) over `max` bytes. The
/// limit holds while the body streams in: reading stops at the first chunk past it, whether
/// or not the request said how long it was.
pub async fn body_within(req: &mut Request, max: usize) -> Outcome<Vec<u8>> {
    let too_large = || {
        Failure::refused(
            413,
            "too_large",
            format!("bodies here are limited to {max} bytes"),
        )
    };
    let declared = req
        .headers()
        .get("Content-Length")?
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > max) {
        return Err(too_large());
    }
    if req.inner().body().is_none() {
        return Ok(Vec::new());
    }
    let mut body = Vec::new();
    let mut chunks = req.stream()?;
    while let Some(chunk) = chunks.next().await {
        let Ok(chunk) = chunk else {
            // The client went away mid-body: its answer, for the record, is a 4xx.
            return Err(Failure::refused(
                400,
                "body_unreadable",
                "the request body ended abruptly",
            ));
        };
        if body.len() + chunk.len() > max {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The shop's origin as the browser sees it (scheme, host and port of this request).
pub fn shop_origin(req: &Request) -> Result<String> {
    Ok(tiktok_edge_core::urls::origin_of(&req.inner().url()).to_string())
}

/// The CORS decision for a call to a browser endpoint.
pub fn cors_of(req: &Request) -> Result<Cors> {
    let origin = req.headers().get("Origin")?;
    Ok(cors::check(origin.as_deref(), &shop_origin(req)?))
}

/// `resp` with the CORS headers for `allowed` (a preflight answer when `preflight`).
pub fn with_cors(resp: Response, allowed: &Cors, preflight: bool) -> Result<Response> {
    if let Cors::Allow(origin) = allowed {
        for (name, value) in cors::headers(origin, preflight) {
            resp.headers().set(name, &value)?;
        }
    }
    Ok(resp)
}

/// The HTTP answer of an outcome (`T`: a `worker::Response`, or the runtime's own
/// `web_sys::Response` at the router).
pub fn answer<T: From<Response>>(outcome: Outcome<T>) -> worker::Result<T> {
    match outcome {
        Ok(resp) => Ok(resp),
        Err(Failure::Refused {
            status,
            code,
            message,
        }) => error(status, code, &message).map(T::from),
        Err(Failure::Unusable(reason)) => error(400, "unusable", &reason).map(T::from),
        Err(Failure::Runtime(e)) => Err(e),
    }
}
