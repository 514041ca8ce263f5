//! The Worker's settings: vars and secrets alike come from its environment.

use std::cell::OnceCell;
use tiktok_edge_core::config::{Config, ConfigError};
use worker::Env;

thread_local! {
    /// The settings, read and validated once per isolate: an isolate's environment never
    /// changes (new vars or secrets deploy a new version, in new isolates), and reading ~25
    /// of them through the JavaScript boundary on every request was most of the fixed cost
    /// of a passthrough.
    static CONFIG: OnceCell<Result<Config, ConfigError>> = const { OnceCell::new() };
}

/// One variable or secret, if set.
pub fn var(env: &Env, name: &str) -> Option<String> {
    env.var(name).ok().map(|v| v.to_string())
}

/// The whole configuration, parsed and validated.
pub fn config(env: &Env) -> Result<Config, ConfigError> {
    with_config(env, Result::clone)
}

/// `f` of the configuration, without a copy of it (the passthrough asks on every request).
pub fn with_config<T>(env: &Env, f: impl FnOnce(&Result<Config, ConfigError>) -> T) -> T {
    CONFIG.with(|c| f(c.get_or_init(|| Config::from_lookup(&|name| var(env, name)))))
}
