//! The queue shard's engine: every decision an `EventQueue` Durable Object makes, over a small
//! storage interface ([`Store`]). The object adapts SQLite to [`Store`] (`src/queue_sql.rs`,
//! next to the schema), the alarm and `fetch`, and posts the requests a [`Flush`] forms; the
//! tests here run the same engine over an in-memory store (`memory.rs`), with TikTok played.
//!
//! What it decides: what a copy does to its key (`queue::admit`), room at the limit
//! (`queue::room`), refusals, re-sends, what is due and how a batch is formed (at most
//! [`tiktok::MAX_BATCH`], only from backlog: an accepted event is due at once), what TikTok's
//! answer does to each row (sent, retried with backoff, split until a refused event is alone,
//! a pause for token trouble, a throttle as TikTok asks: [`Throttle`]), retention, and when the
//! alarm fires next.

use crate::config::Config;
use crate::config::Secret;
use crate::proof::Proof;
use crate::queue::earliest_pause;
use crate::queue::{
    admit, hour_start, room, Admission, Candidate, Enqueue, EnqueueSummary, Evidence, Failure,
    Filing, Fill, Forget, Limit, NoRoom, Pause, Preview, QueueStats, Refuse, Resend, Resent, Room,
    RowState, ShardHealth, Source, Stored, MAX_FAILURES, MAX_PAUSED_AGE_MS, MAX_RECENT,
    MAX_RESEND_PER_SHARD, MAX_SHARD_ROWS,
};
use crate::tiktok::{self, Event, RetryPolicy, Step, TrackRequest};
use crate::vec_map::VecMap;
use serde_json::value::RawValue;

#[cfg(test)]
mod memory;
#[cfg(test)]
mod tests;

/// Finished rows are kept this long for dedup and the operator page, then deleted.
pub const RETENTION_MS: i64 = 7 * 24 * 3600 * 1000;
/// Rows deleted per state and alarm, so cleanup never scans history in one go.
pub const CLEANUP_CHUNK: usize = 200;
/// When the configuration cannot send (invalid settings), look again after this long.
pub const CONFIG_RECHECK_MS: i64 = 60_000;
/// Finished states, oldest of which may go (retention, or room at the limit).
pub const FINISHED: [RowState; 5] = [
    RowState::Sent,
    RowState::DryRun,
    RowState::Failed,
    RowState::Unconfirmed,
    RowState::Refused,
];

/// One key's row as the shard keeps it: one per (pixel, event name, event_id).
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The pixel it goes to (`pixels::Pixel::key`).
    pub pixel: String,
    pub event_name: String,
    pub event_id: String,
    /// The copy to send; `None` once sent or refused (nothing personal is kept longer than
    /// needed), or when the stored copy cannot be read.
    pub event: Option<Event>,
    /// The match keys the copy carried, comma-separated (kept for the operator's figures).
    pub match_keys: String,
    pub state: RowState,
    pub source: Source,
    /// A webhook row's binding (empty for a browser copy).
    pub proof: Proof,
    pub attempts: u32,
    pub created_at: i64,
    pub next_attempt_at: i64,
    pub updated_at: i64,
    pub last_error: Option<String>,
}

impl Row {
    /// What `queue::admit` and `Refuse::stops` read of it.
    pub fn stored(&self) -> Stored {
        Stored {
            source: self.source,
            state: self.state,
            attempts: self.attempts,
            event: self.event.clone(),
            proof: self.proof.clone(),
        }
    }

    /// A key held as `refused`: no payload, never sent.
    fn refused(pixel: &str, event_name: &str, event_id: &str, now: i64) -> Row {
        Row {
            pixel: pixel.to_string(),
            event_name: event_name.to_string(),
            event_id: event_id.to_string(),
            event: None,
            match_keys: String::new(),
            state: RowState::Refused,
            source: Source::Browser,
            proof: Proof::default(),
            attempts: 0,
            created_at: now,
            next_attempt_at: now,
            updated_at: now,
            last_error: None,
        }
    }

    /// This row, stopped by a refusal: whatever it held is gone and never sent.
    fn refuse(&mut self, now: i64) {
        self.state = RowState::Refused;
        self.event = None;
        self.match_keys.clear();
        self.updated_at = now;
    }

    /// A final state. A sent copy is dropped: IP and user agent are not kept longer than
    /// needed (dry-run and failed ones stay for the operator until retention ends).
    fn finish(&mut self, state: RowState, error: Option<String>, now: i64) {
        self.state = state;
        self.attempts += u32::from(state != RowState::DryRun);
        self.last_error = error;
        self.updated_at = now;
        if state == RowState::Sent {
            self.event = None;
        }
    }

