//! The leak detector on real processes whose memory follows known
//! profiles, sampled through procfs like a service's. Time is scaled 30x:
//! a 1 MB/min leak grows 0.5 MB/s, "10 minutes after warm-up" is 20 s,
//! a 30 s window is 1 s, and the floor (0.5 MB/min) becomes 15 MB/min.
//!
//! Figures print with `cargo test --test leak -- --nocapture`.

mod common;

use std::process::{Child, Command, Stdio};

use common::*;
use sidewatch::check::execute::execute;
use sidewatch::check::leak::{analyse, LeakParams};
use sidewatch::check::result::Details;
use sidewatch::load::Quiet;
use tokio_util::sync::CancellationToken;

const SCALE: f64 = 30.0;

/// Python that shapes its RSS with `rss_mb(t)` (MB over the base), touching
/// every page it holds, sampled every 50 ms.
fn shaped_process(body: &str, pid_file: &std::path::Path) -> Child {
    let script = format!(
        r#"
import math, os, random, time
random.seed(7)
MB = 1 << 20
def rss_mb(t):
{body}
held = []
start = time.time()
open({pid:?}, "w").write(str(os.getpid()))
while time.time() - start < 60:
    t = time.time() - start
    want = max(0, int(rss_mb(t)))
    while len(held) < want:
        held.append(bytearray(b"x") * MB)
    del held[want:]
    time.sleep(0.05)
"#,
        pid = pid_file.to_str().unwrap()
    );
    Command::new("python3")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .spawn()
        .expect("python3")
}

struct Profile {
    name: &'static str,
    body: &'static str,
    leaks: bool,
}

const PROFILES: [Profile; 6] = [
    // 1 MB/min scaled: 0.5 MB/s.
    Profile {
        name: "linear",
        body: "    return 0.5 * t",
        leaks: true,
    },
    // Garbage-collector sawtooth: 20 MB built up and dropped every 0.6 s.
    Profile {
        name: "sawtooth",
        body: "    return 20 * ((t % 0.6) / 0.6)",
        leaks: false,
    },
    // A cache that fills in its first 8 s, then plateaus.
    Profile {
        name: "cache",
        body: "    return 3 * min(t, 8)",
        leaks: false,
    },
    // One step of 40 MB at 12 s.
    Profile {
        name: "step",
        body: "    return 40 if t >= 12 else 0",
        leaks: false,
    },
    // Noise around a flat level.
    Profile {
        name: "noisy",
        body: "    return 10 + random.uniform(-8, 8)",
        leaks: false,
    },
    // A slow oscillation, 15 MB amplitude, 7 s period.
    Profile {
        name: "oscillation",
        body: "    return 15 + 15 * math.sin(t * 2 * math.pi / 7)",
        leaks: false,
    },
];

fn config(name: &str, pid_file: &std::path::Path) -> String {
    format!(
        "service: {{processes: [{{label: {name}, pid_file: {pid}}}]}}
checks:
  - name: leak-{name}
    leak:
      duration: 22s
      warmup: 2s
      window: 1s
      sample_interval: 100ms
      min_slope: {floor}MB/min
",
        pid = pid_file.display(),
        floor = 0.5 * SCALE,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaks_are_caught_and_other_profiles_are_not_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let mut kids = Vec::new();
    let mut runs = Vec::new();
    for p in &PROFILES {
        let pid_file = dir.path().join(format!("{}.pid", p.name));
        kids.push(shaped_process(p.body, &pid_file));
        let plan = plan(&config(p.name, &pid_file));
        let check = plan.checks.into_iter().next().unwrap();
        runs.push(tokio::spawn(async move {
            execute(&check, None, &mut Quiet, CancellationToken::new()).await
        }));
    }
    let mut failures = Vec::new();
    for (p, run) in PROFILES.iter().zip(runs) {
        let r = run.await.unwrap();
        let Details::Leak(l) = &r.details else {
            panic!()
        };
        eprintln!(
            "{:<12} suspected={:<5} slope {:>6.2} MB/min scaled ({:>5.2} real)  p={:.4}  windows={} shifts={}  {}",
            p.name,
            l.suspected,
            l.slope_bytes_per_second * 60.0 / 1e6,
            l.slope_bytes_per_second * 60.0 / 1e6 / SCALE,
            l.p_value,
            l.windows,
            l.level_shifts,
            l.reason
        );
        if l.suspected != p.leaks {
            failures.push(format!("{}: {}", p.name, l.reason));
        }
        if p.leaks {
            report_detection_time(&r.memory);
            let real = l.slope_bytes_per_second * 60.0 / 1e6 / SCALE;
            assert!((0.7..1.3).contains(&real), "linear slope {real} MB/min");
        }
    }
    for mut k in kids {
        let _ = k.kill();
        let _ = k.wait();
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// The earliest time after warm-up at which the samples so far flag the leak.
fn report_detection_time(points: &[sidewatch::check::result::MemPoint]) {
    let params = LeakParams {
        warmup: 2.0,
        window: 1.0,
        min_slope: 0.5 * SCALE * 1e6 / 60.0,
        min_step: 16.0 * 1024.0 * 1024.0,
        alpha: 0.05,
    };
    let first = points
        .iter()
        .map(|p| p.t)
        .filter(|t| *t > 2.0)
        .find(|&t| {
            let prefix: Vec<_> = points.iter().copied().filter(|p| p.t <= t).collect();
            analyse(&prefix, &params, "linear").suspected
        })
        .expect("the leak is flagged within the run");
    let after_warmup = first - points[0].t - 2.0;
    eprintln!(
        "linear leak flagged {after_warmup:.1} s after warm-up = {:.1} min at 1 MB/min real time",
        after_warmup * SCALE / 60.0
    );
    assert!(
        after_warmup <= 20.0,
        "flagged after {after_warmup} s (limit 20 s = 10 min real)"
    );
}
