//! The Worker's settings: vars and secrets alike come from its environment.

use tiktok_edge_core::config::{Config, ConfigError};
use worker::Env;

/// One variable or secret, if set.
pub fn var(env: &Env, name: &str) -> Option<String> {
    env.var(name).ok().map(|v| v.to_string())
}

/// The whole configuration, parsed and validated.
pub fn config(env: &Env) -> Result<Config, ConfigError> {
    Config::from_lookup(&|name| var(env, name))
}
