//! The result store under faults, through the real binary: a corrupt index,
//! an unreadable baseline, a read-only mount, a disk that fills up or turns
//! read-only during a run, run ids from parallel shards, the fsync of a new
//! check's directory, and a writer killed a hundred times.
//!
//! The disk faults are real: a tiny tmpfs (ENOSPC) and a read-only remount
//! (EROFS). They need root to mount; without it (or where mounting is not
//! allowed) those tests print why and pass without checking anything.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::*;
use sidewatch::check::baseline::store::Store;
use sidewatch::check::execute::{run_id, synthetic};
use sidewatch::check::result::CheckResult;

/// A tmpfs on a fresh directory, unmounted (and removed) on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. `64k`), or says why it cannot.
    fn mount(size: &str) -> Result<Tmpfs, String> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err("not root: cannot mount a tmpfs".into());
        }
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `mount -o remount,OPT` (`ro` or `rw`).
    fn remount(&self, opt: &str) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,{opt}")])
            .arg(self.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "remount,{opt}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(self.path())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(self.path()).status();
        }
    }
}

/// Mounts a tmpfs, or prints why the test checks nothing.
fn tmpfs_or_skip(test: &str, size: &str) -> Option<Tmpfs> {
    match Tmpfs::mount(size) {
        Ok(m) => Some(m),
        Err(why) => {
            eprintln!("{test}: skipped: {why}");
            None
        }
    }
}