    /// Back to the queue, due now, as if never tried.
    fn requeue(&mut self, now: i64) {
        self.state = RowState::Queued;
        self.attempts = 0;
        self.last_error = None;
        self.next_attempt_at = now;
        self.updated_at = now;
    }
}

/// Small values a shard keeps beside its rows, per pixel key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Note<'a> {
    /// The pixel's [`Pause`] in this shard, as JSON.
    Pause(&'a str),
    /// When TikTok throttled this pixel's sends from this shard in the last minute
    /// ([`Throttle`]), as JSON.
    Throttles(&'a str),
}

impl Note<'_> {
    /// Its storage key: the single-pixel settings' pixel (`""`) keeps the key it always had.
    pub fn key(self) -> String {
        let (name, pixel) = match self {
            Note::Pause(pixel) => ("paused", pixel),
            Note::Throttles(pixel) => ("throttles", pixel),
        };
        if pixel.is_empty() {
            name.to_string()
        } else {
            format!("{name}:{pixel}")
        }
    }
}

/// What one row of the operator's lists shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub pixel: String,
    pub event_name: String,
    pub event_id: String,
    pub state: String,
    pub match_keys: String,
    pub created_at: i64,
}

/// What the engine asks of a shard's storage. Each method is one statement in SQLite
/// (`src/queue_sql.rs`); an in-memory implementation backs the tests.
pub trait Store {
    type Error;
    fn row(
        &self,
        pixel: &str,
        event_name: &str,
        event_id: &str,
    ) -> Result<Option<Row>, Self::Error>;
    /// Inserts `row`, or replaces the row of its key.
    fn put(&mut self, row: &Row) -> Result<(), Self::Error>;
    /// Pending rows due at `now_ms`, earliest first, at most `limit`.
    fn due(&self, now_ms: i64, limit: usize) -> Result<Vec<Row>, Self::Error>;
    /// When the earliest pending row is due.
    fn next_due(&self) -> Result<Option<i64>, Self::Error>;
    /// Moves every pending row of `pixel` due before `at_ms` to `at_ms`.
    fn postpone_due(&mut self, pixel: &str, at_ms: i64) -> Result<(), Self::Error>;
    /// Gives every row of pixel `from` to pixel `to`, except a key `to` already holds.
    fn move_pixel(&mut self, from: &str, to: &str) -> Result<(), Self::Error>;
    /// Pending rows, whatever their age.
    fn depth(&self) -> Result<u64, Self::Error>;
    /// When the oldest finished row ([`FINISHED`]) was last updated.
    fn oldest_finished(&self) -> Result<Option<i64>, Self::Error>;
    /// Deletes up to `limit` rows in `state` last updated before `before_ms`, oldest first.
    fn delete_oldest(
        &mut self,
        state: RowState,
        before_ms: i64,
        limit: usize,
    ) -> Result<usize, Self::Error>;
    /// The counters kept as rows come and go.
    fn fill(&self) -> Result<Fill, Self::Error>;
    /// The copies (and refusals) filed under a key for one of `proof`'s digests, oldest first.
    fn evidence(
        &self,
        event_name: &str,
        event_id: &str,
        proof: &Proof,
    ) -> Result<Vec<Evidence>, Self::Error>;
    /// Files a browser copy under `digest` (the first per digest stays), or, with `None`, a
    /// refusal (which replaces what was filed there).
    fn file(
        &mut self,
        event_name: &str,
        event_id: &str,
        digest: &str,
        event: Option<&Event>,
        now_ms: i64,
    ) -> Result<(), Self::Error>;
    fn clear_evidence(&mut self, event_name: &str, event_id: &str) -> Result<(), Self::Error>;
    /// Deletes up to `limit` filed copies older than `before_ms`.
    fn delete_evidence_before(
        &mut self,
        before_ms: i64,
        limit: usize,
    ) -> Result<usize, Self::Error>;
    /// Counts a copy refused for want of room in the hour starting at `hour_ms`.
    fn count_no_room(&mut self, source: Source, hour_ms: i64) -> Result<(), Self::Error>;
    fn no_room_since(&self, hour_ms: i64) -> Result<NoRoom, Self::Error>;
    fn delete_no_room_before(&mut self, before_ms: i64) -> Result<(), Self::Error>;
    /// Deletes what a privacy webhook asks for (every pixel's rows, and filed copies).
    fn forget(&mut self, request: &Forget) -> Result<(), Self::Error>;
    /// Rows with a copy that `filter` selects, oldest first, at most `limit`.
    fn select(&self, filter: &Resend, limit: usize) -> Result<Vec<Row>, Self::Error>;
    /// Requeues every row with a copy that `filter` selects; how many.
    fn requeue_all(&mut self, filter: &Resend, now_ms: i64) -> Result<u64, Self::Error>;
    fn note(&self, note: Note<'_>) -> Result<Option<String>, Self::Error>;
    fn set_note(&mut self, note: Note<'_>, text: Option<&str>) -> Result<(), Self::Error>;
    /// Rows created since `since_ms`.
    fn window(&self, since_ms: i64) -> Result<Vec<Listed>, Self::Error>;
    /// The newest rows, newest first.
    fn newest(&self, limit: usize) -> Result<Vec<Listed>, Self::Error>;
    /// The last failures, newest first.
    fn failures(&self, limit: usize) -> Result<Vec<Failure>, Self::Error>;
}

/// The row limit: `QUEUE_SHARD_MAX_ROWS` may lower [`MAX_SHARD_ROWS`] (tests fill a shard).
pub fn max_rows(config: Option<&Config>) -> i64 {
    config
        .and_then(|c| c.queue_shard_max_rows)
        .map_or(MAX_SHARD_ROWS, |n| n.min(MAX_SHARD_ROWS))
}

/// Rows queued under the single-pixel settings (key `""`) belong to the first pixel of
/// `TIKTOK_PIXELS` once it is set: run when the shard starts with its settings, it moves them to
/// that pixel's key, so a later copy of their event merges with them and a refusal reaches
/// them. Nothing is sent or dropped; a key the first pixel already holds (settings switched
/// back and forth) keeps both rows, and [`flush`] sends the `""` one to the first pixel too
/// (TikTok drops a second copy of an event_id).
pub fn adopt<S: Store>(store: &mut S, config: &Config) -> Result<(), S::Error> {
    match config.pixels.first() {
        Some(first) if !first.key.is_empty() => store.move_pixel("", &first.key),
        _ => Ok(()),
    }
}

/// Admits each copy (`queue::admit`) for each of the call's pixels: one row per (pixel, event,
/// event_id), each merged with that pixel's copies only; the browser copies filed as evidence
/// serve every pixel's signed copy. `None` when a signed copy finds no room: the webhook is
/// refused so that Shopify redelivers it later, rather than dropping one accepted before.
pub fn enqueue<S: Store>(
    store: &mut S,
    call: &Enqueue,
    max_rows: i64,
    now: i64,
) -> Result<Option<EnqueueSummary>, S::Error> {
    let mut summary = EnqueueSummary::default();
    for event in &call.events {
        let (name, id) = (event.event.as_str(), event.event_id.as_str());
        let evidence = match call.source {
            Source::Webhook => store.evidence(name, id, &call.proof)?,
            Source::Browser => Vec::new(),
        };
        let mut filing = Filing::Keep;
        for pixel in &call.pixels {
            let decided = admit_one(store, call, pixel, event, &evidence, max_rows, now)?;
            let Some((decision, counted)) = decided else {
                return Ok(None);
            };
            summary += counted;
            filing = match (filing, decision) {
                (Filing::Clear, _) | (_, Filing::Clear) => Filing::Clear,
                (Filing::File, _) | (_, Filing::File) => Filing::File,
                _ => Filing::Keep,
            };
        }
        match filing {
            Filing::Keep => {}
            Filing::File => {
                for digest in call.proof.digests() {
                    store.file(name, id, digest, Some(event), now)?;
                }
            }
            Filing::Clear => store.clear_evidence(name, id)?,
        }
    }
    Ok(Some(summary))
}

/// One copy of `event` for `pixel`: its row's fate, and what it asks of the filed evidence.
/// `None` when a signed copy finds no room.
fn admit_one<S: Store>(
    store: &mut S,
    call: &Enqueue,
    pixel: &str,
    event: &Event,
    evidence: &[Evidence],
    max_rows: i64,
    now: i64,
) -> Result<Option<(Filing, EnqueueSummary)>, S::Error> {
    let mut summary = EnqueueSummary::default();
    let (name, id) = (event.event.as_str(), event.event_id.as_str());
    {
        let row = store.row(pixel, name, id)?;
        let stored = row.as_ref().map(Row::stored);
        let decision = admit(
            stored.as_ref(),
            evidence,
            event,
            call.source,
            &call.proof,
            &call.hold,
            now,
        );
        // A webhook row keeps what binds it; a browser copy's proof is filed instead.
        let binding = match call.source {
            Source::Webhook => call.proof.clone(),
            Source::Browser => Proof::default(),
        };
        match decision.admission {
            Admission::Insert {
                event: admitted,
                state,
                due_ms,
            } => {
                if !has_room(store, call.source, max_rows)? {
                    store.count_no_room(call.source, hour_start(now))?;
                    if call.source == Source::Webhook {
                        return Ok(None);
                    }
                    // Refused at the door: nothing stored, nothing filed.
                    summary.no_room += 1;
                    return Ok(Some((Filing::Keep, summary)));
                }
                store.put(&Row {
                    pixel: pixel.to_string(),
                    event_name: name.to_string(),
                    event_id: id.to_string(),
                    match_keys: admitted.match_keys().join(","),
                    event: Some(*admitted),
                    state,
                    source: call.source,
                    proof: binding,
                    attempts: 0,
                    created_at: now,
                    next_attempt_at: due_ms,
                    updated_at: now,
                    last_error: None,
                })?;
                summary.accepted += 1;
            }
            Admission::Merge {
                event: merged,
                state,
                due_ms,
            } => {
                if let Some(mut row) = row {
                    // A browser copy merging into a webhook row leaves its binding as it is.
                    if row.source != Source::Webhook {
                        row.proof = binding;
                    }
                    row.match_keys = merged.match_keys().join(",");
                    row.event = Some(*merged);
                    row.state = state;
                    row.source = Source::Webhook;
                    row.attempts = 0;
                    row.last_error = None;
                    row.next_attempt_at = due_ms;
                    row.updated_at = now;
                    store.put(&row)?;
                    summary.merged += 1;
                }
            }
            Admission::Refused => {
                refuse_key(store, pixel, name, id, now)?;
                summary.refused += 1;
            }
            Admission::Ignore => summary.duplicates += 1,
        }
        Ok(Some((decision.filing, summary)))
    }
}

/// Whether a new row from `source` fits (`queue::room`), after deleting the oldest finished
/// rows when the shard is at its limit.
fn has_room<S: Store>(store: &mut S, source: Source, max_rows: i64) -> Result<bool, S::Error> {
    match room(source, store.fill()?, max_rows) {
        Room::Free => Ok(true),
        Room::Full => Ok(false),
        Room::MakeRoom => {
            for state in FINISHED {
                if store.delete_oldest(state, i64::MAX, CLEANUP_CHUNK)? > 0 {
                    return Ok(true);
                }
            }
            Ok(false)
        }
    }
}

/// Makes the key `refused`, whatever it held: no payload, never sent.
fn refuse_key<S: Store>(
    store: &mut S,
    pixel: &str,
    name: &str,
    id: &str,
    now: i64,
) -> Result<(), S::Error> {
    let row = match store.row(pixel, name, id)? {
        Some(mut row) => {
            row.refuse(now);
            row
        }
        None => Row::refused(pixel, name, id, now),
    };
    store.put(&row)
}

/// Stops what a refusal proves (`queue::Refuse`): its `events` outright (unsent copies lose
/// their payload and become `refused`, unseen keys are held as `refused`, kept for the
/// retention period like finished rows); its `bound` keys only for a signed copy bound to its
/// proof: filed there for the webhook to meet, and a waiting webhook copy bound to it stops now.
pub fn refuse<S: Store>(store: &mut S, request: &Refuse, now: i64) -> Result<(), S::Error> {
    for (name, id) in &request.events {
        for pixel in &request.pixels {
            match store.row(pixel, name, id)? {
                None => store.put(&Row::refused(pixel, name, id, now))?,
                Some(mut row) if row.state.unsent_or_retrying() => {
                    row.refuse(now);
                    store.put(&row)?;
                }
                Some(_) => {}
            }
        }
        store.clear_evidence(name, id)?;
    }
    for (name, id) in &request.bound {
        for digest in request.proof.digests() {
            store.file(name, id, digest, None, now)?;
        }
        let mut stopped = false;
        for pixel in &request.pixels {
            let row = store.row(pixel, name, id)?;
            if row.is_some_and(|row| request.stops(&row.stored())) {
                refuse_key(store, pixel, name, id, now)?;
                stopped = true;
            }
        }
        if stopped {
            store.clear_evidence(name, id)?;
        }
    }
    Ok(())
}

/// The purchases an unconfirmed re-send selects (one more than it takes, so the preview can
/// say more match), with each one's value and currency.
fn candidates<S: Store>(store: &S, request: &Resend) -> Result<Vec<Candidate>, S::Error> {
    let rows = store.select(request, MAX_RESEND_PER_SHARD + 1)?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let properties = row.event.map(|e| e.properties);
            Candidate {
                pixel: row.pixel,
                event: row.event_name,
                event_id: row.event_id,
                value: properties.as_ref().and_then(|p| p.value),
                currency: properties.and_then(|p| p.currency),
            }
        })
        .collect())
}

