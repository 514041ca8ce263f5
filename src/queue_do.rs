//! `EventQueue`: the durable send queue, one Durable Object per shard of event keys.
//!
//! An event is written to SQLite before the caller is answered; the alarm sends what is due in
//! batches (same pixel, up to TikTok's limit), classifies the answer (`tiktok::classify`) and
//! reschedules failures with `tiktok::RetryPolicy`, keeping the event_id. The primary key
//! (event name, event_id) is TikTok's own dedup key, so a second copy is never queued.

use serde::Deserialize;
use serde_json::value::RawValue;
use tiktok_edge_core::tiktok::{self, Event, Outcome, RetryPolicy, TrackRequest};
use worker::{
    console_error, console_log, durable_object, AbortController, Date, Delay, DurableObject, Env,
    Fetch, Headers, Method, Request, RequestInit, Response, Result, SqlStorage, SqlStorageValue,
    State,
};

use crate::settings;
use tiktok_edge_core::queue::{
    Count, EnqueueSummary, Failure, Forget, HourCount, QueueStats, RecentEvent, RowState, HOUR_MS,
    MAX_FAILURES, MAX_RECENT,
};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
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
CREATE INDEX IF NOT EXISTS events_due ON events (state, next_attempt_at);";

/// Finished rows are kept this long for dedup and the operator page, then deleted.
const RETENTION_MS: i64 = 7 * 24 * 3600 * 1000;
/// When the configuration cannot send (invalid settings), look again after this long.
const CONFIG_RECHECK_MS: i64 = 60_000;

#[durable_object(alarm)]
pub struct EventQueue {
    state: State,
    env: Env,
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
struct CountRow {
    n: u64,
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
    match_keys: String,
}

#[derive(Deserialize)]
struct NextDue {
    next: Option<i64>,
}

impl DurableObject for EventQueue {
    fn new(state: State, env: Env) -> Self {
        if let Err(e) = state.storage().sql().exec(SCHEMA, None) {
            console_error!(
                "{{\"event\":\"queue_schema_failed\",\"error\":{:?}}}",
                e.to_string()
            );
        }
        EventQueue { state, env }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        match (req.method(), req.path().as_str()) {
            (Method::Post, "/enqueue") => {
                // Parsed by serde_json, not the runtime's JSON.parse: ids above 2^53 stay exact.
                let events: Vec<Event> = serde_json::from_str(&req.text().await?)?;
                let summary = self.enqueue(&events)?;
                if summary.accepted > 0 {
                    self.schedule().await?;
                }
                Response::from_json(&summary)
            }
            (Method::Post, "/forget") => {
                let request: Forget = req.json().await?;
                self.forget(&request)?;
                Response::ok("")
            }
            (Method::Get, "/depth") => Response::from_json(&self.depth()?),
            (Method::Get, "/stats") => {
                let since: i64 = tiktok_edge_core::urls::query_param(&req.inner().url(), "since")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                Response::from_json(&self.stats(since)?)
            }
            _ => Response::error("no such queue operation", 404),
        }
    }

    async fn alarm(&self) -> Result<Response> {
        if let Err(e) = self.flush().await {
            console_error!(
                "{{\"event\":\"queue_flush_failed\",\"error\":{:?}}}",
                e.to_string()
            );
        }
        self.schedule().await?;
        Response::ok("")
    }
}

fn now_ms() -> i64 {
    Date::now().as_millis() as i64
}

impl EventQueue {
    fn sql(&self) -> SqlStorage {
        self.state.storage().sql()
    }

    /// Writes new events (ignoring ones already known) and says how many were new.
    fn enqueue(&self, events: &[Event]) -> Result<EnqueueSummary> {
        let sql = self.sql();
        let now = now_ms();
        let mut summary = EnqueueSummary::default();
        for event in events {
            let payload = event.tiktok_json()?;
            let written = sql
                .exec(
                    "INSERT OR IGNORE INTO events (event_name, event_id, payload, match_keys, state, created_at, next_attempt_at, updated_at)
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    vec![
                        event.event.as_str().into(),
                        event.event_id.as_str().into(),
                        payload.into(),
                        event.match_keys().join(",").into(),
                        RowState::Queued.as_str().into(),
                        now.into(),
                        now.into(),
                        now.into(),
                    ],
                )?
                .rows_written();
            if written > 0 {
                summary.accepted += 1;
            } else {
                summary.duplicates += 1;
            }
        }
        Ok(summary)
    }

