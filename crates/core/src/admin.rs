//! The operator's status page (`/tt/admin`) and its JSON twin (`/tt/admin.json`): one report,
//! served as JSON or rendered here as a self-contained HTML page (inline CSS and SVG, no
//! scripts, no external assets).
//!
//! Every string that comes from data goes through `escape`: event ids, TikTok's error messages
//! and parked webhook payloads are attacker-influenced.

use crate::queue::{hour_start, QueueStats, RowState, HOUR_MS};
use crate::shopify::{Parked, ParkedCount, PARKED_PER_DAY};
use crate::tiktok::MATCH_KEYS;
use serde::Serialize;
use std::fmt::{self, Write};

/// Everything the operator sees; serialised as-is for `/tt/admin.json`.
#[derive(Debug, Clone, Serialize)]
pub struct AdminReport {
    pub generated_at_ms: i64,
    pub window_hours: u32,
    /// `live` or `dry_run` (no access token: events are recorded, not sent).
    pub mode: String,
    pub queue: QueueStats,
    /// The newest parked webhooks.
    pub parked_webhooks: Vec<Parked>,
    /// How many are parked in all (the list holds the newest few).
    pub parked_count: ParkedCount,
    /// The `/tt/health` report, kept as JSON so this module does not depend on its type.
    pub health: serde_json::Value,
}

const STYLE: &str = "<style>\
:root{color-scheme:light dark;--fg:#1f2328;--mute:#6e7781;--line:#d0d7de;--bar:#2f81f7;--ok:#1a7f37;--warn:#9a6700;--bad:#cf222e}\
@media(prefers-color-scheme:dark){:root{--fg:#e6edf3;--mute:#8d96a0;--line:#30363d;--ok:#3fb950;--warn:#d29922;--bad:#f85149}}\
body{font:14px/1.45 system-ui,sans-serif;color:var(--fg);max-width:1100px;margin:0 auto;padding:12px}\
h1{font-size:1.4em;margin:.2em 0}h2{font-size:1.1em;margin:1.6em 0 .5em;border-bottom:1px solid var(--line)}\
.scroll{overflow-x:auto}table{border-collapse:collapse;font-variant-numeric:tabular-nums}\
th,td{padding:3px 8px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}\
.num td{text-align:right}.t{font-weight:600}.z,.note,.empty,time{color:var(--mute)}\
.badge{display:inline-block;padding:1px 8px;border:1px solid;border-radius:10px;font-size:.75em;vertical-align:middle}\
.ok{color:var(--ok)}.warn{color:var(--warn)}.bad{color:var(--bad)}\
.bar{display:inline-block;width:120px;height:8px;background:var(--line);border-radius:4px}\
.bar i{display:block;height:100%;background:var(--bar);border-radius:4px}\
svg{width:100%;max-width:760px;height:auto}svg rect{fill:var(--bar)}svg text{font-size:10px;fill:var(--mute)}svg line{stroke:var(--line)}\
code,pre{font-size:.9em}code,time{white-space:nowrap}pre{white-space:pre-wrap;word-break:break-all;max-width:70ch}\
.banner{border:2px solid var(--bad);border-radius:6px;padding:6px 12px;margin:8px 0}.banner ul{margin:.3em 0;padding-left:1.2em}\
</style>";

/// `s` safe to place in HTML text and in quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// The sign-in form a browser gets instead of the page: it posts the token once, and the
/// answer sets the session cookie (`auth`). `failed` after a wrong token.
pub fn render_sign_in(prefix: &str, failed: bool) -> String {
    let prefix = escape(prefix);
    let note = if failed {
        "<p class=\"bad\">That is not the ADMIN_TOKEN.</p>"
    } else {
        ""
    };
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex\"><title>tiktok-edge sign in</title>{STYLE}</head>\
         <body><h1>tiktok-edge</h1>{note}\
         <form method=\"post\" action=\"{prefix}/admin\">\
         <p><label>Admin token <input type=\"password\" name=\"token\" autocomplete=\"current-password\" required autofocus></label> \
         <button type=\"submit\">Sign in</button></p></form>\
         <p class=\"note\">The <code>ADMIN_TOKEN</code> secret. You stay signed in for an hour.</p>\
         </body></html>"
    )
}

/// The status page for `report`; `prefix` is the route prefix (e.g. `/tt`) for the JSON link.
pub fn render_html(report: &AdminReport, prefix: &str) -> String {
    let mut out = String::with_capacity(16 * 1024);
    render(&mut out, report, prefix).expect("writing to a String cannot fail");
    out
}

