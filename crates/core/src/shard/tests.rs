//! The sequences `tests/delivery.test.mjs` plays in workerd, replayed on the engine over the
//! in-memory store with TikTok played, in milliseconds; and a property over any interleaving.

use super::memory::Memory;
use super::*;
use crate::queue::{HoldPolicy, Limit, MINUTE_LIMIT_PAUSE_MS};
use crate::session::Browser;
use crate::tiktok::{Properties, User};
use proptest::strategy::Strategy;
use std::collections::BTreeMap;

const T0: i64 = 1_800_000_000_000;
const POISON: &str = "vc:poison";
const TOKEN_REFUSED: &str = "Access token is invalid or has expired";

/// The settings of the delivery tests, `extra` first (an empty value unsets one).
fn config(extra: &[(&str, &str)]) -> Config {
    let mut vars = extra.to_vec();
    vars.extend_from_slice(&[
        ("TIKTOK_PIXEL_ID", "PIXEL"),
        ("TIKTOK_ACCESS_TOKEN", "token"),
        ("RETRY_BASE_MS", "200"),
    ]);
    let lookup = move |k: &str| {
        vars.iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.to_string())
    };
    Config::from_lookup(&lookup).expect("valid test settings")
}

fn hold() -> HoldPolicy {
    HoldPolicy {
        purchase_event: "Purchase".into(),
        wait_ms: 90_000,
        send_unconfirmed_purchases: false,
    }
}

fn event(name: &str, id: &str) -> Event {
    Event {
        event: name.into(),
        event_time: T0 / 1000,
        event_id: id.into(),
        user: User {
            browser: Browser {
                ttp: Some("ttp-1".into()),
                ..Browser::default()
            },
            ..User::default()
        },
        properties: Properties::default(),
        page: None,
        limited_data_use: None,
    }
}

/// How the played TikTok answers one request (`None`: as TikTok does when all is well).
type Trouble = Box<dyn FnMut(usize, &[String], i64) -> Option<(Option<u16>, String)>>;

fn answer(code: i64, message: &str) -> (Option<u16>, String) {
    let body = format!(r#"{{"code":{code},"message":"{message}","request_id":"r","data":{{}}}}"#);
    (Some(200), body)
}

/// A shard with TikTok played: TikTok keeps the first copy of each event_id (later ones are
/// dropped, answered 0), refuses a whole batch with 40002 for the poisoned event or answers
/// 20001 and keeps the others, in turn.
struct Sim {
    store: Memory,
    now: i64,
    config: Config,
    trouble: Trouble,
    requests: usize,
    /// event_id → copies TikTok was handed that it kept (the first) or dropped as repeats.
    kept: BTreeMap<String, u32>,
    sizes: Vec<usize>,
    mirror: Option<Option<Pause>>,
}

impl Sim {
    fn new(config: Config) -> Sim {
        Sim {
            store: Memory::default(),
            now: T0,
            config,
            trouble: Box::new(|_, _, _| None),
            requests: 0,
            kept: BTreeMap::new(),
            sizes: Vec::new(),
            mirror: None,
        }
    }

    fn offer(
        &mut self,
        source: Source,
        proof: Proof,
        events: Vec<Event>,
    ) -> Option<EnqueueSummary> {
        let call = Enqueue {
            source,
            hold: hold(),
            proof,
            events,
            pixels: crate::queue::the_one_pixel(),
        };
        let max = max_rows(Some(&self.config));
        enqueue(&mut self.store, &call, max, self.now).unwrap()
    }

    fn view(&mut self, id: &str) -> bool {
        let summary = self.offer(
            Source::Browser,
            Proof::default(),
            vec![event("ViewContent", id)],
        );
        summary.unwrap().accepted == 1
    }

    fn tiktok(&mut self, body: &str) -> (Option<u16>, String) {
        self.requests += 1;
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        let ids: Vec<String> = body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["event_id"].as_str().unwrap().to_string())
            .collect();
        assert!(ids.len() <= tiktok::MAX_BATCH);
        self.sizes.push(ids.len());
        for id in &ids {
            let row = self.store.rows.iter().find(|r| &r.event_id == id).unwrap();
            assert_ne!(row.state, RowState::Sent, "{id} was sent already");
        }
        if let Some(special) = (self.trouble)(self.requests, &ids, self.now) {
            return special;
        }
        let keep: Vec<&String> = ids.iter().filter(|id| *id != POISON).collect();
        let poisoned = keep.len() < ids.len();
        if poisoned && self.requests.is_multiple_of(2) {
            return answer(40002, &format!("Invalid value for event_id {POISON}"));
        }
        for id in keep {
            *self.kept.entry(id.clone()).or_default() += 1;
        }
        if poisoned {
            answer(20001, "Partial success: 1 event failed")
        } else {
            answer(0, "OK")
        }
    }

    /// One alarm: cleanup, then a flush of what is due; the steps TikTok's answers brought.
    fn alarm(&mut self) -> Vec<Step> {
        clean_up(&mut self.store, self.now).unwrap();
        let Start::Send(mut flush) =
            super::flush(&mut self.store, Some(&self.config), self.now).unwrap()
        else {
            return Vec::new();
        };
        let mut steps = Vec::new();
        while let Some(post) = flush.next_request() {
            let (status, text) = self.tiktok(&post.body);
            let step = flush
                .answer(&mut self.store, status, &text, self.now, 0.5)
                .unwrap();
            steps.push(step);
        }
        if let Some((_, pause)) = flush.mirror.0.iter().find(|(p, _)| p.is_empty()) {
            self.mirror = Some(pause.clone());
        }
        steps
    }

    fn next_alarm(&self) -> Option<i64> {
        next_alarm(&self.store, false, self.now).unwrap()
    }

    /// Alarms as they fall due, until nothing is pending (or `limit` alarms passed).
    fn drain(&mut self, limit: usize) {
        for _ in 0..limit {
            if self.store.depth().unwrap() == 0 {
                return;
            }
            let at = self
                .next_alarm()
                .expect("an alarm while events are pending");
            self.now = self.now.max(at);
            self.alarm();
        }
        panic!("not drained after {limit} alarms: {:?}", self.store.rows);
    }

    /// The operator's re-send, then alarms until it is all out; how many went back.
    fn resend_and_drain(&mut self, filter: &Resend) -> u64 {
        let requeued = resend(&mut self.store, filter, self.now).unwrap().requeued;
        self.drain(10);
        requeued
    }

    fn row(&self, id: &str) -> &Row {
        self.store.rows.iter().find(|r| r.event_id == id).unwrap()
    }

    fn pause(&self) -> Option<Pause> {
        pause(&self.store, "").unwrap()
    }
}

