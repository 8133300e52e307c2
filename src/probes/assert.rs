//! Response expectations shared by the probes: status sets, regexes and JSON
//! field checks. Each is compiled once, at config load.

use regex::Regex;
use serde_json::Value;

use crate::config::{BuildCx, JsonExpect};

/// Accepted HTTP status codes: exact codes and `Nxx` classes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StatusSet(Vec<(u16, u16)>);

impl StatusSet {
    /// Any 2xx: what an empty `status` list means.
    pub(crate) fn success() -> StatusSet {
        StatusSet(vec![(200, 299)])
    }

    pub(crate) fn parse(items: &[String], cx: &mut BuildCx) -> StatusSet {
        if items.is_empty() {
            return StatusSet::success();
        }
        let mut ranges = Vec::new();
        for (i, item) in items.iter().enumerate() {
            match parse_status(item) {
                Some(r) => ranges.push(r),
                None => cx.index(i).problem(format!(
                    "`{item}` is not a status code (100-599) or class (2xx)"
                )),
            }
        }
        StatusSet(ranges)
    }

    pub(crate) fn contains(&self, code: u16) -> bool {
        self.0.iter().any(|&(lo, hi)| (lo..=hi).contains(&code))
    }
}

fn parse_status(s: &str) -> Option<(u16, u16)> {
    let s = s.trim();
    if let Some(class) = s.strip_suffix("xx").or_else(|| s.strip_suffix("XX")) {
        let d: u16 = class.parse().ok().filter(|d| (1..=5).contains(d))?;
        return Some((d * 100, d * 100 + 99));
    }
    let code: u16 = s.parse().ok().filter(|c| (100..=599).contains(c))?;
    Some((code, code))
}

/// Compiles an optional regex, reporting a bad one at `path`.
pub(crate) fn regex(src: &Option<String>, cx: &mut BuildCx) -> Option<Regex> {
    let src = src.as_ref()?;
    match Regex::new(src) {
        Ok(r) => Some(r),
        Err(e) => {
            cx.problem(format!("invalid regex: {}", first_line(&e.to_string())));
            None
        }
    }
}

