//! Webhooks refused since the last accepted one, by reason: a wrong `SHOPIFY_WEBHOOK_SECRET`
//! or `SHOPIFY_SHOP_DOMAIN` refuses every webhook, and must not stay silent.
//!
//! What it costs: one KV record ([`Refused`]) for the whole shop, never one per request. Each
//! isolate counts refusals in memory ([`Tally`]) and writes the first at once, later ones at
//! most once per interval: [`FLUSH_INTERVAL_MS`], doubling with each write up to
//! [`MAX_INTERVAL_MS`], so a flood of junk costs an isolate a few dozen KV writes a day (KV
//! takes one write per second per key, and a free account 1,000 a day). Counts that fall due
//! later than a response can wait for ([`MAX_DELAY_MS`]) go with the next refusal after the
//! interval: under a flood the count is a lower bound. An accepted webhook clears the record
//! (one KV read per isolate per [`CLEAR_CHECK_MS`], a delete only when there is something to
//! clear) and the interval starts again from its base.
//!
//! Who can move it: a refusal needs no secret (anyone can post junk), an accepted webhook
//! needs the right secret and shop. So junk can never make a broken setup look fine, only
//! raise an alarm that the shop's next genuine webhook clears. The record also names the
//! settings it was counted under ([`setup_of`]): after the secret or the shop domain
//! changes, the old count no longer applies.

use crate::config::{Config, Problem, WEBHOOKS_FEATURE};
use serde::{Deserialize, Serialize};

/// An isolate writes its count at most this often, at first.
pub const FLUSH_INTERVAL_MS: u64 = 10_000;
/// ... and at least this often under a lasting flood.
pub const MAX_INTERVAL_MS: u64 = 3_600_000;
/// The longest a write is put off after a response (`waitUntil` keeps an isolate ~30 s).
pub const MAX_DELAY_MS: u64 = 20_000;
/// An isolate that found nothing to clear looks again only after this long (an accepted
/// webhook costs no KV read within it, unless this isolate refused one since).
pub const CLEAR_CHECK_MS: i64 = 60_000;
/// An isolate notes the time of an accepted webhook (for `/tt/health` and `doctor`) at most
/// this often: "last webhook" is known to the hour, for at most 24 KV writes a day per isolate.
pub const ACCEPTED_NOTE_MS: i64 = 3_600_000;

/// Why a webhook was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The HMAC signature does not match `SHOPIFY_WEBHOOK_SECRET` (or the previous one).
    BadHmac,
    /// Correctly signed, but `X-Shopify-Shop-Domain` is not `SHOPIFY_SHOP_DOMAIN`.
    WrongShop,
}

/// Refusals counted by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub bad_hmac: u64,
    pub wrong_shop: u64,
}

impl Counts {
    fn is_empty(&self) -> bool {
        self.bad_hmac == 0 && self.wrong_shop == 0
    }
}

/// The shop's record (one KV key): refusals since the last accepted webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refused {
    /// The settings they were refused under ([`setup_of`]); another setup's count is void.
    pub setup: String,
    pub bad_hmac: u64,
    pub wrong_shop: u64,
    pub first_ms: i64,
    pub last_ms: i64,
}

/// What identifies the webhook settings, without revealing them: a short hash of the secrets
/// and the shop domain.
pub fn setup_of(config: &Config) -> String {
    let mut text = String::from("tiktok-edge refused webhooks");
    for secret in &config.webhook_secrets {
        text.push('\n');
        text.push_str(secret.expose());
    }
    text.push('\n');
    text.push_str(config.shop_domain.as_deref().unwrap_or(""));
    crate::hash::sha256_hex(&text)[..16].to_string()
}

impl Refused {
    /// `previous` (the record as read) with `counts` added at `now_ms`; a record of another
    /// setup starts over.
    pub fn add(previous: Option<Refused>, setup: &str, counts: Counts, now_ms: i64) -> Refused {
        let previous = previous.filter(|r| r.setup == setup);
        let first_ms = previous.as_ref().map_or(now_ms, |r| r.first_ms);
        let (bad_hmac, wrong_shop) = previous.map_or((0, 0), |r| (r.bad_hmac, r.wrong_shop));
        Refused {
            setup: setup.to_string(),
            bad_hmac: bad_hmac.saturating_add(counts.bad_hmac),
            wrong_shop: wrong_shop.saturating_add(counts.wrong_shop),
            first_ms,
            last_ms: now_ms,
        }
    }

