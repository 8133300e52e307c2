//! The result store under faults, through the real binary: a corrupt index,
//! an unreadable baseline, a read-only mount, a disk that fills up or turns
//! read-only during a run, run ids from parallel shards, the fsync of a new
//! check's directory, and a writer killed a hundred times.
//!
//! The disk faults are real: a tiny tmpfs (ENOSPC) and a read-only remount
//! (EROFS). They need root to mount; without it (or where mounting is not
//! allowed) those tests print why and pass without checking anything.

mod common;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use sidewatch::check::execute::run_id;

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
