//! The queue shard's SQLite storage: the schema, and each [`Store`] statement the engine
//! (`tiktok_edge_core::shard`) asks for, over the columns this schema defines. Every query on a
//! hot path uses an index; the row counts the size limit needs are kept by triggers, so the
//! limit costs one row read, not a scan.

use serde::Deserialize;
use std::cell::Cell;
use tiktok_edge_core::proof::Proof;
use tiktok_edge_core::queue::{
    Evidence, Failure, Fill, Forget, NoRoom, Resend, ResendValue, RowState, Source,
};
use tiktok_edge_core::shard::{Listed, Note, Row, Store, FINISHED};
use tiktok_edge_core::tiktok::Event;
use worker::{Result, SqlStorage, SqlStorageValue};

/// The columns of an event's row as the first schema made them (later ones added `source` and
/// `proof`, and the pixel).
macro_rules! event_columns {
    () => {
        "
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
       "
    };
}

/// The count of rows (`meta.rows`, which `queue::room` bounds) as it stands, and the triggers
/// that keep it as rows come and go: the size limit costs one row read, not a scan.
macro_rules! rows_counter {
    () => {
        "INSERT OR REPLACE INTO meta (key, n) VALUES ('rows', (SELECT COUNT(*) FROM events));
     CREATE TRIGGER events_counted_in AFTER INSERT ON events
       BEGIN UPDATE meta SET n = n + 1 WHERE key = 'rows'; END;
     CREATE TRIGGER events_counted_out AFTER DELETE ON events
       BEGIN UPDATE meta SET n = n - 1 WHERE key = 'rows'; END;"
    };
}

/// The count of browser-only copies still waiting to be sent (`meta.browser_unsent`, which
/// `queue::room` bounds) as it stands, and the triggers that keep it: a copy leaves the count
/// when sent, finished or merged with its webhook.
macro_rules! browser_unsent_counter {
    () => {
        "INSERT OR REPLACE INTO meta (key, n) VALUES ('browser_unsent', (SELECT COUNT(*) FROM events
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
         WHERE key = 'browser_unsent'; END;"
    };
}

/// The indexes retention, failures, the pause and the operator's window need.
macro_rules! events_indexes {
    () => {
        "CREATE INDEX events_finished ON events (state, updated_at);
     CREATE INDEX events_created ON events (created_at);"
    };
}

/// Schema changes, applied once each, in order; `meta.schema` holds how many ran.
const MIGRATIONS: &[&str] = &[
    concat!(
        "CREATE TABLE IF NOT EXISTS events (",
        event_columns!(),
        "PRIMARY KEY (event_name, event_id)
     );
     CREATE INDEX IF NOT EXISTS events_due ON events (state, next_attempt_at);"
    ),
    // Copies merge by source; retention, failures and the pause need (state, updated_at);
    // the operator's window needs created_at; the row count is kept by triggers.
    concat!(
        "ALTER TABLE events ADD COLUMN source TEXT NOT NULL DEFAULT 'webhook';",
        events_indexes!(),
        rows_counter!()
    ),
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
    // Browser-only copies still waiting to be sent are counted the same way; copies refused
    // for want of room are counted per hour for the operator.
    concat!(
        browser_unsent_counter!(),
        "CREATE TABLE no_room (
       hour_ms INTEGER NOT NULL,
       source TEXT NOT NULL,
       n INTEGER NOT NULL,
       PRIMARY KEY (hour_ms, source)
     );"
    ),
    // One row per (pixel, event name, event_id): the key gains the pixel (`""` for the single
    // pixel's settings, which every existing row was for). SQLite cannot change a primary key,
    // so the table is copied; its indexes and triggers (dropped with the old table) come back
    // from their one definition, and the counters are recounted (no trigger fires on the copy).
    concat!(
        "CREATE TABLE events_by_pixel (
       pixel TEXT NOT NULL DEFAULT '',",
        event_columns!(),
        "source TEXT NOT NULL DEFAULT 'webhook',
       proof TEXT NOT NULL DEFAULT '',
       PRIMARY KEY (pixel, event_name, event_id)
     );
     INSERT INTO events_by_pixel (event_name, event_id, payload, match_keys, state, attempts,
       created_at, next_attempt_at, updated_at, last_error, source, proof)
       SELECT event_name, event_id, payload, match_keys, state, attempts, created_at,
         next_attempt_at, updated_at, last_error, source, proof FROM events;
     DROP TABLE events;
     ALTER TABLE events_by_pixel RENAME TO events;
     CREATE INDEX events_due ON events (state, next_attempt_at);
     CREATE INDEX events_event ON events (event_name, event_id);",
        events_indexes!(),
        rows_counter!(),
        browser_unsent_counter!()
    ),
];

