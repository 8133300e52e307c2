//! A validated configuration: everything `run` needs, compiled without
//! opening a socket. `check-config`, `probe`, `run` and SIGHUP reloads all go
//! through [`Plan::load`], so they accept and reject exactly the same files.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path as FsPath;
use std::sync::Arc;

use crate::check::{CheckPlan, Context};
use crate::config::{BuildCx, ConfigErrors, Document, Problems};
use crate::load::Guardrails;
use crate::otlp::OtlpPlan;
use crate::probes::Probe;
use crate::push::PushPlan;
use crate::redact::Redactor;
use crate::resources::ResourcePlan;

#[derive(Debug)]
pub struct Plan {
    pub listen: SocketAddr,
    pub probes: Vec<Arc<Probe>>,
    pub resources: ResourcePlan,
    pub otlp: Option<OtlpPlan>,
    /// Where a one-shot run pushes its series (`push:` or `--pushgateway`).
    pub push: Option<PushPlan>,
    pub checks: Vec<CheckPlan>,
    /// The result store: directory and runs kept per check.
    pub(crate) store: Option<(std::path::PathBuf, usize)>,
    /// The control API's bearer token (the API is off without one).
    pub(crate) api_token: Option<String>,
    /// The `listen` server's limits.
    pub(crate) server: crate::config::ServerConfig,
    pub(crate) redactor: Redactor,
}

/// How load runs are adjusted from the command line.
#[derive(Clone, Debug)]
pub struct Tuning {
    /// This sidewatch's share `i/n` of every load (`--shard`).
    pub(crate) shard: (u32, u32),
    /// Multiplies every duration of the named check (`check --time-scale`);
    /// other checks stay as written, so they validate as they will run.
    pub(crate) time_scale: Option<(String, f64)>,
    /// `--pushgateway`: overrides `push.pushgateway`.
    pub(crate) pushgateway: Option<String>,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            shard: (0, 1),
            time_scale: None,
            pushgateway: None,
        }
    }
}

impl Plan {
    pub(crate) fn load(path: &FsPath) -> Result<Plan, ConfigErrors> {
        Plan::from_document(Document::load(path)?)
    }

    /// Loads a config with its load runs adjusted by `tuning`.
    pub fn load_tuned(path: &FsPath, tuning: Tuning) -> Result<Plan, ConfigErrors> {
        Plan::build_document(Document::load(path)?, tuning)
    }

    pub fn from_document(doc: Document) -> Result<Plan, ConfigErrors> {
        Plan::build_document(doc, Tuning::default())
    }

    /// Compiles a parsed document.
    pub(crate) fn build_document(doc: Document, tuning: Tuning) -> Result<Plan, ConfigErrors> {
        let mut problems = Problems::default();
        let mut redactor = Redactor::default();
        for sub in doc.substitutions.iter().filter(|s| s.looks_secret()) {
            redactor.add(&sub.value);
        }
        let cfg = &doc.config;
        let mut cx = BuildCx::new(&mut problems, &mut redactor);
        let probes = build_probes(cfg, &mut cx);
        let resources = ResourcePlan::build(&cfg.service, &cfg.resources, &mut cx);
        let selectors = resources.as_ref().map_or(&[][..], |r| &r.selectors[..]);
        let no_push = crate::config::PushConfig::default();
        let push_cfg = cfg.push.as_ref().unwrap_or(&no_push);
        let push = PushPlan::build(push_cfg, tuning.pushgateway.as_deref(), &mut cx.key("push"));
        let checks = build_checks(cfg, &probes, selectors, tuning, &mut cx);
        let api_token = cfg.api.as_ref().and_then(|a| a.build(&mut cx.key("api")));
        cfg.server.check(&mut cx.key("server"));
        let otlp = cfg
            .otlp
            .as_ref()
            .and_then(|o| OtlpPlan::build(o, &mut cx.key("otlp")));
        match resources {
            Some(resources) if problems.is_empty() => Ok(Plan {
                listen: cfg.listen,
                probes,
                resources,
                otlp,
                push,
                checks,
                store: cfg.store.as_ref().map(|s| (s.dir.clone(), s.keep)),
                api_token,
                server: cfg.server.clone(),
                redactor,
            }),
            _ => Err(doc.locate(problems)),
        }
    }
}

/// Every probe, with names unique across the file.
fn build_probes(cfg: &crate::config::Config, cx: &mut BuildCx) -> Vec<Arc<Probe>> {
    let mut cx = cx.key("probes");
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut probes = Vec::new();
    for (i, p) in cfg.probes.iter().enumerate() {
        let mut cx = cx.index(i);
        if let Some(first) = seen.insert(&p.name, i) {
            cx.problem_at(
                "name",
                format!("duplicate probe name `{}` (also probes[{first}])", p.name),
            );
        }
        if let Some(probe) = Probe::build(p, &cfg.defaults, &mut cx) {
            probes.push(Arc::new(probe));
        }
    }
    probes
}