fn render(out: &mut String, r: &AdminReport, prefix: &str) -> fmt::Result {
    out.push_str(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex\"><meta name=\"referrer\" content=\"no-referrer\">\
         <title>tiktok-edge status</title>",
    );
    out.push_str(STYLE);
    out.push_str("</head><body>");
    banner(out, &r.health)?;
    header(out, r)?;
    pixels(out, &r.health)?;
    counts(out, r)?;
    hourly_chart(out, r)?;
    coverage(out, &r.queue)?;
    recent(out, &r.queue)?;
    failures(out, &r.queue)?;
    parked(out, &r.parked_webhooks, &r.parked_count)?;
    config_check(out, &r.health)?;
    let json = escape(&format!("{prefix}/admin.json"));
    write!(
        out,
        "<footer><h2>JSON</h2><p>The same report as JSON: <a href=\"{json}\">{json}</a> \
         (send the same ADMIN_TOKEN).</p></footer></body></html>"
    )
}

/// What is wrong, first: every problem `/tt/health` reports (a setting that is invalid or
/// missing, webhooks refused since the last accepted one), in a banner above everything.
fn banner(out: &mut String, health: &serde_json::Value) -> fmt::Result {
    let problems = health["problems"].as_array().map_or(&[][..], Vec::as_slice);
    let status = health["status"].as_str().unwrap_or("ok");
    if status == "ok" || problems.is_empty() {
        return Ok(());
    }
    write!(
        out,
        "<div class=\"banner bad\" role=\"alert\"><b>Status: {}</b> (as <code>/tt/health</code> \
         reports it)<ul>",
        escape(status)
    )?;
    problem_items(out, problems)?;
    out.push_str("</ul></div>");
    Ok(())
}

/// Health's problems as list items: the setting (or webhooks) and how to fix it.
fn problem_items(out: &mut String, problems: &[serde_json::Value]) -> fmt::Result {
    for p in problems {
        write!(
            out,
            "<li><code>{}</code>: {}</li>",
            escape(p["name"].as_str().unwrap_or("?")),
            escape(p["message"].as_str().unwrap_or("")),
        )?;
    }
    Ok(())
}

fn header(out: &mut String, r: &AdminReport) -> fmt::Result {
    let (label, class, note) = match r.mode.as_str() {
        "live" => ("live", "ok", "events are sent to TikTok"),
        "dry_run" => (
            "dry run",
            "warn",
            "no TIKTOK_ACCESS_TOKEN: events are built and recorded, not sent",
        ),
        other => (
            other,
            "bad",
            "tracking is off: fix the problems under Config check",
        ),
    };
    write!(
        out,
        "<header><h1>tiktok-edge <span class=\"badge {class}\">{}</span></h1>\
         <p class=\"note\">{note}</p><p>Generated <time>{}</time> · queue depth <b>{}</b> \
         (queued, waiting or retrying)</p>",
        escape(label),
        iso_utc(r.generated_at_ms),
        r.queue.depth
    )?;
    if let Some(pause) = &r.queue.paused {
        write!(
            out,
            "<p class=\"bad\"><b>Sending is paused</b> since <time>{}</time>: {}</p>",
            iso_utc(pause.since_ms),
            escape(&pause.reason)
        )?;
    }
    let unconfirmed: u64 = r
        .queue
        .counts
        .iter()
        .filter(|c| c.state == crate::queue::RowState::Unconfirmed.as_str())
        .map(|c| c.count)
        .sum();
    if unconfirmed > 0 {
        write!(
            out,
            "<p class=\"warn\"><b>{unconfirmed}</b> browser-reported purchases no signed order \
             confirmed: kept, not sent. <code>POST /tt/admin/resend {{\"state\":\"unconfirmed\"}}</code> \
             previews a re-send (count, totals, the largest) and sends nothing until confirmed</p>"
        )?;
    }
    let no_room = r.queue.no_room;
    if no_room.browser > 0 {
        write!(
            out,
            "<p class=\"warn\"><b>{}</b> browser events refused (503) in the last {} h: \
             browser events waiting to be sent filled their half of a queue shard (TikTok \
             slow or paused, or a flood of forged copies); signed webhooks keep the other half</p>",
            no_room.browser, r.window_hours
        )?;
    }
    if no_room.webhook > 0 {
        write!(
            out,
            "<p class=\"bad\"><b>{}</b> signed webhooks refused (500, Shopify redelivers them) \
             in the last {} h: a queue shard was full of signed events waiting to be sent; \
             see why sending stalls (pause, failures) above</p>",
            no_room.webhook, r.window_hours
        )?;
    }
    out.push_str("</header>");
    Ok(())
}