#[test]
fn an_accepted_event_is_due_at_once_and_leaves_alone() {
    let mut sim = Sim::new(config(&[]));
    assert!(sim.view("vc:1"));
    assert_eq!(sim.next_alarm(), Some(T0), "the alarm is due now");
    assert_eq!(sim.alarm(), vec![Step::MarkSent]);
    assert_eq!(sim.sizes, vec![1], "not held back to form a batch");
    assert_eq!(sim.row("vc:1").state, RowState::Sent);
    assert_eq!(sim.row("vc:1").event, None, "the sent copy is dropped");
    assert_eq!(
        sim.row("vc:1").match_keys,
        "ttp",
        "its keys stay for the figures"
    );
}

#[test]
fn batches_form_only_from_backlog_and_never_above_a_thousand() {
    let mut sim = Sim::new(config(&[]));
    for i in 0..2_500 {
        sim.view(&format!("vc:{i}"));
    }
    sim.alarm();
    assert_eq!(
        sim.sizes,
        vec![1_000],
        "one batch per alarm, at TikTok's limit"
    );
    sim.drain(10);
    assert_eq!(sim.sizes, vec![1_000, 1_000, 500]);
    assert_eq!(sim.kept.len(), 2_500);
}

#[test]
fn chaos_every_accepted_event_reaches_tiktok_once_and_the_poisoned_one_fails_with_its_message() {
    let mut sim = Sim::new(config(&[]));
    let mut revoked_until = 0;
    sim.trouble = Box::new(move |n, _, now| {
        if n == 4 {
            revoked_until = now + 1_500;
        }
        if now < revoked_until {
            return Some(answer(40105, TOKEN_REFUSED));
        }
        match n % 7 {
            0 => Some((Some(500), "<html>bad gateway</html>".into())),
            1 => Some((None, String::new())), // no answer in time
            2 => Some(answer(
                40100,
                "Too many requests. Please retry in some time.",
            )),
            5 => Some(answer(50002, "SYS_TIMEOUT")),
            _ => None,
        }
    });
    let mut accepted: Vec<String> = Vec::new();
    let mut views: Vec<String> = (0..40).map(|i| format!("vc:chaos-{i}")).collect();
    views.push(POISON.into());
    for round in 0..3 {
        for id in views.drain(..views.len().min(14)) {
            if sim.view(&id) {
                accepted.push(id);
            }
            // Alarms fire between the copies; a restart loses nothing but the flush in hand.
            sim.now += 37;
            if round == 1 {
                let restarted = sim.store.clone();
                sim.alarm();
                sim.store = restarted;
            } else {
                sim.alarm();
            }
        }
    }
    sim.drain(500);
    let poisoned = sim.row(POISON);
    assert_eq!(poisoned.state, RowState::Failed);
    let error = poisoned.last_error.clone().unwrap();
    assert!(
        error.starts_with("TikTok code 40002: ") || error.starts_with("TikTok code 20001: "),
        "{error}"
    );
    accepted.retain(|id| id != POISON);
    assert_eq!(sim.kept.keys().cloned().collect::<Vec<_>>(), {
        let mut a = accepted.clone();
        a.sort();
        a
    });
    assert!(accepted
        .iter()
        .all(|id| sim.row(id).state == RowState::Sent));
    assert_eq!(sim.pause(), None, "the token works again: not paused");
    assert_eq!(sim.mirror, Some(None), "and /tt/health hears of it");
}

