//! `EventQueue`: the durable send queue, one Durable Object per shard of event keys.
//!
//! Every copy of an event (browser or webhook) comes to the shard that owns its key (event
//! name, event_id: TikTok's own dedup key), where `queue::admit` decides: store it, merge it
//! with the unsent copy already here, or leave the copy TikTok has alone. Nothing is answered
//! before it is written to SQLite. The alarm sends what is due in batches; TikTok's answer is
//! turned into a step per batch (`tiktok::Outcome::step`): sent, retried with backoff, split
//! until a refused event is alone (only it fails, with TikTok's message), or the shard pauses
//! for a token or permission problem and resumes by itself once TikTok takes a batch again.
//!
//! Every query on a hot path uses an index (see `MIGRATIONS`), retention is deleted in bounded
//! chunks from the alarm, and a shard holds at most `MAX_SHARD_ROWS` rows, of which browser-only
//! copies waiting to be sent hold at most half (`queue::room`). At the limit the oldest
//! finished rows make room; when there is none, a new copy is refused (collect answers 503, a
//! webhook 500 so Shopify redelivers later) rather than dropping any that was accepted.

use serde::Deserialize;
use serde_json::value::RawValue;
use std::cell::Cell;
use tiktok_edge_core::proof::Proof;
use tiktok_edge_core::queue::{
    admit, hour_start, room, Admission, Candidate, Count, Enqueue, EnqueueSummary, Evidence,
    Failure, Filing, Fill, Forget, HourCount, NoRoom, Pause, QueueStats, RecentEvent, Refuse,
    Resend, ResendValue, Resent, Room, RowState, ShardHealth, Source, Stored, MAX_FAILURES,
    MAX_PAUSED_AGE_MS, MAX_RECENT, MAX_RESEND_PER_SHARD, MAX_SHARD_ROWS,
};
use tiktok_edge_core::tiktok::{self, Event, RetryPolicy, Step, TrackRequest};
use tiktok_edge_core::vec_map::VecMap;
use worker::{
    console_error, console_log, durable_object, AbortController, Date, Delay, DurableObject, Env,
    Fetch, Headers, Method, Request, Response, Result, SqlStorage, SqlStorageValue, State,
};

use crate::store::Store;
use crate::{outbound, respond, settings};

/// Schema changes, applied once each, in order; `meta.schema` holds how many ran.
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS events (
       event_name TEXT NOT NULL,
       event_id TEXT NOT NULL,
       payload TEXT NOT NULL,
       match_keys TEXT NOT NULL,
       state TEXT NOT NULL,
       attempts INTEGER NOT NULL DEFAULT 0,
       created_at INTEGER NOT NULL,
       next_attempt_at INTEGER NOT NULL,
       updated_at INTEGER NOT NULL,
       last_error TEXT,
       PRIMARY KEY (event_name, event_id)
     );
     CREATE INDEX IF NOT EXISTS events_due ON events (state, next_attempt_at);",
    // Copies merge by source; retention, failures and the pause need (state, updated_at);
    // the operator's window needs created_at; the row count is kept by triggers so the size
    // limit costs one row read, not a scan.
    "ALTER TABLE events ADD COLUMN source TEXT NOT NULL DEFAULT 'webhook';
     CREATE INDEX events_finished ON events (state, updated_at);
     CREATE INDEX events_created ON events (created_at);
     INSERT INTO meta (key, n) VALUES ('rows', (SELECT COUNT(*) FROM events));
     CREATE TRIGGER events_counted_in AFTER INSERT ON events
       BEGIN UPDATE meta SET n = n + 1 WHERE key = 'rows'; END;
     CREATE TRIGGER events_counted_out AFTER DELETE ON events
       BEGIN UPDATE meta SET n = n - 1 WHERE key = 'rows'; END;",
    // What binds copies to a signed resource (`tiktok_edge_core::proof`): a webhook row's
    // binding, and browser copies (or refusals, with an empty payload) filed under each digest
    // they prove until their signed copy comes.
    "ALTER TABLE events ADD COLUMN proof TEXT NOT NULL DEFAULT '';
     CREATE TABLE evidence (
       event_name TEXT NOT NULL,
       event_id TEXT NOT NULL,
       proof TEXT NOT NULL,
       payload TEXT NOT NULL,
       created_at INTEGER NOT NULL,
       PRIMARY KEY (event_name, event_id, proof)
     );
     CREATE INDEX evidence_created ON evidence (created_at);",
    // Browser-only copies still waiting to be sent are counted the same way (`queue::room`
    // bounds them), leaving the count when sent, finished or merged with their webhook; copies
    // refused for want of room are counted per hour for the operator.
    "INSERT INTO meta (key, n) VALUES ('browser_unsent', (SELECT COUNT(*) FROM events
       WHERE source = 'browser' AND state IN ('queued', 'waiting', 'retrying')));
     CREATE TRIGGER browser_unsent_in AFTER INSERT ON events
       WHEN NEW.source = 'browser' AND NEW.state IN ('queued', 'waiting', 'retrying')
       BEGIN UPDATE meta SET n = n + 1 WHERE key = 'browser_unsent'; END;
     CREATE TRIGGER browser_unsent_out AFTER DELETE ON events
       WHEN OLD.source = 'browser' AND OLD.state IN ('queued', 'waiting', 'retrying')
       BEGIN UPDATE meta SET n = n - 1 WHERE key = 'browser_unsent'; END;
     CREATE TRIGGER browser_unsent_moved AFTER UPDATE OF source, state ON events
       WHEN (OLD.source = 'browser' AND OLD.state IN ('queued', 'waiting', 'retrying'))
         != (NEW.source = 'browser' AND NEW.state IN ('queued', 'waiting', 'retrying'))
       BEGIN UPDATE meta SET n = n
         + (NEW.source = 'browser' AND NEW.state IN ('queued', 'waiting', 'retrying'))
         - (OLD.source = 'browser' AND OLD.state IN ('queued', 'waiting', 'retrying'))
         WHERE key = 'browser_unsent'; END;
     CREATE TABLE no_room (
       hour_ms INTEGER NOT NULL,
       source TEXT NOT NULL,
       n INTEGER NOT NULL,
       PRIMARY KEY (hour_ms, source)
     );",
];

