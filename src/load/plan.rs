//! Compiling a `load:` section (a check's, or `sidewatch load`'s flags made
//! into one) into what to send, a [`Workload`], and when, a [`Profile`],
//! within the [`Guardrails`].

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use super::arrival::{parse_stages, Profile};
use super::client::Request;
use super::engine::{MixItem, Model, ShardFn};
use super::thresholds::Rule;
use crate::config::{BuildCx, LoadConfig};
use crate::probes::http::HttpProbe;
use crate::units::parse_rate;

/// What a run sends and how it is judged; a [`Profile`] says when. One
/// workload is driven through each profile a scenario makes.
#[derive(Clone, Debug)]
pub struct Workload {
    /// The `check` label.
    pub(crate) check: String,
    pub(crate) model: Model,
    pub(crate) mix: Arc<Vec<MixItem>>,
    pub(crate) max_connections: usize,
    /// `limits.max_rate` for this sidewatch: the open model's profiles are
    /// refused above it, the closed model's users are held to it.
    pub(crate) max_rate: f64,
    pub(crate) request_timeout: Duration,
    pub(crate) threads: usize,
    pub(crate) thresholds: Vec<Rule>,
    pub(crate) aborts: Vec<Rule>,
    /// What runs each shard: the engine (tests put a stand-in here).
    pub(crate) engine: ShardFn,
}

/// A compiled `load:` section: the workload, its base, and its own timeline
/// when the section sets one.
#[derive(Clone, Debug)]
pub struct LoadPlan {
    pub workload: Workload,
    /// The base target after sharding: the start rate (open model) or users
    /// (closed model); a scenario builds its profiles on it.
    pub(crate) start: f64,
    /// The section's profile (`duration` or `stages`), which starts at
    /// `start`; `None` when a scenario sets the timeline.
    pub profile: Option<Profile>,
}

/// A `load:` section with what its check adds: the `check` label and the
/// load rules (`thresholds` without the memory ones, `abort`).
pub(crate) struct LoadSection<'a> {
    pub(crate) check: &'a str,
    pub(crate) load: &'a LoadConfig,
    pub(crate) thresholds: &'a [String],
    pub(crate) aborts: &'a [String],
}

/// Where load may go, and how hard.
#[derive(Debug, Clone)]
pub(crate) struct Guardrails {
    pub(crate) max_rate: f64,
    pub(crate) allow_hosts: HashSet<String>,
    /// This sidewatch's share of a run split over N (`--shard I/N`).
    pub(crate) shard: (u32, u32),
    /// Every duration of a check is multiplied by this (`--time-scale`),
    /// to rehearse a long plan quickly. Default 1.
    pub(crate) time_scale: f64,
}

impl Guardrails {
    /// Rates are multiplied by this: this shard's share.
    pub(crate) fn rate_scale(&self) -> f64 {
        1.0 / f64::from(self.shard.1.max(1))
    }

    fn allows(&self, host: &str) -> bool {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let loopback = bare == "localhost"
            || bare
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        loopback || self.allow_hosts.contains(bare)
    }
}

impl LoadPlan {
    /// Compiles a section that sets its own timeline (`sidewatch load`, a
    /// check without a scenario), so `profile` is `Some`. `cx` is the
    /// check's context: the section is at `load`, the rules at `thresholds`
    /// and `abort`.
    pub(crate) fn build(cx: &mut BuildCx, s: &LoadSection, rails: &Guardrails) -> Option<LoadPlan> {
        compile(cx, s, rails, true)
    }

    /// Compiles the base of a scenario, which makes its own profiles from
    /// `start`; the section may leave out `duration` and `stages`.
    pub(crate) fn build_base(
        cx: &mut BuildCx,
        s: &LoadSection,
        rails: &Guardrails,
    ) -> Option<LoadPlan> {
        compile(cx, s, rails, false)
    }
}