/// Each pixel events go to (`/tt/health`'s `pixels`): its mode, token's secret, markets, events
/// and whether it sends or is paused, with TikTok's message.
fn pixels(out: &mut String, health: &serde_json::Value) -> fmt::Result {
    let Some(pixels) = health["pixels"].as_array().filter(|p| !p.is_empty()) else {
        return Ok(());
    };
    section(out, "Pixels");
    table_head(
        out,
        &[
            "pixel",
            "mode",
            "token secret",
            "markets",
            "events",
            "sending",
        ],
    );
    let list = |v: &serde_json::Value, none: &'static str| match v.as_array() {
        Some(names) if !names.is_empty() => {
            let names: Vec<&str> = names.iter().filter_map(|n| n.as_str()).collect();
            escape(&names.join(", "))
        }
        _ => none.to_string(),
    };
    for p in pixels {
        let live = p["mode"] == "live";
        write!(
            out,
            "<tr><td><code>{}</code></td><td class=\"{}\">{}</td><td><code>{}</code></td>\
             <td>{}</td><td>{}</td>",
            escape(p["id"].as_str().unwrap_or("–")),
            if live { "ok" } else { "warn" },
            if live { "live" } else { "dry run" },
            escape(p["token"].as_str().unwrap_or("")),
            list(&p["markets"], "all (those no scoped pixel serves)"),
            list(&p["events"], "every"),
        )?;
        let pause = &p["paused"];
        match pause["reason"].as_str() {
            Some(reason) => write!(
                out,
                "<td class=\"bad\"><b>paused</b> since <time>{}</time>: {}</td></tr>",
                iso_utc(pause["since_ms"].as_i64().unwrap_or(0)),
                escape(reason)
            )?,
            None if live => out.push_str("<td class=\"ok\">sending</td></tr>"),
            None => out.push_str(
                "<td class=\"warn\">recorded, not sent: its token's secret is not set</td></tr>",
            ),
        }
    }
    table_end(out);
    Ok(())
}

/// Events per name × state in the window, with totals per name and per state.
fn counts(out: &mut String, r: &AdminReport) -> fmt::Result {
    section(out, &format!("Events by state, last {} h", r.window_hours));
    let q = &r.queue;
    // Rows in the order of `counts`, which `QueueStats::merge` sorts by event name.
    let mut events: Vec<&str> = Vec::new();
    for c in &q.counts {
        if !events.contains(&c.event.as_str()) {
            events.push(&c.event);
        }
    }
    if events.is_empty() {
        return empty(out, "no events yet");
    }
    out.push_str("<div class=\"scroll\"><table class=\"num\"><thead><tr><th>event</th>");
    for state in RowState::ALL {
        write!(out, "<th>{}</th>", state.as_str())?;
    }
    out.push_str("<th>total</th></tr></thead><tbody>");
    let mut column_totals = [0u64; RowState::ALL.len()];
    for event in events {
        write!(out, "<tr><th>{}</th>", escape(event))?;
        let mut total = 0;
        for (i, state) in RowState::ALL.into_iter().enumerate() {
            let n = q.count(event, state);
            number_cell(out, n)?;
            total += n;
            column_totals[i] += n;
        }
        write!(out, "<td class=\"t\">{total}</td></tr>")?;
    }
    out.push_str("</tbody><tfoot><tr><th>all</th>");
    for n in column_totals {
        number_cell(out, n)?;
    }
    let all: u64 = column_totals.iter().sum();
    write!(out, "<td class=\"t\">{all}</td></tr></tfoot></table></div>")
}

fn number_cell(out: &mut String, n: u64) -> fmt::Result {
    if n == 0 {
        out.push_str("<td class=\"z\">0</td>");
        Ok(())
    } else {
        write!(out, "<td>{n}</td>")
    }
}

// Geometry of the hourly chart, in SVG user units (the SVG scales to the page width).
const LEFT: i64 = 36;
const TOP: i64 = 8;
const PLOT_H: u64 = 100;
const SLOT: i64 = 20;
const BAR: i64 = 16;

