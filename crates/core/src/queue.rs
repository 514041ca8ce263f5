//! The send queue's vocabulary, shared by the Worker and the `EventQueue` Durable Object.

use serde::{Deserialize, Serialize};

/// Shards of the send queue: events are spread over this many Durable Objects by key.
pub const SHARDS: u32 = 16;

/// Where an event is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowState {
    Queued,
    Retrying,
    Sent,
    Failed,
    /// Built and recorded without an access token; never sent.
    DryRun,
}

impl RowState {
    pub const ALL: [RowState; 5] = [
        RowState::Queued,
        RowState::Retrying,
        RowState::Sent,
        RowState::Failed,
        RowState::DryRun,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RowState::Queued => "queued",
            RowState::Retrying => "retrying",
            RowState::Sent => "sent",
            RowState::Failed => "failed",
            RowState::DryRun => "dry_run",
        }
    }
}

/// The queue's answer to an enqueue: how many events were new and how many it already had.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnqueueSummary {
    pub accepted: u32,
    pub duplicates: u32,
}

impl std::ops::AddAssign for EnqueueSummary {
    fn add_assign(&mut self, other: EnqueueSummary) {
        self.accepted += other.accepted;
        self.duplicates += other.duplicates;
    }
}

/// The Durable Object name of the shard holding `event_name`/`event_id`.
pub fn shard_name(event_name: &str, event_id: &str) -> String {
    shard_name_at(crate::tiktok::shard_of(
        &format!("{event_name}:{event_id}"),
        SHARDS,
    ))
}

/// The Durable Object name of shard number `index` (0..SHARDS).
pub fn shard_name_at(index: u32) -> String {
    format!("queue-{index}")
}

/// What to delete from the queue for a privacy webhook.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Forget {
    /// (event name, event_id) keys.
    pub events: Vec<(String, String)>,
    /// Visitors (`_ttp`) whose events all go.
    pub ttps: Vec<String>,
    /// Every event (shop/redact).
    pub everything: bool,
}

impl Forget {
    /// The fragment a stored payload contains when it carries `ttp` (payloads are serde_json
    /// output: no whitespace, the value JSON-escaped).
    pub fn ttp_fragment(ttp: &str) -> String {
        format!("\"ttp\":{}", serde_json::to_string(ttp).unwrap_or_default())
    }
}

/// Counts of one (event name, state) pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Count {
    pub event: String,
    pub state: String,
    pub count: u64,
}

/// A failure as the operator sees it: which event, and TikTok's (or the queue's) message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub event: String,
    pub event_id: String,
    pub error: String,
    pub at_ms: i64,
}

/// Events created in one UTC hour under one event name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HourCount {
    /// Start of the UTC hour, in ms since the Unix epoch (see `hour_start`).
    pub hour_ms: i64,
    pub event: String,
    pub count: u64,
}

/// One of the newest events, as the operator sees it: what was (or would be) sent, and which
/// match keys it carried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecentEvent {
    pub event: String,
    pub event_id: String,
    pub state: String,
    pub match_keys: Vec<String>,
    pub at_ms: i64,
}

/// What one shard reports, and what the admin view merges over all shards.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueStats {
    /// Events updated in the window, by name and state.
    pub counts: Vec<Count>,
    /// Events still waiting to be sent (queued or retrying), whatever their age.
    pub depth: u64,
    /// How many events in the window carried each match key, and how many events there were.
    pub match_keys: std::collections::BTreeMap<String, u64>,
    pub events_in_window: u64,
    pub last_failures: Vec<Failure>,
    /// Events created in the window, by UTC hour and event name, sorted by (hour, event).
    #[serde(default)]
    pub hourly: Vec<HourCount>,
    /// The newest events, newest first.
    #[serde(default)]
    pub recent: Vec<RecentEvent>,
}

/// Failures kept in a merged report.
pub const MAX_FAILURES: usize = 20;

/// Newest events kept in a merged report.
pub const MAX_RECENT: usize = 20;

pub const HOUR_MS: i64 = 3_600_000;

/// The start of the UTC hour holding `ms` (ms since the Unix epoch).
pub fn hour_start(ms: i64) -> i64 {
    ms - ms.rem_euclid(HOUR_MS)
}

impl QueueStats {
    /// Folds another shard's report into this one.
    pub fn merge(&mut self, other: QueueStats) {
        for c in other.counts {
            match self
                .counts
                .iter_mut()
                .find(|m| m.event == c.event && m.state == c.state)
            {
                Some(m) => m.count += c.count,
                None => self.counts.push(c),
            }
        }
        self.counts
            .sort_by(|a, b| (&a.event, &a.state).cmp(&(&b.event, &b.state)));
        self.depth += other.depth;
        for (key, n) in other.match_keys {
            *self.match_keys.entry(key).or_default() += n;
        }
        self.events_in_window += other.events_in_window;
        self.last_failures.extend(other.last_failures);
        self.last_failures
            .sort_by_key(|f| std::cmp::Reverse(f.at_ms));
        self.last_failures.truncate(MAX_FAILURES);
        for h in other.hourly {
            match self
                .hourly
                .iter_mut()
                .find(|m| m.hour_ms == h.hour_ms && m.event == h.event)
            {
                Some(m) => m.count += h.count,
                None => self.hourly.push(h),
            }
        }
        self.hourly
            .sort_by(|a, b| (a.hour_ms, &a.event).cmp(&(b.hour_ms, &b.event)));
        self.recent.extend(other.recent);
        self.recent.sort_by_key(|e| std::cmp::Reverse(e.at_ms));
        self.recent.truncate(MAX_RECENT);
    }

