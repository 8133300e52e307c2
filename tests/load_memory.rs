//! Memory stays flat over a long run: 5000 requests/s for two minutes, RSS
//! compared at 30 s and at 120 s. Its own test binary, so no other test
//! competes with it for the CPU.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn memory_is_flat_over_a_two_minute_5k_per_second_run() {
    let url = format!("{}/health", common::nginx());
    let mut child = Command::new(env!("CARGO_BIN_EXE_sidewatch"))
        .args([
            "load",
            "--url",
            &url,
            "--rate",
            "5000/s",
            "--duration",
            "125s",
        ])
        .args(["--threshold", "p99 < 1s over 10s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    std::thread::sleep(Duration::from_secs(30));
    let at_30 = common::vm_rss_kb(pid);
    std::thread::sleep(Duration::from_secs(90));
    let at_120 = common::vm_rss_kb(pid);
    let out = child.wait().unwrap();
    assert!(out.success() || out.code() == Some(1), "{out:?}");
    eprintln!("RSS at 30 s: {at_30} kB, at 120 s: {at_120} kB");
    // 450,000 requests between the readings; allow 2 MB of allocator noise.
    assert!(
        at_120 <= at_30 + 2048,
        "RSS grew from {at_30} kB to {at_120} kB"
    );
}
