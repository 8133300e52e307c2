//! The Kafka probe against a real Kafka-protocol broker (tansu, in-memory
//! storage, loopback): round trip, broker killed and restarted, and lost
//! messages counted.

mod common;

use std::time::{Duration, Instant};

use common::*;
use sidewatch::app::Sidecar;
use sidewatch::net::{Phase, Reason};

fn config(brokers: &str, interval: &str, timeout: &str, extra: &str) -> String {
    format!(
        "probes:\n  - name: ingest\n    interval: {interval}\n    timeout: {timeout}\n    kafka: {{brokers: '{brokers}', topic: probe-topic, partitions: 3{extra}}}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_visits_every_partition_and_records_latency() {
    let broker = Broker::start();
    let p = plan(&config(&broker.brokers(), "5s", "3s", ""));
    let probe = &p.probes[0];
    let mut partitions = std::collections::BTreeSet::new();
    for _ in 0..6 {
        let t = Instant::now();
        let o = probe.run().await;
        assert!(t.elapsed() <= probe.timeout + Duration::from_millis(200));
        assert!(o.success(), "{:?}", o.result);
        assert!(o.recorder.phase(Phase::Produce).is_some());
        let e2e = o.recorder.phase(Phase::EndToEnd).unwrap();
        assert!(
            e2e >= o.recorder.phase(Phase::Produce).unwrap(),
            "end to end includes the produce"
        );
        let stats = o.recorder.kafka.unwrap();
        assert_eq!(
            (stats.lost, stats.duplicates, stats.out_of_order),
            (0, 0, 0)
        );
        let (partition, lag) = stats.lag.unwrap();
        assert_eq!(lag, 0);
        partitions.insert(partition);
    }
    assert_eq!(partitions.len(), 3, "every partition probed in turn");
}

async fn scrape(addr: std::net::SocketAddr) -> (String, Duration) {
    let t = Instant::now();
    let body = tokio::task::spawn_blocking(move || http_get(addr, "/metrics", None).unwrap().1)
        .await
        .unwrap();
    (body, t.elapsed())
}

async fn wait_metric(
    addr: std::net::SocketAddr,
    what: &str,
    limit: Duration,
    ok: impl Fn(&str) -> bool,
) -> String {
    let end = Instant::now() + limit;
    loop {
        let (text, took) = scrape(addr).await;
        assert!(took < Duration::from_millis(500), "/metrics took {took:?}");
        if ok(&text) {
            return text;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_down_is_reported_and_the_probe_recovers_by_itself() {
    let mut broker = Broker::start();
    let yaml = config(&broker.brokers(), "1s", "900ms", "");
    let sidecar = Sidecar::start(plan(&yaml), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = sidecar.addr;
    let success = |t: &str| {
        sample(
            t,
            "sidewatch_probe_runs_total",
            &[("probe", "ingest"), ("result", "success")],
        )
        .unwrap_or(0.0)
    };
    let down = |t: &str| {
        sample(
            t,
            "sidewatch_probe_failures_total",
            &[("probe", "ingest"), ("reason", "broker_down")],
        )
        .unwrap_or(0.0)
    };
    let text = wait_metric(addr, "a successful run", Duration::from_secs(10), |t| {
        success(t) >= 1.0
    })
    .await;
    assert!(text.contains("sidewatch_probe_phase_duration_seconds_count{probe=\"ingest\",kind=\"kafka\",phase=\"end_to_end\"}"));

    broker.kill();
    let killed = Instant::now();
    wait_metric(addr, "broker_down", Duration::from_secs(10), |t| {
        down(t) >= 1.0
    })
    .await;
    // Within a couple of runs (1 s interval, 0.9 s timeout).
    assert!(
        killed.elapsed() < Duration::from_secs(4),
        "took {:?}",
        killed.elapsed()
    );

    broker.resume();
    let before = success(&scrape(addr).await.0);
    wait_metric(addr, "recovery", Duration::from_secs(20), |t| {
        success(t) > before
    })
    .await;
    sidecar.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_messages_are_counted_not_hidden() {
    let broker = Broker::start();
    // acks 0: a produce counts as done once written to the socket, so a
    // frozen broker lets the produce "succeed" and the consume never come.
    let p = plan(&config(&broker.brokers(), "5s", "2s", ", acks: '0'"));
    let probe = &p.probes[0];
    assert!(probe.run().await.success());
    let pid = broker.pid();
    signal(pid, "-STOP");
    let o = probe.run().await;
    signal(pid, "-CONT");
    assert_eq!(o.reason(), Some(Reason::Lost), "{:?}", o.result);
    assert_eq!(o.recorder.kafka.as_ref().unwrap().lost, 1);
    assert!(o.recorder.phase(Phase::Produce).is_some());
    assert!(o.recorder.phase(Phase::EndToEnd).is_none());
    // The stream resumes, and the late message is not mistaken for a new one.
    let mut ok = false;
    for _ in 0..5 {
        if probe.run().await.success() {
            ok = true;
            break;
        }
    }
    assert!(ok, "the probe did not recover after the broker resumed");
}

fn signal(pid: u32, sig: &str) {
    assert!(std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success());
}

/// A run that finds the broker gone returns its reason within its timeout
/// (+200 ms), and closing the broken session (producer flush, consumer
/// close, destroy) happens off the async worker: the single-threaded
/// runtime here keeps ticking meanwhile.
#[tokio::test]
async fn a_broken_session_is_closed_off_the_async_worker() {
    let broker = Broker::start();
    let p = plan(&config(&broker.brokers(), "5s", "900ms", ""));
    let probe = &p.probes[0];
    let o = probe.run().await;
    assert!(o.success(), "{:?}", o.result);
    // Frozen: connections stay open and nothing answers.
    let stop = |sig: &str| {
        let st = std::process::Command::new("kill")
            .args([sig, &broker.pid().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
    };
    stop("-STOP");
    let stall = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let s = stall.clone();
    let ticker = tokio::spawn(async move {
        loop {
            let t = Instant::now();
            tokio::time::sleep(Duration::from_millis(10)).await;
            let late = t.elapsed().as_millis() as u64;
            s.fetch_max(late, std::sync::atomic::Ordering::Relaxed);
        }
    });
    let mut worst = Duration::ZERO;
    for _ in 0..3 {
        let t = Instant::now();
        let o = probe.run().await;
        worst = worst.max(t.elapsed());
        assert!(!o.success());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    ticker.abort();
    stop("-CONT");
    let stall = stall.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!("slowest failing run {worst:?}, longest tick {stall} ms");
    assert!(
        worst <= probe.timeout + Duration::from_millis(200),
        "a failing run took {worst:?}"
    );
}