    /// Deletes what a privacy webhook asks for.
    fn forget(&self, request: &Forget) -> Result<()> {
        let sql = self.sql();
        if request.everything {
            sql.exec("DELETE FROM events", None)?;
            return Ok(());
        }
        for (event, id) in &request.events {
            sql.exec(
                "DELETE FROM events WHERE event_name = ? AND event_id = ?",
                vec![event.as_str().into(), id.as_str().into()],
            )?;
        }
        for ttp in &request.ttps {
            sql.exec(
                "DELETE FROM events WHERE instr(payload, ?) > 0",
                vec![Forget::ttp_fragment(ttp).into()],
            )?;
        }
        Ok(())
    }

    /// Events still waiting to be sent (queued or retrying), whatever their age.
    fn depth(&self) -> Result<u64> {
        let row: CountRow = self
            .sql()
            .exec(
                "SELECT COUNT(*) AS n FROM events WHERE state IN (?, ?)",
                vec![
                    RowState::Queued.as_str().into(),
                    RowState::Retrying.as_str().into(),
                ],
            )?
            .one()?;
        Ok(row.n)
    }

    /// Counts by event and state, queue depth, match-key coverage and the last failures, for
    /// events updated since `since_ms`.
    fn stats(&self, since_ms: i64) -> Result<QueueStats> {
        let sql = self.sql();
        let counts: Vec<Count> = sql
            .exec(
                "SELECT event_name AS event, state, COUNT(*) AS count FROM events
                 WHERE updated_at >= ? GROUP BY event_name, state",
                vec![since_ms.into()],
            )?
            .to_array()?;
        let keys: Vec<KeysRow> = sql
            .exec(
                "SELECT match_keys FROM events WHERE created_at >= ?",
                vec![since_ms.into()],
            )?
            .to_array()?;
        let mut match_keys = std::collections::BTreeMap::new();
        for row in &keys {
            for key in row.match_keys.split(',').filter(|k| !k.is_empty()) {
                *match_keys.entry(key.to_string()).or_default() += 1;
            }
        }
        let last_failures: Vec<Failure> = sql
            .exec(
                "SELECT event_name AS event, event_id, COALESCE(last_error, '') AS error, updated_at AS at_ms
                 FROM events WHERE state = ? ORDER BY updated_at DESC LIMIT ?",
                vec![RowState::Failed.as_str().into(), (MAX_FAILURES as i64).into()],
            )?
            .to_array()?;
        let hourly: Vec<HourCount> = sql
            .exec(
                "SELECT (created_at - created_at % ?) AS hour_ms, event_name AS event, COUNT(*) AS count
                 FROM events WHERE created_at >= ? GROUP BY hour_ms, event_name",
                vec![HOUR_MS.into(), since_ms.into()],
            )?
            .to_array()?;
        let recent: Vec<RecentRow> = sql
            .exec(
                "SELECT event_name, event_id, state, match_keys, created_at FROM events
                 ORDER BY created_at DESC LIMIT ?",
                vec![(MAX_RECENT as i64).into()],
            )?
            .to_array()?;
        Ok(QueueStats {
            counts,
            depth: self.depth()?,
            match_keys,
            events_in_window: keys.len() as u64,
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
        })
    }

    /// Sets the alarm for the earliest pending event, and deletes expired finished rows.
    async fn schedule(&self) -> Result<()> {
        let sql = self.sql();
        sql.exec(
            "DELETE FROM events WHERE state NOT IN (?, ?) AND updated_at < ?",
            vec![
                RowState::Queued.as_str().into(),
                RowState::Retrying.as_str().into(),
                (now_ms() - RETENTION_MS).into(),
            ],
        )?;
        let next: NextDue = sql
            .exec(
                "SELECT MIN(next_attempt_at) AS next FROM events WHERE state IN (?, ?)",
                vec![
                    RowState::Queued.as_str().into(),
                    RowState::Retrying.as_str().into(),
                ],
            )?
            .one()?;
        let storage = self.state.storage();
        match next.next {
            Some(at) => storage.set_alarm((at - now_ms()).max(0)).await,
            None => storage.delete_alarm().await,
        }
    }