#[test]
fn a_token_refused_for_a_minute_pauses_checks_one_at_a_time_and_every_event_arrives_once() {
    let mut sim = Sim::new(config(&[("RETRY_BASE_MS", "1000")]));
    let revoked_until = T0 + 60_000;
    sim.trouble =
        Box::new(move |_, _, now| (now < revoked_until).then(|| answer(40105, TOKEN_REFUSED)));
    let ids: Vec<String> = (0..12).map(|i| format!("vc:revoked-{i}")).collect();
    for id in &ids {
        assert!(sim.view(id));
        // Shoppers keep browsing: an event every 5 s, alarms as they fall due.
        let until = sim.now + 5_000;
        while let Some(at) = sim.next_alarm().filter(|&at| at <= until) {
            sim.now = sim.now.max(at);
            sim.alarm();
        }
        sim.now = until;
    }
    let paused = sim.pause().expect("paused");
    assert!(
        paused.reason.contains("40105")
            && paused
                .reason
                .contains("wrangler secret put TIKTOK_ACCESS_TOKEN")
    );
    assert_eq!(
        sim.mirror,
        Some(Some(paused.clone())),
        "/tt/health hears of it"
    );
    assert_eq!(
        health(&sim.store, &crate::queue::the_one_pixel())
            .unwrap()
            .pauses
            .get("")
            .cloned(),
        Some(paused)
    );
    assert!(
        sim.store
            .rows
            .iter()
            .all(|r| r.state != RowState::Failed && r.attempts == 0),
        "nothing fails, no attempt counted"
    );
    assert!(sim.kept.is_empty());
    sim.drain(100);
    assert_eq!(sim.kept.keys().cloned().collect::<Vec<_>>(), {
        let mut a = ids.clone();
        a.sort();
        a
    });
    assert!(sim.kept.values().all(|&n| n == 1), "each sent once");
    let refused = sim.sizes.iter().take_while(|&&n| n == 1).count();
    assert!(
        refused > 3,
        "the paused shard kept checking, one event at a time"
    );
    assert_eq!(sim.pause(), None);
    assert_eq!(sim.mirror, Some(None));
}

#[test]
fn outages_retry_with_backoff_and_give_up_after_48_hours_with_the_reason() {
    let mut sim = Sim::new(config(&[]));
    sim.trouble = Box::new(|_, _, _| Some((Some(503), String::new())));
    sim.view("vc:1");
    sim.alarm();
    let row = sim.row("vc:1").clone();
    assert_eq!((row.state, row.attempts), (RowState::Retrying, 1));
    assert_eq!(row.last_error.as_deref(), Some("HTTP 503"));
    assert_eq!(row.next_attempt_at, T0 + 150, "base 200 ms with jitter 0.5");
    sim.drain(1_000);
    let row = sim.row("vc:1");
    assert_eq!(row.state, RowState::Failed);
    assert_eq!(
        row.last_error.as_deref(),
        Some("gave up after 48 h: HTTP 503")
    );
    assert!(sim.now <= T0 + 48 * 3_600_000);
}

#[test]
fn tiktok_s_throttle_rules_next_second_then_five_minutes_or_midnight_never_an_attempt() {
    let mut sim = Sim::new(config(&[]));
    let mut throttled = 3;
    sim.trouble = Box::new(move |_, _, _| {
        (throttled > 0).then(|| {
            throttled -= 1;
            answer(40100, "Too many requests. Please retry in some time.")
        })
    });
    sim.now = T0 + 250;
    sim.view("vc:1");
    sim.view("vc:2");
    sim.alarm();
    // The per-second limit: the next second, for the whole shard.
    let pause = sim.pause().unwrap();
    assert_eq!(
        (pause.limit, pause.next_check_ms),
        (Some(Limit::Second), T0 + 1_000)
    );
    assert_eq!(sim.next_alarm(), Some(T0 + 1_000));
    assert_eq!(
        sim.mirror, None,
        "a one-second throttle is not written to KV"
    );
    assert!(sim
        .store
        .rows
        .iter()
        .all(|r| r.attempts == 0 && r.state == RowState::Queued));
    sim.now = T0 + 1_000;
    sim.alarm();
    assert_eq!(sim.pause().unwrap().next_check_ms, T0 + 2_000);
    // The third within a minute: the per-minute limit, five minutes.
    sim.now = T0 + 2_000;
    sim.alarm();
    let pause = sim.pause().unwrap();
    assert_eq!(
        (pause.limit, pause.next_check_ms),
        (Some(Limit::Minute), T0 + 2_000 + MINUTE_LIMIT_PAUSE_MS)
    );
    assert_eq!(
        pause.since_ms,
        T0 + 250,
        "one pause since the first throttle"
    );
    assert!(
        pause.reason.contains("40100") && pause.reason.contains("five minutes"),
        "{}",
        pause.reason
    );
    assert_eq!(sim.mirror, Some(Some(pause.clone())), "shown in /tt/health");
    assert_eq!(
        stats(&sim.store, 0, &crate::queue::the_one_pixel())
            .unwrap()
            .paused,
        Some(pause),
        "and on the admin page"
    );
    assert!(
        sim.store.rows.iter().all(|r| r.attempts == 0),
        "never an attempt toward 48 h"
    );
    sim.drain(10);
    assert_eq!(sim.kept.len(), 2);
    assert_eq!(sim.pause(), None);
    assert_eq!(sim.mirror, Some(None));

    // The daily limit, when TikTok's message says so: until 00:00 UTC.
    let mut sim = Sim::new(config(&[]));
    sim.trouble = Box::new(|n, _, _| (n == 1).then(|| answer(40100, "Daily limit reached")));
    sim.now = T0 + 5;
    sim.view("vc:1");
    sim.alarm();
    let pause = sim.pause().unwrap();
    let midnight = (T0 / 86_400_000 + 1) * 86_400_000;
    assert_eq!(
        (pause.limit, pause.next_check_ms),
        (Some(Limit::Day), midnight)
    );
    assert_eq!(sim.next_alarm(), Some(midnight));
}

#[test]
fn throttles_spread_over_more_than_a_minute_stay_per_second() {
    let mut recent = Vec::new();
    assert_eq!(Limit::after(&mut recent, false, 0), Limit::Second);
    assert_eq!(Limit::after(&mut recent, false, 30_000), Limit::Second);
    assert_eq!(
        Limit::after(&mut recent, false, 61_000),
        Limit::Second,
        "the first one is a minute old"
    );
    assert_eq!(Limit::after(&mut recent, false, 62_000), Limit::Minute);
    assert_eq!(Limit::after(&mut Vec::new(), true, 62_000), Limit::Day);
    assert_eq!(Limit::Second.until(1_999), 2_000);
    assert_eq!(Limit::Second.until(2_000), 3_000);
}

