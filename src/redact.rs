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

/// A URL for display: the password and the values of secret query
/// parameters ([`is_secret_param`]) are replaced by `***`.
pub(crate) fn mask_url(url: &url::Url) -> String {
    let mut u = url.clone();
    if u.password().is_some() {
        let _ = u.set_password(Some(MASK));
    }
    if let Some(query) = url.query() {
        let masked: Vec<String> = query
            .split('&')
            .map(|pair| match secret_param_value(pair) {
                Some(_) => format!("{}={MASK}", pair.split_once('=').map_or(pair, |(n, _)| n)),
                None => pair.to_string(),
            })
            .collect();
        let masked = masked.join("&");
        if masked != query {
            u.set_query(Some(&masked));
        }
    }
    u.to_string()
}

/// A URL's secrets, as written and decoded, for the [`Redactor`]: its
/// password and the values of its secret query parameters.
pub(crate) fn url_secrets(url: &url::Url) -> Vec<String> {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let mut out: Vec<String> = url
        .password()
        .into_iter()
        .flat_map(|pw| [pw.to_string(), decode(pw)])
        .collect();
    for pair in url.query().unwrap_or_default().split('&') {
        if let Some(decoded) = secret_param_value(pair) {
            let raw = pair.split_once('=').map_or("", |(_, v)| v);
            out.extend([raw.to_string(), decoded]);
        }
    }
    out
}

/// The decoded value of a `name=value` query pair whose name looks secret
/// and whose value is not empty.
fn secret_param_value(pair: &str) -> Option<String> {
    let (name, value) = url::form_urlencoded::parse(pair.as_bytes()).next()?;
    (!value.is_empty() && is_secret_param(&name)).then(|| value.into_owned())
}

/// Whether a query parameter's value must be treated as a secret: its name,
/// in any case, contains `token`, `secret`, `passw`, `apikey`, `signature`,
/// `credential` or `authoriz`, or has `key`, `sig`, `pwd`, `pass`, `auth` or
/// `session` as a word of its own (`api_key`, `X-Amz-Signature`, `sig`).
fn is_secret_param(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    const PARTS: [&str; 7] = [
        "token",
        "secret",
        "passw",
        "apikey",
        "signature",
        "credential",
        "authoriz",
    ];
    const WORDS: [&str; 6] = ["key", "sig", "pwd", "pass", "auth", "session"];
    PARTS.iter().any(|p| n.contains(p))
        || n.split(|c: char| !c.is_ascii_alphanumeric())
            .any(|w| WORDS.contains(&w))
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
    fn masks_secret_query_values() {
        let u = url::Url::parse(
            "http://h/p?page=2&token=t1&API_KEY=k1&apiKey=k2&x-amz-signature=s1&password&q=a+b%20c&client_secret=c1#frag",
        )
        .unwrap();
        assert_eq!(
            mask_url(&u),
            "http://h/p?page=2&token=***&API_KEY=***&apiKey=***&x-amz-signature=***&password&q=a+b%20c&client_secret=***#frag"
        );
        let u = url::Url::parse("http://u:pw@h/p?sig=abc&keyword=x").unwrap();
        assert_eq!(mask_url(&u), "http://u:***@h/p?sig=***&keyword=x");
    }

    #[test]
    fn secret_headers() {
        assert!(is_secret_header("Authorization"));
        assert!(is_secret_header("X-Api-Key"));
        assert!(!is_secret_header("Accept"));
    }
}
