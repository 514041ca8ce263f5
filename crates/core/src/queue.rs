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
}

/// Failures kept in a merged report.
pub const MAX_FAILURES: usize = 20;

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
        });
        assert_eq!(a.count("AddToCart", RowState::Sent), 5);
        assert_eq!(a.count("AddToCart", RowState::Failed), 1);
        assert_eq!(a.count("ViewContent", RowState::Sent), 0);
        assert_eq!((a.depth, a.events_in_window), (3, 7));
        assert_eq!(a.match_keys["ttp"], 3);
        assert_eq!(a.last_failures[0].event, "B");
    }

    #[test]
    fn shard_names_are_stable() {
        assert_eq!(shard_name("AddToCart", "x"), shard_name("AddToCart", "x"));
        assert!(shard_name("AddToCart", "x").starts_with("queue-"));
    }
}
