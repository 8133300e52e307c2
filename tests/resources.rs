//! Resource sampling against real processes and the real cgroup files:
//! RSS of a child that touches memory, CPU of a burner, a restart moving `up`
//! and the start time, selectors by comm and cmdline, and cgroup values.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{assert_at_least, sample};
use prometheus_client::registry::Registry;
use sidewatch::resources::cgroup::CgroupMetrics;
use sidewatch::resources::host::HostMetrics;
use sidewatch::resources::process::ProcessMetrics;
use sidewatch::resources::{ResourceMetrics, Sampler, SamplerMetrics};
use sidewatch::telemetry::{encode_prometheus, PREFIX};

struct Kid(Child);

impl Drop for Kid {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A Python child running `code`, its pid written to `pid_file`.
fn python(code: &str, pid_file: &Path) -> Kid {
    let child = Command::new("python3")
        .args(["-c", code])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    std::fs::write(pid_file, child.id().to_string()).unwrap();
    Kid(child)
}

/// Waits for the child to print a line (it does once it is set up).
fn ready(kid: &mut Kid) {
    use std::io::BufRead;
    let mut line = String::new();
    std::io::BufReader::new(kid.0.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
}

struct Harness {
    registry: Registry,
    metrics: ResourceMetrics,
    sampler: Sampler,
}

impl Harness {
    fn new(yaml: &str) -> Harness {
        // Laid out as the sidecar's registry is (app.rs).
        let mut registry = Registry::with_prefix(PREFIX);
        let metrics = ResourceMetrics::new(
            ProcessMetrics::register(registry.sub_registry_with_prefix("process")),
            HostMetrics::register(registry.sub_registry_with_prefix("host")),
            CgroupMetrics::register(registry.sub_registry_with_prefix("cgroup")),
            SamplerMetrics::register(registry.sub_registry_with_prefix("resources")),
        );
        let plan = common::plan(yaml);
        Harness {
            registry,
            metrics,
            sampler: Sampler::new(plan.resources),
        }
    }

    fn sample(&mut self) -> String {
        self.sampler.sample(&self.metrics);
        encode_prometheus(&self.registry)
    }
}

fn vm_rss(pid: u32) -> f64 {
    common::vm_rss_kb(pid) as f64 * 1024.0
}

fn selector_config(label: &str, selector: &str) -> String {
    format!(
        "service:\n  processes:\n    - {{label: {label}, {selector}}}\nresources: {{host: false, cgroup: {{enabled: false}}}}\n"
    )
}

#[test]
fn rss_of_a_child_that_touches_memory_matches_proc_status() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("app.pid");
    let mut kid = python(
        "import time\nbuf = bytearray(b'\\x01') * (120 << 20)\nprint('ready', flush=True)\ntime.sleep(60)",
        &pid_file,
    );
    ready(&mut kid);
    let mut h = Harness::new(&selector_config(
        "app",
        &format!("pid_file: '{}'", pid_file.display()),
    ));
    let text = h.sample();
    let group = |name: &str, process: &str| sample(&text, name, &[("process", process)]);
    let expected = vm_rss(kid.0.id());
    let got = group("sidewatch_process_resident_memory_bytes", "app").unwrap();
    assert!(got > 120.0 * 1024.0 * 1024.0, "rss {got}");
    assert!(
        (got - expected).abs() / expected < 0.05,
        "sampled {got}, VmRSS {expected}"
    );
    assert_eq!(group("sidewatch_process_up", "app"), Some(1.0));
    assert_eq!(group("sidewatch_process_num_procs", "app"), Some(1.0));
    assert!(group("sidewatch_process_threads", "app").unwrap() >= 1.0);
    assert!(group("sidewatch_process_open_fds", "app").unwrap() >= 3.0);
    // sidewatch's own group is always there.
    assert_eq!(group("sidewatch_process_up", "sidewatch"), Some(1.0));
}

#[test]
fn a_cpu_burner_shows_about_one_core() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("burn.pid");
    let mut kid = python("print('ready', flush=True)\nwhile True: pass", &pid_file);
    ready(&mut kid);
    let mut h = Harness::new(&selector_config(
        "burn",
        &format!("pid_file: '{}'", pid_file.display()),
    ));
    let cpu = |t: &str| {
        sample(
            t,
            "sidewatch_process_cpu_seconds_total",
            &[("process", "burn"), ("mode", "user")],
        )
        .unwrap()
            + sample(
                t,
                "sidewatch_process_cpu_seconds_total",
                &[("process", "burn"), ("mode", "system")],
            )
            .unwrap()
    };
    let t0 = Instant::now();
    let a = cpu(&h.sample());
    std::thread::sleep(Duration::from_secs(3));
    let b = cpu(&h.sample());
    let rate = (b - a) / t0.elapsed().as_secs_f64();
    assert!((0.7..=1.1).contains(&rate), "CPU rate {rate} cores");
}

#[test]
fn a_restart_moves_up_and_the_start_time() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("svc.pid");
    let code = "import time\nprint('ready', flush=True)\ntime.sleep(60)";
    let mut first = python(code, &pid_file);
    ready(&mut first);
    let mut h = Harness::new(&selector_config(
        "svc",
        &format!("pid_file: '{}'", pid_file.display()),
    ));
    let svc = |text: &str, name: &str| sample(text, name, &[("process", "svc")]);
    let text = h.sample();
    assert_eq!(svc(&text, "sidewatch_process_up"), Some(1.0));
    let started = svc(&text, "sidewatch_process_start_time_seconds").unwrap();
    drop(first);
    let text = h.sample();
    assert_eq!(svc(&text, "sidewatch_process_up"), Some(0.0));
    assert_eq!(svc(&text, "sidewatch_process_resident_memory_bytes"), None);
    // Start times have a resolution of one clock tick.
    std::thread::sleep(Duration::from_millis(1100));
    let mut second = python(code, &pid_file);
    ready(&mut second);
    let text = h.sample();
    assert_eq!(svc(&text, "sidewatch_process_up"), Some(1.0));
    let restarted = svc(&text, "sidewatch_process_start_time_seconds").unwrap();
    assert!(restarted > started, "start time {started} -> {restarted}");
}