#[test]
fn a_full_shard_refuses_browser_copies_at_the_door_and_webhooks_only_when_its_half_is_full() {
    let mut sim = Sim::new(config(&[("QUEUE_SHARD_MAX_ROWS", "4")]));
    sim.trouble = Box::new(|_, _, _| Some((Some(503), String::new())));
    assert!(sim.view("vc:1") && sim.view("vc:2"));
    let third = sim.offer(
        Source::Browser,
        Proof::default(),
        vec![event("ViewContent", "vc:3")],
    );
    assert_eq!(third.unwrap().no_room, 1, "browser copies hold half");
    let signed = |id: &str| vec![event("Purchase", id)];
    let one = Proof::of(["chk"], []);
    assert_eq!(
        sim.offer(Source::Webhook, one.clone(), signed("o:1"))
            .unwrap()
            .accepted,
        1
    );
    assert_eq!(
        sim.offer(Source::Webhook, one.clone(), signed("o:2"))
            .unwrap()
            .accepted,
        1
    );
    assert_eq!(
        sim.offer(Source::Webhook, one.clone(), signed("o:3")),
        None,
        "Shopify redelivers"
    );
    assert_eq!(
        stats(&sim.store, 0, &crate::queue::the_one_pixel())
            .unwrap()
            .no_room,
        NoRoom {
            browser: 1,
            webhook: 1
        }
    );
    // Once sent, finished rows make room: the redelivery is accepted.
    sim.trouble = Box::new(|_, _, _| None);
    sim.drain(10);
    assert_eq!(
        sim.offer(Source::Webhook, one, signed("o:3"))
            .unwrap()
            .accepted,
        1
    );
    assert_eq!(
        sim.store.rows.len(),
        1,
        "the oldest finished rows (a chunk) made room"
    );
    sim.drain(10);
    assert_eq!(sim.kept.len(), 5, "none it accepted is lost");
}

#[test]
fn the_operator_re_sends_failed_events_by_filter() {
    let mut sim = Sim::new(config(&[]));
    sim.trouble = Box::new(|_, ids, _| {
        (ids.len() == 1 && ids[0].starts_with("vc:bad")).then(|| answer(40002, "Invalid value"))
    });
    for id in ["vc:bad-1", "vc:bad-2", "vc:ok"] {
        sim.view(id);
        sim.alarm();
    }
    assert_eq!(sim.row("vc:bad-1").state, RowState::Failed);
    sim.trouble = Box::new(|_, _, _| None);
    let only = Resend {
        error: Some("40002".into()),
        to_ms: Some(T0 + 1),
        ..Resend::default()
    };
    let done = resend(&mut sim.store, &only, sim.now).unwrap();
    assert_eq!(
        done,
        Resent {
            requeued: 2,
            changed: false
        }
    );
    assert_eq!(sim.next_alarm(), Some(sim.now));
    let none = Resend {
        error: Some("50002".into()),
        ..Resend::default()
    };
    assert_eq!(sim.resend_and_drain(&none), 0);
    assert_eq!(sim.kept.len(), 3);
}

#[test]
fn unconfirmed_purchases_go_only_with_the_preview_s_code() {
    let mut sim = Sim::new(config(&[]));
    let purchase = |id: &str| {
        let mut e = event("Purchase", id);
        e.properties.value = crate::money::Amount::parse("10.00");
        e.properties.currency = Some("EUR".into());
        e
    };
    sim.offer(
        Source::Browser,
        Proof::default(),
        vec![purchase("p:1"), purchase("p:2")],
    );
    assert_eq!(sim.row("p:1").state, RowState::Unconfirmed);
    let filter = Resend {
        state: Some("unconfirmed".into()),
        ..Resend::default()
    };
    let shown = preview(&sim.store, &filter).unwrap();
    assert_eq!(shown.count, 2);
    let wrong = Resend {
        confirm: Some("nope".into()),
        ..filter.clone()
    };
    assert_eq!(
        resend(&mut sim.store, &wrong, sim.now).unwrap(),
        Resent {
            requeued: 0,
            changed: true
        }
    );
    let right = Resend {
        confirm: Some(shown.confirm),
        ..filter
    };
    assert_eq!(sim.resend_and_drain(&right), 2);
    assert_eq!(sim.kept.len(), 2);
}