/// One bar per hour with events, over the `window_hours` hours ending at the generated hour.
fn hourly_chart(out: &mut String, r: &AdminReport) -> fmt::Result {
    section(
        out,
        &format!("Events per hour, last {} h (UTC)", r.window_hours),
    );
    let hours = i64::from(r.window_hours);
    let first_hour = hour_start(r.generated_at_ms) - (hours - 1) * HOUR_MS;
    let slot_of = |hour_ms: i64| (hour_ms - first_hour).div_euclid(HOUR_MS);
    let mut totals = vec![0u64; r.window_hours as usize];
    for h in &r.queue.hourly {
        if let Some(total) = usize::try_from(slot_of(h.hour_ms))
            .ok()
            .and_then(|s| totals.get_mut(s))
        {
            *total += h.count;
        }
    }
    let max = totals.iter().copied().max().unwrap_or(0);
    if max == 0 {
        return empty(out, "no events yet");
    }
    let base = TOP + PLOT_H as i64;
    let width = LEFT + hours * SLOT + 4;
    write!(
        out,
        "<svg viewBox=\"0 0 {width} {}\" role=\"img\" aria-label=\"events per hour\">\
         <line x1=\"{LEFT}\" y1=\"{base}\" x2=\"{width}\" y2=\"{base}\"/>\
         <text x=\"{}\" y=\"{}\" text-anchor=\"end\">{max}</text>\
         <text x=\"{}\" y=\"{base}\" text-anchor=\"end\">0</text>",
        base + 18,
        LEFT - 4,
        TOP + 8,
        LEFT - 4,
    )?;
    for (i, total) in (0i64..).zip(totals) {
        let hour_ms = first_hour + i * HOUR_MS;
        let x = LEFT + i * SLOT + (SLOT - BAR) / 2;
        if total > 0 {
            // Rounded up so that a single event still shows.
            let height = (total * PLOT_H).div_ceil(max) as i64;
            write!(
                out,
                "<rect x=\"{x}\" y=\"{}\" width=\"{BAR}\" height=\"{height}\">\
                 <title>{}: {total} {} (",
                base - height,
                iso_utc(hour_ms),
                if total == 1 { "event" } else { "events" },
            )?;
            // The breakdown by event name; `hourly` is sorted by (hour, event).
            let mut separator = "";
            for h in r.queue.hourly.iter().filter(|h| slot_of(h.hour_ms) == i) {
                write!(out, "{separator}{} {}", escape(&h.event), h.count)?;
                separator = ", ";
            }
            out.push_str(")</title></rect>");
        }
        let hour_of_day = hour_ms.rem_euclid(24 * HOUR_MS) / HOUR_MS;
        if hour_of_day % 6 == 0 {
            write!(
                out,
                "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{hour_of_day:02}h</text>",
                x + BAR / 2,
                base + 14
            )?;
        }
    }
    out.push_str("</svg><p class=\"note\">Events created per hour; empty hours are gaps.</p>");
    Ok(())
}

/// Whole percent of `part` in `whole` (> 0), rounded down so 100% means every event.
fn percent(part: u64, whole: u64) -> u64 {
    part.min(whole) * 100 / whole
}

fn coverage(out: &mut String, q: &QueueStats) -> fmt::Result {
    section(out, "Match-key coverage");
    if q.events_in_window == 0 {
        return empty(out, "no events yet");
    }
    write!(
        out,
        "<p class=\"note\">Share of the {} events in the window carrying each key.</p>\
         <div class=\"scroll\"><table class=\"num\"><thead><tr><th>key</th><th>events</th><th colspan=\"2\">coverage</th>\
         </tr></thead><tbody>",
        q.events_in_window
    )?;
    for key in MATCH_KEYS {
        let n = q.match_keys.get(key).copied().unwrap_or(0);
        let pct = percent(n, q.events_in_window);
        write!(
            out,
            "<tr><th>{key}</th><td>{n}</td><td>{pct}%</td><td><span class=\"bar\">\
             <i style=\"width:{pct}%\"></i></span></td></tr>"
        )?;
    }
    out.push_str("</tbody></table></div>");
    Ok(())
}

fn recent(out: &mut String, q: &QueueStats) -> fmt::Result {
    section(out, "Recent events");
    if q.recent.is_empty() {
        return empty(out, "no events yet");
    }
    table_head(out, &["time", "event", "event id", "state", "match keys"]);
    for e in &q.recent {
        write!(
            out,
            "<tr><td><time>{}</time></td><td>{}</td><td><code>{}</code></td>\
             <td class=\"{}\">{}</td><td>{}</td></tr>",
            iso_utc(e.at_ms),
            event_to(&e.event, &e.pixel),
            escape(&e.event_id),
            state_class(&e.state),
            escape(&e.state),
            escape(&e.match_keys.join(", ")),
        )?;
    }
    table_end(out);
    Ok(())
}

/// An event's name, and the pixel its row goes to (`TIKTOK_PIXELS`; none for the one pixel).
fn event_to(event: &str, pixel: &str) -> String {
    if pixel.is_empty() {
        escape(event)
    } else {
        format!("{} → <code>{}</code>", escape(event), escape(pixel))
    }
}

fn state_class(state: &str) -> &'static str {
    match state {
        "sent" => "ok",
        "failed" => "bad",
        "retrying" | "dry_run" => "warn",
        _ => "",
    }
}