#[test]
fn comm_and_cmdline_selectors_follow_the_process_table() {
    let marker = format!("sidewatch-selector-test-{}", std::process::id());
    let kids: Vec<Kid> = (0..2)
        .map(|_| Kid(Command::new("sleep").arg("30").spawn().unwrap()))
        .chain(std::iter::once(Kid(Command::new("python3")
            .args(["-c", "import time,sys; time.sleep(30)", &marker])
            .spawn()
            .unwrap())))
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let yaml = format!(
        "service:\n  processes:\n    - {{label: sleepers, comm: sleep}}\n    - {{label: marked, cmdline: '{marker}$'}}\n    - {{label: none, comm: no-such-proc}}\nresources: {{host: false, cgroup: {{enabled: false}}}}\n"
    );
    let mut h = Harness::new(&yaml);
    let text = h.sample();
    assert_at_least(
        &text,
        "sidewatch_process_num_procs",
        &[("process", "sleepers")],
        2.0,
    );
    assert_eq!(
        sample(
            &text,
            "sidewatch_process_num_procs",
            &[("process", "marked")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "sidewatch_process_up", &[("process", "none")]),
        Some(0.0)
    );
    drop(kids);
}

fn read_number(path: &Path) -> Option<f64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The cgroup's memory files as this test reads them itself: v2 where its
/// memory controller is enabled, else v1. Returns (usage, limit).
fn cgroup_memory_files() -> (f64, f64) {
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let v2 = own
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(|rel| Path::new("/sys/fs/cgroup").join(rel.trim_start_matches('/')));
    match v2.filter(|d| d.join("memory.current").exists()) {
        Some(d) => (
            read_number(&d.join("memory.current")).unwrap(),
            read_number(&d.join("memory.max")).unwrap_or(f64::INFINITY),
        ),
        None => {
            // v1: our own memory cgroup, or the mount root when the recorded
            // path is not visible (a cgroup namespace).
            let rel = own
                .lines()
                .find_map(|l| l.split_once(":memory:").map(|(_, r)| r))
                .unwrap_or("/");
            let nested = Path::new("/sys/fs/cgroup/memory").join(rel.trim_start_matches('/'));
            let d = if nested.exists() {
                nested
            } else {
                Path::new("/sys/fs/cgroup/memory").to_path_buf()
            };
            let l = read_number(&d.join("memory.limit_in_bytes")).unwrap();
            let limit = if l >= (1u64 << 62) as f64 {
                f64::INFINITY
            } else {
                l
            };
            (
                read_number(&d.join("memory.usage_in_bytes")).unwrap(),
                limit,
            )
        }
    }
}

#[test]
fn cgroup_values_match_the_files_under_sys_fs_cgroup() {
    let mut h = Harness::new("resources: {host: false}\n");
    // Other tests (and the compiler) run in the same cgroup, so its usage
    // moves by hundreds of MB between reads. Bracket our sample with two
    // reads of the file and retry until the cgroup holds still.
    let mut last = None;
    for _ in 0..20 {
        let (before, file_limit) = cgroup_memory_files();
        let text = h.sample();
        let (after, _) = cgroup_memory_files();
        let usage =
            sample(&text, "sidewatch_cgroup_memory_usage_bytes", &[]).expect("a cgroup is sampled");
        let limit = sample(&text, "sidewatch_cgroup_memory_limit_bytes", &[]).unwrap();
        assert_eq!(limit, file_limit);
        let (lo, hi) = (before.min(after), before.max(after));
        if (hi - lo) / lo < 0.02 {
            assert!(
                usage >= lo * 0.98 && usage <= hi * 1.02,
                "usage {usage} outside the file's {lo}..{hi}"
            );
            last = Some(usage);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        last.is_some(),
        "the cgroup's memory never held still for 2 reads"
    );
    let cpu1 = sample(&h.sample(), "sidewatch_cgroup_cpu_usage_seconds_total", &[]).unwrap();
    let cpu2 = sample(&h.sample(), "sidewatch_cgroup_cpu_usage_seconds_total", &[]).unwrap();
    assert!(cpu1 > 0.0 && cpu2 >= cpu1);
}

#[test]
fn host_series_are_present_and_sane() {
    let mut h = Harness::new("resources: {cgroup: {enabled: false}}\n");
    h.sample();
    std::thread::sleep(Duration::from_millis(200));
    let text = h.sample();
    let ratio = sample(&text, "sidewatch_host_cpu_utilization_ratio", &[]).unwrap();
    assert!((0.0..=1.0).contains(&ratio));
    let total = sample(&text, "sidewatch_host_memory_total_bytes", &[]).unwrap();
    let avail = sample(&text, "sidewatch_host_memory_available_bytes", &[]).unwrap();
    assert!(total > 0.0 && avail <= total);
    let size = sample(
        &text,
        "sidewatch_host_filesystem_size_bytes",
        &[("mountpoint", "/")],
    )
    .unwrap();
    assert!(size > 0.0);
    assert!(
        !text.contains("interface=\"lo\""),
        "lo is excluded by default"
    );
}