#[test]
fn a_refusal_meeting_each_state_stops_what_is_unsent_and_holds_unseen_keys() {
    let mut sim = Sim::new(config(&[]));
    sim.trouble = Box::new(|_, ids, _| match ids[0].as_str() {
        "s:retrying" => Some((Some(500), String::new())),
        "s:failed" => Some(answer(40002, "Invalid")),
        _ => None,
    });
    for (name, id) in [
        ("ViewContent", "s:sent"),
        ("ViewContent", "s:retrying"),
        ("ViewContent", "s:failed"),
    ] {
        sim.offer(Source::Browser, Proof::default(), vec![event(name, id)]);
        sim.alarm();
    }
    sim.offer(
        Source::Browser,
        Proof::default(),
        vec![event("ViewContent", "s:queued")],
    );
    sim.offer(
        Source::Browser,
        Proof::default(),
        vec![event("InitiateCheckout", "s:waiting")],
    );
    sim.offer(
        Source::Browser,
        Proof::default(),
        vec![event("Purchase", "s:unconfirmed")],
    );
    let ids = [
        "s:sent",
        "s:retrying",
        "s:failed",
        "s:queued",
        "s:waiting",
        "s:unconfirmed",
        "s:unseen",
    ];
    let states = |sim: &Sim, ids: &[&str]| -> Vec<RowState> {
        ids.iter().map(|id| sim.row(id).state).collect()
    };
    use RowState::*;
    assert_eq!(
        states(&sim, &ids[..6]),
        [Sent, Retrying, Failed, Queued, Waiting, Unconfirmed]
    );
    let keys = |ids: &[(&str, &str)]| {
        ids.iter()
            .map(|(n, i)| (n.to_string(), i.to_string()))
            .collect()
    };
    let refusal = Refuse {
        events: keys(&[
            ("ViewContent", "s:sent"),
            ("ViewContent", "s:retrying"),
            ("ViewContent", "s:failed"),
            ("ViewContent", "s:queued"),
            ("InitiateCheckout", "s:waiting"),
            ("Purchase", "s:unconfirmed"),
            ("Purchase", "s:unseen"),
        ]),
        ..Refuse::default()
    };
    refuse(&mut sim.store, &refusal, sim.now).unwrap();
    assert_eq!(
        states(&sim, &ids),
        [Sent, Refused, Failed, Refused, Refused, Refused, Refused]
    );
    assert!(sim
        .store
        .rows
        .iter()
        .filter(|r| r.state == Refused)
        .all(|r| r.event.is_none() && r.match_keys.is_empty()));
    // The signed copy arriving later for a refused key is stopped; nothing refused is sent.
    let late = sim.offer(
        Source::Webhook,
        Proof::of(["chk"], []),
        vec![event("Purchase", "s:unseen")],
    );
    assert_eq!(late.unwrap().refused, 1);
    sim.drain(100);
    assert!(!sim
        .kept
        .keys()
        .any(|id| ["s:queued", "s:waiting", "s:unconfirmed", "s:unseen"].contains(&id.as_str())));
}

#[test]
fn a_bound_refusal_stops_the_waiting_signed_copy_and_meets_a_later_one() {
    let mut sim = Sim::new(config(&[]));
    let proof = Proof::of(["chk-1"], []);
    sim.trouble = Box::new(|_, _, _| Some((Some(500), String::new())));
    sim.offer(
        Source::Webhook,
        proof.clone(),
        vec![event("Purchase", "o:1")],
    );
    sim.alarm();
    assert_eq!(sim.row("o:1").state, RowState::Retrying);
    let key = vec![
        ("Purchase".to_string(), "o:1".to_string()),
        ("Purchase".to_string(), "o:2".to_string()),
    ];
    let refusal = Refuse {
        bound: key,
        proof: proof.clone(),
        ..Refuse::default()
    };
    refuse(&mut sim.store, &refusal, sim.now).unwrap();
    assert_eq!(sim.row("o:1").state, RowState::Refused);
    let later = sim.offer(Source::Webhook, proof, vec![event("Purchase", "o:2")]);
    assert_eq!(later.unwrap().refused, 1);
    // Another order's signed copy (another proof) is not stopped.
    let other = sim.offer(
        Source::Webhook,
        Proof::of(["chk-2"], []),
        vec![event("Purchase", "o:3")],
    );
    assert_eq!(other.unwrap().accepted, 1);
}

#[test]
fn retention_deletes_finished_rows_after_seven_days_in_chunks_and_the_alarm_says_when() {
    let mut sim = Sim::new(config(&[]));
    for i in 0..(CLEANUP_CHUNK + 5) {
        sim.view(&format!("vc:{i}"));
    }
    sim.drain(5);
    assert_eq!(
        sim.next_alarm(),
        Some(T0 + RETENTION_MS),
        "at the oldest row's expiry"
    );
    sim.now = T0 + RETENTION_MS;
    assert!(
        !clean_up(&mut sim.store, sim.now).unwrap(),
        "not expired yet"
    );
    sim.now += 1;
    assert!(
        clean_up(&mut sim.store, sim.now).unwrap(),
        "a chunk, more left"
    );
    assert_eq!(sim.store.rows.len(), 5);
    assert_eq!(
        next_alarm(&sim.store, true, sim.now).unwrap(),
        Some(sim.now + 1_000)
    );
    assert!(!clean_up(&mut sim.store, sim.now).unwrap());
    assert!(sim.store.rows.is_empty());
    assert_eq!(sim.next_alarm(), None);
}

#[test]
fn without_a_token_events_are_kept_as_dry_run_and_without_settings_they_wait() {
    let lookup = |k: &str| (k == "RETRY_BASE_MS").then(|| "200".to_string());
    let mut sim = Sim::new(Config::from_lookup(&lookup).unwrap());
    sim.view("vc:1");
    assert!(matches!(
        super::flush(&mut sim.store, Some(&sim.config), sim.now),
        Ok(Start::DryRun(1))
    ));
    assert_eq!(sim.row("vc:1").state, RowState::DryRun);
    assert_eq!(sim.row("vc:1").attempts, 0);
    sim.view("vc:2");
    assert!(matches!(
        super::flush(&mut sim.store, None, sim.now),
        Ok(Start::Idle)
    ));
    assert_eq!(sim.next_alarm(), Some(T0 + CONFIG_RECHECK_MS));
}

