//! The one way the shell logs: [`event`] writes `tiktok_edge_core::log::line` (valid JSON, one
//! object per line) to the runtime's console, where Workers Logs and `wrangler tail` read it.

use serde_json::Value;
use worker::{console_error, console_log};

/// How the runtime files a line.
pub enum Level {
    Info,
    /// Something failed that an operator may need to fix.
    Error,
}

/// Logs event `name` with `fields` (never customer data: ids, counts, reasons, errors).
pub fn event(level: Level, name: &str, fields: &[(&str, Value)]) {
    let line = tiktok_edge_core::log::line(name, fields);
    match level {
        Level::Info => console_log!("{line}"),
        Level::Error => console_error!("{line}"),
    }
}
