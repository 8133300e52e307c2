//! Stored check runs on the metrics listener, read-only:
//!
//! ```text
//! GET /runs           HTML list, newest first: verdict, duration, baseline marker
//! GET /runs/ID        the run's self-contained HTML report
//! GET /runs/ID.json   the stored result
//! ```
//!
//! No token: like `/metrics`, these pages hold check and mix-entry names,
//! numbers and bounded reasons, never config values, and a dashboard's data
//! link must open them in a browser, which cannot send a bearer header.
//! Known secrets (the API token) are masked all the same. The store is read
//! on the blocking pool; an id must be one the index lists (so no path is
//! ever built from the request), and bodies are capped.

use std::fmt::Write as _;
use std::sync::Arc;

use http::{Method, StatusCode};

use crate::check::baseline::store::{Baseline, Store};
use crate::check::result::Verdict;
use crate::check::runner::Checks;
use crate::redact::Redactor;
use crate::units::human_duration;

use super::escape;

/// Most runs listed; older ones stay reachable by id.
const MAX_LISTED: usize = 500;
/// Largest body served; a bigger report is for `sidewatch report`.
const MAX_BODY: usize = 16 << 20;
/// Longest id accepted (ids are `YYYYMMDDTHHMMSS.ffffffZ-hash-check`).
const MAX_ID: usize = 200;

/// A page: status, content type, body.
pub(crate) type Page = (StatusCode, &'static str, String);

const HTML: &str = "text/html; charset=utf-8";
const JSON: &str = "application/json";
const TEXT: &str = "text/plain; charset=utf-8";

fn plain(status: StatusCode, msg: &str) -> Page {
    (status, TEXT, format!("{msg}\n"))
}

fn busy() -> Page {
    plain(
        StatusCode::SERVICE_UNAVAILABLE,
        "store busy: too many reads at once, retry shortly",
    )
}

/// Answers a request for `/runs` or `/runs/...`.
pub(crate) async fn handle(checks: Option<Arc<Checks>>, method: &Method, path: &str) -> Page {
    if method != Method::GET && method != Method::HEAD {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    }
    let Some(checks) = checks else {
        return plain(StatusCode::NOT_FOUND, "no checks here");
    };
    let Some(store) = checks.store() else {
        return plain(StatusCode::NOT_FOUND, "no result store is configured");
    };
    let mut redactor = Redactor::default();
    if let Some(token) = checks.token() {
        redactor.add(&token);
    }
    let request = match path.trim_end_matches('/') {
        "/runs" => Request::List,
        rest => match rest.strip_prefix("/runs/").and_then(parse_id) {
            Some((id, json)) => Request::Run { id, json },
            None => return plain(StatusCode::NOT_FOUND, "no such run"),
        },
    };
    // Bounds the blocking threads /runs can hold: a reader waits up to 2 s
    // for the store's lock, and an evicted connection does not stop it.
    let Some(permit) = checks.store_reader() else {
        return busy();
    };
    let page = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        read(&store, request)
    })
    .await
    .unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, "internal error"));
    match page {
        (_, _, body) if body.len() > MAX_BODY => plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            "report too large to serve; use `sidewatch report`",
        ),
        (status, kind, body) => (status, kind, redactor.redact(&body).into_owned()),
    }
}

enum Request {
    List,
    Run { id: String, json: bool },
}

/// `ID` or `ID.json`, where an id is letters, digits, `.`, `_` and `-`,
/// not starting with `.`.
fn parse_id(rest: &str) -> Option<(String, bool)> {
    let (id, json) = match rest.strip_suffix(".json") {
        Some(id) => (id, true),
        None => (rest, false),
    };
    let ok = !id.is_empty()
        && id.len() <= MAX_ID
        && !id.starts_with('.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    ok.then(|| (id.to_string(), json))
}

fn read(store: &Store, request: Request) -> Page {
    match request {
        Request::List => match list(store) {
            Ok(body) => (StatusCode::OK, HTML, body),
            Err(e) => plain(StatusCode::SERVICE_UNAVAILABLE, &e),
        },
        Request::Run { id, json } => {
            let known = store.list(None).map(|runs| runs.iter().any(|e| e.id == id));
            match known {
                Ok(false) => plain(StatusCode::NOT_FOUND, "no such run"),
                Err(e) => plain(StatusCode::SERVICE_UNAVAILABLE, &e),
                Ok(true) => match store.get(&id) {
                    Ok(r) if json => (
                        StatusCode::OK,
                        JSON,
                        serde_json::to_string_pretty(&r).expect("serializable"),
                    ),
                    Ok(r) => (StatusCode::OK, HTML, crate::report::html::render(&r)),
                    Err(e) => plain(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
                },
            }
        }
    }
}

fn list(store: &Store) -> Result<String, String> {
    let baselines = store.baselines()?;
    let runs = store.list(None)?;
    let mut s = String::from(
        "<!doctype html><html lang=en><head><meta charset=utf-8>\
         <meta name=viewport content=\"width=device-width,initial-scale=1\">\
         <title>sidewatch runs</title><style>body{font-family:sans-serif;margin:1em}\
         td,th{padding:3px 10px;text-align:left}tr:nth-child(even){background:#f4f4f4}\
         .fail{color:#b00020}.pass{color:#1b5e20}.aborted{color:#8a5a00}</style></head>\
         <body><h1>Stored check runs</h1><p><a href=/>status</a> · <a href=/metrics>/metrics</a></p>\
         <table><tr><th>run</th><th>check</th><th>kind</th><th>started (UTC)</th>\
         <th>verdict</th><th>duration</th><th>baseline</th><th></th></tr>",
    );
    for e in runs.iter().rev().take(MAX_LISTED) {
        let base = baselines.get(&e.check) == Some(&Baseline::Run(e.id.clone()));
        let (mark, class) = match e.verdict {
            Verdict::Pass => ("✓ pass", "pass"),
            Verdict::Fail => ("✗ fail", "fail"),
            Verdict::Aborted => ("■ aborted", "aborted"),
            Verdict::Error => ("⚠ error", "fail"),
        };
        // The index is read from disk: a corrupt duration shows as unknown.
        let took = match std::time::Duration::try_from_secs_f64(e.duration_seconds) {
            Ok(d) if !d.is_zero() => human_duration(d),
            _ => "—".into(),
        };
        let started = chrono::DateTime::from_timestamp(e.started_unix as i64, 0)
            .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_default();
        let id = escape(&e.id);
        let _ = write!(
            s,
            "<tr><td><a href=\"/runs/{id}\">{id}</a></td><td>{}</td><td>{}</td><td>{started}</td>\
             <td class={class}>{mark}</td><td>{took}</td><td>{}</td>\
             <td><a href=\"/runs/{id}.json\">json</a></td></tr>",
            escape(&e.check),
            e.kind,
            if base { "★ baseline" } else { "" },
        );
    }
    if runs.is_empty() {
        s.push_str("<tr><td colspan=8>no runs stored yet</td></tr>");
    }
    s.push_str("</table></body></html>\n");
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_cannot_name_a_path() {
        assert_eq!(
            parse_id("20261128T130048.030477Z-8d1976e7-api.json"),
            Some(("20261128T130048.030477Z-8d1976e7-api".into(), true))
        );
        for bad in ["..", "../index", "a/b", ".hidden", "", "%2e%2e", "a b"] {
            assert_eq!(parse_id(bad), None, "{bad}");
        }
    }
}