#[test]
fn events_that_wait_out_a_week_long_pause_fail_saying_why() {
    let mut sim = Sim::new(config(&[]));
    sim.trouble = Box::new(|_, _, _| Some(answer(40105, TOKEN_REFUSED)));
    sim.view("vc:1");
    sim.view("vc:2");
    sim.alarm();
    sim.now += MAX_PAUSED_AGE_MS + 1;
    sim.alarm();
    assert_failed_saying(sim.row("vc:2"), "not sent within 7 days: TikTok code 40105");
}

/// `row` failed, its error saying `words`.
fn assert_failed_saying(row: &Row, words: &str) {
    assert_eq!(row.state, RowState::Failed);
    let error = row.last_error.as_deref().unwrap_or_default();
    assert!(error.contains(words), "{error}");
}

#[test]
fn stats_count_the_window_by_event_state_hour_and_key() {
    let mut sim = Sim::new(config(&[]));
    sim.view("vc:1");
    sim.now += 3_600_000;
    sim.view("vc:2");
    sim.alarm();
    let s = stats(&sim.store, T0 + 1, &crate::queue::the_one_pixel()).unwrap();
    assert_eq!(
        (s.events_in_window, s.count("ViewContent", RowState::Sent)),
        (1, 1)
    );
    let all = stats(&sim.store, 0, &crate::queue::the_one_pixel()).unwrap();
    assert_eq!(all.hourly.len(), 2);
    assert_eq!(all.match_keys.get("ttp"), Some(&2));
    assert_eq!(all.recent[0].event_id, "vc:2");
    assert_eq!(all.depth, 0);
}

/// What one step of an interleaving does.
#[derive(Debug, Clone)]
enum Move {
    /// A browser (false) or signed (true) copy of key n.
    Accept(bool, u8),
    /// The next request is answered so.
    Answer(u8),
    /// Time passes (ms), then the alarm fires.
    Alarm(u16),
    /// The object restarts in the middle of an alarm: the flush in hand is lost.
    Restart,
}

fn played(kind: u8) -> Option<(Option<u16>, String)> {
    match kind % 9 {
        0 => Some((Some(500), String::new())),
        1 => Some((None, String::new())),
        2 => Some(answer(
            40100,
            "Too many requests. Please retry in some time.",
        )),
        3 => Some(answer(40105, TOKEN_REFUSED)),
        4 => Some(answer(50002, "SYS_TIMEOUT")),
        5 => Some(answer(40100, "Daily limit reached")),
        _ => None,
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]
    /// For any interleaving of accepts, answers, alarms and restarts, once TikTok behaves
    /// again every accepted event ends sent exactly once or failed with TikTok's message, and
    /// nothing else.
    #[test]
    fn every_accepted_event_ends_sent_once_or_failed_with_tiktok_s_message(
        moves in proptest::collection::vec(
            proptest::prop_oneof![
                (proptest::bool::ANY, 0u8..12).prop_map(|(w, k)| Move::Accept(w, k)),
                (0u8..12).prop_map(Move::Answer),
                (0u16..5000).prop_map(Move::Alarm),
                proptest::strategy::Just(Move::Restart),
            ],
            0..60,
        )
    ) {
        use proptest::prelude::*;
        let answers = std::rc::Rc::new(std::cell::RefCell::new(std::collections::VecDeque::new()));
        let mut sim = Sim::new(config(&[]));
        let queued = answers.clone();
        sim.trouble = Box::new(move |_, _, _| queued.borrow_mut().pop_front().flatten());
        let mut accepted = std::collections::BTreeSet::new();
        for m in moves {
            match m {
                Move::Accept(signed, k) => {
                    let id = if k == 11 { POISON.to_string() } else { format!("k:{k}") };
                    let (source, proof) = if signed {
                        (Source::Webhook, Proof::of(["chk"], []))
                    } else {
                        (Source::Browser, Proof::default())
                    };
                    let s = sim.offer(source, proof, vec![event("ViewContent", &id)]).unwrap();
                    if s.accepted + s.merged > 0 {
                        accepted.insert(id);
                    }
                }
                Move::Answer(kind) => answers.borrow_mut().push_back(played(kind)),
                Move::Alarm(ms) => {
                    sim.now += i64::from(ms);
                    sim.alarm();
                }
                Move::Restart => {
                    let before = sim.store.clone();
                    sim.alarm();
                    sim.store = before;
                }
            }
        }
        answers.borrow_mut().clear();
        // TikTok behaves again: every alarm as it falls due (a daily throttle may wait a day).
        for _ in 0..2_000 {
            if sim.store.depth().unwrap() == 0 {
                break;
            }
            let at = sim.next_alarm().unwrap();
            sim.now = sim.now.max(at);
            sim.alarm();
        }
        prop_assert_eq!(sim.store.depth().unwrap(), 0);
        for id in &accepted {
            let row = sim.row(id);
            match row.state {
                RowState::Sent => prop_assert!(sim.kept.contains_key(id), "{} sent but not at TikTok", id),
                RowState::Failed => {
                    prop_assert_eq!(id.as_str(), POISON);
                    let error = row.last_error.clone().unwrap_or_default();
                    prop_assert!(error.starts_with("TikTok code 40002: ") || error.starts_with("TikTok code 20001: "), "{}", error);
                }
                other => prop_assert!(false, "{} ended {:?}", id, other),
            }
        }
        prop_assert!(!sim.kept.contains_key(POISON));
        // No row ends in a state nobody asked for, and TikTok kept nothing unaccepted.
        prop_assert!(sim.kept.keys().all(|id| accepted.contains(id)));
        prop_assert!(sim.store.rows.iter().all(|r| accepted.contains(&r.event_id)));
    }
}