    /// The count for one event name and state (0 when absent).
    pub fn count(&self, event: &str, state: RowState) -> u64 {
        self.counts
            .iter()
            .filter(|c| c.event == event && c.state == state.as_str())
            .map(|c| c.count)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(event: &str, state: &str, count: u64) -> Count {
        Count {
            event: event.into(),
            state: state.into(),
            count,
        }
    }

    fn hour(hour_ms: i64, event: &str, count: u64) -> HourCount {
        HourCount {
            hour_ms,
            event: event.into(),
            count,
        }
    }

    fn recent(event_id: &str, at_ms: i64) -> RecentEvent {
        RecentEvent {
            event: "ViewContent".into(),
            event_id: event_id.into(),
            state: "sent".into(),
            match_keys: vec!["ttp".into()],
            at_ms,
        }
    }

    #[test]
    fn merge_sums_counts_keys_and_keeps_newest_failures() {
        let mut a = QueueStats {
            counts: vec![count("AddToCart", "sent", 2)],
            depth: 1,
            match_keys: [("ttp".to_string(), 2)].into(),
            events_in_window: 3,
            last_failures: vec![Failure {
                event: "A".into(),
                event_id: "1".into(),
                error: "e".into(),
                at_ms: 5,
            }],
            hourly: vec![hour(2 * HOUR_MS, "AddToCart", 2)],
            recent: vec![recent("old", 5)],
        };
        a.merge(QueueStats {
            counts: vec![
                count("AddToCart", "sent", 3),
                count("AddToCart", "failed", 1),
            ],
            depth: 2,
            match_keys: [("ttp".to_string(), 1), ("ip".to_string(), 4)].into(),
            events_in_window: 4,
            last_failures: vec![Failure {
                event: "B".into(),
                event_id: "2".into(),
                error: "e".into(),
                at_ms: 9,
            }],
            hourly: vec![
                hour(2 * HOUR_MS, "AddToCart", 3),
                hour(HOUR_MS, "ViewContent", 1),
                hour(2 * HOUR_MS, "AddPaymentInfo", 4),
            ],
            recent: vec![recent("new", 9)],
        });
        assert_eq!(a.count("AddToCart", RowState::Sent), 5);
        assert_eq!(a.count("AddToCart", RowState::Failed), 1);
        assert_eq!(a.count("ViewContent", RowState::Sent), 0);
        assert_eq!((a.depth, a.events_in_window), (3, 7));
        assert_eq!(a.match_keys["ttp"], 3);
        assert_eq!(a.last_failures[0].event, "B");
        assert_eq!(
            a.hourly,
            vec![
                hour(HOUR_MS, "ViewContent", 1),
                hour(2 * HOUR_MS, "AddPaymentInfo", 4),
                hour(2 * HOUR_MS, "AddToCart", 5),
            ]
        );
        let ids: Vec<_> = a.recent.iter().map(|e| e.event_id.as_str()).collect();
        assert_eq!(ids, ["new", "old"]);
    }

    #[test]
    fn merge_keeps_only_the_newest_recent_events() {
        let mut merged = QueueStats::default();
        for shard in 0..4 {
            merged.merge(QueueStats {
                recent: (0..10)
                    .map(|i| recent(&format!("{shard}-{i}"), shard * 10 + i))
                    .collect(),
                ..QueueStats::default()
            });
        }
        assert_eq!(merged.recent.len(), MAX_RECENT);
        assert_eq!(merged.recent[0].at_ms, 39);
        assert_eq!(merged.recent[MAX_RECENT - 1].at_ms, 20);
    }

    #[test]
    fn stats_without_hourly_or_recent_still_parse() {
        let old =
            r#"{"counts":[],"depth":0,"match_keys":{},"events_in_window":0,"last_failures":[]}"#;
        let stats: QueueStats = serde_json::from_str(old).unwrap();
        assert!(stats.hourly.is_empty() && stats.recent.is_empty());
    }

    #[test]
    fn hour_start_rounds_down_to_the_utc_hour() {
        assert_eq!(hour_start(2 * HOUR_MS + 59_999), 2 * HOUR_MS);
        assert_eq!(hour_start(2 * HOUR_MS), 2 * HOUR_MS);
        assert_eq!(hour_start(-1), -HOUR_MS);
    }

    #[test]
    fn ttp_fragment_matches_serialised_events() {
        let user = crate::tiktok::User {
            ttp: Some("A\"b_.tt.1".into()),
            ..Default::default()
        };
        let payload = serde_json::to_string(&user).unwrap();
        assert!(
            payload.contains(&Forget::ttp_fragment("A\"b_.tt.1")),
            "{payload}"
        );
        assert!(!payload.contains(&Forget::ttp_fragment("A")));
    }

    #[test]
    fn shard_names_are_stable() {
        assert_eq!(shard_name("AddToCart", "x"), shard_name("AddToCart", "x"));
        assert!(shard_name("AddToCart", "x").starts_with("queue-"));
    }
}