/// What a re-send of unconfirmed purchases would send from this shard.
pub fn preview<S: Store>(store: &S, request: &Resend) -> Result<Preview, S::Error> {
    Ok(request.plan(candidates(store, request)?).1)
}

/// Puts the operator's choice of failed or unconfirmed events back in the queue (the Worker
/// has checked the filter already). Unconfirmed purchases go only when `confirm` is this
/// shard's code for the selection (`Resend::plan`), and only those within `max_value`: what
/// the operator previewed.
pub fn resend<S: Store>(store: &mut S, request: &Resend, now: i64) -> Result<Resent, S::Error> {
    if !request.previewed() {
        let requeued = store.requeue_all(request, now)?;
        return Ok(Resent {
            requeued,
            changed: false,
        });
    }
    let (send, preview) = request.plan(candidates(store, request)?);
    if request.confirm.as_deref() != Some(preview.confirm.as_str()) {
        return Ok(Resent {
            requeued: 0,
            changed: true,
        });
    }
    let mut requeued = 0;
    for c in send {
        if let Some(mut row) = store.row(&c.pixel, &c.event, &c.event_id)? {
            if row.state == RowState::Unconfirmed && row.event.is_some() {
                row.requeue(now);
                store.put(&row)?;
                requeued += 1;
            }
        }
    }
    Ok(Resent {
        requeued,
        changed: false,
    })
}

