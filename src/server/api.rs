//! The control API on the metrics listener: list, trigger and cancel
//! checks. Every request needs `Authorization: Bearer TOKEN`; without a
//! configured token the API answers 404 as if it were not there.
//!
//! ```text
//! GET  /api/v1/checks              200 [{name, kind, schedule, state, next_run_unix, last}]
//! POST /api/v1/checks/NAME/run     202 started · 404 unknown · 409 another check runs
//! POST /api/v1/checks/NAME/cancel  202 cancelling · 404 unknown · 409 not running
//! ```

use http::header::AUTHORIZATION;
use http::{HeaderMap, Method, StatusCode};
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::check::runner::{Checks, Refused, RunState};

/// An API answer: status and JSON body.
pub(crate) type Answer = (StatusCode, String);

fn answer(status: StatusCode, body: serde_json::Value) -> Answer {
    (status, format!("{body}\n"))
}

fn authorized(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        // Constant time in the content; the configured token is trimmed at load.
        .is_some_and(|given| bool::from(given.trim().as_bytes().ct_eq(token.as_bytes())))
}

/// Handles a request under `/api/`; `None` when the API is off.
pub(crate) fn handle(
    checks: &Checks,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
) -> Option<Answer> {
    let token = checks.token()?;
    if !authorized(headers, &token) {
        return Some(answer(
            StatusCode::UNAUTHORIZED,
            json!({"error": "missing or wrong bearer token"}),
        ));
    }
    let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    Some(match (method, parts.as_slice()) {
        (&Method::GET, ["", "api", "v1", "checks"]) => (
            StatusCode::OK,
            serde_json::to_string(&checks.statuses()).expect("serializable") + "\n",
        ),
        (&Method::POST, ["", "api", "v1", "checks", name, "run"]) => match checks.trigger(name) {
            Ok(()) => answer(
                StatusCode::ACCEPTED,
                json!({"check": name, "state": RunState::Running}),
            ),
            Err(e) => refused(name, e),
        },
        (&Method::POST, ["", "api", "v1", "checks", name, "cancel"]) => match checks.cancel(name) {
            Ok(()) => answer(
                StatusCode::ACCEPTED,
                json!({"check": name, "state": RunState::Cancelling}),
            ),
            Err(e) => refused(name, e),
        },
        (_, ["", "api", "v1", "checks", ..]) => answer(
            StatusCode::METHOD_NOT_ALLOWED,
            json!({"error": "use GET /api/v1/checks or POST /api/v1/checks/NAME/run|cancel"}),
        ),
        _ => answer(StatusCode::NOT_FOUND, json!({"error": "no such endpoint"})),
    })
}

fn refused(name: &str, e: Refused) -> Answer {
    match e {
        Refused::Unknown => answer(
            StatusCode::NOT_FOUND,
            json!({"error": format!("no check named `{name}`")}),
        ),
        Refused::Busy(other) => answer(
            StatusCode::CONFLICT,
            json!({"error": format!("check `{other}` is running; one check runs at a time")}),
        ),
        Refused::NotRunning => answer(
            StatusCode::CONFLICT,
            json!({"error": format!("check `{name}` is not running")}),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_compare_exactly() {
        let mut h = HeaderMap::new();
        assert!(!authorized(&h, "s3cret"));
        h.insert(AUTHORIZATION, "Bearer s3cret".parse().unwrap());
        assert!(authorized(&h, "s3cret"));
        assert!(!authorized(&h, "s3cre"));
        h.insert(AUTHORIZATION, "Basic s3cret".parse().unwrap());
        assert!(!authorized(&h, "s3cret"));
    }
}
