//! The configuration file: its structs (whose doc comments are the reference
//! in docs/config.md), loading with `${ENV}` interpolation, and errors that
//! name `FILE:LINE:COL: field.path`.
//!
//! Loading is pure: nothing here opens a socket. Semantic checks (URLs,
//! regexes, certificate files) happen where the values are compiled, in
//! the plan, and report through [`Problems`].

mod checks;
mod duration;
mod env;
mod load;
mod otlp;
mod probes;
mod problems;
mod push;
mod resources;
mod schema;
mod server;
pub(crate) mod yaml;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path as FsPath, PathBuf};

use schemars::JsonSchema;
use serde::Deserialize;

pub(crate) use checks::*;
pub(crate) use duration::Dur;
pub(crate) use env::Substitution;
pub(crate) use load::*;
pub(crate) use otlp::*;
pub(crate) use probes::*;
pub(crate) use problems::*;
pub(crate) use push::*;
pub(crate) use resources::*;
pub use schema::json_schema;
pub(crate) use server::ServerConfig;
pub(crate) use yaml::{Path, Pos};

/// The whole sidewatch configuration file.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Config {
    /// Address of the HTTP server that serves `/metrics`, `/healthz` and
    /// `/readyz`. `--listen` overrides it. Default `0.0.0.0:9479`.
    #[serde(default = "default_listen")]
    pub(crate) listen: SocketAddr,
    /// Limits of the `listen` server: connections, header and write timeouts.
    #[serde(default)]
    pub(crate) server: ServerConfig,
    /// Interval and timeout for probes that do not set their own.
    #[serde(default)]
    pub(crate) defaults: ProbeDefaults,
    /// The continuous synthetic probes.
    #[serde(default)]
    pub(crate) probes: Vec<ProbeConfig>,
    /// The colocated service whose processes are sampled.
    #[serde(default)]
    pub(crate) service: ServiceConfig,
    /// Resource sampling of the host, the container's cgroup and the service.
    #[serde(default)]
    pub(crate) resources: ResourcesConfig,
    /// Push every metric family to an OpenTelemetry (OTLP) endpoint.
    pub(crate) otlp: Option<OtlpConfig>,
    /// Named checks: a scenario (soak, spike, breakpoint, curve, leak) or a
    /// plain load profile, with thresholds, a schedule and a baseline.
    #[serde(default)]
    pub(crate) checks: Vec<CheckConfig>,
    /// Where check results and baselines are kept.
    pub(crate) store: Option<StoreConfig>,
    /// Where `sidewatch check` and `sidewatch load` push their series when
    /// they end (a Prometheus Pushgateway).
    pub(crate) push: Option<PushConfig>,
    /// The control API on the `listen` address (off unless a token is set).
    pub(crate) api: Option<ApiConfig>,
    /// Guardrails every load run obeys.
    #[serde(default)]
    pub(crate) limits: LimitsConfig,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 9479))
}

/// A parsed config file with its source tree, for locating later problems.
#[derive(Debug)]
pub struct Document {
    pub(crate) file: String,
    pub(crate) config: Config,
    pub(crate) root: yaml::Node,
    /// Values taken from the environment, for redaction.
    pub(crate) substitutions: Vec<Substitution>,
}

impl Document {
    /// Reads, interpolates and deserializes a file.
    pub(crate) fn load(path: &FsPath) -> Result<Document, ConfigErrors> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                file: file.clone(),
                pos: Pos { line: 1, col: 1 },
                path: Path::default(),
                message: format!("cannot read file: {e}"),
            }])
        })?;
        Self::parse(&file, &text, &|k| std::env::var(k).ok())
    }

    /// Parses config text. `file` is only used in messages.
    pub fn parse(
        file: &str,
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Document, ConfigErrors> {
        let err = |pos, path, message| ConfigError {
            file: file.to_string(),
            pos,
            path,
            message,
        };
        let mut root =
            yaml::parse(text).map_err(|e| ConfigErrors(vec![err(e.pos, e.path, e.message)]))?;
        let mut substitutions = Vec::new();
        let mut env_errors = Vec::new();
        root.map_scalars(
            &Path::default(),
            &mut |_, s| {
                *s = env::interpolate(s, env, &mut substitutions)?;
                Ok::<(), String>(())
            },
            &mut env_errors,
        );
        if !env_errors.is_empty() {
            let errors = env_errors
                .into_iter()
                .map(|(path, pos, msg)| err(pos, path, msg))
                .collect();
            return Err(ConfigErrors(errors));
        }
        let config: Config = yaml::from_node(&root).map_err(|e| {
            let pos = e.pos.unwrap_or_else(|| root.pos_of(&e.path));
            let message = env::error_redactor(&substitutions)
                .redact(&e.message)
                .into_owned();
            ConfigErrors(vec![err(pos, e.path, message)])
        })?;
        Ok(Document {
            file: file.to_string(),
            config,
            root,
            substitutions,
        })
    }

    /// Locates problems in the file, sorted by position. Values from the
    /// environment are masked in the messages ([`env::error_redactor`]).
    pub(crate) fn locate(&self, problems: Problems) -> ConfigErrors {
        let redactor = env::error_redactor(&self.substitutions);
        let mut errors: Vec<ConfigError> = problems
            .0
            .into_iter()
            .map(|(path, message)| ConfigError {
                file: self.file.clone(),
                pos: self.root.pos_of(&path),
                path,
                message: redactor.redact(&message).into_owned(),
            })
            .collect();
        errors.sort_by_key(|e| (e.pos.line, e.pos.col));
        ConfigErrors(errors)
    }
}

