//! Client side of the send queue: hands events to their `EventQueue` shard and waits only for
//! the durable write, never for TikTok. Each call is a typed `queue::ShardCall`; calls to every
//! shard go out at once.

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::Poll;
use tiktok_edge_core::config::Config;
use tiktok_edge_core::pixels;
use tiktok_edge_core::proof::Proof;
use tiktok_edge_core::queue::{
    shard_name, shard_name_at, Enqueue, EnqueueSummary, Forget, HoldPolicy, Preview, QueueStats,
    Refuse, Resend, Resent, ShardAnswer, ShardCall, ShardHealth, Source, SHARDS,
};
use tiktok_edge_core::tiktok::Event;
use tiktok_edge_core::vec_map::VecMap;
use worker::{Env, Result};

use crate::outbound;

pub const BINDING: &str = "EVENT_QUEUE";

/// `call` to the shard named `shard`: its answer, and the answer's text (for errors). A full
/// shard (or any status but 200) is an error naming the shard.
async fn ask(env: &Env, shard: &str, call: &ShardCall) -> Result<(ShardAnswer, String)> {
    let body = serde_json::to_string(call)?;
    let mut resp = outbound::object(env, BINDING, shard, "", Some(body)).await?;
    let text = resp.text().await?;
    if resp.status_code() != 200 {
        return Err(failed(
            shard,
            format!("answered {}: {text}", resp.status_code()),
        ));
    }
    // Parsed by serde_json, not the runtime's JSON.parse: ids above 2^53 stay exact.
    match serde_json::from_str(&text)? {
        ShardAnswer::Full => Err(failed(
            shard,
            "full of events still waiting to be sent; try again later".into(),
        )),
        answer => Ok((answer, text)),
    }
}

fn failed(shard: &str, why: String) -> worker::Error {
    worker::Error::RustError(format!("queue shard {shard}: {why}"))
}

/// Every future of `futures` at once: their outputs in order, or the first error (the others
/// dropped). One instance (for [`ask`]) instead of `futures_util`'s `try_join_all` per type.
async fn all<F: Future<Output = Result<T>>, T>(futures: impl Iterator<Item = F>) -> Result<Vec<T>> {
    let mut pending: Vec<(Pin<Box<F>>, Option<T>)> =
        futures.map(|future| (Box::pin(future), None)).collect();
    poll_fn(|cx| {
        let mut ready = true;
        for (future, out) in &mut pending {
            if out.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(answer) => *out = Some(answer?),
                    Poll::Pending => ready = false,
                }
            }
        }
        if !ready {
            return Poll::Pending;
        }
        Poll::Ready(Ok(pending
            .iter_mut()
            .filter_map(|(_, out)| out.take())
            .collect()))
    })
    .await
}

/// `call` to every shard at once (shards `call` gives none skipped); the answers in shard
/// order.
async fn ask_all<T>(
    env: &Env,
    call: impl Fn(u32) -> Option<ShardCall>,
    pick: impl Fn(ShardAnswer) -> Option<T>,
) -> Result<Vec<T>> {
    let calls: Vec<(String, ShardCall)> = (0..SHARDS)
        .filter_map(|shard| Some((shard_name_at(shard), call(shard)?)))
        .collect();
    ask_each(env, calls, pick).await
}

/// `calls` to the shards they name, at once; what `pick` takes of each answer (any other
/// answer is an error naming the shard).
async fn ask_each<T>(
    env: &Env,
    calls: Vec<(String, ShardCall)>,
    pick: impl Fn(ShardAnswer) -> Option<T>,
) -> Result<Vec<T>> {
    let answers = all(calls.iter().map(|(name, call)| ask(env, name, call))).await?;
    calls
        .iter()
        .zip(answers)
        .map(|((name, _), (answer, text))| {
            pick(answer).ok_or_else(|| failed(name, format!("answered {text}")))
        })
        .collect()
}

fn done(answer: ShardAnswer) -> Option<()> {
    matches!(answer, ShardAnswer::Done).then_some(())
}

/// `items` grouped by the shard holding their (event name, event_id).
fn by_shard<T>(
    items: impl IntoIterator<Item = T>,
    key: impl Fn(&T) -> (&str, &str),
) -> VecMap<String, Vec<T>> {
    let mut groups: VecMap<String, Vec<T>> = VecMap::new();
    for item in items {
        let (event, id) = key(&item);
        groups.entry_or_default(shard_name(event, id)).push(item);
    }
    groups
}

/// The send-queue keys of the pixels `event` goes to (`pixels::route`, by its market and name).
fn pixels_of(config: &Config, event: &Event) -> Vec<String> {
    let market = pixels::market_of(event);
    let routed = pixels::route(&config.pixels, market, &event.event);
    routed.into_iter().map(|p| p.key.clone()).collect()
}

