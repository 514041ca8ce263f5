//! `EventQueue`: the durable send queue, one Durable Object per shard of event keys.
//!
//! Every copy of an event (browser or webhook) comes to the shard that owns its key (event
//! name, event_id: TikTok's own dedup key). Every decision is the engine's
//! (`tiktok_edge_core::shard`, tested on the host): this object only adapts SQLite
//! (`queue_sql`), the alarm and `fetch` to it, and posts the batches a flush forms to TikTok.
//! Nothing is answered before it is written to SQLite. The calls it answers are the typed
//! `queue::ShardCall`s (`src/queue.rs` makes them).

use std::cell::RefCell;
use tiktok_edge_core::queue::{Pause, ShardAnswer, ShardCall};
use tiktok_edge_core::shard::{self, Mirror, Start, Store};
use tiktok_edge_core::tiktok::{self, Step};
use worker::{durable_object, Date, DurableObject, Env, Request, Response, Result, State};

use crate::log::{self, Level};
use crate::queue_sql::Sql;
use crate::store::Store as Kv;
use crate::{outbound, respond, settings};

#[durable_object(alarm)]
pub struct EventQueue {
    state: State,
    env: Env,
    store: RefCell<Sql>,
}

impl DurableObject for EventQueue {
    fn new(state: State, env: Env) -> Self {
        let mut store = Sql::new(state.storage().sql());
        if let Err(e) = store.migrate() {
            failed("queue_schema_failed", &e.to_string());
        }
        // Rows of the single-pixel settings go to the first pixel of TIKTOK_PIXELS.
        let adopted = settings::with_config(&env, |c| match c {
            Ok(config) => shard::adopt(&mut store, config),
            Err(_) => Ok(()),
        });
        if let Err(e) = adopted {
            failed("queue_adopt_failed", &e.to_string());
        }
        EventQueue {
            state,
            env,
            store: RefCell::new(store),
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        // Parsed by serde_json, not the runtime's JSON.parse: ids above 2^53 stay exact.
        let call: ShardCall = serde_json::from_str(&req.text().await?)?;
        let (answer, reschedule) = self.answer(call)?;
        if reschedule {
            self.schedule(false).await?;
        }
        respond::json(200, &answer)
    }

    async fn alarm(&self) -> Result<Response> {
        if let Err(e) = self.flush().await {
            failed("queue_flush_failed", &e.to_string());
        }
        let more_to_clean = shard::clean_up(&mut *self.store.borrow_mut(), now_ms())?;
        self.schedule(more_to_clean).await?;
        Response::ok("")
    }
}

fn now_ms() -> i64 {
    Date::now().as_millis() as i64
}

impl EventQueue {
    /// Does `call`; the answer, and whether the alarm must be set again.
    fn answer(&self, call: ShardCall) -> Result<(ShardAnswer, bool)> {
        let now = now_ms();
        let store = &mut *self.store.borrow_mut();
        store.take_rows();
        Ok(match call {
            ShardCall::Enqueue(call) => {
                let max_rows =
                    settings::with_config(&self.env, |c| shard::max_rows(c.as_ref().ok()));
                match shard::enqueue(store, &call, max_rows, now)? {
                    None => (ShardAnswer::Full, false),
                    Some(mut summary) => {
                        (summary.rows_read, summary.rows_written) = store.take_rows();
                        let due = summary.accepted + summary.merged > 0;
                        (ShardAnswer::Enqueued(summary), due)
                    }
                }
            }
            ShardCall::Forget(request) => {
                store.forget(&request)?;
                (ShardAnswer::Done, false)
            }
            ShardCall::Refuse(request) => {
                shard::refuse(store, &request, now)?;
                (ShardAnswer::Done, true)
            }
            ShardCall::Resend(request) => {
                let done = shard::resend(store, &request, now)?;
                (ShardAnswer::Resent(done), done.requeued > 0)
            }
            ShardCall::Preview(request) => (
                ShardAnswer::Preview(shard::preview(store, &request)?),
                false,
            ),
            ShardCall::Health => (
                ShardAnswer::Health(shard::health(store, &self.pixel_keys())?),
                false,
            ),
            ShardCall::Stats { since_ms } => (
                ShardAnswer::Stats(shard::stats(store, since_ms, &self.pixel_keys())?),
                false,
            ),
        })
    }