/// Finished rows are kept this long for dedup and the operator page, then deleted.
const RETENTION_MS: i64 = 7 * 24 * 3600 * 1000;
/// Rows deleted per state and alarm, so cleanup never scans history in one go.
const CLEANUP_CHUNK: i64 = 200;
/// When the configuration cannot send (invalid settings), look again after this long.
const CONFIG_RECHECK_MS: i64 = 60_000;
/// Finished states, oldest of which may go (retention, or room at the limit).
const FINISHED: [RowState; 5] = [
    RowState::Sent,
    RowState::DryRun,
    RowState::Failed,
    RowState::Unconfirmed,
    RowState::Refused,
];

#[durable_object(alarm)]
pub struct EventQueue {
    state: State,
    env: Env,
    /// SQLite rows read and written since this counter was last taken (benchmarks, logs).
    rows: Cell<(usize, usize)>,
}

#[derive(Deserialize)]
struct DueRow {
    event_name: String,
    event_id: String,
    payload: String,
    attempts: i64,
    created_at: i64,
}

#[derive(Deserialize)]
struct StoredRow {
    payload: String,
    source: String,
    state: String,
    attempts: i64,
    proof: String,
}

#[derive(Deserialize)]
struct EvidenceRow {
    proof: String,
    payload: String,
}

#[derive(Deserialize)]
struct CountRow {
    n: i64,
}

#[derive(Deserialize)]
struct RecentRow {
    event_name: String,
    event_id: String,
    state: String,
    match_keys: String,
    created_at: i64,
}

#[derive(Deserialize)]
struct KeysRow {
    event_name: String,
    state: String,
    match_keys: String,
    created_at: i64,
}

#[derive(Deserialize)]
struct NextDue {
    next: Option<i64>,
}

#[derive(Deserialize)]
struct MetaText {
    text: Option<String>,
}

impl DurableObject for EventQueue {
    fn new(state: State, env: Env) -> Self {
        let queue = EventQueue {
            state,
            env,
            rows: Cell::new((0, 0)),
        };
        if let Err(e) = queue.migrate() {
            console_error!(
                "{{\"event\":\"queue_schema_failed\",\"error\":{:?}}}",
                e.to_string()
            );
        }
        queue
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        match (req.method(), req.path().as_str()) {
            (Method::Post, "/enqueue") => {
                // Parsed by serde_json, not the runtime's JSON.parse: ids above 2^53 stay exact.
                let call: Enqueue = serde_json::from_str(&req.text().await?)?;
                self.rows.set((0, 0));
                let Some(mut summary) = self.enqueue(&call)? else {
                    return Response::error(
                        "this queue shard is full of events still waiting to be sent",
                        507,
                    );
                };
                (summary.rows_read, summary.rows_written) = self.rows.take();
                if summary.accepted + summary.merged > 0 {
                    self.schedule().await?;
                }
                respond::json(200, &summary)
            }
            (Method::Post, "/forget") => {
                let request: Forget = serde_json::from_str(&req.text().await?)?;
                self.forget(&request)?;
                Response::ok("")
            }
            (Method::Post, "/refuse") => {
                let request: Refuse = serde_json::from_str(&req.text().await?)?;
                self.refuse(&request)?;
                self.schedule().await?;
                Response::ok("")
            }
            (Method::Post, "/resend") => {
                let request: Resend = serde_json::from_str(&req.text().await?)?;
                let done = self.resend(&request)?;
                if done.requeued > 0 {
                    self.schedule().await?;
                }
                respond::json(200, &done)
            }
            (Method::Post, "/resend-preview") => {
                let request: Resend = serde_json::from_str(&req.text().await?)?;
                let (_, preview) = request.plan(self.candidates(&request)?);
                respond::json(200, &preview)
            }
            (Method::Get, "/health") => respond::json(
                200,
                &ShardHealth {
                    depth: self.depth()?,
                    paused: self.pause()?,
                },
            ),
            (Method::Get, "/stats") => {
                let since: i64 = tiktok_edge_core::urls::query_param(&req.inner().url(), "since")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                respond::json(200, &self.stats(since)?)
            }
            _ => Response::error("no such queue operation", 404),
        }
    }

    async fn alarm(&self) -> Result<Response> {
        self.rows.set((0, 0));
        if let Err(e) = self.flush().await {
            console_error!(
                "{{\"event\":\"queue_flush_failed\",\"error\":{:?}}}",
                e.to_string()
            );
        }
        let more_to_clean = self.clean_up()?;
        self.schedule_with(more_to_clean).await?;
        Response::ok("")
    }
}

fn now_ms() -> i64 {
    Date::now().as_millis() as i64
}

fn text(state: RowState) -> SqlStorageValue {
    state.as_str().into()
}

