//! Keeps secrets (URL passwords, auth headers, secret environment values) out
//! of logs, tables and reports.

use std::borrow::Cow;

/// Secrets known from the config; every text printed from a probe goes through
/// [`Redactor::redact`].
#[derive(Clone, Debug, Default)]
pub(crate) struct Redactor {
    secrets: Vec<String>,
}

const MASK: &str = "***";

impl Redactor {
    /// Remembers a secret. Very short values are ignored: masking every `a`
    /// would make logs useless, and such values are not secrets in practice.
    pub(crate) fn add(&mut self, secret: &str) {
        if secret.len() >= 3 && !self.secrets.iter().any(|s| s == secret) {
            self.secrets.push(secret.to_string());
            // Longest first, so a secret containing another is masked whole.
            self.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
    }

    pub(crate) fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = Cow::Owned(out.replace(s.as_str(), MASK));
            }
        }
        out
    }
}

/// A URL for display: any password is replaced by `***`.
pub(crate) fn mask_url(url: &url::Url) -> String {
    if url.password().is_none() {
        return url.to_string();
    }
    let mut u = url.clone();
    let _ = u.set_password(Some(MASK));
    u.to_string()
}

/// Whether a header's value must be treated as a secret.
pub(crate) fn is_secret_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    matches!(
        n.as_str(),
        "authorization" | "proxy-authorization" | "cookie" | "set-cookie"
    ) || ["token", "secret", "key", "auth", "password"]
        .iter()
        .any(|w| n.contains(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_known_secrets_longest_first() {
        let mut r = Redactor::default();
        r.add("abc");
        r.add("abcdef");
        r.add("x");
        assert_eq!(r.redact("token=abcdef, abc, x"), "token=***, ***, x");
        assert!(matches!(r.redact("clean"), Cow::Borrowed(_)));
    }

    #[test]
    fn masks_url_passwords() {
        let u = url::Url::parse("http://user:pa55@host:8080/p?q=1").unwrap();
        assert_eq!(mask_url(&u), "http://user:***@host:8080/p?q=1");
        let u = url::Url::parse("http://host/").unwrap();
        assert_eq!(mask_url(&u), "http://host/");
    }

    #[test]
    fn secret_headers() {
        assert!(is_secret_header("Authorization"));
        assert!(is_secret_header("X-Api-Key"));
        assert!(!is_secret_header("Accept"));
    }
}