    /// The record when it applies to `setup` and counts something.
    pub fn current(record: Option<Refused>, setup: &str) -> Option<Refused> {
        record.filter(|r| r.setup == setup && (r.bad_hmac > 0 || r.wrong_shop > 0))
    }

    /// What the operator reads in `/tt/health`, on the admin page and from `npm run doctor`.
    pub fn problems(&self) -> Vec<Problem> {
        let since = |n: u64| {
            let noun = if n == 1 { "webhook" } else { "webhooks" };
            format!("{n} {noun} refused since the last accepted one")
        };
        let mut out = Vec::new();
        if self.bad_hmac > 0 {
            out.push(Problem {
                name: "SHOPIFY_WEBHOOK_SECRET",
                message: format!(
                    "{} — is SHOPIFY_WEBHOOK_SECRET the app's secret? Their HMAC signature did \
                     not match it: Shopify signs an app's webhooks with the app's client secret \
                     (Dev Dashboard → your app → Settings), not its client id or API key; an app \
                     made in the Shopify admin with its API secret key. The count clears with \
                     the next webhook accepted, or when the secret changes",
                    since(self.bad_hmac)
                ),
                disables: Some(WEBHOOKS_FEATURE),
            });
        }
        if self.wrong_shop > 0 {
            out.push(Problem {
                name: "SHOPIFY_SHOP_DOMAIN",
                message: format!(
                    "{} — is SHOPIFY_SHOP_DOMAIN the shop's permanent domain? They were signed \
                     correctly but came from another shop (X-Shopify-Shop-Domain): set it to \
                     the shop's *.myshopify.com domain (Shopify admin → Settings → Domains). \
                     The count clears with the next webhook accepted, or when the setting \
                     changes",
                    since(self.wrong_shop)
                ),
                disables: Some(WEBHOOKS_FEATURE),
            });
        }
        out
    }
}

/// What to do with the record after a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flush {
    /// Add these counts to the record now.
    Now(Counts),
    /// Ask [`Tally::due`] after this many milliseconds (the isolate wrote less than an
    /// interval ago); the counts wait in memory.
    Later(u64),
    /// A write is already scheduled: it takes this refusal along.
    Scheduled,
    /// Not due within [`MAX_DELAY_MS`]: the counts wait for a refusal after the interval.
    Held,
}

/// One isolate's refusals not yet written, and when it last wrote or cleared the record.
#[derive(Debug, Clone)]
pub struct Tally {
    pending: Counts,
    last_flush_ms: Option<i64>,
    /// The wait after `last_flush_ms` before the next write.
    interval_ms: u64,
    scheduled: bool,
    /// When this isolate last made sure the record was clear; `None` after a refusal.
    clear_checked_ms: Option<i64>,
    /// When this isolate last noted an accepted webhook's time.
    accepted_noted_ms: Option<i64>,
}

impl Default for Tally {
    fn default() -> Tally {
        Tally {
            pending: Counts::default(),
            last_flush_ms: None,
            interval_ms: FLUSH_INTERVAL_MS,
            scheduled: false,
            clear_checked_ms: None,
            accepted_noted_ms: None,
        }
    }
}

impl Tally {
    /// A webhook was refused at `now_ms`.
    pub fn refused(&mut self, reason: Refusal, now_ms: i64) -> Flush {
        match reason {
            Refusal::BadHmac => self.pending.bad_hmac = self.pending.bad_hmac.saturating_add(1),
            Refusal::WrongShop => {
                self.pending.wrong_shop = self.pending.wrong_shop.saturating_add(1)
            }
        }
        self.clear_checked_ms = None;
        if self.scheduled {
            return Flush::Scheduled;
        }
        let interval = self.interval_ms as i64;
        let wait = self
            .last_flush_ms
            .map_or(0, |last| (last + interval - now_ms).clamp(0, interval));
        if wait == 0 {
            Flush::Now(self.take(now_ms))
        } else if wait as u64 <= MAX_DELAY_MS {
            self.scheduled = true;
            Flush::Later(wait as u64)
        } else {
            Flush::Held
        }
    }

