//! The send queue's vocabulary, shared by the Worker and the `EventQueue` Durable Object.

use crate::proof::Proof;
use serde::{Deserialize, Serialize};

/// Shards of the send queue: events are spread over this many Durable Objects by key.
pub const SHARDS: u32 = 16;

/// Where an event is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowState {
    Queued,
    /// A browser copy of a checkout step (or an opted-in purchase) waiting, bounded, for its
    /// signed webhook to merge with; sent alone when the wait ends.
    Waiting,
    /// A browser-reported purchase no signed order has confirmed: kept for the operator, never
    /// sent (unless `SEND_UNCONFIRMED_PURCHASES`).
    Unconfirmed,
    Retrying,
    Sent,
    Failed,
    /// Built and recorded without an access token; never sent.
    DryRun,
    /// Stopped by the visitor's refusal of marketing: no payload, never sent, and every later
    /// copy of the event is ignored.
    Refused,
}

impl RowState {
    pub const ALL: [RowState; 8] = [
        RowState::Queued,
        RowState::Waiting,
        RowState::Unconfirmed,
        RowState::Retrying,
        RowState::Sent,
        RowState::Failed,
        RowState::DryRun,
        RowState::Refused,
    ];
    /// States whose rows the alarm sends when due.
    pub const PENDING: [RowState; 3] = [RowState::Queued, RowState::Waiting, RowState::Retrying];

    pub fn as_str(self) -> &'static str {
        match self {
            RowState::Queued => "queued",
            RowState::Waiting => "waiting",
            RowState::Unconfirmed => "unconfirmed",
            RowState::Retrying => "retrying",
            RowState::Sent => "sent",
            RowState::Failed => "failed",
            RowState::DryRun => "dry_run",
            RowState::Refused => "refused",
        }
    }

    pub fn parse(s: &str) -> Option<RowState> {
        RowState::ALL.into_iter().find(|state| state.as_str() == s)
    }

    /// Not sent yet (nor given up): what a refusal still stops.
    pub fn unsent_or_retrying(self) -> bool {
        matches!(
            self,
            RowState::Queued | RowState::Waiting | RowState::Unconfirmed | RowState::Retrying
        )
    }
}

/// Where a copy of an event came from. Only a signed webhook is trusted for what happened; the
/// browser (and anyone with curl) only adds evidence about who it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Browser,
    Webhook,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Browser => "browser",
            Source::Webhook => "webhook",
        }
    }

    pub fn parse(s: &str) -> Option<Source> {
        [Source::Browser, Source::Webhook]
            .into_iter()
            .find(|source| source.as_str() == s)
    }
}

/// How long browser copies wait for their webhook, from the settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldPolicy {
    /// The purchase event's name (`PURCHASE_EVENT_NAME`).
    pub purchase_event: String,
    /// `WEBHOOK_WAIT_MS`: the wait for a checkout step's (or purchase's) webhook.
    pub wait_ms: i64,
    /// `SEND_UNCONFIRMED_PURCHASES`: shops without order webhooks send browser purchases.
    pub send_unconfirmed_purchases: bool,
}

impl HoldPolicy {
    pub fn from_config(config: &crate::config::Config) -> HoldPolicy {
        HoldPolicy {
            purchase_event: config.purchase_event_name.clone(),
            wait_ms: config.webhook_wait_ms as i64,
            send_unconfirmed_purchases: config.send_unconfirmed_purchases,
        }
    }
}

/// Browser events that have a signed webhook counterpart to wait for.
const CONFIRMED_BY_WEBHOOK: &[&str] = &["InitiateCheckout", "AddPaymentInfo"];

/// A call to a queue shard: copies of events from one source, with what binds them
/// ([`Proof`]): for a webhook, what its resource can be bound by; for the browser, what the
/// request proves.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Enqueue {
    pub source: Source,
    pub hold: HoldPolicy,
    #[serde(default)]
    pub proof: Proof,
    pub events: Vec<crate::tiktok::Event>,
    /// The pixels (send-queue keys, `pixels::Pixel::key`) each of `events` goes to: one row
    /// per (pixel, event, event_id), merged per pixel.
    #[serde(default = "the_one_pixel")]
    pub pixels: Vec<String>,
}

/// The pixel keys of the single-pixel settings: the one pixel, `""`.
pub fn the_one_pixel() -> Vec<String> {
    vec![String::new()]
}

/// An operation of a queue shard (the `EventQueue` Durable Object): what the Worker asks
/// (`src/queue.rs`) and the object does (`src/queue_do.rs`), as one JSON body; the object
/// answers with a [`ShardAnswer`]. Named once, here: neither side spells an operation's name.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShardCall {
    /// Admit copies of events (`shard::enqueue`): [`ShardAnswer::Enqueued`] or
    /// [`ShardAnswer::Full`].
    Enqueue(Enqueue),
    /// Delete what a privacy webhook asks for: [`ShardAnswer::Done`].
    Forget(Forget),
    /// Stop what a refusal proves: [`ShardAnswer::Done`].
    Refuse(Refuse),
    /// Re-send by filter: [`ShardAnswer::Resent`].
    Resend(Resend),
    /// What a re-send of unconfirmed purchases would send: [`ShardAnswer::Preview`].
    Preview(Resend),
    /// Depth and pause: [`ShardAnswer::Health`].
    Health,
    /// The operator's figures for events created since `since_ms`: [`ShardAnswer::Stats`].
    Stats { since_ms: i64 },
}

/// A queue shard's answer to a [`ShardCall`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShardAnswer {
    Enqueued(EnqueueSummary),
    /// A signed copy found no room: the shard is full of events still waiting to be sent.
    Full,
    Done,
    Resent(Resent),
    Preview(Preview),
    Health(ShardHealth),
    Stats(QueueStats),
}

/// What a shard already holds under an event's key.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub source: Source,
    pub state: RowState,
    pub attempts: u32,
    /// The copy itself (gone once sent).
    pub event: Option<crate::tiktok::Event>,
    /// A webhook copy's binding (empty for a browser copy, whose proofs are filed as
    /// [`Evidence`]).
    pub proof: Proof,
}

impl Stored {
    /// Not sent, nor tried: the copy may still change.
    fn unsent(&self) -> bool {
        self.attempts == 0
            && matches!(
                self.state,
                RowState::Queued | RowState::Waiting | RowState::Unconfirmed
            )
    }
}

/// A browser copy filed under one digest of its proof, for the signed copy of its event to
/// find ([`admit`]), whatever the order they come in; `event: None` is a refusal filed there
/// ([`Refuse::bound`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Evidence {
    pub digest: String,
    pub event: Option<crate::tiktok::Event>,
}

/// What to do with an incoming copy's row.
#[derive(Debug, Clone, PartialEq)]
pub enum Admission {
    /// No row yet: store `event` in `state`, due at `due_ms`.
    Insert {
        event: Box<crate::tiktok::Event>,
        state: RowState,
        due_ms: i64,
    },
    /// The stored copy was not sent yet: replace it with `event` (now the webhook's).
    Merge {
        event: Box<crate::tiktok::Event>,
        state: RowState,
        due_ms: i64,
    },
    /// The row stands (TikTok keeps only the first server copy of an event_id).
    Ignore,
    /// A refusal bound to the signed copy stops it: the row becomes `refused`.
    Refused,
}

/// What to do with the browser copies filed for the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filing {
    Keep,
    /// File the incoming browser copy under each digest of its proof (the first per digest stays).
    File,
    /// The signed copy took what was bound to it, or was refused: the rest goes.
    Clear,
}

/// One incoming copy: its row's fate and its key's filed evidence.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub admission: Admission,
    pub filing: Filing,
}

