//! `cargo run -q -p tiktok-edge-core --bin check-settings < settings.json`: the Worker's own
//! judgement of a set of settings (a JSON object of name → value), printed as the `/tt/health`
//! report the Worker would give with them. `npm run deploy` asks it before anything is
//! created or uploaded, so a value the Worker would refuse is refused there, by the same rules.

use std::collections::HashMap;
use std::io::Read;
use std::process::ExitCode;

use tiktok_edge_core::config::Config;
use tiktok_edge_core::health::Health;

fn main() -> ExitCode {
    let mut input = String::new();
    let settings: HashMap<String, String> = match std::io::stdin()
        .read_to_string(&mut input)
        .map_err(|e| e.to_string())
        .and_then(|_| serde_json::from_str(&input).map_err(|e| e.to_string()))
    {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("check-settings: expected a JSON object of setting names to strings: {e}");
            return ExitCode::from(2);
        }
    };
    let lookup = |name: &str| settings.get(name).cloned();
    let health = Health::new(&lookup, &Config::from_lookup(&lookup));
    match serde_json::to_string(&health) {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("check-settings: {e}");
            ExitCode::from(2)
        }
    }
}
