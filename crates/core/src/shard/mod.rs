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
use crate::proof::Proof;
use crate::queue::{
    admit, hour_start, room, Admission, Candidate, Enqueue, EnqueueSummary, Evidence, Failure,
    Filing, Fill, Forget, Limit, NoRoom, Pause, Preview, QueueStats, Refuse, Resend, Resent, Room,
    RowState, ShardHealth, Source, Stored, MAX_FAILURES, MAX_PAUSED_AGE_MS, MAX_RECENT,
    MAX_RESEND_PER_SHARD, MAX_SHARD_ROWS,
};
use crate::tiktok::{self, Event, RetryPolicy, Step, TrackRequest};
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

/// One key's row as the shard keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
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
    fn refused(event_name: &str, event_id: &str, now: i64) -> Row {
        Row {
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

/// Small values a shard keeps beside its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Note {
    /// The shard's [`Pause`], as JSON.
    Pause,
    /// When TikTok throttled this shard in the last minute ([`Throttle`]), as JSON.
    Throttles,
}

/// What one row of the operator's lists shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
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
    fn row(&self, event_name: &str, event_id: &str) -> Result<Option<Row>, Self::Error>;
    /// Inserts `row`, or replaces the row of its key.
    fn put(&mut self, row: &Row) -> Result<(), Self::Error>;
    /// Pending rows due at `now_ms`, earliest first, at most `limit`.
    fn due(&self, now_ms: i64, limit: usize) -> Result<Vec<Row>, Self::Error>;
    /// When the earliest pending row is due.
    fn next_due(&self) -> Result<Option<i64>, Self::Error>;
    /// Moves every pending row due before `at_ms` to `at_ms`.
    fn postpone_due(&mut self, at_ms: i64) -> Result<(), Self::Error>;
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
    /// Deletes what a privacy webhook asks for (rows and filed copies).
    fn forget(&mut self, request: &Forget) -> Result<(), Self::Error>;
    /// Rows with a copy that `filter` selects, oldest first, at most `limit`.
    fn select(&self, filter: &Resend, limit: usize) -> Result<Vec<Row>, Self::Error>;
    /// Requeues every row with a copy that `filter` selects; how many.
    fn requeue_all(&mut self, filter: &Resend, now_ms: i64) -> Result<u64, Self::Error>;
    fn note(&self, note: Note) -> Result<Option<String>, Self::Error>;
    fn set_note(&mut self, note: Note, text: Option<&str>) -> Result<(), Self::Error>;
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

/// Admits each copy (`queue::admit`). `None` when a signed copy finds no room: the webhook is
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
        let row = store.row(name, id)?;
        let evidence = match call.source {
            Source::Webhook => store.evidence(name, id, &call.proof)?,
            Source::Browser => Vec::new(),
        };
        let stored = row.as_ref().map(Row::stored);
        let decision = admit(
            stored.as_ref(),
            &evidence,
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
                    continue;
                }
                store.put(&Row {
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
                refuse_key(store, name, id, now)?;
                summary.refused += 1;
            }
            Admission::Ignore => summary.duplicates += 1,
        }
        match decision.filing {
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
fn refuse_key<S: Store>(store: &mut S, name: &str, id: &str, now: i64) -> Result<(), S::Error> {
    let row = match store.row(name, id)? {
        Some(mut row) => {
            row.refuse(now);
            row
        }
        None => Row::refused(name, id, now),
    };
    store.put(&row)
}

/// Stops what a refusal proves (`queue::Refuse`): its `events` outright (unsent copies lose
/// their payload and become `refused`, unseen keys are held as `refused`, kept for the
/// retention period like finished rows); its `bound` keys only for a signed copy bound to its
/// proof: filed there for the webhook to meet, and a waiting webhook copy bound to it stops now.
pub fn refuse<S: Store>(store: &mut S, request: &Refuse, now: i64) -> Result<(), S::Error> {
    for (name, id) in &request.events {
        match store.row(name, id)? {
            None => store.put(&Row::refused(name, id, now))?,
            Some(mut row) if row.state.unsent_or_retrying() => {
                row.refuse(now);
                store.put(&row)?;
            }
            Some(_) => {}
        }
        store.clear_evidence(name, id)?;
    }
    for (name, id) in &request.bound {
        for digest in request.proof.digests() {
            store.file(name, id, digest, None, now)?;
        }
        let row = store.row(name, id)?;
        if row.is_some_and(|row| request.stops(&row.stored())) {
            refuse_key(store, name, id, now)?;
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
        if let Some(mut row) = store.row(&c.event, &c.event_id)? {
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

/// The shard's pause, if any.
pub fn pause<S: Store>(store: &S) -> Result<Option<Pause>, S::Error> {
    Ok(store
        .note(Note::Pause)?
        .and_then(|t| serde_json::from_str(&t).ok()))
}

fn set_pause<S: Store>(store: &mut S, pause: Option<&Pause>) -> Result<(), S::Error> {
    let text = pause.map(|p| serde_json::to_string(p).unwrap_or_default());
    store.set_note(Note::Pause, text.as_deref())
}

pub fn health<S: Store>(store: &S) -> Result<ShardHealth, S::Error> {
    Ok(ShardHealth {
        depth: store.depth()?,
        paused: pause(store)?,
    })
}

/// Counts by event and state, queue depth, match-key coverage and the last failures, for
/// events created since `since_ms`.
pub fn stats<S: Store>(store: &S, since_ms: i64) -> Result<QueueStats, S::Error> {
    let rows = store.window(since_ms)?;
    let mut stats = QueueStats {
        depth: store.depth()?,
        last_failures: store.failures(MAX_FAILURES)?,
        paused: pause(store)?,
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

/// When the alarm should fire next: the earliest pending event (not before a pause's next
/// check), soon when cleanup has more to do, else the oldest finished row's expiry.
pub fn next_alarm<S: Store>(
    store: &S,
    more_to_clean: bool,
    now: i64,
) -> Result<Option<i64>, S::Error> {
    let mut at = store.next_due()?;
    if let (Some(due), Some(pause)) = (at, pause(store)?) {
        at = Some(due.max(pause.next_check_ms));
    }
    if more_to_clean {
        at = Some(at.map_or(now + 1_000, |a| a.min(now + 1_000)));
    }
    if at.is_none() {
        at = store.oldest_finished()?.map(|t| t + RETENTION_MS);
    }
    Ok(at)
}

/// What a flush changed that the shell copies elsewhere: the pause to mirror for
/// `/tt/health` (`Some(None)`: remove this shard's).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mirror(pub Option<Option<Pause>>);

/// One pass of the alarm over what is due: batches formed from the backlog, each answered by
/// TikTok in turn ([`Flush::next_request`], [`Flush::answer`]).
#[derive(Debug)]
pub struct Flush {
    work: Vec<Vec<Row>>,
    current: Vec<Row>,
    paused: Option<Pause>,
    policy: RetryPolicy,
    pixel: String,
    test_event_code: Option<String>,
    /// The pause to mirror for `/tt/health`, when it changed.
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
/// minute (the operator must fix it first); a paused shard checks with one event first.
pub fn flush<S: Store>(
    store: &mut S,
    config: Option<&Config>,
    now: i64,
) -> Result<Start, S::Error> {
    let Some(config) = config else {
        store.postpone_due(now + CONFIG_RECHECK_MS)?;
        return Ok(Start::Idle);
    };
    let paused = pause(store)?;
    if paused.as_ref().is_some_and(|p| p.next_check_ms > now) {
        return Ok(Start::Idle);
    }
    let due = store.due(now, tiktok::MAX_BATCH)?;
    if due.is_empty() {
        return Ok(Start::Idle);
    }
    let (Some(_), Some(pixel)) = (config.access_token.as_ref(), config.pixel_id.as_deref()) else {
        // Dry run (or no pixel): the events were built and are kept for the operator, unsent.
        let why = config
            .access_token
            .as_ref()
            .map(|_| "TIKTOK_PIXEL_ID is not set".to_string());
        let n = due.len();
        for mut row in due {
            row.finish(RowState::DryRun, why.clone(), now);
            store.put(&row)?;
        }
        return Ok(Start::DryRun(n));
    };
    let (too_old, mut due): (Vec<Row>, Vec<Row>) = due
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
    // A paused shard checks with one small batch before sending the rest.
    if paused.is_some() {
        due.truncate(1);
    }
    let work = if due.is_empty() { vec![] } else { vec![due] };
    Ok(Start::Send(Box::new(Flush {
        work,
        current: Vec::new(),
        paused,
        policy: RetryPolicy {
            base_ms: config.retry_base_ms,
            ..RetryPolicy::default()
        },
        pixel: pixel.to_string(),
        test_event_code: config.test_event_code.clone(),
        mirror: Mirror::default(),
    })))
}

impl Flush {
    /// The next batch's request body, or `None` when this flush is done.
    pub fn next_request(&mut self) -> Option<String> {
        self.current = self.work.pop()?;
        // Stored with exact decimal amounts; TikTok's numbers are written at the last step.
        let raws: Vec<Box<RawValue>> = self
            .current
            .iter()
            .filter_map(|r| r.event.as_ref())
            .filter_map(|e| RawValue::from_string(e.tiktok_json().ok()?).ok())
            .collect();
        serde_json::to_string(&TrackRequest::web(
            &self.pixel,
            self.test_event_code.as_deref(),
            raws.iter().map(AsRef::as_ref).collect(),
        ))
        .ok()
    }

    /// Events in the batch last formed.
    pub fn batch_len(&self) -> usize {
        self.current.len()
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
        let batch = std::mem::take(&mut self.current);
        let step = tiktok::classify(status, body).step(batch.len());
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
                self.work.extend([right, left]);
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
                let pause =
                    Pause::after(self.paused.take(), reason.clone(), self.policy.base_ms, now);
                self.stop(store, pause)?;
            }
            Step::Throttle { daily, message } => {
                let pause = throttle(store, self.paused.take(), *daily, message, now)?;
                self.stop(store, pause)?;
            }
        }
        if token_works && self.paused.is_some() {
            let was = self.paused.take();
            set_pause(store, None)?;
            if was.is_some_and(|p| p.mirrored()) {
                self.mirror = Mirror(Some(None));
            }
            // The rest of what was due goes out on the next alarm, at once.
            self.work.clear();
        }
        Ok(step)
    }

    /// Stops the flush under `pause`: everything due waits for it.
    fn stop<S: Store>(&mut self, store: &mut S, pause: Pause) -> Result<(), S::Error> {
        set_pause(store, Some(&pause))?;
        store.postpone_due(pause.next_check_ms)?;
        if pause.mirrored() {
            self.mirror = Mirror(Some(Some(pause)));
        }
        self.work.clear();
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
    previous: Option<Pause>,
    daily: bool,
    message: &str,
    now: i64,
) -> Result<Pause, S::Error> {
    let mut recent: Vec<i64> = store
        .note(Note::Throttles)?
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let limit = Limit::after(&mut recent, daily, now);
    let text = serde_json::to_string(&recent).unwrap_or_default();
    store.set_note(Note::Throttles, Some(&text))?;
    Ok(Pause::throttled(limit, previous, message, now))
}