/// A shard's SQLite, counting the rows its statements read and write (what Cloudflare bills).
pub struct Sql {
    sql: SqlStorage,
    rows: Cell<(usize, usize)>,
}

#[derive(Deserialize)]
struct RowColumns {
    pixel: String,
    event_name: String,
    event_id: String,
    payload: String,
    match_keys: String,
    state: String,
    source: String,
    proof: String,
    attempts: i64,
    created_at: i64,
    next_attempt_at: i64,
    updated_at: i64,
    last_error: Option<String>,
}

const ROW: &str =
    "pixel, event_name, event_id, payload, match_keys, state, source, proof, attempts,
    created_at, next_attempt_at, updated_at, last_error";

impl From<RowColumns> for Row {
    fn from(r: RowColumns) -> Row {
        Row {
            event: serde_json::from_str(&r.payload).ok(),
            pixel: r.pixel,
            event_name: r.event_name,
            event_id: r.event_id,
            match_keys: r.match_keys,
            state: RowState::parse(&r.state).unwrap_or(RowState::Sent),
            source: Source::parse(&r.source).unwrap_or(Source::Webhook),
            proof: Proof::from_column(&r.proof),
            attempts: r.attempts.max(0) as u32,
            created_at: r.created_at,
            next_attempt_at: r.next_attempt_at,
            updated_at: r.updated_at,
            last_error: r.last_error,
        }
    }
}

#[derive(Deserialize)]
struct ListedColumns {
    pixel: String,
    event_name: String,
    event_id: String,
    state: String,
    match_keys: String,
    created_at: i64,
}

#[derive(Deserialize)]
struct Number {
    n: Option<i64>,
}

#[derive(Deserialize)]
struct Text {
    text: Option<String>,
}

#[derive(Deserialize)]
struct Filed {
    proof: String,
    payload: String,
}

fn text(state: RowState) -> SqlStorageValue {
    state.as_str().into()
}

/// `?, ?, ?` for the pending states, and their values.
fn pending() -> (&'static str, Vec<SqlStorageValue>) {
    ("?, ?, ?", RowState::PENDING.map(text).to_vec())
}