/// One server event per (event, event_id), built from every copy: the first copy is stored
/// (browser checkout steps wait for their webhook, browser purchases wait for confirmation);
/// a signed webhook copy takes over an unsent browser copy and goes out at once with what the
/// browser copies bound to it ([`Proof::binds`]) add, whatever order they came in: each proven
/// browser copy is filed under its proofs until the webhook comes, so an unbound copy that came
/// first blocks nothing. An unbound copy adds nothing to a signed one; a refusal filed under a
/// proof the webhook holds stops it; anything arriving once a copy went to TikTok changes nothing.
pub fn admit(
    stored: Option<&Stored>,
    evidence: &[Evidence],
    incoming: &crate::tiktok::Event,
    source: Source,
    proof: &Proof,
    hold: &HoldPolicy,
    now_ms: i64,
) -> Decision {
    let decision = |admission, filing| Decision { admission, filing };
    match source {
        Source::Browser => {
            let files = !proof.is_empty() && has_webhook_copy(&incoming.event, hold);
            let filing = if files { Filing::File } else { Filing::Keep };
            match stored {
                None => {
                    let (state, due_ms) = first_copy(incoming, source, hold, now_ms);
                    let event = Box::new(incoming.clone());
                    decision(
                        Admission::Insert {
                            event,
                            state,
                            due_ms,
                        },
                        filing,
                    )
                }
                Some(here) if here.source == Source::Browser => {
                    let open = here.unsent() || here.state == RowState::Failed;
                    let filing = if open { filing } else { Filing::Keep };
                    decision(Admission::Ignore, filing)
                }
                Some(here) => match &here.event {
                    Some(webhook) if here.unsent() && here.proof.binds(proof) => decision(
                        Admission::Merge {
                            event: Box::new(webhook.clone().merged_with_browser(incoming)),
                            state: here.state,
                            due_ms: now_ms,
                        },
                        Filing::Keep,
                    ),
                    _ => decision(Admission::Ignore, Filing::Keep),
                },
            }
        }
        Source::Webhook => {
            let bound = || evidence.iter().filter(|e| proof.holds(&e.digest));
            let open = stored.is_none_or(|here| {
                here.state == RowState::Refused
                    || (here.source == Source::Browser
                        && (here.unsent() || here.state == RowState::Failed))
            });
            if !open {
                return decision(Admission::Ignore, Filing::Keep);
            }
            if bound().any(|e| e.event.is_none()) {
                return decision(Admission::Refused, Filing::Clear);
            }
            let merged = || {
                let event = bound()
                    .filter_map(|e| e.event.as_ref())
                    .fold(incoming.clone(), |webhook, browser| {
                        webhook.merged_with_browser(browser)
                    });
                Box::new(event)
            };
            match stored {
                None => {
                    let (state, due_ms) = first_copy(incoming, source, hold, now_ms);
                    let event = merged();
                    decision(
                        Admission::Insert {
                            event,
                            state,
                            due_ms,
                        },
                        Filing::Clear,
                    )
                }
                Some(here) if here.state == RowState::Refused => {
                    decision(Admission::Refused, Filing::Clear)
                }
                // An unsent browser copy, or one TikTok refused (so it kept nothing): the signed
                // copy takes its place.
                Some(_) => decision(
                    Admission::Merge {
                        event: merged(),
                        state: RowState::Queued,
                        due_ms: now_ms,
                    },
                    Filing::Clear,
                ),
            }
        }
    }
}

/// Browser events a signed webhook also reports (AddToCart, the checkout steps, the purchase):
/// only their copies are worth filing as evidence.
fn has_webhook_copy(event: &str, hold: &HoldPolicy) -> bool {
    event == "AddToCart" || CONFIRMED_BY_WEBHOOK.contains(&event) || event == hold.purchase_event
}

fn first_copy(
    event: &crate::tiktok::Event,
    source: Source,
    hold: &HoldPolicy,
    now_ms: i64,
) -> (RowState, i64) {
    let waits = source == Source::Browser
        && (CONFIRMED_BY_WEBHOOK.contains(&event.event.as_str())
            || event.event == hold.purchase_event);
    if !waits {
        (RowState::Queued, now_ms)
    } else if event.event == hold.purchase_event && !hold.send_unconfirmed_purchases {
        (RowState::Unconfirmed, now_ms)
    } else {
        (RowState::Waiting, now_ms.saturating_add(hold.wait_ms))
    }
}

/// A refusal of marketing reported from a checkout: the event keys it stops. `events` are
/// stopped outright (their ids name the checkout whose token the refusal showed): copies not
/// yet sent become `refused` (their payload dropped), keys not seen yet are held as `refused`,
/// so a copy arriving later is ignored. `bound` keys (the order's) are stopped only for a signed
/// copy bound to `proof` (the order names that checkout): the refusal is filed under `proof`
/// as [`Evidence`] for the order's webhook to meet, and stops a webhook copy already waiting
/// when it is bound ([`Refuse::stops`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refuse {
    /// (event name, event_id) keys.
    pub events: Vec<(String, String)>,
    #[serde(default)]
    pub bound: Vec<(String, String)>,
    #[serde(default)]
    pub proof: Proof,
    /// Every pixel key of the shop: a refusal stops each pixel's copy.
    #[serde(default = "the_one_pixel")]
    pub pixels: Vec<String>,
}

impl Default for Refuse {
    fn default() -> Refuse {
        Refuse {
            events: Vec::new(),
            bound: Vec::new(),
            proof: Proof::default(),
            pixels: the_one_pixel(),
        }
    }
}

impl Refuse {
    /// Whether this refusal stops the copy stored under one of its `bound` keys.
    pub fn stops(&self, stored: &Stored) -> bool {
        stored.source == Source::Webhook
            && (stored.unsent() || stored.state == RowState::Retrying)
            && stored.proof.binds(&self.proof)
    }
}

/// The queue's answer to an enqueue: how many copies were new, merged, or changed nothing.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnqueueSummary {
    /// First copies stored.
    pub accepted: u32,
    /// Copies merged into an unsent copy of the same event.
    #[serde(default)]
    pub merged: u32,
    /// Copies that changed nothing.
    pub duplicates: u32,
    /// Signed copies a refusal bound to them stopped.
    #[serde(default)]
    pub refused: u32,
    /// Browser copies refused because browser-only copies hold their share of the shard
    /// ([`room`]); `/tt/collect` answers 503.
    #[serde(default)]
    pub no_room: u32,
    /// SQLite rows the shard read and wrote for this call (what Cloudflare bills).
    #[serde(default)]
    pub rows_read: usize,
    #[serde(default)]
    pub rows_written: usize,
}

impl EnqueueSummary {
    /// Why a signed webhook's events all changed nothing, for its answer (never a silent 0).
    pub fn why_none_queued(&self) -> Option<&'static str> {
        if self.accepted + self.merged > 0 {
            None
        } else if self.refused > 0 {
            Some("the visitor declined marketing at checkout (a refusal carrying this checkout's token)")
        } else if self.duplicates > 0 {
            Some("a copy of this event was there first (queued, sent or refused)")
        } else {
            None
        }
    }
}

impl std::ops::AddAssign for EnqueueSummary {
    fn add_assign(&mut self, other: EnqueueSummary) {
        self.accepted += other.accepted;
        self.merged += other.merged;
        self.duplicates += other.duplicates;
        self.refused += other.refused;
        self.no_room += other.no_room;
        self.rows_read += other.rows_read;
        self.rows_written += other.rows_written;
    }
}

/// Most rows one shard keeps (`QUEUE_SHARD_MAX_ROWS` lowers it).
pub const MAX_SHARD_ROWS: i64 = 200_000;

/// How full a shard is, from the counters its triggers keep (one row read, no scan).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fill {
    pub rows: i64,
    /// Browser-only copies (never merged with a signed webhook) still waiting to be sent:
    /// the rows a forger can create that no cleanup may delete.
    pub browser_unsent: i64,
}

/// Whether a shard has room for one more row from `source`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Room {
    Free,
    /// At the row limit: the oldest finished rows must go first; without any, [`Room::Full`].
    MakeRoom,
    /// No room for this source: a browser copy is refused at the door (503), a signed webhook
    /// is refused so that Shopify redelivers it (500); nothing accepted is dropped.
    Full,
}

/// Browser-only copies waiting to be sent may hold at most half of a shard (rounded down), so
/// a signed webhook is refused only when the other half is full of signed events still waiting
/// too: forged browser copies (anyone can aim them at a shard, whose number is the hash of a
/// public key) cannot crowd signed ones out. Finished rows of either source never block: the
/// oldest make room.
pub fn room(source: Source, fill: Fill, max_rows: i64) -> Room {
    if source == Source::Browser && fill.browser_unsent >= max_rows / 2 {
        Room::Full
    } else if fill.rows < max_rows {
        Room::Free
    } else {
        Room::MakeRoom
    }
}

/// Copies refused for want of room, by source (the admin page shows them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoRoom {
    pub browser: u64,
    pub webhook: u64,
}

impl NoRoom {
    pub fn add(&mut self, source: Source, n: u64) {
        match source {
            Source::Browser => self.browser += n,
            Source::Webhook => self.webhook += n,
        }
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

/// Why a shard stopped sending: the configuration TikTok refused (token, permission).
/// Events wait; the shard tries one batch again at `next_check_ms`, and resumes on success.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pause {
    /// TikTok's message, with what the operator should do.
    pub reason: String,
    pub since_ms: i64,
    pub next_check_ms: i64,
    /// Failed checks so far (the wait between checks doubles, up to an hour).
    pub checks: u32,
    /// Set when TikTok throttled the shard (`40100`): which of its limits, by [`Limit::after`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<Limit>,
}

impl Pause {
    /// The pause after one more refused attempt (`previous` when already paused).
    pub fn after(previous: Option<Pause>, reason: String, base_ms: u64, now_ms: i64) -> Pause {
        let checks = previous.as_ref().map_or(0, |p| p.checks + 1);
        let wait = base_ms
            .saturating_mul(1 << checks.min(20))
            .min(PAUSE_MAX_CHECK_MS) as i64;
        Pause {
            reason,
            since_ms: previous.map_or(now_ms, |p| p.since_ms),
            next_check_ms: now_ms.saturating_add(wait),
            checks,
            limit: None,
        }
    }