/// A shop of three pixels, each with its own token (`ALL1`'s is the default one).
fn three_pixels() -> Config {
    config(&[
        (
            "TIKTOK_PIXELS",
            r#"[{"id":"ALL1"},{"id":"ALL2","token":"TOKEN_2","test_event_code":"T2"},{"id":"FR1","token":"TOKEN_FR","markets":["fr"]}]"#,
        ),
        ("TOKEN_2", "token-2"),
        ("TOKEN_FR", "token-fr"),
        ("TIKTOK_PIXEL_ID", ""),
    ])
}

/// One alarm over the three pixels, TikTok refusing `revoked`'s token: (pixel id, token,
/// test code, event ids) per request.
type Sent = Vec<(String, String, Option<String>, Vec<String>)>;
fn alarm_revoking(store: &mut Memory, config: &Config, revoked: &str, now: i64) -> Sent {
    let mut sent = Vec::new();
    let Start::Send(mut flush) = flush(store, Some(config), now).unwrap() else {
        return sent;
    };
    while let Some(post) = flush.next_request() {
        let body: serde_json::Value = serde_json::from_str(&post.body).unwrap();
        let pixel = body["event_source_id"].as_str().unwrap().to_string();
        let ids = body["data"].as_array().unwrap().iter();
        let ids = ids.map(|e| e["event_id"].as_str().unwrap().to_string());
        let code = body["test_event_code"].as_str().map(String::from);
        let (status, text) = if pixel == revoked {
            answer(40105, TOKEN_REFUSED)
        } else {
            answer(0, "OK")
        };
        sent.push((pixel, post.token.expose().to_string(), code, ids.collect()));
        flush.answer(store, status, &text, now, 0.5).unwrap();
    }
    sent
}

#[test]
fn each_pixel_gets_its_own_row_merged_and_sent_once_with_its_token() {
    let config = three_pixels();
    let mut store = Memory::default();
    let keys = |ks: &[&str]| ks.iter().map(|k| k.to_string()).collect::<Vec<_>>();
    let mut purchase = event("Purchase", "5001");
    purchase.properties.market_handle = "fr".into();
    let pixels = crate::pixels::route(
        &config.pixels,
        crate::pixels::market_of(&purchase),
        "Purchase",
    );
    assert_eq!(
        pixels.iter().map(|p| p.key.as_str()).collect::<Vec<_>>(),
        ["FR1"]
    );
    let call = |source, pixels: Vec<String>, events: Vec<Event>| Enqueue {
        source,
        hold: hold(),
        proof: Proof::default(),
        events,
        pixels,
    };
    let browser = call(
        Source::Browser,
        keys(&["ALL1", "ALL2"]),
        vec![event("ViewContent", "vc:1")],
    );
    let summary = enqueue(&mut store, &browser, MAX_SHARD_ROWS, T0)
        .unwrap()
        .unwrap();
    assert_eq!(summary.accepted, 2, "one row per pixel");
    let again = enqueue(&mut store, &browser, MAX_SHARD_ROWS, T0)
        .unwrap()
        .unwrap();
    assert_eq!((again.accepted, again.duplicates), (0, 2));
    let signed = call(Source::Webhook, keys(&["FR1"]), vec![purchase]);
    enqueue(&mut store, &signed, MAX_SHARD_ROWS, T0)
        .unwrap()
        .unwrap();
    assert_eq!(store.rows.len(), 3);

    let mut sent = alarm_revoking(&mut store, &config, "none", T0);
    sent.sort();
    assert_eq!(
        sent,
        vec![
            ("ALL1".into(), "token".into(), None, vec!["vc:1".into()]),
            (
                "ALL2".into(),
                "token-2".into(),
                Some("T2".into()),
                vec!["vc:1".into()]
            ),
            ("FR1".into(), "token-fr".into(), None, vec!["5001".into()]),
        ]
    );
    assert!(store.rows.iter().all(|r| r.state == RowState::Sent));
    assert!(
        alarm_revoking(&mut store, &config, "none", T0 + 1).is_empty(),
        "exactly once"
    );
}

#[test]
fn a_revoked_token_pauses_only_its_pixel() {
    let config = three_pixels();
    let mut store = Memory::default();
    let all = || {
        config
            .pixels
            .iter()
            .map(|p| p.key.clone())
            .collect::<Vec<_>>()
    };
    for (n, now) in [(1, T0), (2, T0 + 10)] {
        let call = Enqueue {
            source: Source::Browser,
            hold: hold(),
            proof: Proof::default(),
            events: vec![event("ViewContent", &format!("vc:{n}"))],
            pixels: all(),
        };
        enqueue(&mut store, &call, MAX_SHARD_ROWS, now)
            .unwrap()
            .unwrap();
        let sent = alarm_revoking(&mut store, &config, "ALL2", now);
        assert_eq!(sent.len(), if n == 1 { 3 } else { 2 }, "{sent:?}");
        assert!(
            sent.iter().all(|(p, ..)| n == 1 || p != "ALL2"),
            "paused: not tried again before its check"
        );
    }
    let paused = pause(&store, "ALL2").unwrap().expect("ALL2 paused");
    assert!(paused.reason.contains("40105"), "{}", paused.reason);
    assert_eq!(pause(&store, "ALL1").unwrap(), None);
    assert_eq!(pause(&store, "FR1").unwrap(), None);
    let state = |pixel: &str, id: &str| {
        let row = store
            .rows
            .iter()
            .find(|r| r.pixel == pixel && r.event_id == id)
            .unwrap();
        row.state
    };
    for id in ["vc:1", "vc:2"] {
        assert_eq!(state("ALL1", id), RowState::Sent);
        assert_eq!(state("FR1", id), RowState::Sent);
        assert_eq!(state("ALL2", id), RowState::Queued, "waits, not lost");
    }
    let health = health(&store, &all()).unwrap();
    assert_eq!(health.pauses.len(), 1);
    assert!(health.pauses.get("ALL2").is_some());

    // The token is replaced: the next check sends one event, then the rest goes at once.
    let check = paused.next_check_ms;
    let first = alarm_revoking(&mut store, &config, "none", check);
    assert_eq!(
        first.iter().map(|s| s.3.len()).sum::<usize>(),
        1,
        "{first:?}"
    );
    assert_eq!(pause(&store, "ALL2").unwrap(), None, "resumed");
    let rest = alarm_revoking(&mut store, &config, "none", check);
    assert_eq!(rest.iter().map(|s| s.3.len()).sum::<usize>(), 1, "{rest:?}");
    assert!(store.rows.iter().all(|r| r.state == RowState::Sent));
}