/// `?, ?, ?` for the pending states, and their values.
fn pending() -> (&'static str, Vec<SqlStorageValue>) {
    ("?, ?, ?", RowState::PENDING.map(text).to_vec())
}

impl EventQueue {
    fn sql(&self) -> SqlStorage {
        self.state.storage().sql()
    }

    /// Runs one statement to its end and returns its rows (`RETURNING` rows for writes),
    /// adding the rows it read and wrote to the tally.
    fn all<T: for<'de> Deserialize<'de>>(
        &self,
        query: &str,
        bindings: Vec<SqlStorageValue>,
    ) -> Result<Vec<T>> {
        let cursor = self.sql().exec(query, bindings)?;
        let rows = cursor.to_array()?;
        let (read, written) = self.rows.get();
        self.rows
            .set((read + cursor.rows_read(), written + cursor.rows_written()));
        Ok(rows)
    }

    /// A statement whose rows do not matter; returns how many it returned.
    fn run(&self, query: &str, bindings: Vec<SqlStorageValue>) -> Result<usize> {
        Ok(self.all::<serde_json::Value>(query, bindings)?.len())
    }

    fn migrate(&self) -> Result<()> {
        let sql = self.sql();
        sql.exec(
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, n INTEGER, text TEXT)",
            None,
        )?;
        let done: Vec<CountRow> = sql
            .exec("SELECT n FROM meta WHERE key = 'schema'", None)?
            .to_array()?;
        let done = done.first().map_or(0, |r| r.n.max(0) as usize);
        for (version, migration) in MIGRATIONS.iter().enumerate().skip(done) {
            sql.exec(migration, None)?;
            sql.exec(
                "INSERT INTO meta (key, n) VALUES ('schema', ?)
                 ON CONFLICT (key) DO UPDATE SET n = excluded.n",
                Some(vec![(version as i64 + 1).into()]),
            )?;
        }
        Ok(())
    }

    /// What the shard holds under a key.
    fn stored(&self, event_name: &str, event_id: &str) -> Result<Option<Stored>> {
        let rows: Vec<StoredRow> = self.all(
            "SELECT payload, source, state, attempts, proof FROM events
             WHERE event_name = ? AND event_id = ?",
            vec![event_name.into(), event_id.into()],
        )?;
        Ok(rows.first().map(|row| Stored {
            source: Source::parse(&row.source).unwrap_or(Source::Webhook),
            state: RowState::parse(&row.state).unwrap_or(RowState::Sent),
            attempts: row.attempts.max(0) as u32,
            event: serde_json::from_str(&row.payload).ok(),
            proof: Proof::from_column(&row.proof),
        }))
    }

    /// The copies (and refusals) filed under a key for one of `proof`'s digests, oldest first.
    fn evidence(&self, event: &Event, proof: &Proof) -> Result<Vec<Evidence>> {
        if proof.is_empty() {
            return Ok(Vec::new());
        }
        let marks = vec!["?"; proof.digests().len()].join(", ");
        let mut values: Vec<SqlStorageValue> =
            vec![event.event.as_str().into(), event.event_id.as_str().into()];
        values.extend(proof.digests().iter().map(|d| d.as_str().into()));
        let rows: Vec<EvidenceRow> = self.all(
            &format!(
                "SELECT proof, payload FROM evidence
                 WHERE event_name = ? AND event_id = ? AND proof IN ({marks})
                 ORDER BY created_at, rowid"
            ),
            values,
        )?;
        Ok(rows
            .into_iter()
            .map(|row| Evidence {
                digest: row.proof,
                event: serde_json::from_str(&row.payload).ok(),
            })
            .collect())
    }

    /// Files a browser copy under each digest of its proof (the first per digest stays), or,
    /// with `event: None`, a refusal (which replaces what was filed there).
    fn file(
        &self,
        event_name: &str,
        event_id: &str,
        proof: &Proof,
        event: Option<&Event>,
    ) -> Result<()> {
        let (verb, payload) = match event {
            Some(event) => ("INSERT OR IGNORE", serde_json::to_string(event)?),
            None => ("INSERT OR REPLACE", String::new()),
        };
        for digest in proof.digests() {
            self.run(
                &format!(
                    "{verb} INTO evidence (event_name, event_id, proof, payload, created_at)
                     VALUES (?, ?, ?, ?, ?)"
                ),
                vec![
                    event_name.into(),
                    event_id.into(),
                    digest.as_str().into(),
                    payload.as_str().into(),
                    now_ms().into(),
                ],
            )?;
        }
        Ok(())
    }

    fn clear_evidence(&self, event_name: &str, event_id: &str) -> Result<()> {
        self.run(
            "DELETE FROM evidence WHERE event_name = ? AND event_id = ?",
            vec![event_name.into(), event_id.into()],
        )?;
        Ok(())
    }

    /// Admits each copy (`queue::admit`). `None` when the shard is full of unsent events.
    fn enqueue(&self, call: &Enqueue) -> Result<Option<EnqueueSummary>> {
        let now = now_ms();
        let mut summary = EnqueueSummary::default();
        for event in &call.events {
            let key = || -> Vec<SqlStorageValue> {
                vec![event.event.as_str().into(), event.event_id.as_str().into()]
            };
            let stored = self.stored(&event.event, &event.event_id)?;
            let evidence = match call.source {
                Source::Webhook => self.evidence(event, &call.proof)?,
                Source::Browser => Vec::new(),
            };
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
                Source::Webhook => call.proof.to_column(),
                Source::Browser => String::new(),
            };
            match decision.admission {
                Admission::Insert {
                    event: admitted,
                    state,
                    due_ms,
                } => {
                    if !self.has_room(call.source)? {
                        self.count_no_room(call.source, now)?;
                        if call.source == Source::Webhook {
                            return Ok(None);
                        }
                        // Refused at the door: nothing stored, nothing filed.
                        summary.no_room += 1;
                        continue;
                    }
                    let mut values = vec![
                        event.event.as_str().into(),
                        event.event_id.as_str().into(),
                        serde_json::to_string(&admitted)?.into(),
                        admitted.match_keys().join(",").into(),
                        text(state),
                        call.source.as_str().into(),
                        binding.into(),
                    ];
                    values.extend([now.into(), due_ms.into(), now.into()]);
                    self.run(
                        "INSERT INTO events (event_name, event_id, payload, match_keys, state, source, proof, created_at, next_attempt_at, updated_at)
                         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        values,
                    )?;
                    summary.accepted += 1;
                }
                Admission::Merge {
                    event: merged,
                    state,
                    due_ms,
                } => {
                    let mut values = vec![
                        serde_json::to_string(&merged)?.into(),
                        merged.match_keys().join(",").into(),
                        text(state),
                        Source::Webhook.as_str().into(),
                        due_ms.into(),
                        now.into(),
                        binding.into(),
                    ];
                    values.extend(key());
                    // A browser copy merging into a webhook row leaves its binding as it is
                    // (SET reads the row as it was).
                    self.run(
                        "UPDATE events SET payload = ?, match_keys = ?, state = ?, source = ?,
                           attempts = 0, last_error = NULL, next_attempt_at = ?, updated_at = ?,
                           proof = CASE WHEN source = 'webhook' THEN proof ELSE ? END
                         WHERE event_name = ? AND event_id = ?",
                        values,
                    )?;
                    summary.merged += 1;
                }
                Admission::Refused => {
                    self.refuse_key(&event.event, &event.event_id, now)?;
                    summary.refused += 1;
                }
                Admission::Ignore => summary.duplicates += 1,
            }
            match decision.filing {
                Filing::Keep => {}
                Filing::File => {
                    self.file(&event.event, &event.event_id, &call.proof, Some(event))?
                }
                Filing::Clear => self.clear_evidence(&event.event, &event.event_id)?,
            }
        }
        Ok(Some(summary))
    }

    /// Whether a new row from `source` fits (`queue::room`), after deleting the oldest finished
    /// rows when the shard is at its limit.
    fn has_room(&self, source: Source) -> Result<bool> {
        let fill = Fill {
            rows: self.counter("rows")?,
            browser_unsent: self.counter("browser_unsent")?,
        };
        match room(source, fill, self.max_rows()) {
            Room::Free => Ok(true),
            Room::Full => Ok(false),
            Room::MakeRoom => {
                for state in FINISHED {
                    if self.delete_oldest(state, i64::MAX, CLEANUP_CHUNK)? > 0 {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
        }
    }

    /// A row counter the triggers keep in `meta`.
    fn counter(&self, key: &str) -> Result<i64> {
        let rows: Vec<CountRow> = self.all("SELECT n FROM meta WHERE key = ?", vec![key.into()])?;
        Ok(rows.first().map_or(0, |r| r.n))
    }

    /// Counts a copy refused for want of room, in its hour.
    fn count_no_room(&self, source: Source, now: i64) -> Result<()> {
        self.run(
            "INSERT INTO no_room (hour_ms, source, n) VALUES (?, ?, 1)
             ON CONFLICT (hour_ms, source) DO UPDATE SET n = n + 1",
            vec![hour_start(now).into(), source.as_str().into()],
        )?;
        Ok(())
    }

    /// `QUEUE_SHARD_MAX_ROWS` lowers the limit (tests fill a shard with it).
    fn max_rows(&self) -> i64 {
        settings::var(&self.env, "QUEUE_SHARD_MAX_ROWS")
            .and_then(|v| v.parse().ok())
            .filter(|&n: &i64| n > 0)
            .map_or(MAX_SHARD_ROWS, |n| n.min(MAX_SHARD_ROWS))
    }

    /// Deletes up to `limit` rows in `state` last updated before `before`, oldest first.
    fn delete_oldest(&self, state: RowState, before: i64, limit: i64) -> Result<usize> {
        self.run(
            "DELETE FROM events WHERE rowid IN (
               SELECT rowid FROM events WHERE state = ? AND updated_at < ?
               ORDER BY updated_at LIMIT ?)
             RETURNING 1",
            vec![text(state), before.into(), limit.into()],
        )
    }

    /// Deletes a chunk of expired finished rows per state; `true` when more are left.
    fn clean_up(&self) -> Result<bool> {
        let before = now_ms() - RETENTION_MS;
        let mut more = false;
        for state in FINISHED {
            more |= self.delete_oldest(state, before, CLEANUP_CHUNK)? as i64 == CLEANUP_CHUNK;
        }
        // Evidence no signed copy came for is kept as long as a finished row.
        let expired = self.run(
            "DELETE FROM evidence WHERE rowid IN (
               SELECT rowid FROM evidence WHERE created_at < ? ORDER BY created_at LIMIT ?)
             RETURNING 1",
            vec![before.into(), CLEANUP_CHUNK.into()],
        )?;
        more |= expired as i64 == CLEANUP_CHUNK;
        // One row per hour and source at most: a handful per alarm.
        self.run("DELETE FROM no_room WHERE hour_ms < ?", vec![before.into()])?;
        Ok(more)
    }

    /// Deletes what a privacy webhook asks for.
    fn forget(&self, request: &Forget) -> Result<()> {
        if request.everything {
            self.run("DELETE FROM events", vec![])?;
            self.run("DELETE FROM evidence", vec![])?;
            return Ok(());
        }
        for (event, id) in &request.events {
            self.run(
                "DELETE FROM events WHERE event_name = ? AND event_id = ?",
                vec![event.as_str().into(), id.as_str().into()],
            )?;
            self.clear_evidence(event, id)?;
        }
        for ttp in &request.ttps {
            // A rare privacy request: the queries allowed to read every row.
            for table in ["events", "evidence"] {
                self.run(
                    &format!("DELETE FROM {table} WHERE instr(payload, ?) > 0"),
                    vec![Forget::ttp_fragment(ttp).into()],
                )?;
            }
        }
        Ok(())
    }

    /// Stops what a refusal proves (`queue::Refuse`): its `events` outright (unsent copies lose
    /// their payload and become `refused`, unseen keys are held as `refused`, kept for the
    /// retention period like finished rows); its `bound` keys only for a signed copy bound to
    /// its proof: filed there for the webhook to meet, and a waiting webhook copy bound to it
    /// stops now.
    fn refuse(&self, request: &Refuse) -> Result<()> {
        let now = now_ms();
        let unsent = [
            RowState::Queued,
            RowState::Waiting,
            RowState::Unconfirmed,
            RowState::Retrying,
        ];
        for (event, id) in &request.events {
            let mut values: Vec<SqlStorageValue> = vec![
                event.as_str().into(),
                id.as_str().into(),
                text(RowState::Refused),
                Source::Browser.as_str().into(),
                now.into(),
                now.into(),
                now.into(),
                now.into(),
            ];
            values.extend(unsent.map(text));
            self.run(
                "INSERT INTO events (event_name, event_id, payload, match_keys, state, source, created_at, next_attempt_at, updated_at)
                 VALUES (?, ?, '', '', ?, ?, ?, ?, ?)
                 ON CONFLICT (event_name, event_id) DO UPDATE SET state = excluded.state, payload = '',
                   match_keys = '', updated_at = ?
                 WHERE state IN (?, ?, ?, ?)",
                values,
            )?;
            self.clear_evidence(event, id)?;
        }
        for (event, id) in &request.bound {
            self.file(event, id, &request.proof, None)?;
            if self
                .stored(event, id)?
                .is_some_and(|row| request.stops(&row))
            {
                self.refuse_key(event, id, now)?;
                self.clear_evidence(event, id)?;
            }
        }
        Ok(())
    }

    /// Makes the key `refused`, whatever it held: no payload, never sent.
    fn refuse_key(&self, event: &str, id: &str, now: i64) -> Result<()> {
        self.run(
            "INSERT INTO events (event_name, event_id, payload, match_keys, state, source, created_at, next_attempt_at, updated_at)
             VALUES (?, ?, '', '', ?, ?, ?, ?, ?)
             ON CONFLICT (event_name, event_id) DO UPDATE SET state = excluded.state, payload = '',
               match_keys = '', updated_at = excluded.updated_at",
            vec![
                event.into(),
                id.into(),
                text(RowState::Refused),
                Source::Browser.as_str().into(),
                now.into(),
                now.into(),
                now.into(),
            ],
        )?;
        Ok(())
    }

    /// Puts the operator's choice of failed or unconfirmed events back in the queue (the
    /// Worker has checked the filter already). Unconfirmed purchases go only when `confirm`
    /// is this shard's code for the selection (`Resend::plan`), and only those within
    /// `max_value`: what the operator previewed.
    fn resend(&self, request: &Resend) -> Result<Resent> {
        let now = now_ms();
        if request.previewed() {
            let (send, preview) = request.plan(self.candidates(request)?);
            if request.confirm.as_deref() != Some(preview.confirm.as_str()) {
                return Ok(Resent {
                    requeued: 0,
                    changed: true,
                });
            }
            let mut requeued = 0;
            for c in send {
                requeued += self.run(
                    "UPDATE events SET state = ?, attempts = 0, last_error = NULL, next_attempt_at = ?, updated_at = ?
                     WHERE event_name = ? AND event_id = ? AND state = ? AND payload != '' RETURNING 1",
                    vec![
                        text(RowState::Queued),
                        now.into(),
                        now.into(),
                        c.event.into(),
                        c.event_id.into(),
                        text(RowState::Unconfirmed),
                    ],
                )? as u64;
            }
            return Ok(Resent {
                requeued,
                changed: false,
            });
        }
        let (condition, values) = self.condition(request)?;
        let mut bindings = vec![text(RowState::Queued), now.into(), now.into()];
        bindings.extend(values);
        let requeued = self.run(
            &format!(
                "UPDATE events SET state = ?, attempts = 0, last_error = NULL, next_attempt_at = ?, updated_at = ?
                 WHERE payload != '' AND {condition} RETURNING 1"
            ),
            bindings,
        )? as u64;
        Ok(Resent {
            requeued,
            changed: false,
        })
    }

    /// The re-send filter's SQL condition with its values bound.
    fn condition(&self, request: &Resend) -> Result<(String, Vec<SqlStorageValue>)> {
        let Ok((condition, values)) = request.condition() else {
            return Err(worker::Error::RustError(
                "re-send filter not usable (the Worker checks it before asking)".into(),
            ));
        };
        let values = values.into_iter().map(|v| match v {
            ResendValue::Text(t) => SqlStorageValue::from(t),
            ResendValue::Int(i) => SqlStorageValue::from(i),
        });
        Ok((condition, values.collect()))
    }

    /// The rows an unconfirmed re-send selects, oldest first, one more than it takes (so the
    /// preview can say more match), with each purchase's value and currency.
    fn candidates(&self, request: &Resend) -> Result<Vec<Candidate>> {
        #[derive(Deserialize)]
        struct Row {
            event_name: String,
            event_id: String,
            value: Option<String>,
            currency: Option<String>,
        }
        let (condition, mut values) = self.condition(request)?;
        values.push((MAX_RESEND_PER_SHARD as i64 + 1).into());
        let rows: Vec<Row> = self.all(
            &format!(
                "SELECT event_name, event_id,
                   json_extract(payload, '$.properties.value') AS value,
                   json_extract(payload, '$.properties.currency') AS currency
                 FROM events WHERE payload != '' AND {condition}
                 ORDER BY created_at, event_name, event_id LIMIT ?"
            ),
            values,
        )?;
        Ok(rows
            .into_iter()
            .map(|r| Candidate {
                event: r.event_name,
                event_id: r.event_id,
                value: r
                    .value
                    .as_deref()
                    .and_then(tiktok_edge_core::money::Amount::parse),
                currency: r.currency,
            })
            .collect())
    }

    /// Events still waiting to be sent (queued, waiting or retrying), whatever their age.
    fn depth(&self) -> Result<u64> {
        let (marks, values) = pending();
        let rows: Vec<CountRow> = self.all(
            &format!("SELECT COUNT(*) AS n FROM events WHERE state IN ({marks})"),
            values,
        )?;
        Ok(rows.first().map_or(0, |r| r.n.max(0) as u64))
    }

    fn pause(&self) -> Result<Option<Pause>> {
        let rows: Vec<MetaText> = self.all("SELECT text FROM meta WHERE key = 'paused'", vec![])?;
        Ok(rows
            .first()
            .and_then(|r| r.text.as_deref())
            .and_then(|t| serde_json::from_str(t).ok()))
    }

    /// Copies the pause to KV for `/tt/health`; a failure is logged, never fatal: the shard's
    /// own row decides sending, the copy only what health says.
    async fn mirror_pause(&self, pause: Option<&Pause>) {
        let shard = self.state.id().to_string();
        let done = match Store::new(&self.env) {
            Ok(store) => store.mirror_pause(&shard, pause).await,
            Err(e) => Err(e),
        };
        if let Err(e) = done {
            console_error!(
                "{{\"event\":\"pause_mirror_failed\",\"error\":{:?}}}",
                e.to_string()
            );
        }
    }

    fn set_pause(&self, pause: Option<&Pause>) -> Result<()> {
        match pause {
            Some(pause) => self.run(
                "INSERT INTO meta (key, text) VALUES ('paused', ?)
                 ON CONFLICT (key) DO UPDATE SET text = excluded.text",
                vec![serde_json::to_string(pause)?.into()],
            )?,
            None => self.run("DELETE FROM meta WHERE key = 'paused'", vec![])?,
        };
        Ok(())
    }

    /// Counts by event and state, queue depth, match-key coverage and the last failures, for
    /// events created since `since_ms`.
    fn stats(&self, since_ms: i64) -> Result<QueueStats> {
        let rows: Vec<KeysRow> = self.all(
            "SELECT event_name, state, match_keys, created_at FROM events WHERE created_at >= ?",
            vec![since_ms.into()],
        )?;
        let mut counts: Vec<Count> = Vec::new();
        let mut hourly: Vec<HourCount> = Vec::new();
        let mut match_keys = VecMap::new();
        for row in &rows {
            match counts
                .iter_mut()
                .find(|c| c.event == row.event_name && c.state == row.state)
            {
                Some(c) => c.count += 1,
                None => counts.push(Count {
                    event: row.event_name.clone(),
                    state: row.state.clone(),
                    count: 1,
                }),
            }
            let hour_ms = hour_start(row.created_at);
            match hourly
                .iter_mut()
                .find(|h| h.hour_ms == hour_ms && h.event == row.event_name)
            {
                Some(h) => h.count += 1,
                None => hourly.push(HourCount {
                    hour_ms,
                    event: row.event_name.clone(),
                    count: 1,
                }),
            }
            for key in row.match_keys.split(',').filter(|k| !k.is_empty()) {
                *match_keys.entry_or_default(key.to_string()) += 1;
            }
        }
        let last_failures: Vec<Failure> = self.all(
            "SELECT event_name AS event, event_id, COALESCE(last_error, '') AS error, updated_at AS at_ms
             FROM events WHERE state = ? ORDER BY updated_at DESC LIMIT ?",
            vec![text(RowState::Failed), (MAX_FAILURES as i64).into()],
        )?;
        let recent: Vec<RecentRow> = self.all(
            "SELECT event_name, event_id, state, match_keys, created_at FROM events
             ORDER BY created_at DESC LIMIT ?",
            vec![(MAX_RECENT as i64).into()],
        )?;
        let mut no_room = NoRoom::default();
        for source in [Source::Browser, Source::Webhook] {
            let refused: Vec<CountRow> = self.all(
                "SELECT COALESCE(SUM(n), 0) AS n FROM no_room WHERE source = ? AND hour_ms >= ?",
                vec![source.as_str().into(), hour_start(since_ms).into()],
            )?;
            no_room.add(source, refused.first().map_or(0, |r| r.n.max(0) as u64));
        }
        let mut stats = QueueStats {
            counts,
            depth: self.depth()?,
            match_keys,
            events_in_window: rows.len() as u64,
            last_failures,
            hourly,
            recent: recent
                .into_iter()
                .map(|r| RecentEvent {
                    event: r.event_name,
                    event_id: r.event_id,
                    state: r.state,
                    match_keys: r
                        .match_keys
                        .split(',')
                        .filter(|k| !k.is_empty())
                        .map(String::from)
                        .collect(),
                    at_ms: r.created_at,
                })
                .collect(),
            paused: self.pause()?,
            no_room,
        };
        // One merge with an empty report sorts the lists the way merged reports are sorted.
        let mut sorted = QueueStats::default();
        sorted.merge(std::mem::take(&mut stats));
        Ok(sorted)
    }

    async fn schedule(&self) -> Result<()> {
        self.schedule_with(false).await
    }

    /// Sets the alarm for the earliest pending event (not before a pause's next check), soon
    /// when cleanup has more to do, else at the oldest finished row's expiry.
    async fn schedule_with(&self, more_to_clean: bool) -> Result<()> {
        let (marks, values) = pending();
        let next: Vec<NextDue> = self.all(
            &format!("SELECT MIN(next_attempt_at) AS next FROM events WHERE state IN ({marks})"),
            values,
        )?;
        let mut at = next.first().and_then(|n| n.next);
        if let (Some(due), Some(pause)) = (at, self.pause()?) {
            at = Some(due.max(pause.next_check_ms));
        }
        if more_to_clean {
            at = Some(at.map_or(now_ms() + 1_000, |a| a.min(now_ms() + 1_000)));
        }
        if at.is_none() {
            at = self.oldest_finished()?.map(|t| t + RETENTION_MS);
        }
        let storage = self.state.storage();
        match at {
            Some(at) => storage.set_alarm((at - now_ms()).max(0)).await,
            None => storage.delete_alarm().await,
        }
    }

    fn oldest_finished(&self) -> Result<Option<i64>> {
        let mut oldest: Option<i64> = None;
        for state in FINISHED {
            let row: Vec<NextDue> = self.all(
                "SELECT MIN(updated_at) AS next FROM events WHERE state = ?",
                vec![text(state)],
            )?;
            if let Some(t) = row.first().and_then(|r| r.next) {
                oldest = Some(oldest.map_or(t, |o| o.min(t)));
            }
        }
        Ok(oldest)
    }

    /// Sends every due event once, in batches of up to TikTok's limit, splitting refused
    /// batches until each refused event is alone.
    async fn flush(&self) -> Result<()> {
        let config = match settings::config(&self.env) {
            Ok(config) => config,
            Err(e) => {
                console_error!(
                    "{{\"event\":\"queue_paused\",\"error\":{:?}}}",
                    e.to_string()
                );
                self.postpone_due(now_ms() + CONFIG_RECHECK_MS)?;
                return Ok(());
            }
        };
        let paused = self.pause()?;
        if paused.as_ref().is_some_and(|p| p.next_check_ms > now_ms()) {
            return Ok(());
        }
        let (marks, mut values) = pending();
        values.extend([now_ms().into(), (tiktok::MAX_BATCH as i64).into()]);
        let due: Vec<DueRow> = self.all(
            &format!(
                "SELECT event_name, event_id, payload, attempts, created_at FROM events
                 WHERE state IN ({marks}) AND next_attempt_at <= ? ORDER BY next_attempt_at LIMIT ?"
            ),
            values,
        )?;
        if due.is_empty() {
            return Ok(());
        }
        let (Some(token), Some(pixel)) = (config.access_token.as_ref(), config.pixel_id.as_deref())
        else {
            // Dry run (or no pixel): the events were built and are kept for the operator, unsent.
            let why = config
                .access_token
                .as_ref()
                .map(|_| "TIKTOK_PIXEL_ID is not set");
            for row in &due {
                self.finish(row, RowState::DryRun, why)?;
            }
            return Ok(());
        };
        let policy = RetryPolicy {
            base_ms: config.retry_base_ms,
            ..RetryPolicy::default()
        };
        let (too_old, due): (Vec<DueRow>, Vec<DueRow>) = due
            .into_iter()
            .partition(|r| r.created_at < now_ms() - MAX_PAUSED_AGE_MS);
        for row in &too_old {
            let why = paused.as_ref().map_or("", |p| p.reason.as_str());
            self.finish(
                row,
                RowState::Failed,
                Some(&format!("not sent within 7 days: {why}")),
            )?;
        }
        // A paused shard checks with one small batch before sending the rest.
        let mut work: Vec<&[DueRow]> = match &paused {
            Some(_) => vec![&due[..1]],
            None => vec![&due[..]],
        };
        let url = config.api_base.join(tiktok::TRACK_PATH);
        while let Some(batch) = work.pop() {
            // Stored with exact decimal amounts; TikTok's numbers are written at the last step.
            let raws = batch
                .iter()
                .map(|r| {
                    let event: Event = serde_json::from_str(&r.payload)?;
                    RawValue::from_string(event.tiktok_json()?)
                })
                .collect::<serde_json::Result<Vec<_>>>()?;
            let body = serde_json::to_string(&TrackRequest::web(
                pixel,
                config.test_event_code.as_deref(),
                raws.iter().map(AsRef::as_ref).collect(),
            ))?;
            let (status, answer) =
                post_with_timeout(&url, token.expose(), body, config.tiktok_timeout_ms).await;
            let step = tiktok::classify(status, &answer).step(batch.len());
            console_log!(
                "{{\"event\":\"tiktok_batch\",\"events\":{},\"status\":{},\"step\":{:?}}}",
                batch.len(),
                status.map_or(0, i32::from),
                format!("{step:?}")
            );
            // Any answer about the events themselves means TikTok took the token again.
            let token_works = matches!(step, Step::MarkSent | Step::Split | Step::Fail(_));
            match step {
                Step::MarkSent => {
                    for row in batch {
                        self.finish(row, RowState::Sent, None)?;
                    }
                }
                Step::Retry(reason) => {
                    for row in batch {
                        self.retry(row, &policy, &reason)?;
                    }
                }
                Step::Split => {
                    let (left, right) = batch.split_at(batch.len() / 2);
                    work.extend([right, left]);
                }
                Step::Fail(message) => {
                    for row in batch {
                        self.finish(row, RowState::Failed, Some(&message))?;
                    }
                }
                Step::Pause(reason) => {
                    let pause = Pause::after(paused, reason, config.retry_base_ms, now_ms());
                    console_error!(
                        "{{\"event\":\"queue_paused\",\"reason\":{:?}}}",
                        pause.reason
                    );
                    self.set_pause(Some(&pause))?;
                    self.postpone_due(pause.next_check_ms)?;
                    self.mirror_pause(Some(&pause)).await;
                    return Ok(());
                }
            }
            if token_works && paused.is_some() {
                self.set_pause(None)?;
                self.mirror_pause(None).await;
                console_log!("{{\"event\":\"queue_resumed\"}}");
                // The rest of what was due goes out on the next alarm, at once.
                return Ok(());
            }
        }
        let (read, written) = self.rows.get();
        console_log!(
            "{{\"event\":\"queue_flushed\",\"rows_read\":{read},\"rows_written\":{written}}}"
        );
        Ok(())
    }

    fn retry(&self, row: &DueRow, policy: &RetryPolicy, reason: &str) -> Result<()> {
        let attempts = row.attempts as u32 + 1;
        let jitter = f64::from(getrandom::u32().unwrap_or(0)) / f64::from(u32::MAX);
        match policy.next_attempt_at(row.created_at as u64, now_ms() as u64, attempts, jitter) {
            Some(at) => {
                self.run(
                    "UPDATE events SET state = ?, attempts = attempts + 1, next_attempt_at = ?, last_error = ?, updated_at = ?
                     WHERE event_name = ? AND event_id = ?",
                    vec![
                        text(RowState::Retrying),
                        (at as i64).into(),
                        reason.into(),
                        now_ms().into(),
                        row.event_name.as_str().into(),
                        row.event_id.as_str().into(),
                    ],
                )?;
                Ok(())
            }
            None => self.finish(
                row,
                RowState::Failed,
                Some(&format!("gave up after 48 h: {reason}")),
            ),
        }
    }

    /// A final state. Sent events drop their payload: IP and user agent are not kept longer
    /// than needed (dry-run and failed ones stay for the operator until retention ends).
    fn finish(&self, row: &DueRow, state: RowState, error: Option<&str>) -> Result<()> {
        let attempts_delta = i64::from(state != RowState::DryRun);
        let mut bindings: Vec<SqlStorageValue> = vec![text(state), attempts_delta.into()];
        bindings.push(error.map_or(SqlStorageValue::Null, Into::into));
        bindings.extend([
            now_ms().into(),
            row.event_name.as_str().into(),
            row.event_id.as_str().into(),
        ]);
        let clear_payload = if state == RowState::Sent {
            ", payload = ''"
        } else {
            ""
        };
        self.run(
            &format!(
                "UPDATE events SET state = ?, attempts = attempts + ?, last_error = ?, updated_at = ?{clear_payload}
                 WHERE event_name = ? AND event_id = ?"
            ),
            bindings,
        )?;
        Ok(())
    }

    /// Moves every due pending event to `at` (the configuration must be fixed first).
    fn postpone_due(&self, at: i64) -> Result<()> {
        let (marks, values) = pending();
        let mut bindings = vec![at.into()];
        bindings.extend(values);
        bindings.push(at.into());
        self.run(
            &format!(
                "UPDATE events SET next_attempt_at = ? WHERE state IN ({marks}) AND next_attempt_at < ?"
            ),
            bindings,
        )?;
        Ok(())
    }
}

