//! The shard's storage in memory, for the engine's tests: what `src/queue_sql.rs` does in
//! SQLite, one vector scan per statement.

use super::{Listed, Note, Row, Store, FINISHED};
use crate::proof::Proof;
use crate::queue::{Evidence, Failure, Fill, Forget, NoRoom, Resend, RowState, Source};
use crate::tiktok::Event;
use std::convert::Infallible;

#[derive(Debug, Clone, Default)]
pub struct Memory {
    pub rows: Vec<Row>,
    /// (event name, event_id, digest, copy or refusal, filed at).
    pub evidence: Vec<(String, String, String, Option<Event>, i64)>,
    pub no_room: Vec<(i64, Source, u64)>,
    /// Notes by their key (`Note::key`).
    pub notes: std::collections::BTreeMap<String, String>,
}

fn key(row: &Row) -> (&str, &str, &str) {
    (&row.pixel, &row.event_name, &row.event_id)
}

fn pending(row: &Row) -> bool {
    RowState::PENDING.contains(&row.state)
}

fn listed(row: &Row) -> Listed {
    Listed {
        pixel: row.pixel.clone(),
        event_name: row.event_name.clone(),
        event_id: row.event_id.clone(),
        state: row.state.as_str().to_string(),
        match_keys: row.match_keys.clone(),
        created_at: row.created_at,
    }
}

/// `Resend::condition` read as a predicate.
fn selects(filter: &Resend, row: &Row) -> bool {
    let state = filter.state.as_deref().unwrap_or("failed");
    row.event.is_some()
        && row.state.as_str() == state
        && filter.event.as_ref().is_none_or(|e| *e == row.event_name)
        && filter.from_ms.is_none_or(|t| row.created_at >= t)
        && filter.to_ms.is_none_or(|t| row.created_at < t)
        && filter
            .error
            .as_deref()
            .filter(|e| !e.is_empty())
            .is_none_or(|e| row.last_error.as_deref().unwrap_or("").contains(e))
}

impl Memory {
    fn delete_where(&mut self, mut gone: impl FnMut(&Row) -> bool) {
        self.rows.retain(|r| !gone(r));
    }
}

impl Store for Memory {
    type Error = Infallible;

    fn row(&self, pixel: &str, name: &str, id: &str) -> Result<Option<Row>, Infallible> {
        Ok(self
            .rows
            .iter()
            .find(|r| key(r) == (pixel, name, id))
            .cloned())
    }

    fn put(&mut self, row: &Row) -> Result<(), Infallible> {
        match self.rows.iter_mut().find(|r| key(r) == key(row)) {
            Some(here) => *here = row.clone(),
            None => self.rows.push(row.clone()),
        }
        Ok(())
    }

    fn due(&self, now: i64, limit: usize) -> Result<Vec<Row>, Infallible> {
        let mut due: Vec<Row> = self
            .rows
            .iter()
            .filter(|r| pending(r) && r.next_attempt_at <= now)
            .cloned()
            .collect();
        due.sort_by_key(|r| r.next_attempt_at);
        due.truncate(limit);
        Ok(due)
    }

    fn next_due(&self) -> Result<Option<i64>, Infallible> {
        Ok(self
            .rows
            .iter()
            .filter(|r| pending(r))
            .map(|r| r.next_attempt_at)
            .min())
    }

    fn move_pixel(&mut self, from: &str, to: &str) -> Result<(), Infallible> {
        let held: Vec<(String, String)> = self
            .rows
            .iter()
            .filter(|r| r.pixel == to)
            .map(|r| (r.event_name.clone(), r.event_id.clone()))
            .collect();
        for row in self.rows.iter_mut().filter(|r| r.pixel == from) {
            if !held.contains(&(row.event_name.clone(), row.event_id.clone())) {
                row.pixel = to.to_string();
            }
        }
        Ok(())
    }

    fn postpone_due(&mut self, pixel: &str, at: i64) -> Result<(), Infallible> {
        for row in self
            .rows
            .iter_mut()
            .filter(|r| pending(r) && r.pixel == pixel)
        {
            row.next_attempt_at = row.next_attempt_at.max(at);
        }
        Ok(())
    }

    fn depth(&self) -> Result<u64, Infallible> {
        Ok(self.rows.iter().filter(|r| pending(r)).count() as u64)
    }

    fn oldest_finished(&self) -> Result<Option<i64>, Infallible> {
        let finished = self.rows.iter().filter(|r| FINISHED.contains(&r.state));
        Ok(finished.map(|r| r.updated_at).min())
    }

    fn delete_oldest(
        &mut self,
        state: RowState,
        before: i64,
        limit: usize,
    ) -> Result<usize, Infallible> {
        let mut old: Vec<(i64, String, String, String)> = self
            .rows
            .iter()
            .filter(|r| r.state == state && r.updated_at < before)
            .map(|r| {
                let (p, n, i) = key(r);
                (r.updated_at, p.to_string(), n.to_string(), i.to_string())
            })
            .collect();
        old.sort();
        old.truncate(limit);
        self.delete_where(|r| {
            old.iter()
                .any(|(_, p, n, i)| (p.as_str(), n.as_str(), i.as_str()) == key(r))
        });
        Ok(old.len())
    }

    fn fill(&self) -> Result<Fill, Infallible> {
        Ok(Fill {
            rows: self.rows.len() as i64,
            browser_unsent: self
                .rows
                .iter()
                .filter(|r| {
                    r.source == Source::Browser
                        && matches!(
                            r.state,
                            RowState::Queued | RowState::Waiting | RowState::Retrying
                        )
                })
                .count() as i64,
        })
    }