fn compile(
    cx: &mut BuildCx,
    s: &LoadSection,
    rails: &Guardrails,
    own_timeline: bool,
) -> Option<LoadPlan> {
    cx.checked(|cx| {
        let mut load = cx.key("load");
        let (model, start, profile) = timeline(&mut load, s.load, own_timeline)?;
        let scale = if model == Model::Rate {
            rails.rate_scale()
        } else {
            1.0
        };
        let start = start * scale;
        let profile = profile.map(|p| p.scaled(scale).stretched(rails.time_scale));
        let peak = profile.as_ref().map_or(start, Profile::peak);
        if model == Model::Rate && peak > rails.max_rate {
            load.problem(format!(
                "peak rate {peak:.0}/s exceeds the limit of {:.0}/s (limits.max_rate)",
                rails.max_rate
            ));
        }
        // Each user holds a connection, so the cap on connections caps users.
        if model == Model::Users && peak > s.load.max_connections as f64 {
            load.problem(format!(
                "peak {peak:.0} users exceed max_connections {} (each user holds one connection)",
                s.load.max_connections
            ));
        }
        let mix = mix(&mut load, s.load, rails);
        let names: Vec<&str> = mix.iter().map(|e| e.name.as_str()).collect();
        let thresholds = rules(&mut cx.key("thresholds"), s.thresholds, &names, rails);
        let aborts = rules(&mut cx.key("abort"), s.aborts, &names, rails);
        let mut load = cx.key("load");
        if s.load.threads == 0 || s.load.threads > 64 {
            load.problem_at("threads", "must be 1 to 64");
        }
        if s.load.max_connections == 0 {
            load.problem_at("max_connections", "must be at least 1");
        }
        let workload = Workload {
            check: s.check.to_string(),
            model,
            mix: Arc::new(mix),
            max_connections: s.load.max_connections,
            max_rate: rails.max_rate,
            request_timeout: s.load.timeout.0,
            threads: s.load.threads,
            thresholds,
            aborts,
            engine: super::engine::run,
        };
        Some(LoadPlan {
            workload,
            start,
            profile,
        })
    })
}

/// The model, the start target, and the section's own profile: required
/// with `own_timeline`, else only if the section gives one.
fn timeline(
    cx: &mut BuildCx,
    cfg: &LoadConfig,
    own_timeline: bool,
) -> Option<(Model, f64, Option<Profile>)> {
    let model = match (&cfg.rate, cfg.concurrency) {
        (Some(_), None) => Model::Rate,
        (None, Some(_)) => Model::Users,
        _ => {
            cx.problem("set exactly one of `rate` (open model) or `concurrency` (closed model)");
            return None;
        }
    };
    let start = match (&cfg.rate, cfg.concurrency) {
        (Some(r), _) => parse_rate(r).map_err(|e| cx.problem_at("rate", e)).ok()?,
        (_, Some(n)) => f64::from(n),
        _ => unreachable!("checked above"),
    };
    let profile = match (&cfg.stages, cfg.duration) {
        (None, None) if !own_timeline => return Some((model, start, None)),
        (Some(s), None) => Profile {
            start,
            stages: parse_stages(s, model == Model::Rate)
                .map_err(|e| cx.problem_at("stages", e))
                .ok()?,
        },
        (None, Some(d)) => Profile::constant(start, d.0),
        _ => {
            cx.problem("set `duration` for a constant load, or `stages` for a ramp");
            return None;
        }
    };
    if profile.duration().is_zero() {
        cx.problem("the load lasts no time");
        return None;
    }
    Some((model, start, Some(profile)))
}