    /// The pause TikTok asks for after a throttle (`40100`) of `limit`: no doubling, no
    /// attempt counted toward the 48 h give-up; a check at the limit's end, then sending resumes.
    pub fn throttled(limit: Limit, previous: Option<Pause>, message: &str, now_ms: i64) -> Pause {
        Pause {
            reason: format!(
                "{message} ({}); events wait and go out by themselves then",
                limit.describe()
            ),
            since_ms: previous.map_or(now_ms, |p| p.since_ms),
            next_check_ms: limit.until(now_ms),
            checks: 0,
            limit: Some(limit),
        }
    }

    /// Whether `/tt/health` hears of it: every pause but a throttle of one second (a KV key
    /// takes one write per second at most, and the pause is over before a poll reads it).
    pub fn mirrored(&self) -> bool {
        self.limit != Some(Limit::Second)
    }
}

/// Which of TikTok's rate limits a throttle (`40100`, HTTP 200, no `Retry-After`) hit, by the
/// recovery rules of TikTok's rate-limit page (shared/research/tiktok-shopify-2026.md §1.3):
/// after the per-second limit retry in the next second, after the per-minute limit pause five
/// minutes, after the daily limit wait until 00:00 UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Limit {
    Second,
    Minute,
    Day,
}

/// Throttles within one minute after which the shard assumes the per-minute limit (TikTok's
/// answer does not say which limit it hit; the first ones are taken for the per-second limit).
pub const THROTTLES_FOR_MINUTE_LIMIT: usize = 3;

const SECOND_MS: i64 = 1_000;
const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 24 * HOUR_MS;
/// The pause after the per-minute limit.
pub const MINUTE_LIMIT_PAUSE_MS: i64 = 5 * MINUTE_MS;

impl Limit {
    /// The limit a throttle at `now_ms` hit: the daily one when TikTok's message says so
    /// (`daily`, `tiktok::says_daily_limit`), the per-minute one when it is the
    /// [`THROTTLES_FOR_MINUTE_LIMIT`]th within a minute, else the per-second one. `recent`
    /// holds the times of the shard's throttles in the last minute and gains this one.
    pub fn after(recent: &mut Vec<i64>, daily: bool, now_ms: i64) -> Limit {
        recent.retain(|&t| now_ms - t < MINUTE_MS && t <= now_ms);
        recent.push(now_ms);
        if daily {
            Limit::Day
        } else if recent.len() >= THROTTLES_FOR_MINUTE_LIMIT {
            Limit::Minute
        } else {
            Limit::Second
        }
    }

    /// When sending may start again.
    pub fn until(self, now_ms: i64) -> i64 {
        match self {
            Limit::Second => now_ms - now_ms.rem_euclid(SECOND_MS) + SECOND_MS,
            Limit::Minute => now_ms + MINUTE_LIMIT_PAUSE_MS,
            Limit::Day => now_ms - now_ms.rem_euclid(DAY_MS) + DAY_MS,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Limit::Second => "the per-second limit: TikTok asks to retry in the next second",
            Limit::Minute => {
                "the per-minute limit, throttled repeatedly within a minute: TikTok asks to \
                 pause five minutes"
            }
            Limit::Day => "the daily limit: TikTok asks to wait until 00:00 UTC",
        }
    }
}

const PAUSE_MAX_CHECK_MS: u64 = 60 * 60 * 1000;

/// How long an event may wait (paused, or retried) before it is given up. TikTok documents no
/// age limit for web events (research §1.9: a 28-day window at one partner, unverified), but
/// TikTok merges a server copy with its pixel copy only within 48 h; past that a late copy
/// could be counted twice, so retries of TikTok's own errors stop at 48 h (`RetryPolicy`),
/// while a paused shard, where nothing reached TikTok, keeps events for the retention period.
pub const MAX_PAUSED_AGE_MS: i64 = 7 * 24 * 3600 * 1000;

/// Why a re-send filter cannot be used (`/tt/admin/resend` answers 400 with it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError(pub String);

/// The operator's re-send: failed (or unconfirmed) events back to the queue, by filter.
///
/// `failed` events go back at once: each was accepted to be sent (a signed webhook's, or a
/// browser copy the policy sends alone) and TikTok refused it. `unconfirmed` purchases were
/// never to be sent: only the browser (or anyone with curl) reported them, so a re-send of
/// them first answers a [`Preview`] and sends nothing; only the same filter with the
/// preview's `confirm` code sends, exactly what was previewed. `max_value` leaves out
/// purchases worth more (a forged 999,999.00).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resend {
    /// `failed` (default) or `unconfirmed`.
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub event: Option<String>,
    /// Created at or after (ms since the epoch).
    #[serde(default)]
    pub from_ms: Option<i64>,
    /// Created before.
    #[serde(default)]
    pub to_ms: Option<i64>,
    /// Part of the error message (e.g. `40002`).
    #[serde(default)]
    pub error: Option<String>,
    /// `unconfirmed` only: purchases whose value is above this (in their own currency) stay
    /// unconfirmed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_value: Option<crate::money::Amount>,
    /// `unconfirmed` only: the preview's code; without it nothing is sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirm: Option<String>,
}

/// Unconfirmed purchases one shard re-sends at most per confirmation (the oldest first); a
/// preview says when more match.
pub const MAX_RESEND_PER_SHARD: usize = 1000;

/// The largest purchases a preview lists.
pub const PREVIEW_LARGEST: usize = 10;

impl Resend {
    /// The operator's filter from a request body (empty: the default filter), checked.
    pub fn from_body(body: &[u8]) -> Result<Resend, FilterError> {
        let filter = if body.is_empty() {
            Resend::default()
        } else {
            crate::json::parse(body).map_err(|e| FilterError(e.to_string()))?
        };
        filter.condition()?;
        Ok(filter)
    }

    /// Whether this re-send is previewed first and sent only on confirmation.
    pub fn previewed(&self) -> bool {
        self.state.as_deref() == Some(RowState::Unconfirmed.as_str())
    }

    /// The filter a preview answers for: created before `now_ms` unless the operator said
    /// otherwise, so copies arriving later (a forger keeps posting) do not change what the
    /// confirmation sends; without the confirmation itself.
    pub fn pinned(&self, now_ms: i64) -> Resend {
        Resend {
            to_ms: Some(self.to_ms.unwrap_or(now_ms)),
            confirm: None,
            ..self.clone()
        }
    }

    /// The SQL condition and its values (`?` placeholders, in order), or why the filter is
    /// not acceptable.
    pub fn condition(&self) -> Result<(String, Vec<ResendValue>), FilterError> {
        let state = match self.state.as_deref().unwrap_or("failed") {
            "failed" => RowState::Failed,
            "unconfirmed" => RowState::Unconfirmed,
            other => {
                return Err(FilterError(format!(
                    "state {other:?} cannot be re-sent: use \"failed\" or \"unconfirmed\""
                )))
            }
        };
        if state == RowState::Failed && (self.max_value.is_some() || self.confirm.is_some()) {
            return Err(FilterError(
                "max_value and confirm apply to \"unconfirmed\" only: failed events were \
                 accepted to be sent and go back at once"
                    .into(),
            ));
        }
        if self.max_value.is_some_and(|max| max.is_negative()) {
            return Err(FilterError("max_value must be 0 or more".into()));
        }
        let mut sql = "state = ?".to_string();
        let mut values = vec![ResendValue::Text(state.as_str().to_string())];
        if let Some(event) = &self.event {
            sql.push_str(" AND event_name = ?");
            values.push(ResendValue::Text(event.clone()));
        }
        if let Some(from) = self.from_ms {
            sql.push_str(" AND created_at >= ?");
            values.push(ResendValue::Int(from));
        }
        if let Some(to) = self.to_ms {
            sql.push_str(" AND created_at < ?");
            values.push(ResendValue::Int(to));
        }
        if let Some(error) = self.error.as_deref().filter(|e| !e.is_empty()) {
            sql.push_str(" AND instr(COALESCE(last_error, ''), ?) > 0");
            values.push(ResendValue::Text(error.to_string()));
        }
        Ok((sql, values))
    }