/// Runs the binary: (exit code, stdout, stderr).
fn sidewatch(args: &[&str], config: &Path) -> (Option<i32>, String, String) {
    let (cmd, rest) = args.split_first().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sidewatch"))
        .arg(cmd)
        .arg("--config")
        .arg(config)
        .args(rest)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A config with one 2-second load check `api` against `addr`, compared
/// with its baseline, storing into `store`.
fn config(dir: &Path, store: &Path, addr: SocketAddr) -> PathBuf {
    let path = dir.join("sidewatch.yaml");
    std::fs::write(
        &path,
        format!(
            "store: {{dir: '{}'}}
checks:
  - name: api
    load: {{rate: 50/s, duration: 2s, mix: [{{http: {{url: 'http://{addr}/'}}}}]}}
    thresholds: ['error_rate < 1%']
    baseline: {{latency: +200%, latency_min: 1s}}
",
            store.display()
        ),
    )
    .unwrap();
    path
}

/// A server that answers every request in 2 ms.
async fn steady_server() -> SocketAddr {
    shaped_server(Arc::new(|_, _| (Duration::from_millis(2), 200))).await
}

/// Writes a config into `dir` for a store in `store` and runs its check
/// once against a steady server, which makes the first baseline: (the
/// config, the baseline's run id).
/// [`first_baseline`] in a new temporary directory, the store in it:
/// (the directory, the store, the config, the baseline's id).
async fn baseline_in_tempdir() -> (tempfile::TempDir, PathBuf, PathBuf, String) {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let (config, base) = first_baseline(tmp.path(), &store).await;
    (tmp, store, config, base)
}

async fn first_baseline(dir: &Path, store: &Path) -> (PathBuf, String) {
    let config = config(dir, store, steady_server().await);
    tokio::task::block_in_place(|| {
        let (code, out, err) = sidewatch(&["check", "api"], &config);
        assert_eq!(code, Some(0), "{out}\n{err}");
        let (_, base) = listed(&config);
        (config, base.expect("the first passing run is the baseline"))
    })
}

/// `baseline list`: (the runs listed, newest first; the baseline's run).
fn listed(config: &Path) -> (Vec<String>, Option<String>) {
    let (code, out, err) = sidewatch(&["baseline", "list"], config);
    assert_eq!(code, Some(0), "baseline list: {out}\n{err}");
    let rows: Vec<&str> = out.lines().skip(1).collect();
    let ids = rows
        .iter()
        .filter_map(|l| l.split_whitespace().next())
        .map(String::from)
        .collect();
    let base = rows
        .iter()
        .find(|l| l.trim_end().ends_with("baseline"))
        .and_then(|l| l.split_whitespace().next())
        .map(String::from);
    (ids, base)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_index_loses_no_baseline() {
    let (_tmp, store, config, base) = baseline_in_tempdir().await;
    tokio::task::block_in_place(|| {
        // A torn or bit-rotted index.
        let index = store.join("index.json");
        std::fs::write(&index, b"{\"version\": 1, \"runs\": [{\"id\": \"2026").unwrap();
        let (ids, listed_base) = listed(&config);
        assert_eq!(
            ids,
            std::slice::from_ref(&base),
            "rebuilt from the run files"
        );
        assert_eq!(
            listed_base.as_deref(),
            Some(base.as_str()),
            "the mark survives"
        );
        assert_eq!(
            std::fs::read(&index).unwrap(),
            b"{\"version\": 1, \"runs\": [{\"id\": \"2026",
            "`baseline list` only reads"
        );
        // The next passing run is compared with the baseline, not made one.
        let (code, out, err) = sidewatch(&["check", "api"], &config);
        assert_eq!(code, Some(0), "{out}\n{err}");
        assert!(out.contains(&format!("against baseline {base}")), "{out}");
        let (ids, listed_base) = listed(&config);
        assert_eq!(ids.len(), 2, "{ids:?}");
        assert_eq!(listed_base, Some(base));
        let rebuilt = std::fs::read(&index).unwrap();
        serde_json::from_slice::<serde_json::Value>(&rebuilt).expect("the writer rebuilt it");
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_baseline_fails_the_run_and_is_never_replaced() {
    let (_tmp, store, config, base) = baseline_in_tempdir().await;
    tokio::task::block_in_place(|| {
        let file = store.join("runs/api").join(format!("{base}.json"));
        let bytes = std::fs::read(&file).unwrap();
        std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
        let (code, out, err) = sidewatch(&["check", "api"], &config);
        assert_eq!(
            code,
            Some(1),
            "an unreadable baseline fails the run: {out}\n{err}"
        );
        let said = format!("{out}\n{err}");
        assert!(
            said.contains("baseline") && said.contains(&base) && said.contains("cannot read"),
            "the result and the log say so: {said}"
        );
        let (ids, listed_base) = listed(&config);
        assert_eq!(ids.len(), 2, "the run is stored: {ids:?}");
        assert_eq!(listed_base, Some(base.clone()), "and not made the baseline");
        let (_, _, warned) = sidewatch(&["baseline", "list"], &config);
        assert!(
            warned.contains("warning") && warned.contains(&base),
            "{warned}"
        );
        // Once the file is back, runs compare with it again.
        std::fs::write(&file, &bytes).unwrap();
        let (code, out, err) = sidewatch(&["check", "api"], &config);
        assert_eq!(code, Some(0), "{out}\n{err}");
        assert!(out.contains(&format!("against baseline {base}")), "{out}");
    });
}

#[test]
fn read_only_commands_work_on_a_read_only_mount() {
    let Some(fs) = tmpfs_or_skip("read_only_commands_work_on_a_read_only_mount", "1m") else {
        return;
    };
    let store = fs.path();
    {
        let s = Store::open(store, 5).unwrap();
        s.save(&synthetic("api", 1), true).unwrap();
        s.save(&synthetic("api", 2), false).unwrap();
    }
    let (base, other) = (synthetic("api", 1).id, synthetic("api", 2).id);
    fs.remount("ro");
    let tmp = tempfile::tempdir().unwrap();
    let config = config(tmp.path(), store, "127.0.0.1:9".parse().unwrap());
    let (ids, listed_base) = listed(&config);
    assert_eq!(ids, [other.clone(), base.clone()]);
    assert_eq!(listed_base, Some(base.clone()));
    let (code, out, err) = sidewatch(&["baseline", "show", &base], &config);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(out.contains(&base), "{out}");
    let (code, out, err) = sidewatch(&["baseline", "show", &other, "--json"], &config);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        serde_json::from_str::<CheckResult>(&out).unwrap(),
        synthetic("api", 2)
    );
    let (code, out, err) = sidewatch(&["report", &base, "--markdown", "-"], &config);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(out.contains("api"), "{out}");
    // Changing the store fails: sidewatch could not do its job (4), not a
    // config error (2).
    let (code, _, err) = sidewatch(&["baseline", "accept", &other], &config);
    assert_eq!(code, Some(4), "{err}");
    assert!(
        err.contains("Read-only file system") && err.contains(&store.display().to_string()),
        "{err}"
    );
}

/// Runs `sidewatch check api`, and calls `fault` once the check has opened
/// the store and started its load: (exit code, stdout, stderr).
fn check_with_fault(config: &Path, fault: impl FnOnce()) -> (Option<i32>, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sidewatch"))
        .args(["check", "--config"])
        .arg(config)
        .arg("api")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in std::io::BufReader::new(stderr).lines() {
            let line = line.unwrap_or_default();
            if line.starts_with("check api") {
                let _ = tx.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("the check started");
    fault();
    let out = child.wait_with_output().unwrap();
    let err = reader.join().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        err,
    )
}

/// `sidewatch check` with its store on a tmpfs of `size` that `fault`
/// breaks during the run: it exits 1 with an error naming the store and
/// `os_error`, and the earlier run is still the baseline and still reads.
async fn a_store_fault_fails_the_check(test: &str, size: &str, fault: fn(&Tmpfs), os_error: &str) {
    let Some(fs) = tmpfs_or_skip(test, size) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (config, base) = first_baseline(tmp.path(), fs.path()).await;
    tokio::task::block_in_place(|| {
        let (code, out, err) = check_with_fault(&config, || fault(&fs));
        assert_eq!(
            code,
            Some(4),
            "a run that was not stored fails: {out}\n{err}"
        );
        assert!(
            err.contains(&fs.path().display().to_string()) && err.contains(os_error),
            "names the store and the OS error: {err}"
        );
        let (ids, listed_base) = listed(&config);
        assert_eq!(ids, std::slice::from_ref(&base));
        assert_eq!(listed_base.as_ref(), Some(&base));
        let (code, out, err) = sidewatch(&["baseline", "show", &base], &config);
        assert_eq!(code, Some(0), "{out}\n{err}");
    });
}

/// Fills the tmpfs up to ENOSPC.
fn fill(fs: &Tmpfs) {
    let mut f = std::fs::File::create(fs.path().join("filler")).unwrap();
    let page = [0u8; 4096];
    let full = loop {
        if let Err(e) = f.write_all(&page) {
            break e;
        }
    };
    assert_eq!(full.raw_os_error(), Some(libc::ENOSPC), "{full}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_fails_when_the_disk_fills_up() {
    let test = "check_fails_when_the_disk_fills_up";
    a_store_fault_fails_the_check(test, "64k", fill, "No space left on device").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_fails_when_the_store_turns_read_only() {
    let test = "check_fails_when_the_store_turns_read_only";
    let ro = |fs: &Tmpfs| fs.remount("ro");
    a_store_fault_fails_the_check(test, "1m", ro, "Read-only file system").await;
}

/// What a report written to `path` must look like after a failed write: an
/// error naming the file and `os_error`, exit 4, the earlier report (`old`)
/// untouched, and no temporary file left beside it.
fn assert_write_failed(
    (code, out, err): (Option<i32>, String, String),
    path: &Path,
    old: &[u8],
    os_error: &str,
) {
    assert_eq!(code, Some(4), "{out}\n{err}");
    assert!(
        err.contains(&format!("cannot write {}", path.display())) && err.contains(os_error),
        "names the file and the OS error: {err}"
    );
    assert_eq!(
        std::fs::read(path).unwrap(),
        old,
        "the earlier report stays"
    );
    let dir = path.parent().unwrap();
    let left: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp."))
        .collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
}

/// A report writer (`report --html/--markdown`, `check --json`) whose
/// target disk is full or read-only: every earlier report, run and
/// baseline stays readable. `write(out)` runs the command writing `out`.
fn a_report_fault(test: &str, size: &str, fault: fn(&Tmpfs), os_error: &str) {
    let Some(fs) = tmpfs_or_skip(test, size) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    {
        let s = Store::open(&store, 5).unwrap();
        s.save(&synthetic("api", 1), true).unwrap();
    }
    let run = synthetic("api", 1).id;
    let config = config(tmp.path(), &store, "127.0.0.1:9".parse().unwrap());
    let (html, md, json) = (
        fs.path().join("report.html"),
        fs.path().join("report.md"),
        fs.path().join("result.json"),
    );
    // Earlier reports, written while the disk was fine.
    let (html_s, md_s) = (html.to_str().unwrap(), md.to_str().unwrap());
    let (code, out, err) = sidewatch(
        &["report", &run, "--html", html_s, "--markdown", md_s],
        &config,
    );
    assert_eq!(code, Some(0), "{out}\n{err}");
    let (code, out, err) = sidewatch(&["baseline", "show", &run, "--json"], &config);
    assert_eq!(code, Some(0), "{out}\n{err}");
    std::fs::write(&json, &out).unwrap();
    let old = |p: &Path| std::fs::read(p).unwrap();
    let (old_html, old_md, old_json) = (old(&html), old(&md), old(&json));
    fault(&fs);
    let input = tmp.path().join("input.json");
    std::fs::write(&input, &old_json).unwrap();
    let report = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_sidewatch"))
            .arg("report")
            .args(args)
            .output()
            .unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.code(), text(&out.stdout), text(&out.stderr))
    };
    let config_s = config.to_str().unwrap();
    let from_store = report(&["--config", config_s, &run, "--html", html_s]);
    assert_write_failed(from_store, &html, &old_html, os_error);
    let from_input = report(&["--input", input.to_str().unwrap(), "--markdown", md_s]);
    assert_write_failed(from_input, &md, &old_md, os_error);
    // `check --json` against a closed port: the run fails, and so does the
    // write, which is what it says.
    let check = sidewatch(
        &[
            "check",
            "api",
            "--no-store",
            "--json",
            json.to_str().unwrap(),
        ],
        &config,
    );
    assert_write_failed(check, &json, &old_json, os_error);
    // The store, elsewhere, lost nothing.
    let (ids, base) = listed(&config);
    assert_eq!((ids, base), (vec![run.clone()], Some(run)));
}

#[test]
fn report_writers_fail_cleanly_when_the_disk_is_full() {
    let test = "report_writers_fail_cleanly_when_the_disk_is_full";
    a_report_fault(test, "256k", fill, "No space left on device");
}

#[test]
fn report_writers_fail_cleanly_on_a_read_only_disk() {
    let test = "report_writers_fail_cleanly_on_a_read_only_disk";
    a_report_fault(test, "1m", |fs| fs.remount("ro"), "Read-only file system");
}

/// A running sidecar whose store fills up, then turns read-only: its
/// scheduled check still runs and is counted, its probe keeps probing, and
/// the runs stored before the faults stay readable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sidecar_keeps_probing_when_its_store_fails() {
    let test = "a_sidecar_keeps_probing_when_its_store_fails";
    let Some(fs) = tmpfs_or_skip(test, "256k") else {
        return;
    };
    let addr = steady_server().await;
    let yaml = format!(
        "store: {{dir: '{dir}', keep: 50}}
probes:
  - {{name: up, interval: 100ms, timeout: 90ms, http: {{url: 'http://{addr}/'}}}}
checks:
  - name: api
    schedule: '*/2 * * * * *'
    load: {{rate: 20/s, duration: 1s, mix: [{{http: {{url: 'http://{addr}/'}}}}]}}
",
        dir = fs.path().display()
    );
    let sidecar = sidewatch::app::Sidecar::start(plan(&yaml), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let probe_runs = |text: &str| {
        let ok = sample(
            text,
            "sidewatch_probe_runs_total",
            &[("probe", "up"), ("result", "success")],
        );
        ok.unwrap_or(0.0)
    };
    let check_runs = |text: &str| {
        let pass = [("check", "api"), ("verdict", "pass")];
        sample(text, "sidewatch_check_runs_total", &pass).unwrap_or(0.0)
    };
    // Waits (at most 30 s) for one more check run and more probe runs.
    let progress = || async {
        let start = sidecar.metrics_text();
        let (probes, checks) = (probe_runs(&start), check_runs(&start));
        let mut text = start;
        for _ in 0..300 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            text = sidecar.metrics_text();
            if check_runs(&text) > checks && probe_runs(&text) >= probes + 5.0 {
                return;
            }
        }
        panic!("no progress from {probes} probe runs, {checks} checks:\n{text}");
    };
    progress().await;
    let stored = Store::open_read(fs.path()).unwrap().list(None).unwrap();
    assert!(!stored.is_empty(), "the run before the faults is stored");
    tokio::task::block_in_place(|| fill(&fs));
    progress().await;
    progress().await;
    tokio::task::block_in_place(|| fs.remount("ro"));
    progress().await;
    let text = sidecar.metrics_text();
    assert_eq!(
        sample(&text, "sidewatch_probe_success", &[("probe", "up")]),
        Some(1.0),
        "{text}"
    );
    sidecar.shutdown().await;
    let store = Store::open_read(fs.path()).unwrap();
    let after = store.list(None).unwrap();
    for run in &stored {
        assert!(after.contains(run), "{run:?} lost: {after:?}");
    }
    for run in &after {
        store
            .get(&run.id)
            .unwrap_or_else(|e| panic!("{}: {e}", run.id));
    }
}

/// In its child mode (`SIDEWATCH_ID_CHILD` set) prints ids and nothing else
/// to check.
#[test]
fn run_ids_never_collide() {
    const PER_THREAD: usize = 20_000;
    let generate = || {
        let threads: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(|| {
                    (0..PER_THREAD)
                        .map(|_| run_id("api", SystemTime::now()))
                        .collect::<Vec<String>>()
                })
            })
            .collect();
        threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect::<Vec<String>>()
    };
    if std::env::var_os("SIDEWATCH_ID_CHILD").is_some() {
        for id in generate() {
            println!("id {id}");
        }
        return;
    }
    // Two more processes at the same time, as two shards sharing a store.
    let children: Vec<_> = (0..2)
        .map(|_| {
            Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "run_ids_never_collide", "--nocapture"])
                .env("SIDEWATCH_ID_CHILD", "1")
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut ids = generate();
    for c in children {
        let out = c.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let theirs: Vec<String> = text
            .lines()
            .filter_map(|l| l.strip_prefix("id "))
            .map(String::from)
            .collect();
        assert_eq!(
            theirs.len(),
            4 * PER_THREAD,
            "{}",
            &text[..text.len().min(500)]
        );
        ids.extend(theirs);
    }
    let unique: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(
        unique.len(),
        ids.len(),
        "{} duplicates among {} ids",
        ids.len() - unique.len(),
        ids.len()
    );
    for id in &ids {
        assert!(
            !id.starts_with('.') && !id.contains('/') && id.ends_with("-api"),
            "not a plain file name: {id}"
        );
    }
    // Sortable by time: ids made later sort later (to the microsecond).
    let (a, b) = (run_id("api", SystemTime::now()), {
        std::thread::sleep(Duration::from_millis(2));
        run_id("api", SystemTime::now())
    });
    assert!(a < b, "{a} then {b}");
}

#[test]
fn a_new_check_directory_is_fsynced_in_its_parent() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace");
    let store = dir.path().join("store");
    let out = Command::new("strace")
        .args([
            "-f",
            "-y",
            "-e",
            "trace=mkdir,mkdirat,fsync,fdatasync",
            "-o",
        ])
        .arg(&trace)
        .arg(env!("CARGO_BIN_EXE_sidewatch"))
        .args(["store-writer", "--count", "1", "--dir"])
        .arg(&store)
        .output();
    let ok = out.as_ref().is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("a_new_check_directory_is_fsynced_in_its_parent: skipped: strace cannot run here: {out:?}");
        return;
    }
    let trace = std::fs::read_to_string(&trace).unwrap();
    // Each directory made is followed by an fsync of its parent.
    for (made, parent) in [
        (store.join("runs"), store.clone()),
        (store.join("runs/c0"), store.join("runs")),
    ] {
        let at = trace
            .lines()
            .position(|l| {
                l.contains("mkdir")
                    && l.contains(&format!("\"{}\"", made.display()))
                    && l.ends_with("= 0")
            })
            .unwrap_or_else(|| panic!("no mkdir of {}:\n{trace}", made.display()));
        let synced = trace
            .lines()
            .skip(at)
            .any(|l| l.contains("fsync(") && l.contains(&format!("<{}>)", parent.display())));
        assert!(
            synced,
            "{} is not fsynced after {} is made:\n{trace}",
            parent.display(),
            made.display()
        );
    }
}