    /// The counts a scheduled write takes along (none when an accepted webhook came since).
    pub fn due(&mut self, now_ms: i64) -> Counts {
        self.scheduled = false;
        self.take(now_ms)
    }

    /// A write failed (KV refused it): its counts go with the next one.
    pub fn unwritten(&mut self, counts: Counts) {
        self.pending.bad_hmac = self.pending.bad_hmac.saturating_add(counts.bad_hmac);
        self.pending.wrong_shop = self.pending.wrong_shop.saturating_add(counts.wrong_shop);
    }

    /// A webhook was accepted at `now_ms`: refusals before it no longer count. True when the
    /// record must be read (and deleted if it counts something).
    pub fn accepted(&mut self, now_ms: i64) -> bool {
        self.pending = Counts::default();
        self.interval_ms = FLUSH_INTERVAL_MS;
        let fresh = self
            .clear_checked_ms
            .is_some_and(|at| now_ms - at < CLEAR_CHECK_MS && now_ms >= at);
        if fresh {
            return false;
        }
        self.clear_checked_ms = Some(now_ms);
        true
    }

    /// A webhook was accepted at `now_ms`: true when its time must be noted (the first in this
    /// isolate, then once per [`ACCEPTED_NOTE_MS`]).
    pub fn note_accepted(&mut self, now_ms: i64) -> bool {
        let fresh = self
            .accepted_noted_ms
            .is_some_and(|at| now_ms - at < ACCEPTED_NOTE_MS && now_ms >= at);
        if !fresh {
            self.accepted_noted_ms = Some(now_ms);
        }
        !fresh
    }