    /// What one shard would re-send of `candidates` (the rows the condition selects, oldest
    /// first, at most [`MAX_RESEND_PER_SHARD`] + 1): those within `max_value`, and the preview
    /// of them, whose `confirm` is a digest of exactly those rows.
    pub fn plan(&self, mut candidates: Vec<Candidate>) -> (Vec<Candidate>, Preview) {
        let more = candidates.len() > MAX_RESEND_PER_SHARD;
        candidates.truncate(MAX_RESEND_PER_SHARD);
        let (send, left_out): (Vec<Candidate>, Vec<Candidate>) =
            candidates
                .into_iter()
                .partition(|c| match (c.value, self.max_value) {
                    (Some(value), Some(max)) => value <= max,
                    _ => true,
                });
        let mut digest = String::new();
        for c in &send {
            digest.push_str(&serde_json::to_string(c).unwrap_or_default());
            digest.push('\n');
        }
        let mut preview = Preview {
            count: send.len() as u64,
            left_out: left_out.len() as u64,
            more,
            confirm: crate::hash::sha256_hex(&digest),
            ..Preview::default()
        };
        for c in &send {
            if let Some(value) = c.value {
                let currency = c.currency.clone().unwrap_or_else(|| NO_CURRENCY.into());
                let total = preview.totals.entry_or_default(currency);
                *total = *total + value;
            }
            preview.add_largest(c.clone());
        }
        (send, preview)
    }
}

/// The totals key of values without a currency.
pub const NO_CURRENCY: &str = "none";

/// A purchase a re-send of unconfirmed events could send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    #[serde(default)]
    pub pixel: String,
    pub event: String,
    pub event_id: String,
    pub value: Option<crate::money::Amount>,
    pub currency: Option<String>,
}

/// What a re-send of unconfirmed purchases would send: the operator reads it, then confirms
/// with `confirm`, which matches only this selection.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Preview {
    pub count: u64,
    /// Total value per currency ([`NO_CURRENCY`] for values without one).
    pub totals: crate::vec_map::VecMap<String, crate::money::Amount>,
    /// The largest values, largest first (at most [`PREVIEW_LARGEST`]).
    pub largest: Vec<Candidate>,
    /// Matching purchases above `max_value`: they stay unconfirmed.
    pub left_out: u64,
    /// More matched than one confirmation re-sends ([`MAX_RESEND_PER_SHARD`] per shard):
    /// preview again after confirming.
    pub more: bool,
    pub confirm: String,
}

impl Preview {
    fn add_largest(&mut self, c: Candidate) {
        let at = self.largest.partition_point(|m| m.value >= c.value);
        if at < PREVIEW_LARGEST {
            self.largest.insert(at, c);
            self.largest.truncate(PREVIEW_LARGEST);
        }
    }

    /// The preview over every shard's (in shard order) for `filter`: its code covers the
    /// filter and each shard's selection, so a confirmation sends only what was shown.
    pub fn combined(filter: &Resend, shards: &[Preview]) -> Preview {
        let mut all = Preview::default();
        let shown = Resend {
            confirm: None,
            ..filter.clone()
        };
        let mut digest = serde_json::to_string(&shown).unwrap_or_default();
        for shard in shards {
            all.count += shard.count;
            for (currency, value) in shard.totals.iter() {
                let total = all.totals.entry_or_default(currency.clone());
                *total = *total + *value;
            }
            for c in &shard.largest {
                all.add_largest(c.clone());
            }
            all.left_out += shard.left_out;
            all.more |= shard.more;
            digest.push_str(&shard.confirm);
        }
        all.confirm = crate::hash::sha256_hex(&digest);
        all
    }
}

/// `/tt/admin/resend`'s answer: how many events went back to the queue and, for unconfirmed
/// purchases not (or no longer) confirmed, the preview and the body that confirms it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ResendAnswer {
    pub requeued: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preview: Option<Preview>,
    /// The filter with the preview's `confirm` code: what to post to send what was shown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirm_with: Option<Resend>,
}

impl ResendAnswer {
    /// 200, or 409 when a confirmation did not match what it was given for.
    pub fn status(&self) -> u16 {
        if self.error.is_some() {
            409
        } else {
            200
        }
    }

    /// After the shards re-sent: a shard whose selection changed between the preview and its
    /// turn re-sent nothing.
    pub fn resent(done: Resent) -> ResendAnswer {
        ResendAnswer {
            requeued: done.requeued,
            error: done.changed.then_some(PREVIEW_CHANGED),
            message: done.changed.then_some(
                "some purchases changed between the preview and the confirmation (an order \
                 confirmed one, or it expired); those were not re-sent: preview again",
            ),
            ..ResendAnswer::default()
        }
    }
}

const PREVIEW_CHANGED: &str = "preview_changed";

impl Preview {
    /// Whether `filter`'s confirmation is this preview's (of `pinned`, the filter as
    /// previewed): `None` to send, else the answer that shows the preview instead, a 409 when
    /// a confirmation was given for something else.
    pub fn unconfirmed_answer(self, filter: &Resend, pinned: &Resend) -> Option<ResendAnswer> {
        let given = filter.confirm.as_deref();
        if given == Some(self.confirm.as_str()) {
            return None;
        }
        let confirm_with = Resend {
            confirm: Some(self.confirm.clone()),
            ..pinned.clone()
        };
        Some(ResendAnswer {
            requeued: 0,
            error: given.map(|_| PREVIEW_CHANGED),
            message: given.map(|_| {
                "this is not what the confirmation was given for: the selection or the filter \
                 changed since that preview, so nothing was re-sent; check this preview and \
                 confirm it with `confirm_with`"
            }),
            preview: Some(self),
            confirm_with: Some(confirm_with),
        })
    }
}

/// A shard's answer to a re-send.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resent {
    pub requeued: u64,
    /// The shard's selection is no longer the previewed one (a purchase was confirmed by its
    /// order, or removed, in between): it re-sent nothing.
    #[serde(default)]
    pub changed: bool,
}

/// A value bound into a [`Resend`] condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResendValue {
    Text(String),
    Int(i64),
}

/// A shard's pause as copied to KV for `/tt/health`, which reads this one key instead of
/// asking all [`SHARDS`] shards on every poll. `shard` is who wrote it: only that shard's
/// resumption removes it (another shard's pause is not overwritten by it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PauseMirror {
    pub shard: String,
    pub pause: Pause,
}

/// What a shard answers for health: its depth, and its pauses by pixel key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardHealth {
    pub depth: u64,
    #[serde(default)]
    pub pauses: crate::vec_map::VecMap<String, Pause>,
}