/// The pause of `pixel`'s sends from this shard, if any.
pub fn pause<S: Store>(store: &S, pixel: &str) -> Result<Option<Pause>, S::Error> {
    Ok(store
        .note(Note::Pause(pixel))?
        .and_then(|t| serde_json::from_str(&t).ok()))
}

fn set_pause<S: Store>(store: &mut S, pixel: &str, pause: Option<&Pause>) -> Result<(), S::Error> {
    let text = pause.map(|p| serde_json::to_string(p).unwrap_or_default());
    store.set_note(Note::Pause(pixel), text.as_deref())
}

/// The pauses of `pixels` (keys) in this shard.
fn pauses<S: Store>(store: &S, pixels: &[String]) -> Result<VecMap<String, Pause>, S::Error> {
    let mut pauses = VecMap::new();
    for pixel in pixels {
        if let Some(pause) = pause(store, pixel)? {
            pauses.insert(pixel.clone(), pause);
        }
    }
    Ok(pauses)
}

/// Depth, and the pauses of `pixels` (the shop's pixel keys).
pub fn health<S: Store>(store: &S, pixels: &[String]) -> Result<ShardHealth, S::Error> {
    Ok(ShardHealth {
        depth: store.depth()?,
        pauses: pauses(store, pixels)?,
    })
}