    /// The shop's pixel keys, whose pauses health and stats report.
    fn pixel_keys(&self) -> Vec<String> {
        settings::with_config(&self.env, |c| match c {
            Ok(c) => c.pixels.iter().map(|p| p.key.clone()).collect(),
            Err(_) => tiktok_edge_core::queue::the_one_pixel(),
        })
    }

    /// Sets the alarm when the engine says (`shard::next_alarm`), or removes it.
    async fn schedule(&self, more_to_clean: bool) -> Result<()> {
        let now = now_ms();
        let at = shard::next_alarm(&*self.store.borrow(), more_to_clean, now)?;
        let storage = self.state.storage();
        match at {
            Some(at) => storage.set_alarm((at - now).max(0)).await,
            None => storage.delete_alarm().await,
        }
    }

    /// Sends what is due: the engine forms each batch and reads TikTok's answer to it.
    async fn flush(&self) -> Result<()> {
        let config = settings::config(&self.env);
        if let Err(e) = &config {
            failed("queue_paused", &e.to_string());
        }
        let config = config.ok();
        self.store.borrow().take_rows();
        let start = shard::flush(&mut *self.store.borrow_mut(), config.as_ref(), now_ms())?;
        let (Start::Send(mut flush), Some(config)) = (start, config) else {
            return Ok(());
        };
        let url = config.api_base.join(tiktok::TRACK_PATH);
        while let Some(post) = flush.next_request() {
            let events = flush.batch_len();
            let (status, answer) = outbound::post_tiktok(
                &url,
                post.token.expose(),
                post.body,
                config.tiktok_timeout_ms,
            )
            .await;
            let jitter = f64::from(getrandom::u32().unwrap_or(0)) / f64::from(u32::MAX);
            let step = {
                let store = &mut *self.store.borrow_mut();
                flush.answer(store, status, &answer, now_ms(), jitter)?
            };
            log::event(
                Level::Info,
                "tiktok_batch",
                &[
                    ("pixel", post.pixel.as_str().into()),
                    ("events", events.into()),
                    ("status", status.map_or(0, i32::from).into()),
                    ("step", format!("{step:?}").into()),
                ],
            );
            if let Step::Pause(reason)
            | Step::Throttle {
                message: reason, ..
            } = &step
            {
                log::event(
                    Level::Error,
                    "queue_paused",
                    &[
                        ("pixel", post.pixel.as_str().into()),
                        ("reason", reason.as_str().into()),
                    ],
                );
            }
        }
        let Mirror(changed) = &flush.mirror;
        for (pixel, pause) in changed {
            self.mirror_pause(pixel, pause.as_ref()).await;
            if pause.is_none() {
                log::event(
                    Level::Info,
                    "queue_resumed",
                    &[("pixel", pixel.as_str().into())],
                );
            }
        }
        let (read, written) = self.store.borrow().take_rows();
        log::event(
            Level::Info,
            "queue_flushed",
            &[("rows_read", read.into()), ("rows_written", written.into())],
        );
        Ok(())
    }

    /// Copies the pause to KV for `/tt/health`; a failure is logged, never fatal: the shard's
    /// own row decides sending, the copy only what health says.
    async fn mirror_pause(&self, pixel: &str, pause: Option<&Pause>) {
        let shard = self.state.id().to_string();
        let done = match Kv::new(&self.env) {
            Ok(store) => store.mirror_pause(&shard, pixel, pause).await,
            Err(e) => Err(e),
        };
        if let Err(e) = done {
            failed("pause_mirror_failed", &e.to_string());
        }
    }
}

fn failed(event: &str, error: &str) {
    log::event(Level::Error, event, &[("error", error.into())]);
}