/// The mix, each request an HTTP probe config compiled by the probe's own
/// build; `cx` is at `load`.
fn mix(cx: &mut BuildCx, cfg: &LoadConfig, rails: &Guardrails) -> Vec<MixItem> {
    if cfg.mix.is_empty() {
        cx.problem_at("mix", "add at least one request");
    }
    let mut list = cx.key("mix");
    let mut out = Vec::new();
    for (i, m) in cfg.mix.iter().enumerate() {
        let mut item = list.index(i);
        let name = m.name.clone().unwrap_or_else(|| format!("entry{i}"));
        if m.weight == 0 {
            item.problem_at("weight", "must be at least 1");
        }
        let mut http = item.key("http");
        let Some(probe) = HttpProbe::build(&m.http, &mut http) else {
            continue;
        };
        if !rails.allows(&probe.host()) {
            http.problem_at(
                "url",
                format!(
                    "host `{}` is not an allowed load target (loopback, hosts the config's probes use, limits.allow_hosts, --allow-host)",
                    probe.host()
                ),
            );
            continue;
        }
        match Request::from_probe(&probe) {
            Ok(request) => out.push(MixItem {
                name,
                weight: m.weight,
                request,
            }),
            Err(e) => http.problem(e),
        }
    }
    out
}

/// Threshold or abort rules; `cx` is at the list, `names` are the mix's.
fn rules(cx: &mut BuildCx, exprs: &[String], names: &[&str], rails: &Guardrails) -> Vec<Rule> {
    exprs
        .iter()
        .enumerate()
        .filter_map(
            |(i, expr)| match Rule::parse(expr).map(|r| r.stretched(rails.time_scale)) {
                Ok(r) if r.entry.as_deref().is_some_and(|e| !names.contains(&e)) => {
                    cx.index(i)
                        .problem(format!("no mix entry named `{}`", r.entry.unwrap()));
                    None
                }
                Ok(r) => Some(r),
                Err(e) => {
                    cx.index(i).problem(e);
                    None
                }
            },
        )
        .collect()
}

impl Workload {
    /// The mix entries' names, in order: the `entry` label values.
    pub(crate) fn names(&self) -> Vec<String> {
        self.mix.iter().map(|e| e.name.clone()).collect()
    }