/// Counts by event and state (one per pixel's row), queue depth, match-key coverage and the
/// last failures, for events created since `since_ms`; the earliest pause of `pixels`.
pub fn stats<S: Store>(
    store: &S,
    since_ms: i64,
    pixels: &[String],
) -> Result<QueueStats, S::Error> {
    let rows = store.window(since_ms)?;
    let pauses = pauses(store, pixels)?;
    let paused = pauses.iter().fold(None, |earliest, (_, p)| {
        earliest_pause(earliest, Some(p.clone()))
    });
    let mut stats = QueueStats {
        depth: store.depth()?,
        last_failures: store.failures(MAX_FAILURES)?,
        paused,
        pauses,
        no_room: store.no_room_since(hour_start(since_ms))?,
        ..QueueStats::default()
    };
    for row in rows {
        stats.count_in(&row.event_name, &row.state, &row.match_keys, row.created_at);
    }
    stats.recent = store
        .newest(MAX_RECENT)?
        .into_iter()
        .map(|r| crate::queue::RecentEvent {
            pixel: r.pixel,
            match_keys: split_keys(&r.match_keys).map(String::from).collect(),
            event: r.event_name,
            event_id: r.event_id,
            state: r.state,
            at_ms: r.created_at,
        })
        .collect();
    // One merge into an empty report sorts the lists the way merged reports are sorted.
    let mut sorted = QueueStats::default();
    sorted.merge(stats);
    Ok(sorted)
}

