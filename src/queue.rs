//! Client side of the send queue: hands events to their `EventQueue` shard and waits only for
//! the durable write, never for TikTok.

use tiktok_edge_core::config::Config;
use tiktok_edge_core::proof::Proof;
use tiktok_edge_core::queue::{
    earliest_pause, shard_name, shard_name_at, Enqueue, EnqueueSummary, Forget, HoldPolicy,
    Preview, QueueStats, Refuse, Resend, Resent, ShardHealth, Source, SHARDS,
};
use tiktok_edge_core::tiktok::Event;
use tiktok_edge_core::vec_map::VecMap;
use worker::{Env, Response, Result};

use crate::outbound;

pub const BINDING: &str = "EVENT_QUEUE";

/// Operation `op` of the shard named `shard`: a POST of `body` when there is one, else a GET.
/// Any answer but 200 is an error naming the shard and its message.
async fn call(env: &Env, shard: &str, op: &str, body: Option<String>) -> Result<Response> {
    let mut resp = outbound::object(env, BINDING, shard, op, body).await?;
    if resp.status_code() != 200 {
        return Err(worker::Error::RustError(format!(
            "queue shard {shard} answered {} to {op}: {}",
            resp.status_code(),
            resp.text().await.unwrap_or_default()
        )));
    }
    Ok(resp)
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

/// Hands copies of `events` from `source` to their shards, where they merge with other copies
/// of the same events bound to them by `proof`; returns what became of them.
pub async fn enqueue(
    env: &Env,
    source: Source,
    proof: &Proof,
    config: &Config,
    events: Vec<Event>,
) -> Result<EnqueueSummary> {
    let hold = HoldPolicy::from_config(config);
    let mut total = EnqueueSummary::default();
    for (shard, events) in by_shard(events, |e| (&e.event, &e.event_id)) {
        let body = serde_json::to_string(&Enqueue {
            source,
            hold: hold.clone(),
            proof: proof.clone(),
            events,
        })?;
        total += call(env, &shard, "enqueue", Some(body))
            .await?
            .json::<EnqueueSummary>()
            .await?;
    }
    Ok(total)
}

/// Every shard's report for events updated since `since_ms`, merged.
pub async fn stats(env: &Env, since_ms: i64) -> Result<QueueStats> {
    let mut merged = QueueStats::default();
    let op = format!("stats?since={since_ms}");
    for shard in 0..SHARDS {
        let mut resp = call(env, &shard_name_at(shard), &op, None).await?;
        merged.merge(resp.json::<QueueStats>().await?);
    }
    Ok(merged)
}

/// Events waiting to be sent over all shards, and the earliest pause among them.
pub async fn health(env: &Env) -> Result<ShardHealth> {
    let mut total = ShardHealth::default();
    for shard in 0..SHARDS {
        let mut resp = call(env, &shard_name_at(shard), "health", None).await?;
        let shard: ShardHealth = resp.json().await?;
        total.depth += shard.depth;
        total.paused = earliest_pause(total.paused, shard.paused);
    }
    Ok(total)
}

/// Puts the operator's choice of failed or unconfirmed events back in every shard's queue.
/// The filter must have been checked (`Resend::condition`). Unconfirmed purchases need
/// `previews`, every shard's preview in shard order: each shard re-sends only when its
/// selection is still the one it previewed.
pub async fn resend(env: &Env, request: &Resend, previews: &[Preview]) -> Result<Resent> {
    let mut total = Resent::default();
    for shard in 0..SHARDS {
        let mine = match previews.get(shard as usize) {
            Some(preview) if preview.count == 0 => continue,
            Some(preview) => Resend {
                confirm: Some(preview.confirm.clone()),
                ..request.clone()
            },
            None => request.clone(),
        };
        let body = serde_json::to_string(&mine)?;
        let mut resp = call(env, &shard_name_at(shard), "resend", Some(body)).await?;
        let done: Resent = resp.json().await?;
        total.requeued += done.requeued;
        total.changed |= done.changed;
    }
    Ok(total)
}

/// Every shard's preview of a re-send of unconfirmed purchases, in shard order.
pub async fn preview(env: &Env, request: &Resend) -> Result<Vec<Preview>> {
    let body = serde_json::to_string(request)?;
    let mut previews = Vec::with_capacity(SHARDS as usize);
    for shard in 0..SHARDS {
        let mut resp = call(
            env,
            &shard_name_at(shard),
            "resend-preview",
            Some(body.clone()),
        )
        .await?;
        previews.push(resp.json::<Preview>().await?);
    }
    Ok(previews)
}

/// Deletes queued and finished events: the listed ones, and every one carrying one of
/// `ttps` (a redacted visitor's browser events). `everything` empties the queue (shop/redact).
pub async fn forget(env: &Env, request: &Forget) -> Result<()> {
    let mut events = by_shard(request.events.iter().cloned(), |(e, id)| (e, id));
    for shard in 0..SHARDS {
        let name = shard_name_at(shard);
        let mine = Forget {
            events: events.remove(&name).unwrap_or_default(),
            ttps: request.ttps.clone(),
            everything: request.everything,
        };
        if mine.events.is_empty() && mine.ttps.is_empty() && !mine.everything {
            continue;
        }
        call(env, &name, "forget", Some(serde_json::to_string(&mine)?)).await?;
    }
    Ok(())
}

/// Stops the events a visitor's refusal names, in every shard holding one of them.
pub async fn refuse(env: &Env, request: &Refuse) -> Result<()> {
    let keys = request.events.iter().map(|k| (false, k.clone()));
    let bound = request.bound.iter().map(|k| (true, k.clone()));
    for (shard, keys) in by_shard(keys.chain(bound), |(_, (e, id))| (e, id)) {
        let (bound, events): (Vec<_>, Vec<_>) = keys.into_iter().partition(|(bound, _)| *bound);
        let mine = Refuse {
            events: events.into_iter().map(|(_, k)| k).collect(),
            bound: bound.into_iter().map(|(_, k)| k).collect(),
            proof: request.proof.clone(),
        };
        call(env, &shard, "refuse", Some(serde_json::to_string(&mine)?)).await?;
    }
    Ok(())
}
