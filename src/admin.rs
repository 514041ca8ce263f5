//! `/tt/admin` (HTML) and `/tt/admin.json` (the same report for scripts): the operator's view,
//! behind `ADMIN_TOKEN`. Scripts send the token as `Authorization: Bearer`; a browser signs in
//! once through a small form (`POST /tt/admin`) and then carries a short-lived `HttpOnly`
//! session cookie, so the token never appears in a URL (where traces and histories keep it).
//! The report is assembled here; its rendering is `tiktok_edge_core::admin`.

use tiktok_edge_core::admin::{render_html, render_sign_in, AdminReport};
use tiktok_edge_core::auth;
use tiktok_edge_core::config::{Config, Secret};
use tiktok_edge_core::cookies;
use tiktok_edge_core::health::Health;
use tiktok_edge_core::queue::{Preview, Resend, ResendAnswer, ShardHealth};
use tiktok_edge_core::Error;
use worker::{Date, Env, Request, Response, Result};

use crate::failure::{Failure, Outcome};
use crate::store::Store;
use crate::{queue, respond, settings};

const WINDOW_HOURS: u32 = 24;
const MAX_PARKED: usize = 20;
/// A sign-in form body is one short field.
const MAX_SIGN_IN_BYTES: usize = 1024;
/// The pages we render have no scripts and load nothing: say so to the browser too.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; frame-ancestors 'none'";

fn now_secs() -> i64 {
    (Date::now().as_millis() / 1000) as i64
}

/// The admin token, or the answer when the admin is off: 404 without `ADMIN_TOKEN`, 503
/// naming the problem when it is invalid (the rest of the Worker works on).
fn admin_token(config: &Config) -> Outcome<&Secret> {
    if let Some(token) = &config.admin_token {
        return Ok(token);
    }
    Err(match config.degraded("ADMIN_TOKEN") {
        Some(problem) => Error::FeatureOff(problem.clone()).into(),
        None => Failure::refused(
            404,
            "not_found",
            "admin is disabled: set the ADMIN_TOKEN secret",
        ),
    })
}

/// Whether the request carries the token (scripts) or a valid session cookie (browsers).
/// `?token=` counts for nothing.
fn signed_in(req: &Request, token: &Secret) -> Result<bool> {
    let header = req.headers().get("Authorization")?;
    if let Some(given) = auth::bearer(header.as_deref()) {
        return Ok(auth::token_matches(given, token.expose()));
    }
    let jar = req.headers().get("Cookie")?.unwrap_or_default();
    Ok(cookies::get(&jar, auth::SESSION_COOKIE)
        .is_some_and(|v| auth::session_valid(&v, token.expose(), now_secs())))
}

fn html(body: String, status: u16) -> Result<Response> {
    let resp = Response::from_html(body)?.with_status(status);
    resp.headers().set("Cache-Control", "no-store")?;
    resp.headers().set("Content-Security-Policy", CSP)?;
    resp.headers().set("X-Robots-Tag", "noindex")?;
    resp.headers().set("Referrer-Policy", "no-referrer")?;
    Ok(resp)
}

async fn report(env: &Env, config: &Config) -> Result<AdminReport> {
    let now = Date::now().as_millis() as i64;
    let since = now - i64::from(WINDOW_HOURS) * 3600 * 1000;
    let queue = queue::stats(env, since).await?;
    let store = Store::new(env)?;
    let health = Health::new(&|name| settings::var(env, name), &Ok(config.clone()))
        .with_queue(ShardHealth {
            depth: queue.depth,
            pauses: queue.pauses.clone(),
        })
        .with_refused(store.refused_webhooks().await?)
        .with_accepted(store.webhook_accepted_ms().await?);
    let (parked_webhooks, parked_count) = store.parked(MAX_PARKED, now).await?;
    Ok(AdminReport {
        generated_at_ms: now,
        window_hours: WINDOW_HOURS,
        mode: health.mode.to_string(),
        queue,
        parked_webhooks,
        parked_count,
        // Through its JSON text, as `/tt/health` writes it: `to_value` would compile a second
        // serialiser of every health type into the wasm.
        health: serde_json::from_str(&serde_json::to_string(&health)?)?,
    })
}

pub async fn json(req: &Request, env: &Env, config: &Config) -> Outcome {
    let token = admin_token(config)?;
    if !signed_in(req, token)? {
        return Err(Failure::refused(
            401,
            "unauthorized",
            "send the ADMIN_TOKEN as `Authorization: Bearer …`",
        ));
    }
    Ok(respond::json(200, &report(env, config).await?)?)
}

pub async fn page(req: &Request, env: &Env, config: &Config) -> Outcome {
    let token = admin_token(config)?;
    if !signed_in(req, token)? {
        return Ok(html(render_sign_in(&config.route_prefix, false), 401)?);
    }
    Ok(html(
        render_html(&report(env, config).await?, &config.route_prefix),
        200,
    )?)
}

/// `POST /tt/admin`: the sign-in form. The right token gets a session cookie and a redirect to
/// the page (so a reload does not post the token again); a wrong one gets the form again. No
/// origin check: a forged post needs the token to achieve anything (and `no-referrer` pages
/// send `Origin: null`).
pub async fn sign_in(mut req: Request, config: &Config) -> Outcome {
    let token = admin_token(config)?;
    let body = respond::body_within(&mut req, MAX_SIGN_IN_BYTES).await?;
    let given = auth::form_token(&body).unwrap_or_default();
    if !auth::token_matches(&given, token.expose()) {
        return Ok(html(render_sign_in(&config.route_prefix, true), 401)?);
    }
    let value = auth::session_value(token.expose(), now_secs());
    let resp = Response::empty()?.with_status(303);
    resp.headers()
        .set("Location", &format!("{}/admin", config.route_prefix))?;
    resp.headers().set(
        "Set-Cookie",
        &auth::session_cookie(&value, &config.route_prefix),
    )?;
    resp.headers().set("Cache-Control", "no-store")?;
    Ok(resp)
}

/// `POST /tt/admin/resend` with a JSON filter (`state`, `event`, `from_ms`, `to_ms`, `error`):
/// failed events go back to the queue. Unconfirmed purchases (`"state":"unconfirmed"`) are
/// only previewed (count, totals per currency, the largest) until the same filter comes back
/// with the preview's `confirm` code (`confirm_with` is that body); `max_value` leaves out
/// larger ones. The token must come in the `Authorization` header, so no link or cross-site
/// form can trigger it.
pub async fn resend(mut req: Request, env: &Env, config: &Config) -> Outcome {
    let token = admin_token(config)?;
    let header = req.headers().get("Authorization")?;
    if !auth::bearer(header.as_deref())
        .is_some_and(|given| auth::token_matches(given, token.expose()))
    {
        return Err(Failure::refused(
            401,
            "unauthorized",
            "send the ADMIN_TOKEN as `Authorization: Bearer …`",
        ));
    }
    let body = respond::body_within(&mut req, 4096).await?;
    let filter = Resend::from_body(&body).map_err(Error::from)?;
    let answer = if filter.previewed() {
        let pinned = filter.pinned(Date::now().as_millis() as i64);
        let shards = queue::preview(env, &pinned).await?;
        match Preview::combined(&pinned, &shards).unconfirmed_answer(&filter, &pinned) {
            Some(answer) => answer,
            None => ResendAnswer::resent(queue::resend(env, &pinned, &shards).await?),
        }
    } else {
        ResendAnswer::resent(queue::resend(env, &filter, &[]).await?)
    };
    Ok(respond::json(answer.status(), &answer)?)
}
