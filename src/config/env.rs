//! `${VAR}` interpolation in scalar values.
//!
//! `${VAR}` must be set; `${VAR:-default}` falls back to `default`; `$${` is a
//! literal `${`. Only values are interpolated, never keys or comments.

use crate::redact::Redactor;

/// A value that came from the environment, remembered so it can be redacted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Substitution {
    pub(crate) var: String,
    pub(crate) value: String,
}

impl Substitution {
    /// Whether the variable's name says it holds a secret.
    pub(crate) fn looks_secret(&self) -> bool {
        let v = self.var.to_ascii_uppercase();
        ["PASS", "SECRET", "TOKEN", "KEY", "CRED", "AUTH", "DSN"]
            .iter()
            .any(|w| v.contains(w))
    }
}

/// Values of variables not named like secrets are masked in error messages
/// from this length on; shorter ones (`${PORT}`, `${LEVEL}`) stay readable.
const MIN_MASKED_IN_ERRORS: usize = 6;

/// The redactor for config error messages, which may quote a value (a type
/// error, an unknown variant, a bad duration): it masks every value taken
/// from the environment, since a variable need not be named like a secret to
/// hold one (`DATABASE_URL`), except short values of plainly named ones.
pub(crate) fn error_redactor(subs: &[Substitution]) -> Redactor {
    let mut r = Redactor::default();
    for s in subs {
        if s.looks_secret() || s.value.chars().count() >= MIN_MASKED_IN_ERRORS {
            r.add(&s.value);
        }
    }
    r
}

pub(crate) fn interpolate(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    subs: &mut Vec<Substitution>,
) -> Result<String, String> {
    if !text.contains("${") {
        return Ok(text.to_string());
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = tail.strip_prefix("${") {
            let end = after
                .find('}')
                .ok_or_else(|| "unterminated `${` (write `$${` for a literal)".to_string())?;
            let expr = &after[..end];
            let (var, default) = match expr.split_once(":-") {
                Some((v, d)) => (v, Some(d)),
                None => (expr, None),
            };
            if var.is_empty() || !var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("`${{{expr}}}` is not a valid variable reference"));
            }
            let value = match (lookup(var), default) {
                (Some(v), _) => v,
                (None, Some(d)) => d.to_string(),
                (None, None) => return Err(format!("environment variable `{var}` is not set")),
            };
            subs.push(Substitution {
                var: var.to_string(),
                value: value.clone(),
            });
            out.push_str(&value);
            rest = &after[end + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("db".into()),
            "PGPASSWORD" => Some("hunter2".into()),
            _ => None,
        }
    }

    #[test]
    fn substitutes_and_records() {
        let mut subs = Vec::new();
        let out = interpolate("postgres://u:${PGPASSWORD}@${HOST}/x", &env, &mut subs).unwrap();
        assert_eq!(out, "postgres://u:hunter2@db/x");
        assert_eq!(subs.len(), 2);
        assert!(subs[0].looks_secret());
        assert!(!subs[1].looks_secret());
    }

    #[test]
    fn defaults_escapes_and_errors() {
        let mut subs = Vec::new();
        assert_eq!(interpolate("${NOPE:-x}", &env, &mut subs).unwrap(), "x");
        assert_eq!(
            interpolate("$${HOST} $5", &env, &mut subs).unwrap(),
            "${HOST} $5"
        );
        assert!(interpolate("${NOPE}", &env, &mut subs)
            .unwrap_err()
            .contains("`NOPE` is not set"));
        assert!(interpolate("${HOST", &env, &mut subs).is_err());
        assert!(interpolate("${A B}", &env, &mut subs).is_err());
    }
}