    fn evidence(&self, name: &str, id: &str, proof: &Proof) -> Result<Vec<Evidence>, Infallible> {
        Ok(self
            .evidence
            .iter()
            .filter(|(n, i, d, _, _)| (n.as_str(), i.as_str()) == (name, id) && proof.holds(d))
            .map(|(_, _, digest, event, _)| Evidence {
                digest: digest.clone(),
                event: event.clone(),
            })
            .collect())
    }

    fn file(
        &mut self,
        name: &str,
        id: &str,
        digest: &str,
        event: Option<&Event>,
        now: i64,
    ) -> Result<(), Infallible> {
        let here = |(n, i, d, _, _): &(String, String, String, Option<Event>, i64)| {
            (n.as_str(), i.as_str(), d.as_str()) == (name, id, digest)
        };
        if event.is_none() {
            self.evidence.retain(|e| !here(e));
        } else if self.evidence.iter().any(here) {
            return Ok(());
        }
        let filed = (name.into(), id.into(), digest.into(), event.cloned(), now);
        self.evidence.push(filed);
        Ok(())
    }

    fn clear_evidence(&mut self, name: &str, id: &str) -> Result<(), Infallible> {
        self.evidence
            .retain(|(n, i, _, _, _)| (n.as_str(), i.as_str()) != (name, id));
        Ok(())
    }

    fn delete_evidence_before(&mut self, before: i64, limit: usize) -> Result<usize, Infallible> {
        let mut deleted = 0;
        self.evidence.retain(|e| {
            let gone = e.4 < before && deleted < limit;
            deleted += usize::from(gone);
            !gone
        });
        Ok(deleted)
    }

    fn count_no_room(&mut self, source: Source, hour: i64) -> Result<(), Infallible> {
        match self
            .no_room
            .iter_mut()
            .find(|(h, s, _)| (*h, *s) == (hour, source))
        {
            Some(count) => count.2 += 1,
            None => self.no_room.push((hour, source, 1)),
        }
        Ok(())
    }

    fn no_room_since(&self, hour: i64) -> Result<NoRoom, Infallible> {
        let mut no_room = NoRoom::default();
        for (h, source, n) in &self.no_room {
            if *h >= hour {
                no_room.add(*source, *n);
            }
        }
        Ok(no_room)
    }

    fn delete_no_room_before(&mut self, before: i64) -> Result<(), Infallible> {
        self.no_room.retain(|(h, _, _)| *h >= before);
        Ok(())
    }

    fn forget(&mut self, request: &Forget) -> Result<(), Infallible> {
        let carries = |event: &Option<Event>| {
            event.as_ref().is_some_and(|e| {
                e.user
                    .browser
                    .ttp
                    .as_ref()
                    .is_some_and(|t| request.ttps.contains(t))
            })
        };
        let named = |n: &str, i: &str| {
            request
                .events
                .iter()
                .any(|(en, ei)| (en.as_str(), ei.as_str()) == (n, i))
        };
        self.rows.retain(|r| {
            !(request.everything || named(&r.event_name, &r.event_id) || carries(&r.event))
        });
        self.evidence
            .retain(|(n, i, _, e, _)| !(request.everything || named(n, i) || carries(e)));
        Ok(())
    }

    fn select(&self, filter: &Resend, limit: usize) -> Result<Vec<Row>, Infallible> {
        let mut rows: Vec<Row> = self
            .rows
            .iter()
            .filter(|r| selects(filter, r))
            .cloned()
            .collect();
        rows.sort_by(|a, b| {
            (a.created_at, &a.event_name, &a.event_id).cmp(&(
                b.created_at,
                &b.event_name,
                &b.event_id,
            ))
        });
        rows.truncate(limit);
        Ok(rows)
    }

    fn requeue_all(&mut self, filter: &Resend, now: i64) -> Result<u64, Infallible> {
        let mut n = 0;
        for row in self.rows.iter_mut().filter(|r| selects(filter, r)) {
            row.requeue(now);
            n += 1;
        }
        Ok(n)
    }

    fn note(&self, note: Note<'_>) -> Result<Option<String>, Infallible> {
        Ok(self.notes.get(&note.key()).cloned())
    }

    fn set_note(&mut self, note: Note<'_>, text: Option<&str>) -> Result<(), Infallible> {
        match text {
            Some(text) => self.notes.insert(note.key(), text.to_string()),
            None => self.notes.remove(&note.key()),
        };
        Ok(())
    }

    fn window(&self, since: i64) -> Result<Vec<Listed>, Infallible> {
        Ok(self
            .rows
            .iter()
            .filter(|r| r.created_at >= since)
            .map(listed)
            .collect())
    }

    fn newest(&self, limit: usize) -> Result<Vec<Listed>, Infallible> {
        let mut rows: Vec<&Row> = self.rows.iter().collect();
        rows.sort_by_key(|r| std::cmp::Reverse(r.created_at));
        Ok(rows.into_iter().take(limit).map(listed).collect())
    }

    fn failures(&self, limit: usize) -> Result<Vec<Failure>, Infallible> {
        let mut rows: Vec<&Row> = self
            .rows
            .iter()
            .filter(|r| r.state == RowState::Failed)
            .collect();
        rows.sort_by_key(|r| std::cmp::Reverse(r.updated_at));
        Ok(rows
            .into_iter()
            .take(limit)
            .map(|r| Failure {
                pixel: r.pixel.clone(),
                event: r.event_name.clone(),
                event_id: r.event_id.clone(),
                error: r.last_error.clone().unwrap_or_default(),
                at_ms: r.updated_at,
            })
            .collect())
    }
}