/// The match keys of a column.
pub fn split_keys(column: &str) -> impl Iterator<Item = &str> {
    column.split(',').filter(|k| !k.is_empty())
}

/// Deletes a chunk of expired finished rows per state (and expired filed copies and room
/// counts); `true` when more are left.
pub fn clean_up<S: Store>(store: &mut S, now: i64) -> Result<bool, S::Error> {
    let before = now - RETENTION_MS;
    let mut more = false;
    for state in FINISHED {
        more |= store.delete_oldest(state, before, CLEANUP_CHUNK)? == CLEANUP_CHUNK;
    }
    // Evidence no signed copy came for is kept as long as a finished row.
    more |= store.delete_evidence_before(before, CLEANUP_CHUNK)? == CLEANUP_CHUNK;
    store.delete_no_room_before(before)?;
    Ok(more)
}

/// When the alarm should fire next: the earliest pending event (a paused pixel's wait for its
/// pause's next check: [`Flush`] postpones them), soon when cleanup has more to do, else the
/// oldest finished row's expiry.
pub fn next_alarm<S: Store>(
    store: &S,
    more_to_clean: bool,
    now: i64,
) -> Result<Option<i64>, S::Error> {
    let mut at = store.next_due()?;
    if more_to_clean {
        at = Some(at.map_or(now + 1_000, |a| a.min(now + 1_000)));
    }
    if at.is_none() {
        at = store.oldest_finished()?.map(|t| t + RETENTION_MS);
    }
    Ok(at)
}

/// What a flush changed that the shell copies elsewhere: each pixel's pause to mirror for
/// `/tt/health` (`None`: remove this shard's), by pixel key.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mirror(pub Vec<(String, Option<Pause>)>);

impl Mirror {
    fn set(&mut self, pixel: &str, pause: Option<Pause>) {
        self.0.retain(|(p, _)| p != pixel);
        self.0.push((pixel.to_string(), pause));
    }
}

/// One pixel's side of a flush: where its batches go, and its pause.
#[derive(Debug)]
struct Sender {
    key: String,
    id: String,
    token: Secret,
    /// The name of the secret holding `token`, which a pause's fix names.
    secret: String,
    test_event_code: Option<String>,
    paused: Option<Pause>,
}

/// One request to TikTok: the body, and the token of the pixel it reports to.
#[derive(Debug)]
pub struct Post {
    pub body: String,
    pub token: Secret,
    /// The pixel's key (for the log).
    pub pixel: String,
}

/// One pass of the alarm over what is due: batches formed from the backlog, one pixel each,
/// each answered by TikTok in turn ([`Flush::next_request`], [`Flush::answer`]). A pixel's
/// pause (its token refused, or throttled) stops only that pixel's batches.
#[derive(Debug)]
pub struct Flush {
    work: Vec<(usize, Vec<Row>)>,
    current: Option<(usize, Vec<Row>)>,
    senders: Vec<Sender>,
    policy: RetryPolicy,
    /// The pauses to mirror for `/tt/health`, when they changed.
    pub mirror: Mirror,
}

/// How a flush began.
#[derive(Debug)]
pub enum Start {
    /// Nothing due (or paused until later).
    Idle,
    /// Without an access token or pixel: the due events were recorded as `dry_run`.
    DryRun(usize),
    Send(Box<Flush>),
}

