//! Counting refused webhooks (`tiktok_edge_core::refusals`): this isolate's tally in memory,
//! the shop's record in KV, written after the answer (`waitUntil`), never delaying it.

use std::cell::RefCell;
use std::time::Duration;

use tiktok_edge_core::config::Config;
use tiktok_edge_core::refusals::{self, Counts, Flush, Refusal, Tally};
use worker::{Context, Date, Delay, Env};

use crate::log::{self, Level};
use crate::store::Store;

thread_local! {
    static TALLY: RefCell<Tally> = RefCell::new(Tally::default());
}

fn now_ms() -> i64 {
    Date::now().as_millis() as i64
}

/// A webhook refused for `reason`: counted, and written now or within the interval.
pub fn refused(env: &Env, ctx: &Context, config: &Config, reason: Refusal) {
    // One line per refusal, so `wrangler tail` shows them too (no header or body values).
    let what = match reason {
        Refusal::BadHmac => "bad_hmac",
        Refusal::WrongShop => "wrong_shop",
    };
    log::event(Level::Info, "webhook_refused", &[("reason", what.into())]);
    let Ok(store) = Store::new(env) else { return };
    let setup = refusals::setup_of(config);
    let flush = TALLY.with(|t| t.borrow_mut().refused(reason, now_ms()));
    ctx.wait_until(async move {
        let counts = match flush {
            Flush::Now(counts) => counts,
            Flush::Later(ms) => {
                Delay::from(Duration::from_millis(ms)).await;
                TALLY.with(|t| t.borrow_mut().due(now_ms()))
            }
            Flush::Scheduled | Flush::Held => return,
        };
        if counts == Counts::default() {
            return;
        }
        if let Err(e) = store.add_refused_webhooks(&setup, counts, now_ms()).await {
            TALLY.with(|t| t.borrow_mut().unwritten(counts));
            count_failed(&e);
        }
    });
}

/// A webhook accepted (signed, from the shop): the refusals before it no longer count, and
/// its time is noted (to the hour).
pub fn accepted(env: &Env, ctx: &Context) {
    let now = now_ms();
    let (clear, note) = TALLY.with(|t| {
        let mut tally = t.borrow_mut();
        (tally.accepted(now), tally.note_accepted(now))
    });
    if !clear && !note {
        return;
    }
    let Ok(store) = Store::new(env) else { return };
    ctx.wait_until(async move {
        if clear {
            if let Err(e) = store.clear_refused_webhooks().await {
                count_failed(&e);
            }
        }
        if note {
            if let Err(e) = store.note_webhook_accepted(now).await {
                count_failed(&e);
            }
        }
    });
}

fn count_failed(e: &worker::Error) {
    log::event(
        Level::Error,
        "refusal_count_failed",
        &[("error", e.to_string().into())],
    );
}
