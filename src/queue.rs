//! Client side of the send queue: hands events to their `EventQueue` shard and waits only for
//! the durable write, never for TikTok.

use std::collections::BTreeMap;
use tiktok_edge_core::queue::{
    shard_name, shard_name_at, EnqueueSummary, Forget, QueueStats, SHARDS,
};
use tiktok_edge_core::tiktok::Event;
use worker::{Env, Method, Request, RequestInit, Result};

pub const BINDING: &str = "EVENT_QUEUE";

/// Queues `events`, grouped by shard; returns how many were new.
pub async fn enqueue(env: &Env, events: Vec<Event>) -> Result<EnqueueSummary> {
    let mut by_shard: BTreeMap<String, Vec<Event>> = BTreeMap::new();
    for event in events {
        by_shard
            .entry(shard_name(&event.event, &event.event_id))
            .or_default()
            .push(event);
    }
    let namespace = env.durable_object(BINDING)?;
    let mut total = EnqueueSummary::default();
    for (shard, events) in by_shard {
        let stub = namespace.id_from_name(&shard)?.get_stub()?;
        let mut init = RequestInit::new();
        init.with_method(Method::Post)
            .with_body(Some(serde_json::to_string(&events)?.into()));
        let request = Request::new_with_init("https://queue/enqueue", &init)?;
        let mut resp = stub.fetch_with_request(request).await?;
        if resp.status_code() != 200 {
            return Err(worker::Error::RustError(format!(
                "queue shard {shard} answered {}",
                resp.status_code()
            )));
        }
        total += resp.json::<EnqueueSummary>().await?;
    }
    Ok(total)
}

/// Every shard's report for events updated since `since_ms`, merged.
pub async fn stats(env: &Env, since_ms: i64) -> Result<QueueStats> {
    let namespace = env.durable_object(BINDING)?;
    let mut merged = QueueStats::default();
    for shard in 0..SHARDS {
        let stub = namespace.id_from_name(&shard_name_at(shard))?.get_stub()?;
        let mut resp = stub
            .fetch_with_str(&format!("https://queue/stats?since={since_ms}"))
            .await?;
        merged.merge(resp.json::<QueueStats>().await?);
    }
    Ok(merged)
}

/// Events waiting to be sent, over all shards.
pub async fn depth(env: &Env) -> Result<u64> {
    let namespace = env.durable_object(BINDING)?;
    let mut total = 0;
    for shard in 0..SHARDS {
        let stub = namespace.id_from_name(&shard_name_at(shard))?.get_stub()?;
        let mut resp = stub.fetch_with_str("https://queue/depth").await?;
        total += resp.json::<u64>().await?;
    }
    Ok(total)
}

/// Deletes queued and finished events: the listed ones, and every one carrying one of
/// `ttps` (a redacted visitor's browser events). `everything` empties the queue (shop/redact).
pub async fn forget(env: &Env, request: &Forget) -> Result<()> {
    let namespace = env.durable_object(BINDING)?;
    for shard in 0..SHARDS {
        let name = shard_name_at(shard);
        let mine = Forget {
            events: request
                .events
                .iter()
                .filter(|(event, id)| shard_name(event, id) == name)
                .cloned()
                .collect(),
            ..request.clone()
        };
        if mine.events.is_empty() && mine.ttps.is_empty() && !mine.everything {
            continue;
        }
        let stub = namespace.id_from_name(&name)?.get_stub()?;
        let mut init = RequestInit::new();
        init.with_method(Method::Post)
            .with_body(Some(serde_json::to_string(&mine)?.into()));
        let resp = stub
            .fetch_with_request(Request::new_with_init("https://queue/forget", &init)?)
            .await?;
        if resp.status_code() != 200 {
            return Err(worker::Error::RustError(format!(
                "queue shard {name} could not forget: {}",
                resp.status_code()
            )));
        }
    }
    Ok(())
}