/// Starts a flush at `now`. With no usable configuration (`None`) everything due waits a
/// minute (the operator must fix it first). Due rows go by pixel: a dry-run pixel's are
/// recorded as `dry_run`, a pixel no longer configured fails its rows (re-sendable once it is
/// back), a paused pixel's wait for its next check, which sends one event first.
pub fn flush<S: Store>(
    store: &mut S,
    config: Option<&Config>,
    now: i64,
) -> Result<Start, S::Error> {
    let Some(config) = config else {
        for (pixel, _) in by_pixel(store.due(now, tiktok::MAX_BATCH)?) {
            store.postpone_due(&pixel, now + CONFIG_RECHECK_MS)?;
        }
        return Ok(Start::Idle);
    };
    let due = store.due(now, tiktok::MAX_BATCH)?;
    if due.is_empty() {
        return Ok(Start::Idle);
    }
    let mut senders: Vec<Sender> = Vec::new();
    let mut work: Vec<(usize, Vec<Row>)> = Vec::new();
    let mut dry = 0;
    for (key, rows) in by_pixel(due) {
        // Rows queued under the single-pixel settings that [`adopt`] could not move go to the
        // first pixel of TIKTOK_PIXELS.
        let pixel = config
            .pixel(&key)
            .or_else(|| key.is_empty().then(|| config.pixels.first()).flatten());
        let Some(pixel) = pixel else {
            let why = format!(
                "pixel {key} is no longer in TIKTOK_PIXELS: add it back, then re-send failed events"
            );
            for mut row in rows {
                row.finish(RowState::Failed, Some(why.clone()), now);
                store.put(&row)?;
            }
            continue;
        };
        let (Some(token), Some(id)) = (pixel.token.clone(), pixel.id.clone()) else {
            // Dry run (or no pixel): the events were built and are kept for the operator, unsent.
            let why = pixel
                .token
                .as_ref()
                .map(|_| "TIKTOK_PIXEL_ID is not set".to_string());
            for mut row in rows {
                row.finish(RowState::DryRun, why.clone(), now);
                store.put(&row)?;
                dry += 1;
            }
            continue;
        };
        let paused = pause(store, &key)?;
        if let Some(p) = paused.as_ref().filter(|p| p.next_check_ms > now) {
            store.postpone_due(&key, p.next_check_ms)?;
            continue;
        }
        let (too_old, mut rows): (Vec<Row>, Vec<Row>) = rows
            .into_iter()
            .partition(|r| r.created_at < now - MAX_PAUSED_AGE_MS || r.event.is_none());
        for mut row in too_old {
            let why = match &row.event {
                None => "the stored copy could not be read".to_string(),
                Some(_) => format!(
                    "not sent within 7 days: {}",
                    paused.as_ref().map_or("", |p| p.reason.as_str())
                ),
            };
            row.finish(RowState::Failed, Some(why), now);
            store.put(&row)?;
        }
        // A paused pixel checks with one small batch before sending the rest.
        if paused.is_some() {
            rows.truncate(1);
        }
        if !rows.is_empty() {
            work.push((senders.len(), rows));
        }
        senders.push(Sender {
            key,
            id,
            token,
            secret: pixel.token_name.clone(),
            test_event_code: pixel.test_event_code.clone(),
            paused,
        });
    }
    if senders.is_empty() && dry > 0 {
        return Ok(Start::DryRun(dry));
    }
    // Batches go out in the order of the pixels: the first is popped first.
    work.reverse();
    Ok(Start::Send(Box::new(Flush {
        work,
        current: None,
        senders,
        policy: RetryPolicy {
            base_ms: config.retry_base_ms,
            ..RetryPolicy::default()
        },
        mirror: Mirror::default(),
    })))
}

/// `rows` by pixel key, the pixels in order of their first row.
fn by_pixel(rows: Vec<Row>) -> Vec<(String, Vec<Row>)> {
    let mut groups: Vec<(String, Vec<Row>)> = Vec::new();
    for row in rows {
        match groups.iter_mut().find(|(pixel, _)| *pixel == row.pixel) {
            Some((_, mine)) => mine.push(row),
            None => groups.push((row.pixel.clone(), vec![row])),
        }
    }
    groups
}

impl Flush {
    /// The next batch's request, or `None` when this flush is done.
    pub fn next_request(&mut self) -> Option<Post> {
        let (sender, rows) = self.work.pop()?;
        let to = &self.senders[sender];
        // Stored with exact decimal amounts; TikTok's numbers are written at the last step.
        let raws: Vec<Box<RawValue>> = rows
            .iter()
            .filter_map(|r| r.event.as_ref())
            .filter_map(|e| RawValue::from_string(e.tiktok_json().ok()?).ok())
            .collect();
        let body = serde_json::to_string(&TrackRequest::web(
            &to.id,
            to.test_event_code.as_deref(),
            raws.iter().map(AsRef::as_ref).collect(),
        ))
        .ok()?;
        let post = Post {
            body,
            token: to.token.clone(),
            pixel: to.key.clone(),
        };
        self.current = Some((sender, rows));
        Some(post)
    }

    /// Events in the batch last formed.
    pub fn batch_len(&self) -> usize {
        self.current.as_ref().map_or(0, |(_, rows)| rows.len())
    }