/// POSTs `body` to TikTok; `(None, "")` when no answer came within `timeout_ms`.
async fn post_with_timeout(
    url: &str,
    token: &str,
    body: String,
    timeout_ms: u64,
) -> (Option<u16>, String) {
    let headers = Headers::new();
    let set = headers
        .set("Content-Type", "application/json")
        .and_then(|()| headers.set("Access-Token", token));
    let request = match (set, outbound::request(url, Some(body), Some(&headers))) {
        (Ok(()), Ok(request)) => request,
        (Err(e), _) | (_, Err(e)) => return (None, e.to_string()),
    };
    let controller = AbortController::default();
    let signal = controller.signal();
    let send = async {
        let mut resp = Fetch::Request(request).send_with_signal(&signal).await?;
        let text = resp.text().await?;
        Ok::<_, worker::Error>((resp.status_code(), text))
    };
    let timeout = Delay::from(std::time::Duration::from_millis(timeout_ms));
    futures_util::pin_mut!(send, timeout);
    match futures_util::future::select(send, timeout).await {
        futures_util::future::Either::Left((Ok((status, text)), _)) => (Some(status), text),
        futures_util::future::Either::Left((Err(_), _)) => (None, String::new()),
        futures_util::future::Either::Right(_) => {
            controller.abort();
            (None, String::new())
        }
    }
}