fn failures(out: &mut String, q: &QueueStats) -> fmt::Result {
    section(out, "Last failures");
    if q.last_failures.is_empty() {
        return empty(out, "no failures");
    }
    table_head(out, &["time", "event", "event id", "message"]);
    for f in &q.last_failures {
        write!(
            out,
            "<tr><td><time>{}</time></td><td>{}</td><td><code>{}</code></td>\
             <td class=\"bad\">{}</td></tr>",
            iso_utc(f.at_ms),
            event_to(&f.event, &f.pixel),
            escape(&f.event_id),
            escape(&f.error),
        )?;
    }
    table_end(out);
    Ok(())
}

fn parked(out: &mut String, parked: &[Parked], count: &ParkedCount) -> fmt::Result {
    section(out, "Parked webhooks");
    if count.daily_cap_reached {
        write!(
            out,
            "<p class=\"warn\">{PARKED_PER_DAY} webhooks were parked in the last 24 hours, the \
             most kept a day: later ones are only logged (<code>webhook_parked</code>).</p>"
        )?;
    }
    if parked.is_empty() {
        return empty(out, "no parked webhooks");
    }
    if count.total > parked.len() {
        write!(
            out,
            "<p class=\"note\">The newest {} of {} parked webhooks ({} more not listed; \
             each topic and body is kept once, for 7 days).</p>",
            parked.len(),
            count.total,
            count.total - parked.len()
        )?;
    }
    table_head(
        out,
        &["received", "topic", "webhook id", "reason", "payload shape"],
    );
    for p in parked {
        write!(
            out,
            "<tr><td><time>{}</time></td><td>{}</td><td><code>{}</code></td><td>{}</td>\
             <td><details><summary>shape</summary><pre>{}</pre></details></td></tr>",
            iso_utc(p.received_at_ms),
            escape(&p.topic),
            escape(&p.webhook_id),
            escape(&p.reason),
            escape(&p.shape),
        )?;
    }
    table_end(out);
    Ok(())
}

/// Which settings are present (never their values) and what is wrong with them.
fn config_check(out: &mut String, health: &serde_json::Value) -> fmt::Result {
    section(out, "Config check");
    let Some(settings) = health["settings"].as_object() else {
        return empty(out, "no health report");
    };
    let flag = |name: &str| {
        if health[name].as_bool() == Some(true) {
            "<td class=\"ok\">✓ yes</td>"
        } else {
            "<td class=\"bad\">– no</td>"
        }
    };
    write!(
        out,
        "<div class=\"scroll\"><table><tbody>\
         <tr><th>TikTok Events API (pixel id and access token)</th>{}</tr>\
         <tr><th>Shopify webhook secret</th>{}</tr>",
        flag("tiktok_configured"),
        flag("webhook_secret_configured"),
    )?;
    for (name, state) in settings {
        write!(
            out,
            "<tr><th><code>{}</code></th>{}</tr>",
            escape(name),
            match state.as_str() {
                Some("set") => "<td class=\"ok\">✓ set</td>",
                Some("invalid") => "<td class=\"bad\">✗ invalid</td>",
                _ => "<td class=\"z\">– not set</td>",
            },
        )?;
    }
    table_end(out);
    let problems = health["problems"].as_array().map_or(&[][..], Vec::as_slice);
    if problems.is_empty() {
        return empty(out, "no problems with the settings");
    }
    out.push_str("<ul class=\"bad\">");
    problem_items(out, problems)?;
    out.push_str("</ul>");
    Ok(())
}

fn section(out: &mut String, title: &str) {
    out.push_str("<h2>");
    out.push_str(title);
    out.push_str("</h2>");
}

fn empty(out: &mut String, message: &str) -> fmt::Result {
    write!(out, "<p class=\"empty\">{message}</p>")
}

fn table_head(out: &mut String, columns: &[&str]) {
    out.push_str("<div class=\"scroll\"><table><thead><tr>");
    for c in columns {
        out.push_str("<th>");
        out.push_str(c);
        out.push_str("</th>");
    }
    out.push_str("</tr></thead><tbody>");
}

fn table_end(out: &mut String) {
    out.push_str("</tbody></table></div>");
}

