//! The PostgreSQL probe against a real server (initdb + pg_ctl, loopback,
//! temporary directory): success, wrong password, server stopped and
//! restarted, a slow query bounded by the timeout, and value queries.

mod common;

use std::time::{Duration, Instant};

use common::*;
use sidewatch::net::{Phase, Reason};
use sidewatch::probes::Outcome;

fn config(dsn: &str, extra: &str) -> String {
    format!("probes:\n  - name: db\n    interval: 5s\n    timeout: 1s\n    postgres:\n      dsn: \"{dsn}\"\n{extra}")
}

/// The plan of a probe of `pg`, with `extra` config lines.
fn on(pg: &Postgres, extra: &str) -> sidewatch::plan::Plan {
    plan(&config(&pg.dsn(&pg.password), extra))
}

async fn run(probe: &sidewatch::probes::Probe) -> Outcome {
    let t = Instant::now();
    let o = probe.run().await;
    assert!(
        t.elapsed() <= probe.timeout + Duration::from_millis(200),
        "run took {:?}",
        t.elapsed()
    );
    o
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn success_measures_connect_and_query() {
    let pg = Postgres::start();
    let p = on(
        &pg,
        "      query: SELECT 41 + 1\n      expect: {rows: 1, value: '42'}\n",
    );
    let o = run(&p.probes[0]).await;
    assert!(o.success(), "{:?}", o.result);
    assert!(o.recorder.phase(Phase::Connect).is_some());
    assert!(o.recorder.phase(Phase::Query).is_some());
    let p = on(&pg, "      query: SELECT 1\n      expect: {value: '2'}\n");
    assert_eq!(run(&p.probes[0]).await.reason(), Some(Reason::Assertion));
    let p = on(&pg, "      query: SELECT * FROM no_such_table\n");
    assert_eq!(run(&p.probes[0]).await.reason(), Some(Reason::QueryError));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dsn_options_reach_the_server_beside_the_statement_timeout() {
    let pg = Postgres::start();
    let dsn = format!(
        "{} options='-c search_path=probe_schema'",
        pg.dsn(&pg.password)
    );
    let p = plan(&config(
        &dsn,
        "      query: SELECT current_setting('search_path') || ' ' || current_setting('statement_timeout')\n      expect: {value: 'probe_schema 1s'}\n",
    ));
    let o = run(&p.probes[0]).await;
    assert!(o.success(), "{:?}", o.result);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_auth() {
    let pg = Postgres::start();
    let p = plan(&config(&pg.dsn("not-the-password"), ""));
    let o = run(&p.probes[0]).await;
    assert_eq!(o.reason(), Some(Reason::Auth), "{:?}", o.result);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_query_times_out_on_time() {
    let pg = Postgres::start();
    for mode in ["fresh", "pooled"] {
        let p = on(
            &pg,
            &format!("      mode: {mode}\n      query: SELECT pg_sleep(5)\n"),
        );
        let t = Instant::now();
        let o = run(&p.probes[0]).await;
        assert_eq!(o.reason(), Some(Reason::Timeout), "{mode}: {:?}", o.result);
        assert!(t.elapsed() >= Duration::from_millis(900));
    }
}

/// A query that outlives the probe's `statement_timeout` (it turns it off).
const LONG_SLEEP: &str = "SET statement_timeout = 0; SELECT pg_sleep(30)";

/// Backends still running [`LONG_SLEEP`] after at most 5 s of waiting for
/// them to drop to `want`.
async fn sleeping_backends(pg: &Postgres, want: i64) -> i64 {
    let (client, conn) = tokio_postgres::connect(&pg.dsn(&pg.password), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let count = "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' \
                 AND query LIKE '%pg_sleep(30)%' AND pid <> pg_backend_pid()";
    let mut n = -1;
    for _ in 0..50 {
        n = client.query_one(count, &[]).await.unwrap().get(0);
        if n <= want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timed_out_fresh_runs_leave_no_connection_behind() {
    let pg = Postgres::start();
    // The backend notices a closed socket within 100 ms, even mid-sleep.
    let query = format!("SET client_connection_check_interval = '100ms'; {LONG_SLEEP}");
    let p = plan(&config(
        &pg.dsn(&pg.password),
        &format!("      mode: fresh\n      query: \"{query}\"\n"),
    ));
    for _ in 0..3 {
        let o = run(&p.probes[0]).await;
        assert_eq!(o.reason(), Some(Reason::Timeout), "{:?}", o.result);
    }
    assert_eq!(
        sleeping_backends(&pg, 0).await,
        0,
        "the timed-out runs' connections stay open"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_pooled_query_is_cancelled_over_tls() {
    let pg = Postgres::start();
    pg.enable_tls();
    let p = plan(&config(
        &pg.dsn(&pg.password),
        &format!(
            "      mode: pooled\n      tls: {{mode: require}}\n      query: \"{LONG_SLEEP}\"\n"
        ),
    ));
    let probe = &p.probes[0];
    let ok = plan(&config(
        &pg.dsn(&pg.password),
        "      mode: fresh\n      tls: {mode: require}\n      query: SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()\n      expect: {value: 'true'}\n",
    ));
    let o = run(&ok.probes[0]).await;
    assert!(o.success(), "the probe speaks TLS: {:?}", o.result);
    // The first run is cut off mid-query; the second cancels that query
    // (over TLS, as the server requires of this connection) and is cut off in turn.
    for _ in 0..2 {
        let o = run(probe).await;
        assert_eq!(o.reason(), Some(Reason::Timeout), "{:?}", o.result);
    }
    assert_eq!(
        sleeping_backends(&pg, 1).await,
        1,
        "the first query was not cancelled"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_server_is_refused_then_recovers() {
    let pg = Postgres::start();
    for mode in ["fresh", "pooled"] {
        let p = on(&pg, &format!("      mode: {mode}\n"));
        let probe = &p.probes[0];
        assert!(run(probe).await.success(), "{mode}: first run");
        pg.stop();
        let o = run(probe).await;
        // A pooled connection sees its socket reset first, then refusals.
        let o = if o.reason() == Some(Reason::Reset) {
            run(probe).await
        } else {
            o
        };
        assert_eq!(o.reason(), Some(Reason::Refused), "{mode}: {:?}", o.result);
        pg.resume();
        let o = run(probe).await;
        assert!(o.success(), "{mode}: recovery {:?}", o.result);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pooled_mode_reuses_its_connection() {
    let pg = Postgres::start();
    let p = on(
        &pg,
        "      mode: pooled\n      query: SELECT pg_backend_pid()\n",
    );
    let probe = &p.probes[0];
    let first = run(probe).await;
    assert!(first.recorder.phase(Phase::Connect).is_some());
    let second = run(probe).await;
    assert!(second.success());
    assert!(
        second.recorder.phase(Phase::Connect).is_none(),
        "the second run reused the connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn value_queries_become_gauges() {
    let pg = Postgres::start();
    let query = "SELECT count(*) * 100.0 / current_setting('max_connections')::int AS pct FROM pg_stat_activity";
    let yaml = config(
        &pg.dsn(&pg.password),
        &format!("      query: \"{query}\"\n      values: {{columns: [pct]}}\n"),
    );
    let sidecar = sidewatch::app::Sidecar::start(
        plan(&yaml.replace("interval: 5s", "interval: 1s")),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let addr = sidecar.addr;
    let mut value = None;
    for _ in 0..50 {
        let text = tokio::task::spawn_blocking(move || http_get(addr, "/metrics", None).unwrap().1)
            .await
            .unwrap();
        value = sample(
            &text,
            "sidewatch_query_value",
            &[("probe", "db"), ("column", "pct"), ("row", "0")],
        );
        if value.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // At least our own connection, of max_connections = 40.
    let pct = value.expect("sidewatch_query_value exported");
    assert!((2.5..=100.0).contains(&pct), "connections {pct}%");
    sidecar.shutdown().await;

    // Rows beyond max_rows are not exported; label text comes from a column.
    let yaml = config(
        &pg.dsn(&pg.password),
        "      query: \"SELECT 'r' || g AS name, g AS n FROM generate_series(1, 10) g\"\n      values: {columns: [n], label: name, max_rows: 3}\n",
    );
    let p = plan(&yaml);
    let o = run(&p.probes[0]).await;
    let rows: Vec<(&str, f64)> = o
        .recorder
        .values
        .iter()
        .map(|v| (v.row.as_str(), v.value))
        .collect();
    assert_eq!(rows, vec![("r1", 1.0), ("r2", 2.0), ("r3", 3.0)]);
}
