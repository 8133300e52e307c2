//! The result store under faults, through the real binary: a corrupt index,
//! an unreadable baseline, a read-only mount, a disk that fills up or turns
//! read-only during a run, run ids from parallel shards, the fsync of a new
//! check's directory, and a writer killed a hundred times.
//!
//! The disk faults are real: a tiny tmpfs (ENOSPC) and a read-only remount
//! (EROFS). They need root to mount; without it (or where mounting is not
//! allowed) those tests print why and pass without checking anything.

mod common;

use std::process::Command;

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
