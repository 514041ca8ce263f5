//! Small helpers for the answers the Worker itself writes (never for proxied responses).

use serde::Serialize;
use worker::{Response, Result};

/// A JSON answer that no cache keeps.
pub fn json<T: Serialize>(status: u16, body: &T) -> Result<Response> {
    let resp = Response::from_json(body)?.with_status(status);
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