    /// Sends every due event once, in batches of up to TikTok's limit.
    async fn flush(&self) -> Result<()> {
        let config = match settings::config(&self.env) {
            Ok(config) => config,
            Err(e) => {
                console_error!(
                    "{{\"event\":\"queue_paused\",\"error\":{:?}}}",
                    e.to_string()
                );
                self.postpone_due(CONFIG_RECHECK_MS)?;
                return Ok(());
            }
        };
        let sql = self.sql();
        let due: Vec<DueRow> = sql
            .exec(
                "SELECT event_name, event_id, payload, attempts, created_at FROM events
                 WHERE state IN (?, ?) AND next_attempt_at <= ? ORDER BY next_attempt_at LIMIT ?",
                vec![
                    RowState::Queued.as_str().into(),
                    RowState::Retrying.as_str().into(),
                    now_ms().into(),
                    (tiktok::MAX_BATCH as i64).into(),
                ],
            )?
            .to_array()?;
        if due.is_empty() {
            return Ok(());
        }
        let (Some(token), Some(pixel)) = (config.access_token.as_ref(), config.pixel_id.as_deref())
        else {
            // Dry run (or no pixel): the events were built and are kept for the operator, unsent.
            let why = if config.access_token.is_none() {
                None
            } else {
                Some("TIKTOK_PIXEL_ID is not set")
            };
            for row in &due {
                self.finish(row, RowState::DryRun, why)?;
            }
            return Ok(());
        };

        let raws = due
            .iter()
            .map(|r| RawValue::from_string(r.payload.clone()))
            .collect::<serde_json::Result<Vec<_>>>()?;
        let body = serde_json::to_string(&TrackRequest::web(
            pixel,
            config.test_event_code.as_deref(),
            raws.iter().map(AsRef::as_ref).collect(),
        ))?;
        let url = config.api_base.join(tiktok::TRACK_PATH);
        let (status, answer) =
            post_with_timeout(&url, token.expose(), body, config.tiktok_timeout_ms).await;
        let outcome = tiktok::classify(status, &answer);
        console_log!(
            "{{\"event\":\"tiktok_batch\",\"events\":{},\"status\":{},\"outcome\":{:?}}}",
            due.len(),
            status.map_or(0, i32::from),
            format!("{outcome:?}")
        );
        let policy = RetryPolicy {
            base_ms: config.retry_base_ms,
            ..RetryPolicy::default()
        };
        for row in &due {
            match &outcome {
                Outcome::Sent => self.finish(row, RowState::Sent, None)?,
                Outcome::Failed(message) => self.finish(row, RowState::Failed, Some(message))?,
                Outcome::Retry(reason) => {
                    let attempts = row.attempts as u32 + 1;
                    let jitter = f64::from(getrandom::u32().unwrap_or(0)) / f64::from(u32::MAX);
                    match policy.next_attempt_at(
                        row.created_at as u64,
                        now_ms() as u64,
                        attempts,
                        jitter,
                    ) {
                        Some(at) => self.retry_at(row, at as i64, reason)?,
                        None => self.finish(
                            row,
                            RowState::Failed,
                            Some(&format!("gave up after 48 h: {reason}")),
                        )?,
                    }
                }
            }
        }
        Ok(())
    }

    fn retry_at(&self, row: &DueRow, at: i64, reason: &str) -> Result<()> {
        self.sql().exec(
            "UPDATE events SET state = ?, attempts = attempts + 1, next_attempt_at = ?, last_error = ?, updated_at = ?
             WHERE event_name = ? AND event_id = ?",
            vec![
                RowState::Retrying.as_str().into(),
                at.into(),
                reason.into(),
                now_ms().into(),
                row.event_name.as_str().into(),
                row.event_id.as_str().into(),
            ],
        )?;
        Ok(())
    }

    /// A final state. Sent events drop their payload: IP and user agent are not kept longer
    /// than needed (dry-run and failed ones stay for the operator until retention ends).
    fn finish(&self, row: &DueRow, state: RowState, error: Option<&str>) -> Result<()> {
        let attempts_delta = i64::from(state != RowState::DryRun);
        let mut bindings: Vec<SqlStorageValue> = vec![state.as_str().into(), attempts_delta.into()];
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
        self.sql().exec(
            &format!(
                "UPDATE events SET state = ?, attempts = attempts + ?, last_error = ?, updated_at = ?{clear_payload}
                 WHERE event_name = ? AND event_id = ?"
            ),
            bindings,
        )?;
        Ok(())
    }

    fn postpone_due(&self, by_ms: i64) -> Result<()> {
        self.sql().exec(
            "UPDATE events SET next_attempt_at = ? WHERE state IN (?, ?) AND next_attempt_at <= ?",
            vec![
                (now_ms() + by_ms).into(),
                RowState::Queued.as_str().into(),
                RowState::Retrying.as_str().into(),
                now_ms().into(),
            ],
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
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_body(Some(body.into()));
    let request = match (set, Request::new_with_init(url, &init)) {
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