    fn take(&mut self, now_ms: i64) -> Counts {
        let counts = std::mem::take(&mut self.pending);
        if !counts.is_empty() {
            if self.last_flush_ms.is_some() {
                self.interval_ms = (self.interval_ms * 2).min(MAX_INTERVAL_MS);
            }
            self.last_flush_ms = Some(now_ms);
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_accepted_webhook_is_noted_once_an_hour_per_isolate() {
        let mut tally = Tally::default();
        assert!(tally.note_accepted(1_000));
        assert!(!tally.note_accepted(1_000 + ACCEPTED_NOTE_MS - 1));
        assert!(tally.note_accepted(1_000 + ACCEPTED_NOTE_MS));
        // A clock that went back notes again rather than never.
        assert!(tally.note_accepted(500));
    }
    use crate::config::from_pairs;

    const ONE: Counts = Counts {
        bad_hmac: 1,
        wrong_shop: 0,
    };

    #[test]
    fn the_first_refusal_is_written_at_once_later_ones_at_most_once_a_growing_interval() {
        let mut t = Tally::default();
        assert_eq!(t.refused(Refusal::BadHmac, 1_000), Flush::Now(ONE));
        assert_eq!(t.refused(Refusal::BadHmac, 2_000), Flush::Later(9_000));
        assert_eq!(t.refused(Refusal::WrongShop, 3_000), Flush::Scheduled);
        let due = t.due(11_000);
        assert_eq!(
            due,
            Counts {
                bad_hmac: 1,
                wrong_shop: 1
            }
        );
        // The interval doubled: 20 s after the last write.
        assert_eq!(t.refused(Refusal::BadHmac, 12_000), Flush::Later(19_000));
        t.unwritten(due);
        assert_eq!(
            t.due(31_000),
            Counts {
                bad_hmac: 2,
                wrong_shop: 1
            }
        );
        // 40 s now: not within a response's reach, so held for a refusal after it.
        assert_eq!(t.refused(Refusal::BadHmac, 32_000), Flush::Held);
        assert_eq!(
            t.refused(Refusal::BadHmac, 71_000),
            Flush::Now(Counts {
                bad_hmac: 2,
                wrong_shop: 0
            })
        );
    }

    #[test]
    fn a_lasting_flood_costs_an_isolate_a_few_dozen_writes_a_day() {
        let mut t = Tally::default();
        let mut writes = 0;
        let mut counted = 0;
        // A refusal every 100 ms for a day, with every scheduled write done when due.
        let mut due_at = None;
        for i in 0..864_000_i64 {
            let now = i * 100;
            if due_at.is_some_and(|at| now >= at) {
                let c = t.due(now);
                counted += c.bad_hmac;
                writes += 1;
                due_at = None;
            }
            match t.refused(Refusal::BadHmac, now) {
                Flush::Now(c) => {
                    counted += c.bad_hmac;
                    writes += 1;
                }
                Flush::Later(ms) => due_at = Some(now + ms as i64),
                Flush::Scheduled | Flush::Held => {}
            }
        }
        assert!(writes <= 40, "{writes} writes");
        assert!(
            counted > 0 && counted <= 864_000,
            "a lower bound: {counted}"
        );
    }

    #[test]
    fn an_accepted_webhook_drops_pending_refusals_and_checks_the_record_once_a_minute() {
        let mut t = Tally::default();
        assert!(t.accepted(0));
        assert!(!t.accepted(30_000), "checked within the minute");
        assert!(t.accepted(60_000));
        assert_eq!(t.refused(Refusal::BadHmac, 61_000), Flush::Now(ONE));
        assert_eq!(t.refused(Refusal::BadHmac, 62_000), Flush::Later(9_000));
        assert!(t.accepted(63_000), "a refusal since: look again at once");
        assert_eq!(
            t.due(71_000),
            Counts::default(),
            "refused before the accepted one"
        );
        assert!(!t.accepted(64_000));
        assert!(t.accepted(10), "a clock that went back checks again");
    }

    #[test]
    fn a_record_adds_up_for_its_setup_and_starts_over_for_another() {
        let a = Refused::add(None, "a", ONE, 5);
        let a = Refused::add(Some(a), "a", ONE, 9);
        assert_eq!((a.bad_hmac, a.first_ms, a.last_ms), (2, 5, 9));
        let b = Refused::add(Some(a.clone()), "b", ONE, 12);
        assert_eq!((b.bad_hmac, b.first_ms), (1, 12));
        assert_eq!(Refused::current(Some(a.clone()), "b"), None);
        assert_eq!(Refused::current(Some(a.clone()), "a"), Some(a));
        let saturated = Refused {
            bad_hmac: u64::MAX,
            ..b
        };
        assert_eq!(
            Refused::add(Some(saturated), "b", ONE, 13).bad_hmac,
            u64::MAX
        );
    }

    #[test]
    fn the_setup_changes_with_the_secret_or_shop_and_hides_both() {
        let base = [
            ("SHOPIFY_WEBHOOK_SECRET", "whsec-one"),
            ("SHOPIFY_SHOP_DOMAIN", "demo.myshopify.com"),
        ];
        let one = setup_of(&from_pairs(&base));
        let other_secret = setup_of(&from_pairs(&[
            ("SHOPIFY_WEBHOOK_SECRET", "whsec-two"),
            base[1],
        ]));
        let other_shop = setup_of(&from_pairs(&[
            base[0],
            ("SHOPIFY_SHOP_DOMAIN", "other.myshopify.com"),
        ]));
        assert_eq!(one, setup_of(&from_pairs(&base)));
        assert!(one != other_secret && one != other_shop && other_secret != other_shop);
        assert_eq!(one.len(), 16);
        assert!(!one.contains("whsec") && !one.contains("demo"));
    }

    #[test]
    fn problems_name_the_setting_and_say_what_to_check() {
        let r = Refused {
            setup: "s".into(),
            bad_hmac: 3,
            wrong_shop: 1,
            first_ms: 0,
            last_ms: 0,
        };
        let p = r.problems();
        assert_eq!(p[0].name, "SHOPIFY_WEBHOOK_SECRET");
        assert!(p[0].message.starts_with(
            "3 webhooks refused since the last accepted one — is SHOPIFY_WEBHOOK_SECRET the app's secret?"
        ));
        assert_eq!(p[1].name, "SHOPIFY_SHOP_DOMAIN");
        assert!(p[1]
            .message
            .starts_with("1 webhook refused since the last accepted one — is SHOPIFY_SHOP_DOMAIN"));
        assert!(p.iter().all(|p| p.disables == Some(WEBHOOKS_FEATURE)));
        let none = Refused {
            bad_hmac: 0,
            wrong_shop: 0,
            ..r
        };
        assert!(none.problems().is_empty());
    }
}
