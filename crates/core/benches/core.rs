//! Native micro-benchmarks of the per-event work in core: an `orders/create` webhook parsed,
//! mapped to the purchase event and serialised; the match-key hashing alone; the HMAC check;
//! and the reference computation the order budget is measured against.
//!
//! `cargo bench -p tiktok-edge-core --bench core`. No benchmark framework: each case is warmed
//! up, then timed in RUNS runs of enough iterations to last about RUN_TARGET each; the figure is
//! the median ns per operation over the runs (min and max are printed to show the spread).
//! One line per case, `bench <name> median_ns=… min_ns=… max_ns=… runs=… iters=…`, which
//! bench/run.mjs reads into its table.

use std::hint::black_box;
use std::time::{Duration, Instant};

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::Sha256;
use tiktok_edge_core::hash::{hash_email, hash_phone};
use tiktok_edge_core::session::{Browser, Session};
use tiktok_edge_core::shopify::mapping::{self, MappingConfig};
use tiktok_edge_core::shopify::{hmac as shopify_hmac, Payload, Topic};

const WARM_UP: Duration = Duration::from_millis(300);
const RUN_TARGET: Duration = Duration::from_millis(40);
const RUNS: usize = 15;
const SECRET: &str = "whsec-bench";
const FIXTURE: &str = include_str!("../../../tests/fixtures/shopify/order_create.json");

/// The fixture order with `lines` distinct line items (the fixture's one line, repeated with
/// new ids and quantities).
fn order_body(lines: u64) -> String {
    let mut order: Value = serde_json::from_str(FIXTURE).expect("the order fixture is JSON");
    let template = order["line_items"][0].clone();
    let items = (0..lines)
        .map(|i| {
            let mut line = template.clone();
            line["id"] = Value::from(14_000_000_000_000_000_001u64 + i);
            line["variant_id"] = Value::from(42_001_234_567_890_123u64 + i);
            line["product_id"] = Value::from(7_001_234_567_890u64 + i);
            line["quantity"] = Value::from(1 + i % 3);
            line
        })
        .collect();
    order["line_items"] = Value::Array(items);
    order.to_string()
}

/// The shell's per-webhook work for `orders/create`, minus I/O: parse, join the session the
/// edge stored with the order's own facts, build the purchase event, serialise it for the queue.
fn order_to_queued_event(body: &str, joined: &Session, config: &MappingConfig) -> String {
    let Ok(Payload::Order(order)) = Payload::parse(Topic::OrdersCreate, body) else {
        panic!("the benchmark order does not parse as orders/create");
    };
    let session = tiktok_edge_core::session::merge_sessions(
        Some(joined.clone()),
        mapping::session_from_order(&order),
    );
    let event = mapping::purchase(&order, &session, config, 1_764_000_000)
        .expect("the benchmark order is sendable");
    serde_json::to_string(&event).expect("an event serialises")
}

struct Measured {
    median_ns: f64,
    min_ns: f64,
    max_ns: f64,
    iters: u64,
}

/// Warms `op` up, then times RUNS runs of the same iteration count.
fn measure(mut op: impl FnMut()) -> Measured {
    let started = Instant::now();
    let mut warm_iters = 0u64;
    while started.elapsed() < WARM_UP {
        op();
        warm_iters += 1;
    }
    let per_op = WARM_UP.as_secs_f64() / warm_iters as f64;
    let iters = ((RUN_TARGET.as_secs_f64() / per_op) as u64).max(1);
    let mut per_run: Vec<f64> = (0..RUNS)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..iters {
                op();
            }
            t.elapsed().as_nanos() as f64 / iters as f64
        })
        .collect();
    per_run.sort_by(f64::total_cmp);
    Measured {
        median_ns: per_run[RUNS / 2],
        min_ns: per_run[0],
        max_ns: per_run[RUNS - 1],
        iters,
    }
}