fn build_checks(
    cfg: &crate::config::Config,
    probes: &[Arc<Probe>],
    selectors: &[crate::resources::process::Selector],
    tuning: Tuning,
    cx: &mut BuildCx,
) -> Vec<CheckPlan> {
    let max_rate = crate::units::parse_rate(&cfg.limits.max_rate)
        .map_err(|e| cx.key("limits").problem_at("max_rate", e))
        .unwrap_or(0.0);
    // By default load may only go where the probes already go.
    let mut allow: std::collections::HashSet<String> =
        cfg.limits.allow_hosts.iter().cloned().collect();
    allow.extend(probes.iter().filter_map(|p| p.host()));
    let rails = Guardrails {
        max_rate,
        allow_hosts: allow,
        shard: tuning.shard,
        time_scale: 1.0,
    };
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut out = Vec::new();
    let mut checks_cx = cx.key("checks");
    for (i, c) in cfg.checks.iter().enumerate() {
        let mut cx = checks_cx.index(i);
        if seen.insert(&c.name, i).is_some() {
            cx.problem_at("name", format!("duplicate check name `{}`", c.name));
        }
        let scale = match &tuning.time_scale {
            Some((name, f)) if *name == c.name => *f,
            _ => 1.0,
        };
        let rails = Guardrails {
            time_scale: scale,
            ..rails.clone()
        };
        let env = Context {
            rails: &rails,
            selectors,
            has_store: cfg.store.is_some(),
        };
        out.extend(CheckPlan::build(c, &env, &mut cx));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(text: &str) -> Result<Plan, ConfigErrors> {
        Plan::from_document(Document::parse("c.yaml", text, &|_| None).unwrap())
    }

    #[test]
    fn reports_every_semantic_error_in_file_order() {
        let text = "\
probes:
  - name: a
    http: {url: 'not a url'}
  - name: a
    interval: 1s
    timeout: 2s
    tcp: {address: 'nohost'}
  - name: c
";
        let errs = plan(text).unwrap_err().to_string();
        let lines: Vec<&str> = errs.lines().collect();
        let want = [
            "c.yaml:3:17: probes[0].http.url: invalid URL",
            "c.yaml:4:11: probes[1].name: duplicate probe name `a`",
            "c.yaml:6:14: probes[1].timeout: timeout 2.00s exceeds",
            "c.yaml:7:20: probes[1].tcp.address:",
            "c.yaml:8:5: probes[2]: set exactly one of",
        ];
        assert_eq!(lines.len(), want.len(), "{errs}");
        for (line, want) in lines.iter().zip(want) {
            assert!(line.starts_with(want), "{errs}");
        }
    }

    #[test]
    fn api_tokens_are_trimmed_and_long_enough() {
        for token in ["zq", "Q", "  seven-7  ", "tab\\there-and-long-enough"] {
            let errs = plan(&format!("api: {{token: \"{token}\"}}\n"))
                .unwrap_err()
                .to_string();
            assert!(errs.contains("api.token"), "{errs}");
            assert!(!errs.contains(token.trim()), "the token is echoed: {errs}");
        }
        let p = plan("api: {token: '  0123456789abcdef  '}\n").unwrap();
        assert_eq!(p.api_token.as_deref(), Some("0123456789abcdef"));
        assert_eq!(p.redactor.redact("0123456789abcdef"), "***");
        assert_eq!(plan("api: {token: ' '}\n").unwrap().api_token, None);
    }

    #[test]
    fn server_limits_are_checked() {
        let errs = plan("server: {max_connections: 0, read_header_timeout: 0s}\n")
            .unwrap_err()
            .to_string();
        assert!(errs.contains("server.max_connections"), "{errs}");
        assert!(errs.contains("server.read_header_timeout"), "{errs}");
        let p = plan("server: {max_connections: 16, write_timeout: 2s}\n").unwrap();
        assert_eq!(p.server.max_connections, 16);
        assert_eq!(p.server.write_timeout.0.as_secs(), 2);
    }

    #[test]
    fn secret_env_values_are_redacted() {
        let doc = Document::parse(
            "c",
            "probes: [{name: a, http: {url: 'http://h/', headers: {X-Trace: '${API_TOKEN}'}}}]",
            &|_| Some("tok-123".into()),
        )
        .unwrap();
        let p = Plan::from_document(doc).unwrap();
        assert_eq!(p.redactor.redact("got tok-123"), "got ***");
    }
}