/// `ms` since the Unix epoch as `YYYY-MM-DDTHH:MM:SSZ`, without a date library.
fn iso_utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153; // month counted from March
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::{Count, Failure, HourCount, RecentEvent};

    /// 2023-11-14T22:13:20Z.
    const NOW: i64 = 1_700_000_000_000;

    fn count(event: &str, state: &str, count: u64) -> Count {
        Count {
            event: event.into(),
            state: state.into(),
            count,
        }
    }

    fn hour(hours_ago: i64, event: &str, count: u64) -> HourCount {
        HourCount {
            hour_ms: hour_start(NOW) - hours_ago * HOUR_MS,
            event: event.into(),
            count,
        }
    }

    fn report(queue: QueueStats) -> AdminReport {
        AdminReport {
            generated_at_ms: NOW,
            window_hours: 24,
            mode: "dry_run".into(),
            queue,
            parked_webhooks: Vec::new(),
            parked_count: ParkedCount::default(),
            health: serde_json::Value::Null,
        }
    }

    #[test]
    fn a_pause_and_unconfirmed_purchases_are_announced() {
        let html = render_html(
            &report(QueueStats {
                counts: vec![count("Purchase", "unconfirmed", 3)],
                paused: Some(crate::queue::Pause {
                    reason: "TikTok code 40105: <invalid> token; set a new one".into(),
                    since_ms: NOW,
                    next_check_ms: NOW,
                    checks: 2,
                    limit: None,
                }),
                ..QueueStats::default()
            }),
            "/tt",
        );
        assert!(html.contains("<b>Sending is paused</b> since <time>2023-11-14T22:13:20Z</time>: TikTok code 40105: &lt;invalid&gt; token; set a new one"), "{html}");
        assert!(html.contains("<b>3</b> browser-reported purchases no signed order confirmed"));
        assert!(html.contains("previews a re-send"));
        let calm = render_html(&report(QueueStats::default()), "/tt");
        assert!(!calm.contains("paused") && !calm.contains("confirmed"));
        assert!(!calm.contains("refused ("), "no refusals, no line");
    }

    #[test]
    fn copies_refused_for_room_are_counted_by_source() {
        let html = render_html(
            &report(QueueStats {
                no_room: crate::queue::NoRoom {
                    browser: 17,
                    webhook: 2,
                },
                ..QueueStats::default()
            }),
            "/tt",
        );
        assert!(
            html.contains("<b>17</b> browser events refused (503) in the last 24 h"),
            "{html}"
        );
        assert!(html.contains("<b>2</b> signed webhooks refused (500, Shopify redelivers them)"));
    }

    #[test]
    fn counts_land_in_their_state_columns_with_totals() {
        let html = render_html(
            &report(QueueStats {
                counts: vec![
                    count("ViewContent", "dry_run", 5),
                    count("AddToCart", "sent", 2),
                    count("AddToCart", "failed", 1),
                ],
                depth: 7,
                ..QueueStats::default()
            }),
            "/tt",
        );
        // Columns: queued, waiting, unconfirmed, retrying, sent, failed, dry_run, refused, total.
        let z = "<td class=\"z\">0</td>";
        assert!(
            html.contains(&format!(
                "<tr><th>AddToCart</th>{z}{z}{z}{z}<td>2</td><td>1</td>{z}{z}<td class=\"t\">3</td></tr>"
            )),
            "{html}"
        );
        assert!(html.contains(&format!(
            "<tr><th>ViewContent</th>{z}{z}{z}{z}{z}{z}<td>5</td>{z}<td class=\"t\">5</td></tr>"
        )));
        assert!(html.contains(&format!(
            "<tr><th>all</th>{z}{z}{z}{z}<td>2</td><td>1</td><td>5</td>{z}<td class=\"t\">8</td></tr>"
        )));
        assert!(html.contains("queue depth <b>7</b>"));
        assert!(html.contains("no TIKTOK_ACCESS_TOKEN: events are built and recorded, not sent"));
        assert!(html.contains("<time>2023-11-14T22:13:20Z</time>"));
    }

    #[test]
    fn chart_has_one_bar_per_hour_with_events() {
        let html = render_html(
            &report(QueueStats {
                hourly: vec![
                    hour(3, "AddToCart", 3),
                    hour(3, "ViewContent", 4),
                    hour(0, "ViewContent", 1),
                    hour(24, "ViewContent", 9), // just outside the 24 h window
                ],
                ..QueueStats::default()
            }),
            "/tt",
        );
        assert_eq!(html.matches("<rect").count(), 2, "{html}");
        assert!(html.contains(
            "<title>2023-11-14T19:00:00Z: 7 events (AddToCart 3, ViewContent 4)</title>"
        ));
        assert!(html.contains("<title>2023-11-14T22:00:00Z: 1 event (ViewContent 1)</title>"));
        assert!(!html.contains("ViewContent 9"));
        // The busiest hour is full height; the single event still shows as a sliver.
        assert!(html.contains("height=\"100\"") && html.contains("height=\"15\""));
    }

    #[test]
    fn coverage_is_the_share_of_events_with_each_key() {
        assert_eq!(percent(3, 4), 75);
        assert_eq!(percent(2, 3), 66);
        assert_eq!(percent(5, 4), 100);
        let html = render_html(
            &report(QueueStats {
                match_keys: [("ttp".to_string(), 3), ("ip".to_string(), 4)]
                    .into_iter()
                    .collect(),
                events_in_window: 4,
                ..QueueStats::default()
            }),
            "/tt",
        );
        assert!(html.contains("<tr><th>ttp</th><td>3</td><td>75%"), "{html}");
        assert!(html.contains("<tr><th>ip</th><td>4</td><td>100%"));
        assert!(html.contains("<tr><th>email</th><td>0</td><td>0%"));
    }

    #[test]
    fn sign_in_posts_the_token_to_the_admin_path() {
        let page = render_sign_in("/edge", false);
        assert!(page.contains(r#"<form method="post" action="/edge/admin">"#));
        assert!(page.contains(r#"type="password" name="token""#));
        assert!(!page.contains("<script") && !page.contains("not the ADMIN_TOKEN"));
        assert!(render_sign_in("/tt", true).contains("not the ADMIN_TOKEN"));
    }

    #[test]
    fn escape_covers_markup_and_quotes() {
        assert_eq!(
            escape(r#"<a href="x" title='y'>&</a>"#),
            "&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;&lt;/a&gt;"
        );
        assert_eq!(escape("plain ü"), "plain ü");
    }

    #[test]
    fn attacker_strings_come_out_escaped() {
        let evil = "<script>alert(1)</script>";
        let mut r = report(QueueStats {
            last_failures: vec![Failure {
                pixel: String::new(),
                event: "Purchase".into(),
                event_id: evil.into(),
                error: evil.into(),
                at_ms: NOW,
            }],
            recent: vec![RecentEvent {
                pixel: String::new(),
                event: evil.into(),
                event_id: "e1".into(),
                state: evil.into(),
                match_keys: vec![evil.into()],
                at_ms: NOW,
            }],
            counts: vec![count(evil, "sent", 1)],
            hourly: vec![hour(0, evil, 1)],
            ..QueueStats::default()
        });
        r.mode = evil.into();
        r.parked_webhooks = vec![Parked {
            topic: evil.into(),
            webhook_id: evil.into(),
            reason: evil.into(),
            shape: format!("{{\"note\": \"{evil}\"}}"),
            received_at_ms: NOW,
            digest: evil.into(),
        }];
        r.health = serde_json::json!({
            "status": evil,
            "settings": { evil: "set" },
            "problems": [{ "name": evil, "message": evil }],
        });
        let html = render_html(&r, "/tt\"><script>");
        assert!(!html.contains("<script"), "{html}");
        assert!(html.contains("<td class=\"bad\">&lt;script&gt;alert(1)&lt;/script&gt;</td>"));
        assert!(html.contains("<pre>{&quot;note&quot;: &quot;&lt;script&gt;"));
    }

    #[test]
    fn empty_report_renders_and_says_so() {
        let html = render_html(&report(QueueStats::default()), "/tt");
        assert!(html.starts_with("<!doctype html>") && html.ends_with("</html>"));
        assert!(html.contains("<p class=\"empty\">no events yet</p>"));
        assert!(html.contains("no failures") && html.contains("no parked webhooks"));
        assert!(html.contains("no health report"));
        assert!(!html.contains("<svg") && !html.contains("NaN"));
        assert!(html.contains("<a href=\"/tt/admin.json\">"));
        let zero_hours = AdminReport {
            window_hours: 0,
            ..report(QueueStats::default())
        };
        assert!(render_html(&zero_hours, "").contains("no events yet"));
    }

    #[test]
    fn config_check_lists_presence_and_problems() {
        let mut r = report(QueueStats::default());
        r.mode = "off".into();
        r.health = serde_json::json!({
            "tiktok_configured": false,
            "webhook_secret_configured": true,
            "status": "misconfigured",
            "settings": { "TIKTOK_PIXEL_ID": "set", "ADMIN_TOKEN": "not_set", "ROUTE_PREFIX": "invalid" },
            "problems": [{ "name": "ROUTE_PREFIX", "message": "must start with /" }],
        });
        let html = render_html(&r, "/tt");
        assert!(html
            .contains("<tr><th><code>TIKTOK_PIXEL_ID</code></th><td class=\"ok\">✓ set</td></tr>"));
        assert!(html
            .contains("<tr><th><code>ADMIN_TOKEN</code></th><td class=\"z\">– not set</td></tr>"));
        assert!(
            html.contains("<tr><th>Shopify webhook secret</th><td class=\"ok\">✓ yes</td></tr>")
        );
        assert!(html.contains(
            "<tr><th><code>ROUTE_PREFIX</code></th><td class=\"bad\">✗ invalid</td></tr>"
        ));
        assert!(html.contains("<li><code>ROUTE_PREFIX</code>: must start with /</li>"));
        assert!(html.contains("<span class=\"badge bad\">off</span>"));
        let banner =
            html.find("<div class=\"banner bad\" role=\"alert\"><b>Status: misconfigured</b>");
        assert!(
            banner.is_some_and(|at| at < html.find("<header>").unwrap()),
            "{html}"
        );
        r.health["status"] = "ok".into();
        assert!(!render_html(&r, "/tt").contains("class=\"banner"));
    }

    #[test]
    fn each_pixel_shows_its_mode_markets_events_and_pause_with_tiktok_s_message() {
        let mut r = report(QueueStats::default());
        r.health = serde_json::json!({
            "pixels": [
                { "id": "CALL1", "token": "TIKTOK_ACCESS_TOKEN", "mode": "live", "markets": [], "events": null,
                  "paused": { "reason": "TikTok code 40105: <invalid>; `wrangler secret put TIKTOK_ACCESS_TOKEN`", "since_ms": NOW, "next_check_ms": NOW, "checks": 0 } },
                { "id": "CFR1", "token": "TOKEN_FR", "mode": "live", "markets": ["fr", "be"], "events": ["Purchase"] },
                { "id": "CDE1", "token": "TOKEN_DE", "mode": "dry_run", "markets": ["de"], "events": null },
            ],
        });
        r.queue.recent = vec![RecentEvent {
            pixel: "CFR1".into(),
            event: "Purchase".into(),
            event_id: "5001".into(),
            state: "sent".into(),
            match_keys: Vec::new(),
            at_ms: NOW,
        }];
        let html = render_html(&r, "/tt");
        assert!(
            html.contains("<td>Purchase → <code>CFR1</code></td>"),
            "{html}"
        );
        let rows = [
            "<tr><td><code>CALL1</code></td><td class=\"ok\">live</td><td><code>TIKTOK_ACCESS_TOKEN</code></td><td>all (those no scoped pixel serves)</td><td>every</td><td class=\"bad\"><b>paused</b> since <time>2023-11-14T22:13:20Z</time>: TikTok code 40105: &lt;invalid&gt;; `wrangler secret put TIKTOK_ACCESS_TOKEN`</td></tr>",
            "<tr><td><code>CFR1</code></td><td class=\"ok\">live</td><td><code>TOKEN_FR</code></td><td>fr, be</td><td>Purchase</td><td class=\"ok\">sending</td></tr>",
            "<tr><td><code>CDE1</code></td><td class=\"warn\">dry run</td><td><code>TOKEN_DE</code></td><td>de</td><td>every</td><td class=\"warn\">recorded, not sent: its token's secret is not set</td></tr>",
        ];
        for row in rows {
            assert!(html.contains(row), "{row}\n{html}");
        }
        let at = |needle: &str| html.find(needle).unwrap();
        assert!(
            at("<h2>Pixels</h2>") > at("<header>")
                && at("<h2>Pixels</h2>") < at("<h2>Events by state")
        );
        assert!(!render_html(&report(QueueStats::default()), "/tt").contains("<h2>Pixels</h2>"));
    }

    #[test]
    fn report_json_keeps_the_admin_json_names() {
        let mut r = report(QueueStats {
            counts: vec![count("AddToCart", "sent", 2)],
            ..QueueStats::default()
        });
        r.parked_webhooks = vec![Parked {
            topic: "orders/create".into(),
            webhook_id: "w1".into(),
            reason: "r".into(),
            shape: "{}".into(),
            received_at_ms: NOW,
            digest: "d".into(),
        }];
        r.parked_count = ParkedCount {
            total: 57,
            daily_cap_reached: true,
        };
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(
            json["parked_count"],
            serde_json::json!({"total": 57, "daily_cap_reached": true})
        );
        let html = render_html(&r, "/tt");
        assert!(html.contains("The newest 1 of 57 parked webhooks (56 more not listed;"));
        assert!(html.contains("100 webhooks were parked in the last 24 hours"));
        assert_eq!(json["window_hours"], 24);
        assert_eq!(json["mode"], "dry_run");
        assert_eq!(json["queue"]["counts"][0]["count"], 2);
        assert_eq!(json["parked_webhooks"][0]["topic"], "orders/create");
    }

    #[test]
    fn iso_utc_formats_civil_dates() {
        assert_eq!(iso_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso_utc(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(iso_utc(1_709_251_199_999), "2024-02-29T23:59:59Z");
        assert_eq!(iso_utc(-1), "1969-12-31T23:59:59Z");
    }
}