#[test]
fn a_refusal_stops_every_pixels_copy_and_rows_of_a_removed_pixel_fail_with_the_fix() {
    let config = three_pixels();
    let mut store = Memory::default();
    let pixels: Vec<String> = config.pixels.iter().map(|p| p.key.clone()).collect();
    let refusal = Refuse {
        events: vec![("InitiateCheckout".into(), "ic:chk".into())],
        pixels: pixels.clone(),
        ..Refuse::default()
    };
    refuse(&mut store, &refusal, T0).unwrap();
    let call = Enqueue {
        source: Source::Webhook,
        hold: hold(),
        proof: Proof::default(),
        events: vec![
            event("InitiateCheckout", "ic:chk"),
            event("ViewContent", "vc:9"),
        ],
        pixels: vec!["GONE".into(), "ALL1".into()],
    };
    let summary = enqueue(&mut store, &call, MAX_SHARD_ROWS, T0)
        .unwrap()
        .unwrap();
    // ALL1's checkout step is refused; GONE (not a pixel of the shop) holds no refusal.
    assert_eq!((summary.refused, summary.accepted), (1, 3), "{summary:?}");
    let sent = alarm_revoking(&mut store, &config, "none", T0);
    assert_eq!(
        sent,
        vec![("ALL1".into(), "token".into(), None, vec!["vc:9".into()])]
    );
    let gone = store
        .rows
        .iter()
        .find(|r| r.pixel == "GONE" && r.event_id == "vc:9")
        .unwrap();
    assert_failed_saying(gone, "no longer in TIKTOK_PIXELS");
}

#[test]
fn rows_of_the_single_pixel_settings_go_to_the_first_pixel_once_merging_and_refusable() {
    let mut store = Memory::default();
    let single = config(&[]);
    let call = |source, pixels: &[&str], events: Vec<Event>| Enqueue {
        source,
        hold: hold(),
        proof: Proof::default(),
        events,
        pixels: pixels.iter().map(|p| p.to_string()).collect(),
    };
    let before = call(
        Source::Browser,
        &[""],
        vec![
            event("ViewContent", "vc:a"),
            event("ViewContent", "vc:c"),
            event("InitiateCheckout", "ic:b"),
        ],
    );
    enqueue(&mut store, &before, MAX_SHARD_ROWS, T0)
        .unwrap()
        .unwrap();
    adopt(&mut store, &single).unwrap();
    assert!(store.rows.iter().all(|r| r.pixel.is_empty()), "unchanged");

    // TIKTOK_PIXELS is set: the shard starts with the new settings.
    let config = three_pixels();
    adopt(&mut store, &config).unwrap();
    assert!(store.rows.iter().all(|r| r.pixel == "ALL1"), "{store:?}");
    let again = call(
        Source::Browser,
        &["ALL1"],
        vec![event("ViewContent", "vc:a")],
    );
    let summary = enqueue(&mut store, &again, MAX_SHARD_ROWS, T0 + 1)
        .unwrap()
        .unwrap();
    assert_eq!((summary.accepted, summary.duplicates), (0, 1), "merged");
    let refusal = Refuse {
        events: vec![("InitiateCheckout".into(), "ic:b".into())],
        pixels: config.pixels.iter().map(|p| p.key.clone()).collect(),
        ..Refuse::default()
    };
    refuse(&mut store, &refusal, T0 + 2).unwrap();
    let sent = alarm_revoking(&mut store, &config, "none", T0 + 90_000);
    assert_eq!(
        sent,
        vec![(
            "ALL1".into(),
            "token".into(),
            None,
            vec!["vc:a".into(), "vc:c".into()]
        )]
    );
    assert!(alarm_revoking(&mut store, &config, "none", T0 + 200_000).is_empty());

    // A key the first pixel already holds keeps both rows; the old one still goes to it.
    let mut both = Memory::default();
    for pixel in ["", "ALL1"] {
        let copy = call(
            Source::Browser,
            &[pixel],
            vec![event("ViewContent", "vc:x")],
        );
        enqueue(&mut both, &copy, MAX_SHARD_ROWS, T0)
            .unwrap()
            .unwrap();
    }
    adopt(&mut both, &config).unwrap();
    let mut pixels: Vec<&str> = both.rows.iter().map(|r| r.pixel.as_str()).collect();
    pixels.sort();
    assert_eq!(pixels, ["", "ALL1"]);
    let sent = alarm_revoking(&mut both, &config, "none", T0);
    assert!(sent.iter().all(|(p, ..)| p == "ALL1"), "{sent:?}");
}