#[test]
fn a_hundred_kills_tear_no_file_and_lose_no_baseline() {
    let started = std::time::Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    // Each check's baseline once it has one: it may change to a newer
    // accepted run, never disappear.
    let mut baselines: BTreeMap<String, String> = BTreeMap::new();
    let (mut files_checked, mut runs_read, mut mid_write) = (0, 0, 0);
    const ROUNDS: usize = 100;
    for round in 0..ROUNDS {
        let spawned = SystemTime::now();
        let mut child = Command::new(env!("CARGO_BIN_EXE_sidewatch"))
            .args(["store-writer", "--start", &(round * 4).to_string(), "--dir"])
            .arg(dir.path())
            .spawn()
            .unwrap();
        // Kill at a random point once this round's writer has saved at
        // least once (a loaded machine can take a while to start it).
        wait_for_a_save(dir.path(), spawned);
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_micros(seed % 60_000));
        child.kill().unwrap();
        child.wait().unwrap();
        // Killed with a temp file written but not renamed yet.
        let tmp = |f: &PathBuf| f.to_string_lossy().contains(".tmp.");
        mid_write += usize::from(walk(dir.path()).iter().any(tmp));
        // What a crash left, as a reader sees it (writing nothing), then
        // as the next writer repairs it.
        let reader = Store::open_read(dir.path()).unwrap();
        let seen = (reader.list(None).unwrap(), reader.baselines().unwrap());
        let store = Store::open(dir.path(), 5).unwrap_or_else(|e| panic!("round {round}: {e}"));
        let runs = store.list(None).unwrap();
        assert!(!runs.is_empty(), "round {round}");
        assert_eq!(
            seen,
            (runs.clone(), store.baselines().unwrap()),
            "round {round}"
        );
        for e in &runs {
            store
                .get(&e.id)
                .unwrap_or_else(|err| panic!("round {round}: {err}"));
            runs_read += 1;
        }
        let mut now = BTreeMap::new();
        for check in ["c0", "c1", "c2"] {
            let base = store
                .baseline(check)
                .unwrap_or_else(|e| panic!("round {round}: {e}"));
            if let Some(b) = base {
                assert!(runs.iter().any(|e| e.id == b.id), "round {round}: {}", b.id);
                now.insert(check.to_string(), b.id);
            }
        }
        for check in baselines.keys() {
            assert!(
                now.contains_key(check),
                "round {round}: the baseline of {check} is lost"
            );
        }
        baselines = now;
        // Read every file directly: a torn write would show here even if
        // the index never listed it.
        for f in walk(dir.path()) {
            let bytes = std::fs::read(&f).unwrap();
            let name = f.file_name().unwrap().to_string_lossy();
            assert!(!name.contains(".tmp."), "round {round}: open leaves {name}");
            let parsed = if name == "index.json" {
                serde_json::from_slice::<serde_json::Value>(&bytes)
                    .map(drop)
                    .map_err(|e| e.to_string())
            } else if name.ends_with(".json") {
                serde_json::from_slice::<CheckResult>(&bytes)
                    .map(drop)
                    .map_err(|e| e.to_string())
            } else if name == "baseline" {
                // Empty (no baseline) or a run id that reads.
                let id = String::from_utf8_lossy(&bytes).trim().to_string();
                let check = f.parent().unwrap();
                match id.is_empty() || check.join(format!("{id}.json")).exists() {
                    true => Ok(()),
                    false => Err(format!("names {id}, which is not there")),
                }
            } else {
                Ok(())
            };
            parsed.unwrap_or_else(|e| panic!("round {round}: {} is torn: {e}", f.display()));
            files_checked += 1;
        }
    }
    assert_eq!(baselines.len(), 3, "{baselines:?}");
    eprintln!(
        "{ROUNDS} kills ({mid_write} with a temp file in flight): {files_checked} files \
         and {runs_read} listed runs read back, no torn file, no lost baseline, in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// Waits (at most 20 s) until this round's writer has rewritten
/// `index.json` and the index lists at least one run.
fn wait_for_a_save(dir: &Path, since: SystemTime) {
    let index = dir.join("index.json");
    for _ in 0..2000 {
        let fresh = std::fs::metadata(&index)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t > since);
        let listed = std::fs::read(&index)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .is_some_and(|v| v["runs"].as_array().is_some_and(|r| !r.is_empty()));
        if fresh && listed {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("the writer saved nothing in 20 s");
}

fn walk(d: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(d).unwrap().flatten() {
        if e.path().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

/// `baseline` and `report` tell "no such run" (1) from a store they cannot
/// read or write (4), as the exit-code table says.
#[test]
fn baseline_and_report_exit_4_on_a_store_fault_and_1_on_an_unknown_run() {
    let test = "baseline_and_report_exit_4_on_a_store_fault_and_1_on_an_unknown_run";
    let Some(fs) = tmpfs_or_skip(test, "1m") else {
        return;
    };
    let store = fs.path();
    {
        let s = Store::open(store, 5).unwrap();
        s.save(&synthetic("api", 1), true).unwrap();
        s.save(&synthetic("api", 2), false).unwrap();
        s.save(&synthetic("api", 3), false).unwrap();
    }
    let (other, broken) = (synthetic("api", 2).id, synthetic("api", 3).id);
    let tmp = tempfile::tempdir().unwrap();
    let config = config(tmp.path(), store, "127.0.0.1:9".parse().unwrap());
    for args in [
        &["baseline", "accept", "no-such-run"][..],
        &["baseline", "show", "no-such-run"],
        &["report", "no-such-run"],
    ] {
        let (code, out, err) = sidewatch(args, &config);
        assert_eq!(code, Some(1), "{args:?}: {out}\n{err}");
        assert!(err.contains("no run"), "{args:?}: {err}");
    }
    // A run the index lists but whose file cannot be read.
    std::fs::write(
        store.join("runs/api").join(format!("{broken}.json")),
        b"{trunc",
    )
    .unwrap();
    for args in [&["baseline", "show", &broken][..], &["report", &broken]] {
        let (code, out, err) = sidewatch(args, &config);
        assert_eq!(code, Some(4), "{args:?}: {out}\n{err}");
    }
    fill(&fs);
    let (code, out, err) = sidewatch(&["baseline", "accept", &other], &config);
    assert_eq!(code, Some(4), "accept on a full disk: {out}\n{err}");
    assert!(err.contains("No space left on device"), "{err}");
}