/// The re-send filter's condition with its values bound.
fn condition(filter: &Resend) -> Result<(String, Vec<SqlStorageValue>)> {
    let Ok((condition, values)) = filter.condition() else {
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

impl Sql {
    pub fn new(sql: SqlStorage) -> Sql {
        Sql {
            sql,
            rows: Cell::new((0, 0)),
        }
    }

    /// Rows read and written since the last call.
    pub fn take_rows(&self) -> (usize, usize) {
        self.rows.take()
    }

    /// Runs one statement to its end and returns its rows (`RETURNING` rows for writes),
    /// adding the rows it read and wrote to the tally.
    fn all<T: for<'de> Deserialize<'de>>(
        &self,
        query: &str,
        bindings: Vec<SqlStorageValue>,
    ) -> Result<Vec<T>> {
        let cursor = self.sql.exec(query, bindings)?;
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

    fn number(&self, query: &str, bindings: Vec<SqlStorageValue>) -> Result<Option<i64>> {
        let rows: Vec<Number> = self.all(query, bindings)?;
        Ok(rows.first().and_then(|r| r.n))
    }

    fn rows(&self, query: &str, bindings: Vec<SqlStorageValue>) -> Result<Vec<Row>> {
        let rows: Vec<RowColumns> = self.all(query, bindings)?;
        Ok(rows.into_iter().map(Row::from).collect())
    }

    fn listed(&self, query: &str, bindings: Vec<SqlStorageValue>) -> Result<Vec<Listed>> {
        let rows: Vec<ListedColumns> = self.all(query, bindings)?;
        Ok(rows
            .into_iter()
            .map(|r| Listed {
                pixel: r.pixel,
                event_name: r.event_name,
                event_id: r.event_id,
                state: r.state,
                match_keys: r.match_keys,
                created_at: r.created_at,
            })
            .collect())
    }

    /// Brings the schema up to date (`MIGRATIONS`).
    pub fn migrate(&self) -> Result<()> {
        self.sql.exec(
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, n INTEGER, text TEXT)",
            None,
        )?;
        let done = self.number("SELECT n FROM meta WHERE key = 'schema'", vec![])?;
        let done = done.map_or(0, |n| n.max(0) as usize);
        for (version, migration) in MIGRATIONS.iter().enumerate().skip(done) {
            self.sql.exec(migration, None)?;
            self.sql.exec(
                "INSERT INTO meta (key, n) VALUES ('schema', ?)
                 ON CONFLICT (key) DO UPDATE SET n = excluded.n",
                Some(vec![(version as i64 + 1).into()]),
            )?;
        }
        Ok(())
    }

    fn counter(&self, key: &str) -> Result<i64> {
        Ok(self
            .number("SELECT n FROM meta WHERE key = ?", vec![key.into()])?
            .unwrap_or(0))
    }
}

impl Store for Sql {
    type Error = worker::Error;

    fn row(&self, pixel: &str, event_name: &str, event_id: &str) -> Result<Option<Row>> {
        let rows = self.rows(
            &format!(
                "SELECT {ROW} FROM events WHERE pixel = ? AND event_name = ? AND event_id = ?"
            ),
            vec![pixel.into(), event_name.into(), event_id.into()],
        )?;
        Ok(rows.into_iter().next())
    }

    fn put(&mut self, row: &Row) -> Result<()> {
        let payload = match &row.event {
            Some(event) => serde_json::to_string(event)?,
            None => String::new(),
        };
        self.run(
            &format!(
                "INSERT INTO events ({ROW}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                 ON CONFLICT (pixel, event_name, event_id) DO UPDATE SET payload = excluded.payload,
                   match_keys = excluded.match_keys, state = excluded.state,
                   source = excluded.source, proof = excluded.proof,
                   attempts = excluded.attempts, created_at = excluded.created_at,
                   next_attempt_at = excluded.next_attempt_at,
                   updated_at = excluded.updated_at, last_error = excluded.last_error"
            ),
            vec![
                row.pixel.as_str().into(),
                row.event_name.as_str().into(),
                row.event_id.as_str().into(),
                payload.into(),
                row.match_keys.as_str().into(),
                text(row.state),
                row.source.as_str().into(),
                row.proof.to_column().into(),
                i64::from(row.attempts).into(),
                row.created_at.into(),
                row.next_attempt_at.into(),
                row.updated_at.into(),
                row.last_error
                    .as_deref()
                    .map_or(SqlStorageValue::Null, Into::into),
            ],
        )?;
        Ok(())
    }

    fn due(&self, now_ms: i64, limit: usize) -> Result<Vec<Row>> {
        let (marks, mut values) = pending();
        values.extend([now_ms.into(), (limit as i64).into()]);
        self.rows(
            &format!(
                "SELECT {ROW} FROM events WHERE state IN ({marks}) AND next_attempt_at <= ?
                 ORDER BY next_attempt_at LIMIT ?"
            ),
            values,
        )
    }

    fn next_due(&self) -> Result<Option<i64>> {
        let (marks, values) = pending();
        self.number(
            &format!("SELECT MIN(next_attempt_at) AS n FROM events WHERE state IN ({marks})"),
            values,
        )
    }

    fn move_pixel(&mut self, from: &str, to: &str) -> Result<()> {
        // The key starts with the pixel: both lookups use it; a key `to` holds is left.
        let moved = self.run(
            "UPDATE OR IGNORE events SET pixel = ? WHERE pixel = ?",
            vec![to.into(), from.into()],
        );
        moved.map(drop)
    }

    fn postpone_due(&mut self, pixel: &str, at_ms: i64) -> Result<()> {
        let (marks, values) = pending();
        let mut bindings = vec![at_ms.into()];
        bindings.extend(values);
        bindings.extend([at_ms.into(), pixel.into()]);
        self.run(
            &format!(
                "UPDATE events SET next_attempt_at = ? WHERE state IN ({marks}) AND next_attempt_at < ?
                 AND pixel = ?"
            ),
            bindings,
        )?;
        Ok(())
    }

    fn depth(&self) -> Result<u64> {
        let (marks, values) = pending();
        let n = self.number(
            &format!("SELECT COUNT(*) AS n FROM events WHERE state IN ({marks})"),
            values,
        )?;
        Ok(n.unwrap_or(0).max(0) as u64)
    }

    fn oldest_finished(&self) -> Result<Option<i64>> {
        let mut oldest: Option<i64> = None;
        // One indexed MIN per state: (state, updated_at) answers each without a scan.
        for state in FINISHED {
            let t = self.number(
                "SELECT MIN(updated_at) AS n FROM events WHERE state = ?",
                vec![text(state)],
            )?;
            oldest = match (oldest, t) {
                (Some(o), Some(t)) => Some(o.min(t)),
                (o, t) => o.or(t),
            };
        }
        Ok(oldest)
    }

    fn delete_oldest(&mut self, state: RowState, before_ms: i64, limit: usize) -> Result<usize> {
        self.run(
            "DELETE FROM events WHERE rowid IN (
               SELECT rowid FROM events WHERE state = ? AND updated_at < ?
               ORDER BY updated_at LIMIT ?)
             RETURNING 1",
            vec![text(state), before_ms.into(), (limit as i64).into()],
        )
    }

    fn fill(&self) -> Result<Fill> {
        Ok(Fill {
            rows: self.counter("rows")?,
            browser_unsent: self.counter("browser_unsent")?,
        })
    }

    fn evidence(&self, event_name: &str, event_id: &str, proof: &Proof) -> Result<Vec<Evidence>> {
        if proof.is_empty() {
            return Ok(Vec::new());
        }
        let marks = vec!["?"; proof.digests().len()].join(", ");
        let mut values: Vec<SqlStorageValue> = vec![event_name.into(), event_id.into()];
        values.extend(proof.digests().iter().map(|d| d.as_str().into()));
        let rows: Vec<Filed> = self.all(
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

    fn file(
        &mut self,
        event_name: &str,
        event_id: &str,
        proof: &str,
        copy: Option<&Event>,
        now_ms: i64,
    ) -> Result<()> {
        let (verb, payload) = match copy {
            Some(copy) => ("INSERT OR IGNORE", serde_json::to_string(copy)?),
            None => ("INSERT OR REPLACE", String::new()),
        };
        self.run(
            &format!(
                "{verb} INTO evidence (event_name, event_id, proof, payload, created_at)
                 VALUES (?, ?, ?, ?, ?)"
            ),
            vec![
                event_name.into(),
                event_id.into(),
                proof.into(),
                payload.into(),
                now_ms.into(),
            ],
        )?;
        Ok(())
    }

    fn clear_evidence(&mut self, event_name: &str, event_id: &str) -> Result<()> {
        self.run(
            "DELETE FROM evidence WHERE event_name = ? AND event_id = ?",
            vec![event_name.into(), event_id.into()],
        )?;
        Ok(())
    }

    fn delete_evidence_before(&mut self, before_ms: i64, limit: usize) -> Result<usize> {
        self.run(
            "DELETE FROM evidence WHERE rowid IN (
               SELECT rowid FROM evidence WHERE created_at < ? ORDER BY created_at LIMIT ?)
             RETURNING 1",
            vec![before_ms.into(), (limit as i64).into()],
        )
    }

    fn count_no_room(&mut self, source: Source, hour_ms: i64) -> Result<()> {
        self.run(
            "INSERT INTO no_room (hour_ms, source, n) VALUES (?, ?, 1)
             ON CONFLICT (hour_ms, source) DO UPDATE SET n = n + 1",
            vec![hour_ms.into(), source.as_str().into()],
        )?;
        Ok(())
    }

    fn no_room_since(&self, hour_ms: i64) -> Result<NoRoom> {
        let mut no_room = NoRoom::default();
        for source in [Source::Browser, Source::Webhook] {
            let n = self.number(
                "SELECT COALESCE(SUM(n), 0) AS n FROM no_room WHERE source = ? AND hour_ms >= ?",
                vec![source.as_str().into(), hour_ms.into()],
            )?;
            no_room.add(source, n.unwrap_or(0).max(0) as u64);
        }
        Ok(no_room)
    }

    fn delete_no_room_before(&mut self, before_ms: i64) -> Result<()> {
        // One row per hour and source at most: a handful per alarm.
        self.run(
            "DELETE FROM no_room WHERE hour_ms < ?",
            vec![before_ms.into()],
        )?;
        Ok(())
    }

    fn forget(&mut self, request: &Forget) -> Result<()> {
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

    fn select(&self, filter: &Resend, limit: usize) -> Result<Vec<Row>> {
        let (condition, mut values) = condition(filter)?;
        values.push((limit as i64).into());
        self.rows(
            &format!(
                "SELECT {ROW} FROM events WHERE payload != '' AND {condition}
                 ORDER BY created_at, event_name, event_id, pixel LIMIT ?"
            ),
            values,
        )
    }

    fn requeue_all(&mut self, filter: &Resend, now_ms: i64) -> Result<u64> {
        let (condition, values) = condition(filter)?;
        let mut bindings = vec![text(RowState::Queued), now_ms.into(), now_ms.into()];
        bindings.extend(values);
        Ok(self.run(
            &format!(
                "UPDATE events SET state = ?, attempts = 0, last_error = NULL, next_attempt_at = ?, updated_at = ?
                 WHERE payload != '' AND {condition} RETURNING 1"
            ),
            bindings,
        )? as u64)
    }

    fn note(&self, note: Note<'_>) -> Result<Option<String>> {
        let rows: Vec<Text> = self.all(
            "SELECT text FROM meta WHERE key = ?",
            vec![note.key().into()],
        )?;
        Ok(rows.into_iter().next().and_then(|r| r.text))
    }

    fn set_note(&mut self, note: Note<'_>, text: Option<&str>) -> Result<()> {
        match text {
            Some(text) => self.run(
                "INSERT INTO meta (key, text) VALUES (?, ?)
                 ON CONFLICT (key) DO UPDATE SET text = excluded.text",
                vec![note.key().into(), text.into()],
            )?,
            None => self.run("DELETE FROM meta WHERE key = ?", vec![note.key().into()])?,
        };
        Ok(())
    }

    fn window(&self, since_ms: i64) -> Result<Vec<Listed>> {
        self.listed(
            "SELECT pixel, event_name, event_id, state, match_keys, created_at FROM events
             WHERE created_at >= ?",
            vec![since_ms.into()],
        )
    }

    fn newest(&self, limit: usize) -> Result<Vec<Listed>> {
        self.listed(
            "SELECT pixel, event_name, event_id, state, match_keys, created_at FROM events
             ORDER BY created_at DESC LIMIT ?",
            vec![(limit as i64).into()],
        )
    }

    fn failures(&self, limit: usize) -> Result<Vec<Failure>> {
        self.all(
            "SELECT pixel, event_name AS event, event_id, COALESCE(last_error, '') AS error, updated_at AS at_ms
             FROM events WHERE state = ? ORDER BY updated_at DESC LIMIT ?",
            vec![text(RowState::Failed), (limit as i64).into()],
        )
    }
}
