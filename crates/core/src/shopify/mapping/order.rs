//! Orders: `orders/create` → the purchase, `orders/edited` → post-purchase upsells, and which
//! orders are not ad conversions.

use super::{
    contents, event, event_time, item_key, line_price, money, order_user, properties, session_user,
    MappingConfig, Money,
};
use crate::keys;
use crate::money::Amount;
use crate::session::{merge_sessions, Session};
use crate::shopify::models::{Order, OrderEdit};
use crate::tiktok::{Content, Event, User};
use crate::vec_map::VecMap;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Whether `source` matches one of the lowercase patterns (a trailing `*`: a prefix).
fn source_matches(patterns: &[String], source: &str) -> bool {
    let source = source.trim().to_ascii_lowercase();
    patterns.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => source.starts_with(prefix),
        None => source == *p,
    })
}

/// Why an order is not sent, if it is not: the one place that decides.
pub fn skip_reason(order: &Order, config: &MappingConfig) -> Option<Skip> {
    let source = order.source_name.as_deref().unwrap_or("");
    if source_matches(&config.excluded_sources, source) {
        Some(Skip::ExcludedSource(source.to_string()))
    } else if order.test == Some(true) && !config.send_test_orders {
        Some(Skip::TestOrder)
    } else if order.cancelled_at.is_some() {
        Some(Skip::Cancelled)
    } else if order.id.is_none() {
        Some(Skip::NoId)
    } else {
        None
    }
}

/// Why an order is not sent as a purchase: not a failure, an order that is no ad conversion.
/// Its text goes into the webhook's answer (`skipped`) and the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// Its channel (`source_name`) is in `EXCLUDED_SOURCES`.
    ExcludedSource(String),
    /// A Shopify test order, and `SEND_TEST_ORDERS` is off.
    TestOrder,
    Cancelled,
    NoId,
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Skip::ExcludedSource(source) => write!(
                f,
                "source_name `{source}` is not an ad conversion (EXCLUDED_SOURCES)"
            ),
            Skip::TestOrder => f.write_str("test order (set SEND_TEST_ORDERS=true to send)"),
            Skip::Cancelled => f.write_str("cancelled order"),
            Skip::NoId => f.write_str("order without an id"),
        }
    }
}

/// The order total the buyer paid, with its currency.
fn order_total(order: &Order) -> Option<Money> {
    money(
        order.total_price_set.as_ref(),
        order.total_price.as_deref(),
        order.currency.as_deref(),
    )
}

/// `orders/create` → the purchase event (name from `PURCHASE_EVENT_NAME`), valued at the order
/// total, or why not.
pub fn purchase(
    order: &Order,
    session: &Session,
    config: &MappingConfig,
    now: i64,
) -> Result<Event, Skip> {
    if let Some(reason) = skip_reason(order, config) {
        return Err(reason);
    }
    let id = order.id.unwrap_or_default();
    let user = order_user(order, session, config);
    let total = order_total(order);
    let currency = total.as_ref().and_then(|t| t.currency.clone());
    let items = contents(
        &order.line_items,
        currency.as_deref(),
        order.currency.as_deref(),
    );
    let mut props = properties(items, currency, total.map(|t| t.amount), session);
    props.order_id = Some(id.to_string());
    Ok(event(
        &config.purchase_event_name,
        keys::purchase_event(id),
        event_time(
            &[order.processed_at.as_deref(), order.created_at.as_deref()],
            now,
        ),
        user,
        props,
        session,
    ))
}

/// What an order's Durable Object remembers for upsells: the order's lines as last seen, and
/// edits whose added lines were not priced yet.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OrderState {
    pub lines: VecMap<u64, StoredLine>,
    pub currency: Option<String>,
    pub pending_edits: VecMap<u64, Vec<(u64, u64)>>,
    /// When each pending edit was committed, for its event_time.
    #[serde(default)]
    pub edit_times: VecMap<u64, String>,
    /// The buyer's match keys (hashed PII only), for upsell events.
    pub user: Option<User>,
    pub session: Session,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredLine {
    pub variant_id: Option<u64>,
    pub product_id: Option<u64>,
    #[serde(default)]
    pub sku: Option<String>,
    pub title: Option<String>,
    /// The unit price in the order's currency (`OrderState::currency`), if known in it.
    pub price: Option<String>,
}

impl OrderState {
    /// Remembers the lines, currency and buyer of an order payload (orders/create|paid|updated).
    pub fn absorb(&mut self, order: &Order, session: Session, config: &MappingConfig) {
        self.user = Some(order_user(order, &session, config));
        if let Some(c) = order_total(order).and_then(|t| t.currency) {
            self.currency = Some(c);
        }
        for line in &order.line_items {
            if let Some(id) = line.id {
                self.lines.insert(
                    id,
                    StoredLine {
                        variant_id: line.variant_id,
                        product_id: line.product_id,
                        sku: line.sku.clone(),
                        title: line.title.clone(),
                        price: line_price(line, order.currency.as_deref())
                            .filter(|p| p.currency == self.currency)
                            .map(|p| p.amount.to_string()),
                    },
                );
            }
        }
        self.session = merge_sessions(Some(session), std::mem::take(&mut self.session));
    }

    /// Records an edit's additions to be priced once the order's lines are known.
    pub fn add_edit(&mut self, edit: &OrderEdit) {
        if let Some(id) = edit.id {
            let lines = edit
                .line_items
                .additions
                .iter()
                .filter_map(|a| Some((a.id?, a.delta.unwrap_or(1))))
                .collect::<Vec<_>>();
            if !lines.is_empty() {
                self.pending_edits.insert(id, lines);
                if let Some(at) = edit
                    .committed_at
                    .clone()
                    .or_else(|| edit.created_at.clone())
                {
                    self.edit_times.insert(id, at);
                }
            }
        }
    }

    /// Upsell events for every pending edit whose added lines are all priced now, valued
    /// Σ price × added quantity; those edits leave the pending list.
    pub fn resolve_upsells(
        &mut self,
        order_id: u64,
        config: &MappingConfig,
        now: i64,
    ) -> Vec<Event> {
        let ready: Vec<u64> = self
            .pending_edits
            .iter()
            .filter(|(_, lines)| {
                lines
                    .iter()
                    .all(|(line_id, _)| self.lines.contains_key(line_id))
            })
            .map(|(&edit, _)| edit)
            .collect();
        ready
            .into_iter()
            .filter_map(|edit_id| {
                let lines = self.pending_edits.remove(&edit_id)?;
                let committed = self.edit_times.remove(&edit_id);
                let items: Vec<Content> = lines
                    .iter()
                    .filter_map(|(line_id, delta)| {
                        let l = self.lines.get(line_id)?;
                        let (content_id, content_type) =
                            item_key(l.variant_id, l.product_id, l.sku.as_deref())?;
                        Some(Content {
                            content_id,
                            content_type: content_type.to_string(),
                            content_name: l.title.clone(),
                            quantity: *delta,
                            price: l.price.as_deref().and_then(Amount::parse),
                        })
                    })
                    .collect();
                let mut props = properties(items, self.currency.clone(), None, &self.session);
                props.order_id = Some(order_id.to_string());
                let user = self
                    .user
                    .clone()
                    .unwrap_or_else(|| session_user(&self.session));
                Some(event(
                    &config.purchase_event_name,
                    keys::upsell_event(edit_id),
                    event_time(&[committed.as_deref()], now),
                    user,
                    props,
                    &self.session,
                ))
            })
            .collect()
    }
}