impl ShardHealth {
    /// Adds another shard's: depths add up, and each pixel keeps its earliest pause.
    pub fn add(&mut self, other: ShardHealth) {
        self.depth += other.depth;
        for (pixel, pause) in other.pauses {
            let mine = self.pauses.get(&pixel).cloned();
            if let Some(pause) = earliest_pause(mine, Some(pause)) {
                self.pauses.insert(pixel, pause);
            }
        }
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
    /// The pixel's key (`""`: the single-pixel settings' one pixel).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pixel: String,
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
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pixel: String,
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
    pub match_keys: crate::vec_map::VecMap<String, u64>,
    pub events_in_window: u64,
    pub last_failures: Vec<Failure>,
    /// Events created in the window, by UTC hour and event name, sorted by (hour, event).
    #[serde(default)]
    pub hourly: Vec<HourCount>,
    /// The newest events, newest first.
    #[serde(default)]
    pub recent: Vec<RecentEvent>,
    /// The earliest pause among the shards and pixels, if any is paused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<Pause>,
    /// Each paused pixel's earliest pause, by pixel key.
    #[serde(default)]
    pub pauses: crate::vec_map::VecMap<String, Pause>,
    /// Copies refused for want of room in the window (counted per hour, so the window is
    /// rounded out to whole hours).
    #[serde(default)]
    pub no_room: NoRoom,
}

/// Of two pauses, the one that began first (what the operator must fix has waited longest).
pub fn earliest_pause(a: Option<Pause>, b: Option<Pause>) -> Option<Pause> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b.since_ms < a.since_ms { b } else { a }),
        (a, b) => a.or(b),
    }
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
    /// Folds another shard's report into this one. Every list stays in its order by inserting
    /// at the place a binary search finds (no sort: each `sort_by` compiled a stable sort per
    /// element type into the wasm).
    pub fn merge(&mut self, other: QueueStats) {
        for c in other.counts {
            let place = self
                .counts
                .binary_search_by(|m| (&m.event, &m.state).cmp(&(&c.event, &c.state)));
            match place {
                Ok(i) => self.counts[i].count += c.count,
                Err(i) => self.counts.insert(i, c),
            }
        }
        self.depth += other.depth;
        for (key, n) in other.match_keys {
            *self.match_keys.entry_or_default(key) += n;
        }
        self.events_in_window += other.events_in_window;
        for f in other.last_failures {
            let at = self.last_failures.partition_point(|m| m.at_ms >= f.at_ms);
            self.last_failures.insert(at, f);
        }
        self.last_failures.truncate(MAX_FAILURES);
        for h in other.hourly {
            let place = self
                .hourly
                .binary_search_by(|m| (m.hour_ms, &m.event).cmp(&(h.hour_ms, &h.event)));
            match place {
                Ok(i) => self.hourly[i].count += h.count,
                Err(i) => self.hourly.insert(i, h),
            }
        }
        for e in other.recent {
            let at = self.recent.partition_point(|m| m.at_ms >= e.at_ms);
            self.recent.insert(at, e);
        }
        self.recent.truncate(MAX_RECENT);
        self.paused = earliest_pause(self.paused.take(), other.paused);
        let mut pauses = ShardHealth {
            depth: 0,
            pauses: std::mem::take(&mut self.pauses),
        };
        pauses.add(ShardHealth {
            depth: 0,
            pauses: other.pauses,
        });
        self.pauses = pauses.pauses;
        self.no_room.add(Source::Browser, other.no_room.browser);
        self.no_room.add(Source::Webhook, other.no_room.webhook);
    }

    /// Counts one row created at `created_at_ms` in the window: by event and state, by hour,
    /// and its match keys (a report of one row, folded in as a shard's is).
    pub fn count_in(&mut self, event: &str, state: &str, match_keys: &str, created_at_ms: i64) {
        let mut row = QueueStats {
            events_in_window: 1,
            counts: vec![Count {
                event: event.to_string(),
                state: state.to_string(),
                count: 1,
            }],
            hourly: vec![HourCount {
                hour_ms: hour_start(created_at_ms),
                event: event.to_string(),
                count: 1,
            }],
            ..QueueStats::default()
        };
        for key in match_keys.split(',').filter(|k| !k.is_empty()) {
            *row.match_keys.entry_or_default(key.to_string()) += 1;
        }
        self.merge(row);
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
            pixel: String::new(),
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
            match_keys: [("ttp".to_string(), 2)].into_iter().collect(),
            events_in_window: 3,
            last_failures: vec![Failure {
                pixel: String::new(),
                event: "A".into(),
                event_id: "1".into(),
                error: "e".into(),
                at_ms: 5,
            }],
            hourly: vec![hour(2 * HOUR_MS, "AddToCart", 2)],
            recent: vec![recent("old", 5)],
            paused: None,
            pauses: Default::default(),
            no_room: NoRoom {
                browser: 1,
                webhook: 0,
            },
        };
        a.merge(QueueStats {
            counts: vec![
                count("AddToCart", "sent", 3),
                count("AddToCart", "failed", 1),
            ],
            depth: 2,
            match_keys: [("ttp".to_string(), 1), ("ip".to_string(), 4)]
                .into_iter()
                .collect(),
            events_in_window: 4,
            last_failures: vec![Failure {
                pixel: String::new(),
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
            paused: None,
            pauses: Default::default(),
            no_room: NoRoom {
                browser: 2,
                webhook: 3,
            },
        });
        assert_eq!(
            a.no_room,
            NoRoom {
                browser: 3,
                webhook: 3
            }
        );
        assert_eq!(a.count("AddToCart", RowState::Sent), 5);
        assert_eq!(a.count("AddToCart", RowState::Failed), 1);
        assert_eq!(a.count("ViewContent", RowState::Sent), 0);
        assert_eq!((a.depth, a.events_in_window), (3, 7));
        assert_eq!(a.match_keys.get("ttp"), Some(&3));
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
            browser: crate::session::Browser {
                ttp: Some("A\"b_.tt.1".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let payload = serde_json::to_string(&user).unwrap();
        assert!(
            payload.contains(&Forget::ttp_fragment("A\"b_.tt.1")),
            "{payload}"
        );
        assert!(!payload.contains(&Forget::ttp_fragment("A")));
    }

    fn copy(name: &str, ttp: Option<&str>, value: Option<&str>) -> crate::tiktok::Event {
        use crate::session::Browser;
        use crate::tiktok::{Event, Properties, User};
        Event {
            event: name.into(),
            event_time: 1_800_000_000,
            event_id: "id-1".into(),
            user: User {
                browser: Browser {
                    ttp: ttp.map(String::from),
                    ..Browser::default()
                },
                ..User::default()
            },
            properties: Properties {
                value: value.and_then(crate::money::Amount::parse),
                ..Properties::default()
            },
            page: None,
            limited_data_use: None,
        }
    }

    fn hold() -> HoldPolicy {
        HoldPolicy {
            purchase_event: "Purchase".into(),
            wait_ms: 90_000,
            send_unconfirmed_purchases: false,
        }
    }

    fn stored(
        source: Source,
        state: RowState,
        attempts: u32,
        event: crate::tiktok::Event,
    ) -> Stored {
        Stored {
            source,
            state,
            attempts,
            event: Some(event),
            proof: Proof::default(),
        }
    }

    const NOW: i64 = 1_000_000;

    /// What a refusal leaves under a key: no copy, nothing to send.
    fn refused_row() -> Stored {
        Stored {
            source: Source::Browser,
            state: RowState::Refused,
            attempts: 0,
            event: None,
            proof: Proof::default(),
        }
    }

    /// One key of a shard, as the Durable Object keeps it: the row and the filed evidence.
    #[derive(Default)]
    struct Key {
        row: Option<Stored>,
        evidence: Vec<Evidence>,
    }

    impl Key {
        /// Applies one copy as the shard does; returns the admission.
        fn offer(&mut self, event: &Event, source: Source, proof: &Proof) -> Admission {
            let d = admit(
                self.row.as_ref(),
                &self.evidence,
                event,
                source,
                proof,
                &hold(),
                NOW,
            );
            match &d.admission {
                Admission::Insert { event, state, .. } => {
                    self.row = Some(Stored {
                        source,
                        state: *state,
                        attempts: 0,
                        event: Some((**event).clone()),
                        proof: if source == Source::Webhook {
                            proof.clone()
                        } else {
                            Proof::default()
                        },
                    })
                }
                Admission::Merge { event, state, .. } => {
                    let row = self.row.as_mut().unwrap();
                    row.event = Some((**event).clone());
                    row.state = *state;
                    if source == Source::Webhook {
                        row.source = Source::Webhook;
                        row.proof = proof.clone();
                    }
                }
                Admission::Refused => self.row = Some(refused_row()),
                Admission::Ignore => {}
            }
            match d.filing {
                Filing::Keep => {}
                Filing::Clear => self.evidence.clear(),
                Filing::File => {
                    for digest in proof.digests() {
                        if !self.evidence.iter().any(|e| &e.digest == digest) {
                            self.evidence.push(Evidence {
                                digest: digest.clone(),
                                event: Some(event.clone()),
                            });
                        }
                    }
                }
            }
            d.admission
        }

        /// A refusal's `bound` key, as the shard's `refuse` does it.
        fn refuse(&mut self, refusal: &Refuse) {
            for digest in refusal.proof.digests() {
                self.evidence.retain(|e| &e.digest != digest);
                self.evidence.push(Evidence {
                    digest: digest.clone(),
                    event: None,
                });
            }
            if self.row.as_ref().is_some_and(|row| refusal.stops(row)) {
                self.row = Some(refused_row());
                self.evidence.clear();
            }
        }

        fn sent(&self) -> Option<&Event> {
            self.row
                .as_ref()
                .filter(|r| r.source == Source::Webhook)
                .and_then(|r| r.event.as_ref())
        }
    }

    use crate::tiktok::Event;

    /// A browser copy of a purchase with its own identifiers (`who`) and value.
    fn browser_copy(who: &str) -> Event {
        let mut e = copy("Purchase", Some(&format!("ttp-{who}")), Some("99999.99"));
        e.user.browser.ttclid = Some(format!("clk-{who}"));
        e.user.browser.ip = Some(format!("ip-{who}"));
        e.user.browser.user_agent = Some(format!("ua-{who}"));
        e
    }

    /// The signed order: its checkout token `chk-real`, no identifiers of its own.
    fn signed() -> (Event, Proof) {
        let mut e = copy("Purchase", None, Some("42.00"));
        e.user.email = Some("hashed-email".into());
        (e, Proof::of(["chk-real"], []))
    }

    #[test]
    fn first_copies_by_source_and_event() {
        let browser = Source::Browser;
        let cases = [
            ("ViewContent", browser, RowState::Queued, NOW),
            ("AddToCart", browser, RowState::Queued, NOW),
            ("InitiateCheckout", browser, RowState::Waiting, NOW + 90_000),
            ("AddPaymentInfo", browser, RowState::Waiting, NOW + 90_000),
            ("Purchase", browser, RowState::Unconfirmed, NOW),
            ("AddToCart", Source::Webhook, RowState::Queued, NOW),
            ("InitiateCheckout", Source::Webhook, RowState::Queued, NOW),
            ("Purchase", Source::Webhook, RowState::Queued, NOW),
        ];
        for (name, source, state, due_ms) in cases {
            let event = copy(name, None, None);
            let d = admit(None, &[], &event, source, &Proof::default(), &hold(), NOW);
            assert_eq!(
                d.admission,
                Admission::Insert {
                    event: Box::new(event),
                    state,
                    due_ms
                },
                "{name} from {source:?}"
            );
        }
        let opted_in = HoldPolicy {
            send_unconfirmed_purchases: true,
            ..hold()
        };
        let event = copy("Purchase", None, None);
        let d = admit(
            None,
            &[],
            &event,
            browser,
            &Proof::default(),
            &opted_in,
            NOW,
        );
        assert_eq!(
            d.admission,
            Admission::Insert {
                event: Box::new(event),
                state: RowState::Waiting,
                due_ms: NOW + 90_000
            }
        );
    }

    #[test]
    fn proven_browser_copies_of_confirmable_events_are_filed_and_others_are_not() {
        let proven = Proof::of(["chk-1"], []);
        let cases = [
            ("Purchase", &proven, Filing::File),
            ("InitiateCheckout", &proven, Filing::File),
            ("AddToCart", &proven, Filing::File),
            ("ViewContent", &proven, Filing::Keep),
            ("Purchase", &Proof::default(), Filing::Keep),
        ];
        for (name, proof, filing) in cases {
            let d = admit(
                None,
                &[],
                &copy(name, None, None),
                Source::Browser,
                proof,
                &hold(),
                NOW,
            );
            assert_eq!(d.filing, filing, "{name} {proof:?}");
        }
    }

    #[test]
    fn a_refused_key_takes_no_copy_from_either_source() {
        let refused = Stored {
            source: Source::Browser,
            state: RowState::Refused,
            attempts: 0,
            event: None,
            proof: Proof::default(),
        };
        let proof = Proof::of(["chk-1"], []);
        for name in ["InitiateCheckout", "AddPaymentInfo", "Purchase"] {
            for source in [Source::Browser, Source::Webhook] {
                let d = admit(
                    Some(&refused),
                    &[],
                    &copy(name, None, Some("1.00")),
                    source,
                    &proof,
                    &hold(),
                    NOW,
                );
                assert!(
                    matches!(d.admission, Admission::Ignore | Admission::Refused),
                    "{name} from {source:?}: {d:?}"
                );
                assert_ne!(d.filing, Filing::File);
            }
        }
        assert_eq!(RowState::parse("refused"), Some(RowState::Refused));
    }

    /// Every arrival order of the signed order (W), the genuine thank-you copy carrying the
    /// order's checkout token (G), a forged copy carrying no proof (F), one carrying a wrong
    /// checkout token (X) and one of a session linked to the order (S): the order carries the
    /// identifiers of a bound copy (G, else S) and never F's or X's.
    #[test]
    fn bound_copies_win_over_unbound_ones_in_every_arrival_order() {
        let (webhook, _) = signed();
        let binding = Proof::of(["chk-real"], ["ttp-S"]);
        let copies: Vec<(&str, Event, Source, Proof)> = vec![
            ("W", webhook.clone(), Source::Webhook, binding.clone()),
            (
                "G",
                browser_copy("G"),
                Source::Browser,
                Proof::of(["chk-real"], []),
            ),
            ("F", browser_copy("F"), Source::Browser, Proof::default()),
            (
                "X",
                browser_copy("X"),
                Source::Browser,
                Proof::of(["chk-wrong"], []),
            ),
        ];
        let mut orders: Vec<Vec<usize>> = vec![vec![]];
        for _ in 0..copies.len() {
            orders = orders
                .into_iter()
                .flat_map(|o| {
                    (0..copies.len())
                        .filter(|i| !o.contains(i))
                        .map(|i| {
                            let mut next = o.clone();
                            next.push(i);
                            next
                        })
                        .collect::<Vec<_>>()
                })
                .collect();
        }
        assert_eq!(orders.len(), 24);
        for order in orders {
            let mut key = Key::default();
            for &i in &order {
                let (_, event, source, proof) = &copies[i];
                key.offer(event, *source, proof);
            }
            let names: Vec<&str> = order.iter().map(|&i| copies[i].0).collect();
            let sent = key.sent().unwrap_or_else(|| panic!("{names:?}: no order"));
            assert_eq!(
                sent.user.email.as_deref(),
                Some("hashed-email"),
                "{names:?}"
            );
            assert_eq!(sent.properties.value, webhook.properties.value, "{names:?}");
            let b = &sent.user.browser;
            assert_eq!(
                (b.ttp.as_deref(), b.ttclid.as_deref(), b.ip.as_deref()),
                (Some("ttp-G"), Some("clk-G"), Some("ip-G")),
                "{names:?}"
            );
        }
        // A storefront copy of a session the order's join found binds too, and a forged copy
        // alone, before or after the order, adds nothing at all.
        for forged_first in [true, false] {
            let mut key = Key::default();
            let (event, _) = signed();
            if forged_first {
                key.offer(&browser_copy("F"), Source::Browser, &Proof::default());
            }
            key.offer(&event, Source::Webhook, &binding);
            if !forged_first {
                key.offer(&browser_copy("F"), Source::Browser, &Proof::default());
            }
            key.offer(
                &browser_copy("X"),
                Source::Browser,
                &Proof::of(["chk-wrong"], []),
            );
            let sent = key.sent().unwrap();
            assert_eq!(sent.user.browser, crate::session::Browser::default());
            key.offer(
                &browser_copy("S"),
                Source::Browser,
                &Proof::of([], ["ttp-S"]),
            );
            assert_eq!(key.sent().unwrap().user.browser.ip.as_deref(), Some("ip-S"));
        }
    }

    #[test]
    fn a_refusal_stops_only_the_signed_copy_bound_to_it_in_either_order() {
        let (webhook, binding) = signed();
        let genuine = Refuse {
            bound: vec![("Purchase".into(), "id-1".into())],
            proof: Proof::of(["chk-real"], []),
            ..Refuse::default()
        };
        let wrong = Refuse {
            proof: Proof::of(["chk-invented"], []),
            ..genuine.clone()
        };
        for refusal_first in [true, false] {
            for (refusal, stops) in [(&genuine, true), (&wrong, false)] {
                let mut key = Key::default();
                key.offer(
                    &browser_copy("G"),
                    Source::Browser,
                    &Proof::of(["chk-real"], []),
                );
                if refusal_first {
                    key.refuse(refusal);
                }
                let admission = key.offer(&webhook, Source::Webhook, &binding);
                if !refusal_first {
                    key.refuse(refusal);
                }
                let row = key.row.as_ref().unwrap();
                let why = format!("{refusal:?} first: {refusal_first}");
                assert_eq!(row.state == RowState::Refused, stops, "{why}");
                assert_eq!(key.sent().is_some(), !stops, "{why}");
                if refusal_first {
                    assert_eq!(admission == Admission::Refused, stops, "{why}");
                }
                if stops {
                    assert!(key.evidence.is_empty(), "nothing of it is kept: {why}");
                } else {
                    let sent = key.sent().unwrap();
                    assert_eq!(sent.user.browser.ip.as_deref(), Some("ip-G"), "{why}");
                }
            }
        }
    }

    #[test]
    fn nothing_changes_once_a_copy_went_to_tiktok_or_for_a_second_webhook_copy() {
        let browser = copy("InitiateCheckout", Some("ttp-1"), None);
        let webhook = copy("InitiateCheckout", None, Some("10.00"));
        let proof = Proof::of(["chk-1"], []);
        let bound_webhook = |state, attempts| Stored {
            proof: proof.clone(),
            ..stored(Source::Webhook, state, attempts, webhook.clone())
        };
        let cases = [
            // The browser copy was sent after its wait: TikTok keeps it; the webhook is late.
            (
                stored(Source::Browser, RowState::Sent, 1, browser.clone()),
                &webhook,
                Source::Webhook,
            ),
            (
                stored(Source::Browser, RowState::Retrying, 1, browser.clone()),
                &webhook,
                Source::Webhook,
            ),
            (bound_webhook(RowState::Sent, 1), &browser, Source::Browser),
            (
                bound_webhook(RowState::Queued, 0),
                &webhook,
                Source::Webhook,
            ),
            (
                bound_webhook(RowState::Failed, 1),
                &browser,
                Source::Browser,
            ),
        ];
        for (here, incoming, source) in cases {
            let d = admit(Some(&here), &[], incoming, source, &proof, &hold(), NOW);
            assert_eq!(
                d,
                Decision {
                    admission: Admission::Ignore,
                    filing: Filing::Keep
                },
                "{here:?} then {source:?}"
            );
        }
    }

    #[test]
    fn a_refused_browser_copy_does_not_block_the_signed_one() {
        let here = stored(
            Source::Browser,
            RowState::Failed,
            1,
            copy("AddToCart", Some("ttp-1"), Some("1.00")),
        );
        let webhook = copy("AddToCart", Some("ttp-1"), Some("17.00"));
        let d = admit(
            Some(&here),
            &[],
            &webhook,
            Source::Webhook,
            &Proof::default(),
            &hold(),
            NOW,
        );
        assert_eq!(
            d.admission,
            Admission::Merge {
                event: Box::new(webhook.clone()),
                state: RowState::Queued,
                due_ms: NOW
            }
        );
    }

    #[test]
    fn a_bound_copy_of_another_visitor_adds_nothing_to_a_signed_order_with_its_own_ttp() {
        let mut real = copy("Purchase", Some("buyer-ttp"), Some("42.00"));
        real.properties.currency = Some("EUR".into());
        let proof = Proof::of(["chk-1"], []);
        let other = browser_copy("other");
        let evidence = [Evidence {
            digest: proof.digests()[0].clone(),
            event: Some(other),
        }];
        let here = stored(Source::Browser, RowState::Unconfirmed, 0, browser_copy("F"));
        let d = admit(
            Some(&here),
            &evidence,
            &real,
            Source::Webhook,
            &proof,
            &hold(),
            NOW,
        );
        assert_eq!(
            d.admission,
            Admission::Merge {
                event: Box::new(real.clone()),
                state: RowState::Queued,
                due_ms: NOW
            }
        );
        assert_eq!(d.filing, Filing::Clear);
    }

    #[test]
    fn the_browser_fills_only_what_the_webhook_lacks() {
        use crate::tiktok::Page;
        let mut browser = copy("Purchase", Some("ttp-1"), Some("1.00"));
        browser.user.browser.ttclid = Some("E.C.P.click".into());
        browser.user.browser.ip = Some("203.0.113.9".into());
        browser.user.browser.user_agent = Some("Mozilla/5.0 (browser)".into());
        browser.page = Some(Page {
            url: Some("https://shop.example/checkouts/cn/abc/thank-you".into()),
            referrer: None,
        });
        browser.properties.market_handle = "de".into();
        browser.properties.market_id = 7;
        browser.limited_data_use = Some(true);
        let mut webhook = copy("Purchase", Some("ttp-1"), Some("42.00"));
        webhook.user.browser.ip = Some("192.0.2.1".into());
        webhook.user.email = Some("e".into());
        let merged = webhook.clone().merged_with_browser(&browser);
        assert_eq!(
            merged.user.browser.ip.as_deref(),
            Some("192.0.2.1"),
            "webhook wins"
        );
        assert_eq!(merged.user.browser.ttclid.as_deref(), Some("E.C.P.click"));
        assert_eq!(
            merged.user.browser.user_agent.as_deref(),
            Some("Mozilla/5.0 (browser)")
        );
        assert_eq!(merged.user.email.as_deref(), Some("e"));
        assert_eq!(merged.properties.value, webhook.properties.value);
        assert_eq!(merged.page, browser.page);
        assert_eq!(
            (
                merged.properties.market_handle.as_str(),
                merged.properties.market_id
            ),
            ("de", 7)
        );
        assert_eq!(merged.limited_data_use, Some(true));
        // A market the webhook knows stays.
        webhook.properties.market_handle = "fr".into();
        webhook.properties.market_id = 9;
        let merged = webhook.merged_with_browser(&browser);
        assert_eq!(
            (
                merged.properties.market_handle.as_str(),
                merged.properties.market_id
            ),
            ("fr", 9)
        );
    }

    proptest::proptest! {
        /// Whatever copies come, in whatever order, with whatever proofs: the signed copy never
        /// carries an identifier of a copy not bound to it, and carries a bound copy's when
        /// one came.
        #[test]
        fn the_signed_copy_carries_only_bound_identifiers(
            proofs in proptest::collection::vec(
                proptest::collection::vec(0usize..4, 0..3), 1..7),
            webhook_at in 0usize..7,
            binding in proptest::collection::vec(0usize..4, 0..3),
        ) {
            let tokens = ["chk-a", "chk-b", "ttp-c", "ttp-d"];
            let proof_of = |picks: &[usize]| {
                let checkouts = picks.iter().filter(|&&i| i < 2).map(|&i| tokens[i]);
                let sessions = picks.iter().filter(|&&i| i >= 2).map(|&i| tokens[i]);
                Proof::of(checkouts, sessions)
            };
            let binding = proof_of(&binding);
            let (webhook, _) = signed();
            let mut key = Key::default();
            let webhook_at = webhook_at.min(proofs.len());
            let mut bound = Vec::new();
            for (i, picks) in proofs.iter().enumerate() {
                if i == webhook_at {
                    key.offer(&webhook, Source::Webhook, &binding);
                }
                let proof = proof_of(picks);
                let who = i.to_string();
                if proof.binds(&binding) {
                    bound.push(who.clone());
                }
                key.offer(&browser_copy(&who), Source::Browser, &proof);
            }
            if webhook_at == proofs.len() {
                key.offer(&webhook, Source::Webhook, &binding);
            }
            let sent = key.sent().expect("the signed copy is in the row");
            let b = &sent.user.browser;
            for value in [&b.ttp, &b.ttclid, &b.ip, &b.user_agent].into_iter().flatten() {
                let who = value.rsplit('-').next().unwrap();
                proptest::prop_assert!(bound.iter().any(|w| w == who), "{value} is unbound");
            }
            proptest::prop_assert_eq!(b.ttp.is_some(), !bound.is_empty());
        }
    }

    #[test]
    fn pauses_back_off_and_keep_their_start() {
        let first = Pause::after(None, "token".into(), 1_000, 10_000);
        assert_eq!(
            (first.since_ms, first.next_check_ms, first.checks),
            (10_000, 11_000, 0)
        );
        let second = Pause::after(Some(first), "token".into(), 1_000, 20_000);
        assert_eq!(
            (second.since_ms, second.next_check_ms, second.checks),
            (10_000, 22_000, 1)
        );
        let mut late = second;
        for _ in 0..40 {
            late = Pause::after(Some(late), "token".into(), 1_000, 0);
        }
        assert_eq!(
            late.next_check_ms, PAUSE_MAX_CHECK_MS as i64,
            "capped at an hour"
        );
    }

    #[test]
    fn resend_filters_become_bound_conditions() {
        let (sql, values) = Resend {
            event: Some("Purchase".into()),
            from_ms: Some(5),
            to_ms: Some(9),
            error: Some("40002".into()),
            ..Resend::default()
        }
        .condition()
        .unwrap();
        assert_eq!(
            sql,
            "state = ? AND event_name = ? AND created_at >= ? AND created_at < ? AND instr(COALESCE(last_error, ''), ?) > 0"
        );
        assert_eq!(
            values,
            vec![
                ResendValue::Text("failed".into()),
                ResendValue::Text("Purchase".into()),
                ResendValue::Int(5),
                ResendValue::Int(9),
                ResendValue::Text("40002".into()),
            ]
        );
        let unconfirmed = Resend {
            state: Some("unconfirmed".into()),
            ..Resend::default()
        };
        assert_eq!(
            unconfirmed.condition().unwrap().1,
            vec![ResendValue::Text("unconfirmed".into())]
        );
        let sent = Resend {
            state: Some("sent".into()),
            ..Resend::default()
        };
        assert!(sent.condition().is_err());
        assert_eq!(Resend::from_body(b"").unwrap(), Resend::default());
        let refused = |body: &[u8]| match Resend::from_body(body) {
            Err(FilterError(why)) => why,
            other => panic!("{other:?}"),
        };
        assert!(refused(br#"{"state":"sent"}"#).contains("cannot be re-sent"));
        assert!(refused(br#"{"from_ms":"soon"}"#).contains("invalid type"));
    }

    #[test]
    fn bounds_and_confirmations_belong_to_unconfirmed_re_sends_only() {
        let refused = |body: &[u8]| match Resend::from_body(body) {
            Err(FilterError(why)) => why,
            other => panic!("{other:?}"),
        };
        assert!(refused(br#"{"max_value":"10"}"#).contains("apply to \"unconfirmed\" only"));
        assert!(refused(br#"{"state":"failed","confirm":"x"}"#).contains("only"));
        assert!(refused(br#"{"state":"unconfirmed","max_value":"-1"}"#).contains("0 or more"));
        assert!(refused(br#"{"state":"unconfirmed","max_value":"lots"}"#).contains("decimal"));
        // A misspelt bound must not silently re-send everything.
        assert!(refused(br#"{"state":"unconfirmed","max_valu":"10"}"#).contains("unknown field"));
        let bounded = Resend::from_body(br#"{"state":"unconfirmed","max_value":1000}"#).unwrap();
        assert!(bounded.previewed());
        assert_eq!(bounded.max_value, crate::money::Amount::parse("1000"));
        assert!(!Resend::default().previewed());
        // The preview pins its end, so later arrivals do not change what is confirmed.
        assert_eq!(bounded.pinned(77).to_ms, Some(77));
        let given = Resend {
            to_ms: Some(5),
            confirm: Some("code".into()),
            ..bounded
        };
        assert_eq!(
            (given.pinned(77).to_ms, given.pinned(77).confirm),
            (Some(5), None)
        );
    }

    fn candidate(id: &str, value: Option<&str>, currency: Option<&str>) -> Candidate {
        Candidate {
            pixel: String::new(),
            event: "Purchase".into(),
            event_id: id.into(),
            value: value.and_then(crate::money::Amount::parse),
            currency: currency.map(String::from),
        }
    }

    fn unconfirmed(max_value: Option<&str>) -> Resend {
        Resend {
            state: Some("unconfirmed".into()),
            max_value: max_value.and_then(crate::money::Amount::parse),
            ..Resend::default()
        }
    }

    #[test]
    fn a_plan_leaves_out_values_above_the_bound_and_previews_what_it_sends() {
        let rows = vec![
            candidate("1", Some("12.50"), Some("USD")),
            candidate("2", Some("999999.00"), Some("USD")),
            candidate("3", Some("30"), Some("EUR")),
            candidate("4", None, None),
            candidate("5", Some("1000.00"), Some("USD")),
            candidate("6", Some("7"), None),
        ];
        let (send, preview) = unconfirmed(Some("1000")).plan(rows.clone());
        let ids: Vec<_> = send.iter().map(|c| c.event_id.as_str()).collect();
        assert_eq!(ids, ["1", "3", "4", "5", "6"], "the bound is inclusive");
        assert_eq!(
            (preview.count, preview.left_out, preview.more),
            (5, 1, false)
        );
        let totals: Vec<_> = preview
            .totals
            .iter()
            .map(|(c, v)| format!("{c} {v}"))
            .collect();
        assert_eq!(totals, ["EUR 30", "USD 1012.50", "none 7"]);
        let largest: Vec<_> = preview
            .largest
            .iter()
            .map(|c| c.event_id.as_str())
            .collect();
        assert_eq!(
            largest,
            ["5", "3", "1", "6", "4"],
            "largest first, no value last"
        );

        let (all, unbounded) = unconfirmed(None).plan(rows.clone());
        assert_eq!((all.len(), unbounded.left_out), (6, 0));
        assert_eq!(
            unbounded.largest[0].event_id, "2",
            "the forgery heads the preview"
        );
        assert_ne!(
            unbounded.confirm, preview.confirm,
            "another selection, another code"
        );
        assert_eq!(
            unconfirmed(Some("1000")).plan(rows.clone()).1,
            preview,
            "stable"
        );
        let mut one_less = rows.clone();
        one_less.remove(0);
        assert_ne!(
            unconfirmed(Some("1000")).plan(one_less).1.confirm,
            preview.confirm
        );
    }

    #[test]
    fn a_plan_takes_at_most_its_share_and_says_more_match() {
        let rows: Vec<_> = (0..=MAX_RESEND_PER_SHARD)
            .map(|i| candidate(&i.to_string(), Some("1"), Some("USD")))
            .collect();
        let (send, preview) = unconfirmed(None).plan(rows);
        assert_eq!(send.len(), MAX_RESEND_PER_SHARD);
        assert!(preview.more);
        assert_eq!(preview.largest.len(), PREVIEW_LARGEST);
    }

    #[test]
    fn the_combined_preview_sums_shards_and_its_code_covers_the_filter_and_each_selection() {
        let filter = unconfirmed(Some("100")).pinned(50);
        let (_, a) = filter.plan(vec![candidate("a", Some("40"), Some("USD"))]);
        let (_, b) = filter.plan(vec![
            candidate("b", Some("60"), Some("USD")),
            candidate("c", Some("500"), Some("USD")),
        ]);
        let (_, empty) = filter.plan(Vec::new());
        let all = Preview::combined(&filter, &[a.clone(), empty.clone(), b.clone()]);
        assert_eq!((all.count, all.left_out), (2, 1));
        assert_eq!(
            all.totals.get("USD").copied(),
            crate::money::Amount::parse("100")
        );
        let largest: Vec<_> = all.largest.iter().map(|c| c.event_id.as_str()).collect();
        assert_eq!(largest, ["b", "a"]);
        let same = Preview::combined(
            &Resend {
                confirm: Some(all.confirm.clone()),
                ..filter.clone()
            },
            &[a.clone(), empty.clone(), b.clone()],
        );
        assert_eq!(
            same.confirm, all.confirm,
            "the confirmation itself is not covered"
        );
        let other_filter = Resend {
            max_value: crate::money::Amount::parse("1000"),
            ..filter.clone()
        };
        assert_ne!(
            Preview::combined(&other_filter, &[a.clone(), empty.clone(), b.clone()]).confirm,
            all.confirm
        );
        assert_ne!(
            Preview::combined(&filter, &[b, empty, a]).confirm,
            all.confirm,
            "each shard's own selection"
        );
    }

    #[test]
    fn only_the_previews_own_code_sends_anything_else_answers_the_preview() {
        let filter = unconfirmed(Some("100"));
        let pinned = filter.pinned(50);
        let (_, shard) = pinned.plan(vec![candidate("a", Some("40"), Some("USD"))]);
        let preview = Preview::combined(&pinned, &[shard]);
        let code = preview.confirm.clone();

        let first = preview
            .clone()
            .unconfirmed_answer(&filter, &pinned)
            .unwrap();
        assert_eq!(
            (first.status(), first.requeued, first.error),
            (200, 0, None)
        );
        assert_eq!(first.preview.as_ref(), Some(&preview));
        let confirm_with = first.confirm_with.unwrap();
        assert_eq!(confirm_with.confirm.as_deref(), Some(code.as_str()));
        assert_eq!(
            confirm_with.to_ms,
            Some(50),
            "the pinned end travels with it"
        );

        let wrong = Resend {
            confirm: Some("yes".into()),
            ..filter.clone()
        };
        let refused = preview.clone().unconfirmed_answer(&wrong, &pinned).unwrap();
        assert_eq!(
            (refused.status(), refused.error),
            (409, Some("preview_changed"))
        );
        assert!(refused.preview.is_some() && refused.confirm_with.is_some());

        assert_eq!(
            preview.unconfirmed_answer(&confirm_with, &pinned),
            None,
            "send"
        );

        let done = ResendAnswer::resent(Resent {
            requeued: 3,
            changed: false,
        });
        assert_eq!((done.status(), done.requeued), (200, 3));
        assert_eq!(
            serde_json::to_string(&done).unwrap(),
            r#"{"requeued":3}"#,
            "the answer failed re-sends always had"
        );
        let partly = ResendAnswer::resent(Resent {
            requeued: 1,
            changed: true,
        });
        assert_eq!((partly.status(), partly.requeued), (409, 1));
        assert!(partly.message.unwrap().contains("preview again"));
    }

    #[test]
    fn signed_events_always_find_room_browser_copies_only_their_half() {
        use Room::*;
        use Source::{Browser, Webhook};
        const MAX: i64 = 40;
        let fill = |rows, browser_unsent| Fill {
            rows,
            browser_unsent,
        };
        // (fill, room for a browser copy, room for a signed webhook)
        let cases = [
            (fill(0, 0), Free, Free),
            (fill(19, 19), Free, Free),
            // Browser copies waiting to be sent hold half: the next is refused, signed ones not.
            (fill(20, 20), Full, Free),
            (fill(39, 20), Full, Free),
            // Finished rows (sent, unconfirmed, ...) fill the rest: the oldest make room.
            (fill(40, 0), MakeRoom, MakeRoom),
            (fill(40, 19), MakeRoom, MakeRoom),
            (fill(40, 20), Full, MakeRoom),
            // Over the limit (QUEUE_SHARD_MAX_ROWS lowered on a full shard): the same.
            (fill(45, 25), Full, MakeRoom),
        ];
        for (f, browser, webhook) in cases {
            assert_eq!(room(Browser, f, MAX), browser, "browser at {f:?}");
            assert_eq!(room(Webhook, f, MAX), webhook, "webhook at {f:?}");
        }
        // A browser copy merged with its webhook stops counting as browser-only: the next
        // browser copy fits again.
        assert_eq!(room(Browser, fill(20, 19), MAX), Free);
        assert_eq!(room(Browser, fill(0, 0), MAX_SHARD_ROWS), Free);
        assert_eq!(room(Browser, fill(100_000, 100_000), MAX_SHARD_ROWS), Full);
    }

    #[test]
    fn shard_names_are_stable() {
        assert_eq!(shard_name("AddToCart", "x"), shard_name("AddToCart", "x"));
        assert!(shard_name("AddToCart", "x").starts_with("queue-"));
        // The e2e harness aims at a shard the same way (`queueShard` in tests/support).
        assert_eq!(shard_name("AddToCart", "x"), "queue-13");
        assert_eq!(shard_name("Purchase", "5900000000000000301"), "queue-0");
        assert_eq!(shard_name("InitiateCheckout", "ic:abc"), "queue-14");
    }
}