/// Hands copies of `events` from `source` to their shards, one row per pixel each goes to,
/// where they merge with other copies of the same events (for the same pixel) bound to them by
/// `proof`; returns what became of them. An event no pixel takes is not queued.
pub async fn enqueue(
    env: &Env,
    source: Source,
    proof: &Proof,
    config: &Config,
    events: Vec<Event>,
) -> Result<EnqueueSummary> {
    let hold = HoldPolicy::from_config(config);
    let routed = events
        .into_iter()
        .map(|e| (pixels_of(config, &e), e))
        .filter(|(pixels, _)| !pixels.is_empty());
    let mut calls: Vec<(String, ShardCall)> = Vec::new();
    for (shard, group) in by_shard(routed, |(_, e)| (&e.event, &e.event_id)) {
        // One call per shard and set of pixels (mostly one set: a shop's events of one market).
        let mut by_pixels: Vec<(Vec<String>, Vec<Event>)> = Vec::new();
        for (pixels, event) in group {
            match by_pixels.iter_mut().find(|(p, _)| *p == pixels) {
                Some((_, events)) => events.push(event),
                None => by_pixels.push((pixels, vec![event])),
            }
        }
        for (pixels, events) in by_pixels {
            let call = ShardCall::Enqueue(Enqueue {
                source,
                hold: hold.clone(),
                proof: proof.clone(),
                events,
                pixels,
            });
            calls.push((shard.clone(), call));
        }
    }
    let enqueued = |a| match a {
        ShardAnswer::Enqueued(summary) => Some(summary),
        _ => None,
    };
    let mut total = EnqueueSummary::default();
    for summary in ask_each(env, calls, enqueued).await? {
        total += summary;
    }
    Ok(total)
}

/// Every shard's report for events updated since `since_ms`, merged.
pub async fn stats(env: &Env, since_ms: i64) -> Result<QueueStats> {
    let stats = |a| match a {
        ShardAnswer::Stats(stats) => Some(stats),
        _ => None,
    };
    let mut merged = QueueStats::default();
    for report in ask_all(env, |_| Some(ShardCall::Stats { since_ms }), stats).await? {
        merged.merge(report);
    }
    Ok(merged)
}

/// Events waiting to be sent over all shards, and each pixel's earliest pause among them.
pub async fn health(env: &Env) -> Result<ShardHealth> {
    let health = |a| match a {
        ShardAnswer::Health(health) => Some(health),
        _ => None,
    };
    let mut total = ShardHealth::default();
    for shard in ask_all(env, |_| Some(ShardCall::Health), health).await? {
        total.add(shard);
    }
    Ok(total)
}

/// Puts the operator's choice of failed or unconfirmed events back in every shard's queue.
/// The filter must have been checked (`Resend::condition`). Unconfirmed purchases need
/// `previews`, every shard's preview in shard order: each shard re-sends only when its
/// selection is still the one it previewed.
pub async fn resend(env: &Env, request: &Resend, previews: &[Preview]) -> Result<Resent> {
    let mine = |shard: u32| match previews.get(shard as usize) {
        Some(preview) if preview.count == 0 => None,
        Some(preview) => Some(ShardCall::Resend(Resend {
            confirm: Some(preview.confirm.clone()),
            ..request.clone()
        })),
        None => Some(ShardCall::Resend(request.clone())),
    };
    let resent = |a| match a {
        ShardAnswer::Resent(done) => Some(done),
        _ => None,
    };
    let mut total = Resent::default();
    for done in ask_all(env, mine, resent).await? {
        total.requeued += done.requeued;
        total.changed |= done.changed;
    }
    Ok(total)
}

/// Every shard's preview of a re-send of unconfirmed purchases, in shard order.
pub async fn preview(env: &Env, request: &Resend) -> Result<Vec<Preview>> {
    let preview = |a| match a {
        ShardAnswer::Preview(preview) => Some(preview),
        _ => None,
    };
    ask_all(env, |_| Some(ShardCall::Preview(request.clone())), preview).await
}

/// Deletes queued and finished events: the listed ones, and every one carrying one of
/// `ttps` (a redacted visitor's browser events). `everything` empties the queue (shop/redact).
pub async fn forget(env: &Env, request: &Forget) -> Result<()> {
    let events = by_shard(request.events.iter().cloned(), |(e, id)| (e, id));
    let mine = |shard: u32| {
        let mine = Forget {
            events: events
                .get(&shard_name_at(shard))
                .cloned()
                .unwrap_or_default(),
            ttps: request.ttps.clone(),
            everything: request.everything,
        };
        let nothing = mine.events.is_empty() && mine.ttps.is_empty() && !mine.everything;
        (!nothing).then_some(ShardCall::Forget(mine))
    };
    ask_all(env, mine, done).await?;
    Ok(())
}

/// Stops the events a visitor's refusal names, for every pixel of the shop, in every shard
/// holding one of them.
pub async fn refuse(env: &Env, config: &Config, request: &Refuse) -> Result<()> {
    let keys = request.events.iter().map(|k| (false, k.clone()));
    let bound = request.bound.iter().map(|k| (true, k.clone()));
    let calls = by_shard(keys.chain(bound), |(_, (e, id))| (e, id))
        .into_iter()
        .map(|(shard, keys)| {
            let (bound, events): (Vec<_>, Vec<_>) = keys.into_iter().partition(|(bound, _)| *bound);
            let mine = Refuse {
                events: events.into_iter().map(|(_, k)| k).collect(),
                bound: bound.into_iter().map(|(_, k)| k).collect(),
                proof: request.proof.clone(),
                pixels: config.pixels.iter().map(|p| p.key.clone()).collect(),
            };
            (shard, ShardCall::Refuse(mine))
        })
        .collect();
    ask_each(env, calls, done).await?;
    Ok(())
}