fn report(name: &str, m: &Measured) {
    println!(
        "bench {name} median_ns={:.0} min_ns={:.0} max_ns={:.0} runs={RUNS} iters={}",
        m.median_ns, m.min_ns, m.max_ns, m.iters
    );
}

fn main() {
    let config = MappingConfig {
        purchase_event_name: "Purchase".to_string(),
        send_test_orders: false,
        default_country: Some("US".to_string()),
        excluded_sources: tiktok_edge_core::config::DEFAULT_EXCLUDED_SOURCES
            .iter()
            .map(|s| s.to_string())
            .collect(),
    };
    let joined = Session {
        browser: Browser {
            ttp: Some("01JY68AFXQXP2232M0V748XS0P_.tt.1".to_string()),
            ttclid: Some("E.C.P.bench".to_string()),
            ip: Some("203.0.113.50".to_string()),
            user_agent: Some("BenchBrowser/1.0".to_string()),
        },
        landing_url: Some("https://shop.example/products/demo-mug?ttclid=E.C.P.bench".to_string()),
        ..Session::default()
    };

    for lines in [1, 10, 100] {
        let body = order_body(lines);
        // What is timed must be the successful path: the event carries every line.
        let event: Value = serde_json::from_str(&order_to_queued_event(&body, &joined, &config))
            .expect("the queued event is JSON");
        assert_eq!(
            event["properties"]["contents"].as_array().map(Vec::len),
            Some(lines as usize),
            "the purchase event of a {lines}-line order"
        );
        let m = measure(|| {
            black_box(order_to_queued_event(black_box(&body), &joined, &config));
        });
        report(&format!("order_{lines}_lines_parse_map_serialise"), &m);
    }

    // The reference the 10-line budget is a ratio of (bench/run.mjs): the same body through
    // serde_json's generic Value and back, no model, no mapping. Same process, same profile,
    // so a slower machine or compiler setting moves both alike.
    let body = order_body(10);
    let m = measure(|| {
        let value: Value = serde_json::from_str(black_box(&body)).expect("JSON");
        black_box(serde_json::to_string(&value).is_ok());
    });
    report("reference_10_line_order_as_json_value", &m);

    // Where the 10-line figure goes: parsing, mapping (session join, hashing, contents), JSON.
    let Ok(Payload::Order(order)) = Payload::parse(Topic::OrdersCreate, &body) else {
        panic!("the 10-line order does not parse as orders/create");
    };
    let m = measure(|| {
        black_box(Payload::parse(Topic::OrdersCreate, black_box(&body)).is_ok());
    });
    report("order_10_lines_parse_only", &m);
    let map = || {
        let session = tiktok_edge_core::session::merge_sessions(
            Some(joined.clone()),
            mapping::session_from_order(&order),
        );
        mapping::purchase(&order, &session, &config, 1_764_000_000)
    };
    let event = map().expect("the 10-line order is sendable");
    let m = measure(|| {
        black_box(map().is_ok());
    });
    report("order_10_lines_map_only", &m);
    let m = measure(|| {
        black_box(serde_json::to_string(black_box(&event)).is_ok());
    });
    report("order_10_lines_serialise_only", &m);

    assert!(
        hash_email(" Buyer.Person@Example.com ").is_some()
            && hash_phone("(213) 373-4253", Some("US")).is_some()
    );
    let m = measure(|| {
        black_box(hash_email(black_box(" Buyer.Person@Example.com ")));
        black_box(hash_phone(
            black_box("(213) 373-4253"),
            black_box(Some("US")),
        ));
    });
    report("hash_email_and_phone", &m);

    let body = order_body(10);
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("any key length");
    mac.update(body.as_bytes());
    let header = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    assert!(shopify_hmac::verify(
        &[SECRET],
        body.as_bytes(),
        Some(&header)
    ));
    let m = measure(|| {
        black_box(shopify_hmac::verify(
            black_box(&[SECRET]),
            black_box(body.as_bytes()),
            black_box(Some(header.as_str())),
        ));
    });
    report("hmac_verify_10_line_order", &m);
}
