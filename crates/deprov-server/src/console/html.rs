//! The console's page frame, its stylesheet and small rendering helpers (times, ages,
//! status badges, the server-side SVG bar chart). Everything goes through maud, which
//! escapes every interpolated value.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use maud::{DOCTYPE, Markup, html};

use super::session::Session;

/// The stylesheet, served at `/console/static/console.css` (the CSP allows no inline style).
pub const CSS: &str = r#"
:root { --fg:#1d2330; --muted:#667085; --line:#e4e7ec; --bg:#f6f7f9; --card:#fff;
  --accent:#2451b7; --ok:#127a3e; --warn:#a15c00; --bad:#b42318; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif; color:var(--fg); background:var(--bg); }
header.top { display:flex; align-items:center; gap:1.5rem; padding:.6rem 1.5rem; background:#111827; color:#fff; }
header.top .brand { font-weight:700; letter-spacing:.02em; }
header.top nav a { color:#d0d5dd; text-decoration:none; margin-right:1rem; }
header.top nav a.on, header.top nav a:hover { color:#fff; text-decoration:underline; }
header.top form { margin-left:auto; display:flex; gap:.75rem; align-items:center; color:#98a2b3; }
header.top button { background:transparent; color:#fff; border:1px solid #475467; }
main { max-width:1200px; margin:1.25rem auto; padding:0 1.5rem; }
h1 { font-size:1.4rem; margin:.2rem 0 1rem; }
h2 { font-size:1.1rem; margin:1.5rem 0 .6rem; }
.cards { display:grid; grid-template-columns:repeat(auto-fit,minmax(170px,1fr)); gap:.8rem; }
.card { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:.8rem 1rem; }
.card .n { font-size:1.6rem; font-weight:650; }
.card .l { color:var(--muted); font-size:.85rem; }
.card.bad .n { color:var(--bad); } .card.warn .n { color:var(--warn); }
.charts { display:grid; grid-template-columns:1fr 1fr; gap:.8rem; }
.chart { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:.6rem .8rem; }
.chart h3 { margin:.1rem 0 .4rem; font-size:.95rem; }
.chart svg { width:100%; height:auto; display:block; }
.chart svg .bar { fill:var(--accent); } .chart svg text { font-size:10px; fill:var(--muted); }
table { width:100%; border-collapse:collapse; background:var(--card); border:1px solid var(--line); border-radius:8px; overflow:hidden; }
th, td { text-align:left; padding:.45rem .6rem; border-bottom:1px solid var(--line); vertical-align:top; }
th { background:#f9fafb; font-weight:600; color:#344054; font-size:.85rem; }
tr:last-child td { border-bottom:none; }
td.wrap { overflow-wrap:anywhere; max-width:38rem; }
td.nowrap { white-space:nowrap; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; }
code, .mono { font-family:ui-monospace,SFMono-Regular,Menlo,monospace; font-size:.85em; }
.muted { color:var(--muted); }
.badge { display:inline-block; padding:.05rem .5rem; border-radius:999px; font-size:.8rem; font-weight:600; background:#eef2f6; }
.badge.delivered { background:#dcfae6; color:var(--ok); }
.badge.dead { background:#fee4e2; color:var(--bad); }
.badge.retrying, .badge.pending { background:#fef0c7; color:var(--warn); }
.badge.cancelled, .badge.disabled { background:#eaecf0; color:#475467; }
.badge.enabled { background:#dcfae6; color:var(--ok); }
a { color:var(--accent); }
form.inline { display:inline; }
form.stack { display:grid; gap:.5rem; max-width:560px; background:var(--card); border:1px solid var(--line); border-radius:8px; padding:1rem; }
label { font-weight:600; font-size:.85rem; }
input, select { font:inherit; padding:.4rem .5rem; border:1px solid #d0d5dd; border-radius:6px; }
button { font:inherit; padding:.35rem .8rem; border-radius:6px; border:1px solid var(--accent); background:var(--accent); color:#fff; cursor:pointer; }
button.secondary { background:#fff; color:var(--accent); }
button.danger { background:#fff; color:var(--bad); border-color:var(--bad); }
.flash { padding:.6rem .8rem; border-radius:6px; background:#eff4ff; border:1px solid #b2ccff; }
.flash.error { background:#fef3f2; border-color:#fda29b; }
.secret { padding:.8rem; border:2px dashed var(--warn); background:#fffaeb; border-radius:6px; word-break:break-all; }
.timeline { list-style:none; padding:0; margin:0; border-left:3px solid var(--line); }
.timeline > li { position:relative; margin:0 0 1rem 1rem; }
.timeline > li::before { content:""; position:absolute; left:-1.45rem; top:.35rem; width:.7rem; height:.7rem; border-radius:50%; background:var(--accent); }
.timeline > li.dead::before { background:var(--bad); } .timeline > li.delivered::before { background:var(--ok); }
dl.kv { display:grid; grid-template-columns:max-content 1fr; gap:.25rem 1rem; margin:.3rem 0; }
dl.kv dt { color:var(--muted); } dl.kv dd { margin:0; }
main.signin { max-width:380px; margin:12vh auto; }
main.signin form { display:grid; gap:.6rem; }
.pager { margin:.6rem 0; display:flex; gap:1rem; }
"#;

/// The navigation: (path, label).
const NAV: &[(&str, &str)] = &[
    ("/console", "Overview"),
    ("/console/events", "Events"),
    ("/console/targets", "Targets"),
    ("/console/dead-letters", "Dead letters"),
    ("/console/tenants", "Tenants"),
    ("/console/keys", "Keys"),
    ("/console/audit", "Audit"),
];

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            meta name="referrer" content="same-origin";
            title { (title) " · deprov" }
            link rel="stylesheet" href="/console/static/console.css";
        }
    }
}

/// A page without navigation (sign-in).
pub fn page_bare(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body { (body) }
        }
    }
}

/// A page of a signed-in operator: navigation (`current` highlighted), sign-out, content.
pub fn page(session: &Session, current: &str, title: &str, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                header.top {
                    span.brand { "deprov" }
                    nav {
                        @for (path, label) in NAV {
                            a href=(path) class=[(*path == current).then_some("on")] { (label) }
                        }
                    }
                    form method="post" action="/console/logout" {
                        span { (session.actor) }
                        (csrf_field(session))
                        button type="submit" { "Sign out" }
                    }
                }
                main { (content) }
            }
        }
    }
}

/// The hidden CSRF field every form of a signed-in page carries.
pub fn csrf_field(session: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf); }
}

/// A complete HTML answer, never cached (pages show live state and, once, secrets).
pub fn render(status: StatusCode, body: Markup) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        ))
        .body(body.into_string())
}

/// Milliseconds since the epoch as `2026-12-02 09:51:32 UTC`.
pub fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| ms.to_string())
}

/// An optional time, or a dash.
pub fn time_opt(ms: Option<i64>) -> String {
    ms.map(time).unwrap_or_else(|| "—".to_owned())
}

/// A duration in milliseconds, for people: `850 ms`, `12 s`, `4 min`, `3 h 5 min`, `2 d 4 h`.
pub fn duration(ms: i64) -> String {
    let ms = ms.max(0);
    let s = ms / 1000;
    match s {
        _ if ms < 1000 => format!("{ms} ms"),
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86_400 => format!("{} h {} min", s / 3600, (s % 3600) / 60),
        _ => format!("{} d {} h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// A delivery or target status as a coloured badge.
pub fn badge(status: &str) -> Markup {
    html! { span class={ "badge " (status) } { (status) } }
}

/// A bar chart of `values`, one bar per value, labelled below with `labels` (empty strings
/// are left out to keep it readable); the largest value is written above its bar.
pub fn bar_chart(values: &[u64], labels: &[String], title: &str) -> Markup {
    const W: u64 = 560;
    const H: u64 = 150;
    const TOP: u64 = 16;
    const BOTTOM: u64 = 18;
    let n = u64::try_from(values.len()).unwrap_or(1).max(1);
    let max = values.iter().copied().max().unwrap_or(0).max(1);
    let slot = W / n;
    let bar_w = (slot * 7 / 10).max(1);
    let plot = H - TOP - BOTTOM;
    let total: u64 = values.iter().sum();
    html! {
        svg viewBox={ "0 0 " (W) " " (H) } role="img" aria-label={ (title) ": " (total) " events" } {
            title { (title) ": " (total) " events" }
            // Closed explicitly: in SVG, an HTML parser reads `<line>` as an open element.
            line x1="0" y1=(H - BOTTOM) x2=(W) y2=(H - BOTTOM) stroke="#d0d5dd" {}
            @for (i, v) in values.iter().enumerate() {
                @let i = u64::try_from(i).unwrap_or(0);
                @let h = v * plot / max;
                @let x = i * slot + (slot - bar_w) / 2;
                @if *v > 0 {
                    rect.bar x=(x) y=(H - BOTTOM - h) width=(bar_w) height=(h.max(1)) rx="2" {
                        title { (v) }
                    }
                    text x=(x + bar_w / 2) y=(H - BOTTOM - h - 3) text-anchor="middle" { (v) }
                }
                @if let Some(label) = labels.get(usize::try_from(i).unwrap_or(0)).filter(|l| !l.is_empty()) {
                    text x=(x + bar_w / 2) y=(H - 4) text-anchor="middle" { (label) }
                }
            }
        }
    }
}

/// A `<p class="flash">` for a message code in the query (fixed texts only: nothing from
/// the query is reflected into the page).
pub fn flash(text: Option<&'static str>) -> Markup {
    html! {
        @if let Some(t) = text { p.flash { (t) } }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bar_chart_draws_one_bar_per_non_zero_value_with_its_count() {
        let svg =
            bar_chart(&[0, 3, 1], &["a".into(), String::new(), "c".into()], "t").into_string();
        assert!(!svg.contains("\">\n") && svg.contains("</line>"), "{svg}");
        assert_eq!(svg.matches("<rect").count(), 2, "{svg}");
        assert!(
            svg.contains(">3</text>") && svg.contains(">1</text>"),
            "{svg}"
        );
        assert!(
            svg.contains(">a</text>") && svg.contains(">c</text>"),
            "{svg}"
        );
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(850), "850 ms");
        assert_eq!(duration(12_000), "12 s");
        assert_eq!(duration(3_720_000), "1 h 2 min");
        assert_eq!(duration(2 * 86_400_000 + 3_600_000), "2 d 1 h");
    }
}