    /// A one-line description of this workload driven through `profile`:
    /// `constant-rate 2000/s for 1m`.
    pub(crate) fn describe(&self, profile: &Profile) -> String {
        let p = profile;
        let constant = p.stages.len() == 1 && p.start == p.stages[0].target;
        let dur = crate::units::human_duration(p.duration());
        match (self.model, constant) {
            (Model::Rate, true) => format!("constant-rate {:.0}/s for {dur}", p.start),
            (Model::Rate, false) => format!(
                "ramping-rate, {} stages, peak {:.0}/s, {dur}",
                p.stages.len(),
                p.peak()
            ),
            (Model::Users, true) => format!("constant-concurrency {:.0} users for {dur}", p.start),
            (Model::Users, false) => format!(
                "ramping-concurrency, {} stages, peak {:.0} users, {dur}",
                p.stages.len(),
                p.peak()
            ),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::{Document, Problems};
    use crate::redact::Redactor;

    /// How a test compiles a section: `LoadPlan::build` or `build_base`.
    pub(crate) type Build = fn(&mut BuildCx, &LoadSection, &Guardrails) -> Option<LoadPlan>;

    /// Compiles the load of the first check in `yaml` with `f` under
    /// `rails`: the plan, and the problems as `path: message`.
    pub(crate) fn compile_in(
        yaml: &str,
        f: Build,
        rails: &Guardrails,
    ) -> (Option<LoadPlan>, Vec<String>) {
        let doc = Document::parse("t", yaml, &|_| None).unwrap();
        let c = &doc.config.checks[0];
        let section = LoadSection {
            check: &c.name,
            load: c.load.as_ref().unwrap(),
            thresholds: &c.thresholds,
            aborts: &c.abort,
        };
        let (mut problems, mut redactor) = (Problems::default(), Redactor::default());
        let mut cx = BuildCx::new(&mut problems, &mut redactor);
        let plan = f(&mut cx.key("checks").index(0), &section, rails);
        let found = problems
            .0
            .iter()
            .map(|(p, m)| format!("{p}: {m}"))
            .collect();
        (plan, found)
    }

    /// Compiles the first check's load with `f`, as a shard `shard` of 4.
    fn compile(load: &str, f: Build, shard: u32) -> (Option<LoadPlan>, Vec<String>) {
        let yaml = format!("checks: [{{name: c, load: {load}, thresholds: ['p95[api] < 1s']}}]");
        let rails = Guardrails {
            max_rate: 1000.0,
            allow_hosts: HashSet::new(),
            shard: (shard, 4),
            time_scale: 2.0,
        };
        compile_in(&yaml, f, &rails)
    }

    const MIX: &str = "mix: [{name: api, http: {url: 'http://127.0.0.1:9/'}}]";

    #[test]
    fn a_scenario_base_has_a_start_and_no_profile() {
        let (plan, problems) = compile(&format!("{{rate: 400/s, {MIX}}}"), LoadPlan::build_base, 1);
        assert_eq!(problems, Vec::<String>::new());
        let plan = plan.unwrap();
        assert_eq!(plan.start, 100.0, "a quarter of the rate");
        assert_eq!(plan.profile, None);
        assert_eq!(plan.workload.names(), ["api"]);
        assert_eq!(plan.workload.thresholds.len(), 1);
    }

    #[test]
    fn an_own_timeline_is_scaled_and_stretched() {
        let load = format!("{{rate: 400/s, stages: '10s:800/s', {MIX}}}");
        let (plan, problems) = compile(&load, LoadPlan::build, 0);
        assert_eq!(problems, Vec::<String>::new());
        let plan = plan.unwrap();
        let profile = plan.profile.unwrap();
        assert_eq!(
            (plan.start, profile.start, profile.peak()),
            (100.0, 100.0, 200.0)
        );
        assert_eq!(profile.duration(), Duration::from_secs(20));
        assert_eq!(
            plan.workload.describe(&profile),
            "ramping-rate, 1 stages, peak 200/s, 20.00s"
        );
    }

    #[test]
    fn a_missing_timeline_is_reported_only_where_one_is_needed() {
        let bad_mix = "{rate: 10/s, mix: [{weight: 0, http: {url: 'x'}}]}";
        let (plan, problems) = compile(bad_mix, LoadPlan::build, 0);
        assert!(plan.is_none());
        // Nothing past the timeline is looked at, as before the split.
        assert_eq!(
            problems,
            ["checks[0].load: set `duration` for a constant load, or `stages` for a ramp"]
        );
        let (plan, problems) = compile(bad_mix, LoadPlan::build_base, 0);
        assert!(plan.is_none());
        assert!(problems.iter().all(|p| !p.contains("`duration`")));
        assert!(problems.contains(&"checks[0].load.mix[0].weight: must be at least 1".into()));
    }

    #[test]
    fn a_base_over_the_limit_is_refused() {
        let (plan, problems) =
            compile(&format!("{{rate: 8000/s, {MIX}}}"), LoadPlan::build_base, 0);
        assert!(plan.is_none());
        assert_eq!(
            problems,
            ["checks[0].load: peak rate 2000/s exceeds the limit of 1000/s (limits.max_rate)"]
        );
    }

    #[test]
    fn the_closed_model_is_capped_like_the_open_one() {
        for (load, want) in [
            ("concurrency: 1, stages: '3s:inf'", "users"),
            ("concurrency: 1, stages: '3s:nan'", "users"),
            ("concurrency: 1, stages: '3s:-4'", "users"),
            (
                "concurrency: 10, max_connections: 8, duration: 3s",
                "max_connections",
            ),
            (
                "concurrency: 1, max_connections: 8, stages: '3s:9'",
                "max_connections",
            ),
        ] {
            let (plan, problems) = compile(&format!("{{{load}, {MIX}}}"), LoadPlan::build, 0);
            assert!(plan.is_none(), "{load}: accepted");
            assert!(
                problems.iter().any(|p| p.contains(want)),
                "{load}: {problems:?}"
            );
        }
        let (plan, problems) = compile(
            &format!("{{concurrency: 8, max_connections: 8, duration: 3s, {MIX}}}"),
            LoadPlan::build,
            0,
        );
        assert_eq!(problems, Vec::<String>::new());
        assert!(plan.is_some());
    }
}