    /// What TikTok's answer (`status`: `None` for no answer in time) does to the batch last
    /// formed; `jitter` in [0, 1) spreads retries. Returns the step taken.
    pub fn answer<S: Store>(
        &mut self,
        store: &mut S,
        status: Option<u16>,
        body: &str,
        now: i64,
        jitter: f64,
    ) -> Result<Step, S::Error> {
        let (sender, batch) = self.current.take().unwrap_or_default();
        let secret = self.senders.get(sender).map_or("", |s| s.secret.as_str());
        let step = tiktok::classify(status, body, secret).step(batch.len());
        // Any answer about the events themselves means TikTok took the token again.
        let token_works = matches!(step, Step::MarkSent | Step::Split | Step::Fail(_));
        match &step {
            Step::MarkSent => finish_all(store, batch, RowState::Sent, None, now)?,
            Step::Fail(message) => {
                finish_all(store, batch, RowState::Failed, Some(message), now)?;
            }
            Step::Split => {
                let mut left = batch;
                let right = left.split_off(left.len() / 2);
                self.work.extend([(sender, right), (sender, left)]);
            }
            Step::Retry(reason) => {
                for mut row in batch {
                    let attempts = row.attempts + 1;
                    let next = self.policy.next_attempt_at(
                        row.created_at as u64,
                        now as u64,
                        attempts,
                        jitter,
                    );
                    match next {
                        Some(at) => {
                            row.state = RowState::Retrying;
                            row.attempts = attempts;
                            row.next_attempt_at = at as i64;
                            row.last_error = Some(reason.clone());
                            row.updated_at = now;
                        }
                        None => {
                            let why = format!("gave up after 48 h: {reason}");
                            row.finish(RowState::Failed, Some(why), now);
                        }
                    }
                    store.put(&row)?;
                }
            }
            Step::Pause(reason) => {
                let previous = self.senders[sender].paused.take();
                let pause = Pause::after(previous, reason.clone(), self.policy.base_ms, now);
                self.stop(store, sender, pause)?;
            }
            Step::Throttle { daily, message } => {
                let previous = self.senders[sender].paused.take();
                let key = self.senders[sender].key.clone();
                let pause = throttle(store, &key, previous, *daily, message, now)?;
                self.stop(store, sender, pause)?;
            }
        }
        if token_works && self.senders[sender].paused.is_some() {
            let was = self.senders[sender].paused.take();
            let key = self.senders[sender].key.clone();
            set_pause(store, &key, None)?;
            if was.is_some_and(|p| p.mirrored()) {
                self.mirror.set(&key, None);
            }
            // The rest of this pixel's due events go out on the next alarm, at once.
            self.work.retain(|(s, _)| *s != sender);
        }
        Ok(step)
    }

    /// Stops the pixel of `sender` under `pause`: everything of it that is due waits for it;
    /// the other pixels' batches go on.
    fn stop<S: Store>(
        &mut self,
        store: &mut S,
        sender: usize,
        pause: Pause,
    ) -> Result<(), S::Error> {
        let key = self.senders[sender].key.clone();
        set_pause(store, &key, Some(&pause))?;
        store.postpone_due(&key, pause.next_check_ms)?;
        if pause.mirrored() {
            self.mirror.set(&key, Some(pause.clone()));
        }
        self.senders[sender].paused = Some(pause);
        self.work.retain(|(s, _)| *s != sender);
        Ok(())
    }
}

fn finish_all<S: Store>(
    store: &mut S,
    batch: Vec<Row>,
    state: RowState,
    error: Option<&String>,
    now: i64,
) -> Result<(), S::Error> {
    for mut row in batch {
        row.finish(state, error.cloned(), now);
        store.put(&row)?;
    }
    Ok(())
}

/// The pause one more throttle (`40100`) at `now` brings, by TikTok's recovery rules
/// ([`Limit::after`]), counting it among the minute's throttles.
fn throttle<S: Store>(
    store: &mut S,
    pixel: &str,
    previous: Option<Pause>,
    daily: bool,
    message: &str,
    now: i64,
) -> Result<Pause, S::Error> {
    let mut recent: Vec<i64> = store
        .note(Note::Throttles(pixel))?
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let limit = Limit::after(&mut recent, daily, now);
    let text = serde_json::to_string(&recent).unwrap_or_default();
    store.set_note(Note::Throttles(pixel), Some(&text))?;
    Ok(Pause::throttled(limit, previous, message, now))
}