fn first_line(s: &str) -> &str {
    s.lines().last().unwrap_or(s).trim()
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

#[derive(Debug)]
enum Want {
    Equals(String),
    Matches(Regex),
}

/// One compiled JSON field check.
#[derive(Debug)]
pub(crate) struct JsonCheck {
    path: String,
    steps: Vec<Step>,
    want: Want,
}

impl JsonCheck {
    pub(crate) fn build(cfg: &JsonExpect, cx: &mut BuildCx) -> Option<JsonCheck> {
        let steps = match parse_json_path(&cfg.path) {
            Ok(s) => Some(s),
            Err(e) => {
                cx.problem_at("path", e);
                None
            }
        };
        let want = match (&cfg.equals, &cfg.matches) {
            (Some(v), None) => Some(Want::Equals(v.clone())),
            (None, Some(_)) => regex(&cfg.matches, &mut cx.key("matches")).map(Want::Matches),
            _ => {
                cx.problem("set exactly one of `equals` or `matches`");
                None
            }
        };
        Some(JsonCheck {
            path: cfg.path.clone(),
            steps: steps?,
            want: want?,
        })
    }

    /// Checks a parsed body; the error says what was found.
    pub(crate) fn check(&self, doc: &Value) -> Result<(), String> {
        let mut v = doc;
        for step in &self.steps {
            let next = match step {
                Step::Key(k) => v.get(k.as_str()),
                Step::Index(i) => v.get(*i),
            };
            v = next.ok_or_else(|| format!("json {}: not present", self.path))?;
        }
        let ok = match &self.want {
            Want::Equals(want) => json_equals(v, want),
            Want::Matches(re) => re.is_match(&json_text(v)),
        };
        if ok {
            Ok(())
        } else {
            let mut found = json_text(v);
            // At most 80 characters of the service's text; a byte cut could
            // split a multi-byte character.
            if let Some((end, _)) = found.char_indices().nth(80) {
                found.truncate(end);
                found.push('…');
            }
            Err(format!("json {}: found `{found}`", self.path))
        }
    }
}

fn json_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn json_equals(v: &Value, want: &str) -> bool {
    match v {
        Value::String(s) => s == want,
        Value::Number(n) => match (n.as_f64(), want.parse::<f64>()) {
            (Some(a), Ok(b)) => a == b,
            _ => false,
        },
        Value::Bool(b) => want == b.to_string(),
        Value::Null => want == "null",
        // Arrays and objects: compare as JSON, so key order and spacing do not matter.
        _ => serde_json::from_str::<Value>(want).is_ok_and(|w| &w == v),
    }
}

/// Parses a JSON Pointer (`/a/0/b`) or a dotted path (`a[0].b`, `a.0.b`).
fn parse_json_path(p: &str) -> Result<Vec<Step>, String> {
    if p.is_empty() {
        return Ok(Vec::new());
    }
    if let Some(rest) = p.strip_prefix('/') {
        return Ok(rest
            .split('/')
            .map(|t| t.replace("~1", "/").replace("~0", "~"))
            .map(|t| match t.parse() {
                Ok(i) => Step::Index(i),
                Err(_) => Step::Key(t),
            })
            .collect());
    }
    let mut steps = Vec::new();
    for part in p.split('.') {
        let (key, mut rest) = match part.find('[') {
            Some(i) => part.split_at(i),
            None => (part, ""),
        };
        if !key.is_empty() {
            steps.push(match key.parse() {
                Ok(i) => Step::Index(i),
                Err(_) => Step::Key(key.to_string()),
            });
        } else if rest.is_empty() {
            return Err(format!("`{p}` has an empty segment"));
        }
        while !rest.is_empty() {
            let close = rest
                .find(']')
                .ok_or_else(|| format!("`{p}` has an unclosed `[`"))?;
            let idx = rest[1..close]
                .parse()
                .map_err(|_| format!("`{p}`: `{}` is not an index", &rest[1..close]))?;
            steps.push(Step::Index(idx));
            rest = &rest[close + 1..];
            if !rest.is_empty() && !rest.starts_with('[') {
                return Err(format!("`{p}`: unexpected `{rest}`"));
            }
        }
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Problems;
    use crate::redact::Redactor;
    use serde_json::json;

    #[test]
    fn status_sets() {
        let (mut p, mut r) = (Problems::default(), Redactor::default());
        let mut cx = BuildCx::new(&mut p, &mut r);
        let s = StatusSet::parse(&["200".into(), "3xx".into()], &mut cx);
        assert!(cx.problems.is_empty());
        assert!(s.contains(200) && s.contains(301) && !s.contains(204));
        let d = StatusSet::parse(&[], &mut cx);
        assert!(d.contains(204) && !d.contains(301));
        StatusSet::parse(&["600".into(), "9xx".into(), "ok".into()], &mut cx);
        assert_eq!(p.0.len(), 3);
    }

    #[test]
    fn json_paths() {
        let k = |s: &str| Step::Key(s.into());
        assert_eq!(
            parse_json_path("/a/0/b~1c").unwrap(),
            vec![k("a"), Step::Index(0), k("b/c")]
        );
        assert_eq!(
            parse_json_path("a[0].b").unwrap(),
            vec![k("a"), Step::Index(0), k("b")]
        );
        assert_eq!(
            parse_json_path("a.1[2]").unwrap(),
            vec![k("a"), Step::Index(1), Step::Index(2)]
        );
        assert!(parse_json_path("a[x]").is_err());
        assert!(parse_json_path("a..b").is_err());
        assert!(parse_json_path("a[0").is_err());
    }

    fn check(path: &str, equals: Option<&str>, matches: Option<&str>) -> JsonCheck {
        let cfg = JsonExpect {
            path: path.into(),
            equals: equals.map(Into::into),
            matches: matches.map(Into::into),
        };
        JsonCheck::build(
            &cfg,
            &mut BuildCx::new(&mut Problems::default(), &mut Redactor::default()),
        )
        .unwrap()
    }

    #[test]
    fn json_checks() {
        let doc = json!({"status": "ok", "n": 3, "up": true, "items": [{"id": 7}]});
        assert!(check("status", Some("ok"), None).check(&doc).is_ok());
        assert!(check("/n", Some("3.0"), None).check(&doc).is_ok());
        assert!(check("up", Some("true"), None).check(&doc).is_ok());
        assert!(check("items[0].id", None, Some("^7$")).check(&doc).is_ok());
        let e = check("status", Some("down"), None).check(&doc).unwrap_err();
        assert!(e.contains("found `ok`"), "{e}");
        let doc2 = json!({"tags": ["a", "b"]});
        assert!(check("tags", Some("[\"a\", \"b\"]"), None)
            .check(&doc2)
            .is_ok());
        assert!(check("missing", Some("x"), None)
            .check(&doc)
            .unwrap_err()
            .contains("not present"));
    }

    #[test]
    fn found_text_is_cut_at_a_char_boundary() {
        // 79 ASCII bytes, then a two-byte `é` across byte 80: the service's own
        // text must not panic the probe.
        let long = format!("{}é and more text after the cut", "a".repeat(79));
        let e = check("name", Some("x"), None)
            .check(&json!({ "name": long }))
            .unwrap_err();
        assert!(e.contains(&format!("found `{}é…`", "a".repeat(79))), "{e}");
        let short = check("name", Some("x"), None)
            .check(&json!({"name": "é"}))
            .unwrap_err();
        assert!(short.contains("found `é`"), "{short}");
    }

    #[test]
    fn json_check_needs_one_expectation() {
        let cfg = JsonExpect {
            path: "a".into(),
            equals: None,
            matches: None,
        };
        let mut p = Problems::default();
        assert!(
            JsonCheck::build(&cfg, &mut BuildCx::new(&mut p, &mut Redactor::default())).is_none()
        );
        assert_eq!(p.0.len(), 1);
    }
}