fn yes() -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_be_label_safe() {
        let (mut p, mut r) = (Problems::default(), crate::redact::Redactor::default());
        let mut cx = BuildCx::new(&mut p, &mut r);
        check_name("api-health_1.v2", &mut cx);
        assert!(cx.problems.is_empty());
        check_name("has space", &mut cx);
        check_name("", &mut cx);
        assert_eq!(cx.problems.0.len(), 2);
        // Check names are directory names too; `.` and `..` pass the label
        // rule, so probes may keep them, but not checks.
        check_dir_name("nightly-soak.v2", &mut cx);
        check_name("..", &mut cx);
        assert_eq!(cx.problems.0.len(), 2);
        for bad in [".", "..", ".hidden"] {
            check_dir_name(bad, &mut cx);
        }
        assert_eq!(p.0.len(), 5);
        assert!(p.0[2].1.contains("must not start with `.`"), "{:?}", p.0);
    }

    fn parse(text: &str) -> Result<Document, ConfigErrors> {
        Document::parse("t.yaml", text, &|k| (k == "TOKEN").then(|| "s3cret".into()))
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let doc = parse("probes:\n  - name: a\n    tcp: {address: '127.0.0.1:1'}\n").unwrap();
        assert_eq!(doc.config.listen.port(), 9479);
        assert_eq!(doc.config.defaults.interval, Dur::secs(15));
        assert_eq!(doc.config.probes[0].name, "a");
    }

    #[test]
    fn empty_file_is_an_empty_config() {
        let doc = parse("").unwrap();
        assert!(doc.config.probes.is_empty());
    }

    #[test]
    fn unknown_field_is_located() {
        let e = parse("probes:\n  - name: a\n    http:\n      urll: x\n").unwrap_err();
        assert_eq!(e.0.len(), 1);
        let s = e.to_string();
        assert!(
            s.starts_with("t.yaml:4:7: probes[0].http.urll: unknown field `urll`"),
            "{s}"
        );
    }

    #[test]
    fn bad_duration_is_located() {
        let e = parse("probes:\n  - name: a\n    interval: 10q\n").unwrap_err();
        let s = e.to_string();
        assert!(s.starts_with("t.yaml:3:15: probes[0].interval:"), "{s}");
        assert!(s.contains("unknown unit"), "{s}");
    }

    #[test]
    fn every_missing_env_var_is_reported() {
        let text =
            "probes:\n  - name: a\n    http:\n      url: ${URL}\n      headers: {X: '${NOPE}'}\n";
        let e = parse(text).unwrap_err();
        assert_eq!(e.0.len(), 2);
        assert_eq!(e.0[0].path.to_string(), "probes[0].http.url");
        assert_eq!(e.0[0].pos.line, 4);
        assert!(e.0[1].message.contains("`NOPE`"));
    }

    #[test]
    fn substitutions_are_remembered() {
        let doc = parse(
            "probes:\n  - name: a\n    http: {url: 'http://x/', headers: {A: 'Bearer ${TOKEN}'}}\n",
        )
        .unwrap();
        assert_eq!(doc.substitutions[0].value, "s3cret");
        assert_eq!(
            doc.config.probes[0].http.as_ref().unwrap().headers["A"],
            "Bearer s3cret"
        );
    }

    #[test]
    fn errors_mask_values_from_the_environment() {
        let env = |k: &str| match k {
            "API_TOKEN" => Some("s3cret-token".to_string()),
            "SETTING" => Some("a-long-plain-value-0123456789-0123456789-0123456789".to_string()),
            _ => None,
        };
        let e = Document::parse(
            "t.yaml",
            "probes:\n  - name: a\n    interval: '${API_TOKEN}'\n",
            &env,
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("t.yaml:3:15: probes[0].interval: "), "{e}");
        assert!(!e.contains("s3cret"), "{e}");
        let text =
            "probes:\n  - name: a\n    http: {url: 'http://h/', max_body_bytes: '${SETTING}'}\n";
        let e = Document::parse("t.yaml", text, &env)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("t.yaml:3:"), "{e}");
        assert!(!e.contains("a-long-plain"), "{e}");
        let doc = Document::parse("t.yaml", "probes:\n  - name: '${API_TOKEN}'\n", &env).unwrap();
        let mut problems = Problems::default();
        let name = Path::default().key("probes").index(0).key("name");
        problems.push(&name, "bad name `s3cret-token`");
        let e = doc.locate(problems).to_string();
        assert_eq!(e, "t.yaml:2:11: probes[0].name: bad name `***`");
    }

    #[test]
    fn bad_listen_address_is_located() {
        let e = parse("listen: nowhere\n").unwrap_err();
        assert!(e.to_string().starts_with("t.yaml:1:9: listen:"), "{e}");
    }
}
