//! The `sidewatch` binary: exit codes, located config errors, the probe
//! table, SIGHUP reload, SIGTERM drain, and secrets kept out of every output.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn sidewatch() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sidewatch"))
}

fn run(args: &[&str]) -> Output {
    sidewatch().args(args).output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn write(dir: &Path, name: &str, body: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p.display().to_string()
}

/// Writes a config that `check-config` must reject (exit 2): its path and
/// the errors printed.
fn rejected(dir: &Path, name: &str, body: &str) -> (String, String) {
    let f = write(dir, name, body);
    let out = run(&["check-config", &f]);
    assert_eq!(out.status.code(), Some(2));
    (f, text(&out.stderr))
}

#[test]
fn check_config_accepts_the_documented_example() {
    let out = run(&["check-config", "config/example.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("ok ("));
}

#[test]
fn check_config_reports_every_error_with_file_line_column_and_path() {
    let dir = tempfile::tempdir().unwrap();
    let (f, err) = rejected(dir.path(), "bad.yaml", "probes:\n  - name: a\n    http: {url: 'http://[::1'}\n  - name: a\n    tcp: {address: 'x:1'}\n");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(
        lines[0].starts_with(&format!("{f}:3:17: probes[0].http.url: invalid URL")),
        "{err}"
    );
    assert!(
        lines[1].starts_with(&format!("{f}:4:11: probes[1].name: duplicate probe name")),
        "{err}"
    );

    let (f, err) = rejected(
        dir.path(),
        "unknown.yaml",
        "probes:\n  - name: a\n    intervall: 5s\n",
    );
    assert!(err.starts_with(&format!(
        "{f}:3:5: probes[0].intervall: unknown field `intervall`"
    )));

    let (f, err) = rejected(
        dir.path(),
        "dur.yaml",
        "probes:\n  - name: a\n    timeout: 5 seconds\n",
    );
    assert!(
        err.starts_with(&format!("{f}:3:14: probes[0].timeout:")),
        "{err}"
    );

    let (_, err) = rejected(
        dir.path(),
        "env.yaml",
        "probes:\n  - name: a\n    http: {url: '${SIDEWATCH_TEST_UNSET_VAR}'}\n",
    );
    assert!(err.contains(
        "probes[0].http.url: environment variable `SIDEWATCH_TEST_UNSET_VAR` is not set"
    ));

    let out = run(&["check-config", "/nonexistent/sidewatch.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("cannot read file"));
}

#[test]
fn probe_prints_a_table_and_exits_by_result() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        "probes:\n  - {{name: web, timeout: 1s, http: {{url: '{}/health'}}}}\n  - {{name: down, timeout: 1s, tcp: {{address: '127.0.0.1:{}'}}}}\n",
        nginx(),
        closed_port()
    );
    let f = write(dir.path(), "p.yaml", &cfg);
    let out = run(&["probe", "--config", &f]);
    assert_eq!(out.status.code(), Some(1));
    let table = text(&out.stdout);
    let header = table.lines().next().unwrap();
    for col in [
        "PROBE",
        "KIND",
        "RESULT",
        "REASON",
        "TOTAL",
        "DNS",
        "CONNECT",
        "TLS",
        "FIRST_BYTE",
        "TRANSFER",
    ] {
        assert!(header.contains(col), "{table}");
    }
    let web = table.lines().find(|l| l.starts_with("web ")).unwrap();
    assert!(web.contains(" ok ") && web.contains(" 200 "), "{web}");
    let down = table.lines().find(|l| l.starts_with("down ")).unwrap();
    assert!(down.contains("FAIL") && down.contains("refused"), "{down}");

    let out = run(&["probe", "--config", &f, "web"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(!text(&out.stdout).contains("down"));

    let out = run(&["probe", "--config", &f, "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json[0]["probe"], "web");
    assert_eq!(json[0]["success"], true);
    assert!(json[0]["phases_seconds"]["first_byte"].as_f64().unwrap() > 0.0);
    assert_eq!(json[1]["reason"], "refused");

    let out = run(&["probe", "--config", &f, "nope"]);
    assert_eq!(out.status.code(), Some(2));
    let bad = write(dir.path(), "bad.yaml", "probes: [{name: x}]\n");
    assert_eq!(run(&["probe", "--config", &bad]).status.code(), Some(2));
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(run(&["probe"]).status.code(), Some(2));
    assert_eq!(run(&["no-such-command"]).status.code(), Some(2));
    let help = run(&["--help"]);
    assert_eq!(help.status.code(), Some(0));
    assert!(text(&help.stdout).contains("Exit codes"));
}

struct Running {
    child: Child,
    addr: SocketAddr,
}

impl Running {
    fn start(config: &str, extra_env: &[(&str, &str)]) -> Running {
        let port = closed_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let child = sidewatch()
            .args([
                "--log-level",
                "debug",
                "run",
                "--config",
                config,
                "--listen",
                &addr.to_string(),
            ])
            .envs(extra_env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let r = Running { child, addr };
        r.wait_for("ready", |s, _| s == 200, "/readyz");
        r
    }

    fn wait_for(&self, what: &str, ok: impl Fn(u16, &str) -> bool, path: &str) -> String {
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok((status, body)) = http_get(self.addr, path, None) {
                if ok(status, &body) {
                    return body;
                }
            }
            assert!(Instant::now() < end, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn metrics_until(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        self.wait_for(what, |s, b| s == 200 && ok(b), "/metrics")
    }

    fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
    }

    fn stop(mut self) -> (Option<i32>, Duration, String, String) {
        let t = Instant::now();
        self.signal("-TERM");
        let end = t + Duration::from_secs(10);
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < end, "did not exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        };
        let took = t.elapsed();
        let out = self.child.wait_with_output().unwrap();
        (status.code(), took, text(&out.stdout), text(&out.stderr))
    }
}

#[test]
fn run_reloads_on_sighup_rejects_bad_configs_and_drains_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let nginx = nginx();
    let a = format!("probes:\n  - {{name: a, interval: 200ms, timeout: 150ms, http: {{url: '{nginx}/health'}}}}\n");
    let f = write(dir.path(), "run.yaml", &a);
    let r = Running::start(&f, &[]);
    r.metrics_until("probe a", |m| {
        sample(m, "sidewatch_probe_success", &[("probe", "a")]) == Some(1.0)
    });

    write(
        dir.path(),
        "run.yaml",
        "probes:\n  - name: a\n    bogus: 1\n",
    );
    r.signal("-HUP");
    let m = r.metrics_until("reload rejected", |m| {
        sample(m, "sidewatch_config_last_reload_successful", &[]) == Some(0.0)
    });
    assert_eq!(sample(&m, "sidewatch_probes_configured", &[]), Some(1.0));

    let b = format!(
        "probes:\n  - {{name: b, interval: 1s, timeout: 900ms, tcp: {{address: '{}'}}}}\n",
        nginx.trim_start_matches("http://")
    );
    write(dir.path(), "run.yaml", &b);
    r.signal("-HUP");
    let m = r.metrics_until("reload applied", |m| {
        sample(m, "sidewatch_config_last_reload_successful", &[]) == Some(1.0)
            && sample(m, "sidewatch_probe_success", &[("probe", "b")]).is_some()
            && !m.contains("probe=\"a\"")
    });
    assert_eq!(
        sample(&m, "sidewatch_probe_success", &[("probe", "b")]),
        Some(1.0)
    );

    let (code, took, _, stderr) = r.stop();
    assert_eq!(code, Some(0), "{stderr}");
    assert!(took < Duration::from_secs(2), "shutdown took {took:?}");
    assert!(stderr.contains("reload rejected"), "{stderr}");
    assert!(stderr.contains("unknown field `bogus`"), "{stderr}");
    assert!(
        stderr.contains("draining probes in flight") && stderr.contains("stopped"),
        "{stderr}"
    );
}

#[test]
fn secrets_never_reach_logs_metrics_or_probe_output() {
    const PASSWORD: &str = "Sup3rS3cretPW";
    const BEARER: &str = "T0kenS3cretValue";
    const API_KEY: &str = "K3yFr0mEnvironment";
    let dir = tempfile::tempdir().unwrap();
    let port = closed_port();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (status_401, _) = rt.block_on(async {
        (
            scripted_server(
                b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n",
                false,
            )
            .await,
            (),
        )
    });
    let cfg = format!(
        "probes:
  - name: refused
    interval: 300ms
    timeout: 200ms
    http:
      url: 'http://admin:{PASSWORD}@127.0.0.1:{port}/private'
      headers: {{Authorization: 'Bearer {BEARER}', X-Api-Key: '${{SIDEWATCH_TEST_API_KEY}}'}}
  - name: denied
    interval: 300ms
    timeout: 200ms
    http:
      url: 'http://admin:{PASSWORD}@{status_401}/private'
      headers: {{X-Api-Key: '${{SIDEWATCH_TEST_API_KEY}}'}}
  - name: db
    interval: 300ms
    timeout: 200ms
    postgres: {{dsn: 'host=127.0.0.1 port={port} user=app password={PASSWORD} dbname=app'}}
  - name: bus
    interval: 1s
    timeout: 300ms
    kafka: {{brokers: '127.0.0.1:{port}', security_protocol: sasl_plaintext, sasl_mechanism: PLAIN, sasl_username: u, sasl_password: '{PASSWORD}'}}
"
    );
    let f = write(dir.path(), "secret.yaml", &cfg);
    let env = [("SIDEWATCH_TEST_API_KEY", API_KEY)];
    let mut outputs = Vec::new();
    for args in [
        vec!["probe", "--config", &f],
        vec!["probe", "--config", &f, "--json"],
    ] {
        let out = sidewatch().args(&args).envs(env).output().unwrap();
        assert_eq!(out.status.code(), Some(1));
        outputs.push(text(&out.stdout) + &text(&out.stderr));
    }
    assert!(outputs[0].contains("admin:***@"), "{}", outputs[0]);

    let r = Running::start(&f, &env);
    let m = r.metrics_until("both probes failing", |m| {
        sample(
            m,
            "sidewatch_probe_failures_total",
            &[("probe", "denied"), ("reason", "status")],
        ) >= Some(1.0)
            && sample(
                m,
                "sidewatch_probe_failures_total",
                &[("probe", "refused"), ("reason", "refused")],
            ) >= Some(1.0)
    });
    outputs.push(m);
    outputs.push(r.wait_for("index", |s, _| s == 200, "/"));
    let (_, _, stdout, stderr) = r.stop();
    assert!(stderr.contains("probe failed"), "{stderr}");
    outputs.push(stdout + &stderr);

    // A config error on a URL with a password must not echo it either.
    let bad = write(
        dir.path(),
        "bad.yaml",
        &format!("probes: [{{name: x, http: {{url: 'ftp://u:{PASSWORD}@h/'}}}}]\n"),
    );
    let out = run(&["check-config", &bad]);
    assert_eq!(out.status.code(), Some(2));
    outputs.push(text(&out.stderr));

    for (i, out) in outputs.iter().enumerate() {
        for secret in [PASSWORD, BEARER, API_KEY] {
            assert!(!out.contains(secret), "output {i} leaks {secret}:\n{out}");
        }
    }
    drop(rt);
}

/// A one-response HTTP server for a test's own runtime: `body` as JSON.
fn json_server(rt: &tokio::runtime::Runtime, body: &str) -> SocketAddr {
    let reply = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let reply: &'static [u8] = Box::leak(reply.into_bytes().into_boxed_slice());
    rt.block_on(scripted_server(reply, false))
}

#[test]
fn multibyte_text_in_a_failed_json_assertion_is_a_failure_not_a_crash() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    // A two-byte `é` across byte 80, where the assertion's message is cut.
    let addr = json_server(&rt, &format!("{{\"name\":\"{}é tail\"}}", "a".repeat(79)));
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "json.yaml",
        &format!(
            "probes:\n  - name: j\n    interval: 200ms\n    timeout: 150ms\n    http:\n      url: 'http://{addr}/'\n      expect: {{json: [{{path: name, equals: x}}]}}\n"
        ),
    );
    let out = run(&["probe", "--config", &f, "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json[0]["reason"], "assertion");
    let detail = json[0]["detail"].as_str().unwrap();
    assert!(detail.contains("aé…`"), "{detail}");

    // The sidecar's loop for that probe keeps running and counting.
    let r = Running::start(&f, &[]);
    r.metrics_until("three failed runs", |m| {
        sample(
            m,
            "sidewatch_probe_failures_total",
            &[("probe", "j"), ("reason", "assertion")],
        ) >= Some(3.0)
    });
    let (code, _, _, stderr) = r.stop();
    assert_eq!(code, Some(0), "{stderr}");
    drop(rt);
}

#[test]
fn secret_query_values_are_masked_in_probe_output_and_the_status_page() {
    const TOKEN: &str = "QueryT0kenValue";
    const KEY: &str = "QueryApiK3yValue";
    let dir = tempfile::tempdir().unwrap();
    let port = closed_port();
    let cfg = format!(
        "probes:\n  - name: q\n    interval: 300ms\n    timeout: 200ms\n    http: {{url: 'http://127.0.0.1:{port}/x?page=2&token={TOKEN}&Api_Key={KEY}'}}\n"
    );
    let f = write(dir.path(), "query.yaml", &cfg);
    let mut outputs = Vec::new();
    for args in [
        vec!["probe", "--config", &f],
        vec!["probe", "--config", &f, "--json"],
    ] {
        let out = run(&args);
        assert_eq!(out.status.code(), Some(1));
        outputs.push(text(&out.stdout) + &text(&out.stderr));
    }
    let json: serde_json::Value = serde_json::from_str(&outputs[1]).unwrap();
    assert_eq!(
        json[0]["target"],
        format!("http://127.0.0.1:{port}/x?page=2&token=***&Api_Key=***")
    );

    let r = Running::start(&f, &[]);
    let page = r.wait_for(
        "a failed run on the status page",
        |s, b| s == 200 && b.contains("refused"),
        "/",
    );
    assert!(
        page.contains("page=2&amp;token=***&amp;Api_Key=***"),
        "{page}"
    );
    outputs.push(page);
    let (_, _, stdout, stderr) = r.stop();
    outputs.push(stdout + &stderr);
    for (i, out) in outputs.iter().enumerate() {
        for secret in [TOKEN, KEY] {
            assert!(!out.contains(secret), "output {i} leaks {secret}:\n{out}");
        }
    }
}

#[test]
fn config_errors_never_echo_values_from_the_environment() {
    const SECRET: &str = "EnvS3cretTokenValue";
    // Longer than the 40 characters a type error quotes, in a variable whose
    // name does not look secret.
    const LONG: &str = "postgres://app:L0ngPassw0rd@db.internal:5432/app-and-more";
    let env = [("SECRET_TOKEN", SECRET), ("SIDEWATCH_TEST_SETTING", LONG)];
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        // units: "`…` has no unit"
        "probes:\n  - name: a\n    interval: '${SECRET_TOKEN}'\n    tcp: {address: '127.0.0.1:1'}\n",
        // serde: "unknown variant `…`"
        "probes:\n  - name: a\n    postgres: {dsn: 'host=h', mode: '${SECRET_TOKEN}'}\n",
        // a semantic problem: "`…` is not a status code"
        "probes:\n  - name: a\n    http: {url: 'http://h/', expect: {status: ['x${SECRET_TOKEN}']}}\n",
        // a type error, which quotes at most 40 characters
        "probes:\n  - name: a\n    http: {url: 'http://h/', max_body_bytes: '${SIDEWATCH_TEST_SETTING}'}\n",
    ];
    for (i, case) in cases.iter().enumerate() {
        let f = write(dir.path(), &format!("env{i}.yaml"), case);
        let out = sidewatch()
            .args(["check-config", &f])
            .envs(env)
            .output()
            .unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "case {i}: {err}");
        assert!(err.starts_with(&format!("{f}:")), "case {i}: {err}");
        for leak in [SECRET, &LONG[..20], &LONG[20..40]] {
            assert!(!err.contains(leak), "case {i} leaks `{leak}`: {err}");
        }
    }

    // A rejected SIGHUP reload logs the same errors, just as masked.
    let f = write(
        dir.path(),
        "reload.yaml",
        "probes:\n  - {name: a, interval: 1s, tcp: {address: '127.0.0.1:1'}}\n",
    );
    let r = Running::start(&f, &env);
    write(dir.path(), "reload.yaml", cases[0]);
    r.signal("-HUP");
    r.metrics_until("reload rejected", |m| {
        sample(m, "sidewatch_config_last_reload_successful", &[]) == Some(0.0)
    });
    let (_, _, _, stderr) = r.stop();
    assert!(stderr.contains("reload rejected"), "{stderr}");
    assert!(!stderr.contains(SECRET), "{stderr}");
}

/// Runs `sidewatch ARGS` with its address space capped, so a runaway
/// allocation fails the process instead of the machine.
fn run_capped(args: &[&str], bytes: u64) -> Output {
    use std::os::unix::process::CommandExt;
    let mut cmd = sidewatch();
    cmd.args(args);
    // SAFETY: setrlimit is async-signal-safe; nothing else runs in the child.
    unsafe {
        cmd.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: bytes,
                rlim_max: bytes,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &limit) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    cmd.output().unwrap()
}

#[test]
fn a_yaml_alias_bomb_is_rejected_with_a_located_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut bomb = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for (prev, name) in "abcdefgh".chars().zip("bcdefghi".chars()) {
        let refs = vec![format!("*{prev}"); 9].join(",");
        bomb.push_str(&format!("{name}: &{name} [{refs}]\n"));
    }
    assert!(bomb.len() < 1024, "a small file: {} bytes", bomb.len());
    let f = write(dir.path(), "bomb.yaml", &bomb);
    let out = run_capped(&["check-config", &f], 1 << 30);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.starts_with(&format!("{f}:6:8: f[0]: ")), "{err}");
    assert!(err.contains("alias"), "{err}");

    // Sent to a running sidecar by SIGHUP, it is rejected like any bad file.
    let cfg = write(
        dir.path(),
        "run.yaml",
        "probes:\n  - {name: a, interval: 1s, tcp: {address: '127.0.0.1:1'}}\n",
    );
    let r = Running::start(&cfg, &[]);
    write(dir.path(), "run.yaml", &bomb);
    r.signal("-HUP");
    r.metrics_until("reload rejected", |m| {
        sample(m, "sidewatch_config_last_reload_successful", &[]) == Some(0.0)
    });
    let (code, _, _, stderr) = r.stop();
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("expands to more than"), "{stderr}");
}

#[test]
fn check_names_that_are_not_plain_file_names_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["..", ".", ".hidden"] {
        let f = write(
            dir.path(),
            "dots.yaml",
            &format!(
                "checks:\n  - name: '{name}'\n    load:\n      rate: 1/s\n      duration: 1s\n      mix: [{{http: {{url: 'http://127.0.0.1:1/'}}}}]\n"
            ),
        );
        let out = run(&["check-config", &f]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {err}");
        assert!(
            err.starts_with(&format!("{f}:2:11: checks[0].name: ")),
            "{name}: {err}"
        );
        assert!(err.contains("`.`"), "{name}: {err}");
    }
}

#[test]
fn a_held_store_lock_blocks_neither_metrics_nor_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let config = format!(
        "store: {{dir: {}}}
checks:
  - name: c
    load: {{rate: 1/s, duration: 1s, mix: [{{http: {{url: 'http://127.0.0.1:{}/'}}}}]}}
",
        store.display(),
        closed_port()
    );
    let f = write(dir.path(), "run.yaml", &config);
    let r = Running::start(&f, &[]);
    // Another process holds the store's lock.
    let holder = common::procs::hold_lock(&store.join(".lock"));
    // The reload opens the store, which waits for the lock.
    r.signal("-HUP");
    std::thread::sleep(Duration::from_millis(500));
    r.metrics_until("a scrape while the store is locked", |m| {
        m.contains("sidewatch_check_runs_total")
    });
    let (code, took, _, stderr) = r.stop();
    drop(holder);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(took < Duration::from_secs(5), "exit took {took:?}");
}
