//! The result store: one JSON file per run under `runs/CHECK/`, and
//! `index.json` listing the runs and each check's accepted baseline.
//!
//! Every file is written atomically (temp file, fsync, rename, fsync of the
//! directory), a new directory is fsynced in its parent, and the run file
//! is written before the index, so a crash at any point leaves a readable
//! store: at worst a run file the index does not list yet, which the next
//! open adds back. An exclusive `flock` on `.lock` serialises writers (the
//! sidecar and a `sidewatch check` CronJob may share a volume).

use std::collections::BTreeMap;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::check::result::{CheckResult, ScenarioKind, Verdict};
use crate::fsutil::{create_dir_durable, write_atomic};

/// One run as the index lists it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct IndexEntry {
    pub id: String,
    pub check: String,
    pub kind: ScenarioKind,
    pub started_unix: f64,
    pub verdict: Verdict,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Index {
    version: u32,
    runs: Vec<IndexEntry>,
    baselines: BTreeMap<String, String>,
}

#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    keep: usize,
}

/// Holds the store's lock until dropped.
struct Lock(File);

impl Drop for Lock {
    fn drop(&mut self) {
        // SAFETY: flock on a descriptor we own; unlocking cannot violate memory safety.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

fn io(what: &str, path: &Path, e: impl std::fmt::Display) -> String {
    format!("{what} {}: {e}", path.display())
}

impl Store {
    /// Opens (creating) the store, clears temp files a crash left behind,
    /// and reconciles the index with the run files on disk.
    pub fn open(dir: &Path, keep: usize) -> Result<Store, String> {
        let runs = dir.join("runs");
        create_dir_durable(&runs).map_err(|e| io("cannot create", &runs, e))?;
        let store = Store {
            dir: dir.to_path_buf(),
            keep: keep.max(1),
        };
        let _lock = store.lock()?;
        let mut index = store.read_index();
        store.reconcile(&mut index)?;
        store.write_index(&index)?;
        Ok(store)
    }

    fn lock(&self) -> Result<Lock, String> {
        let path = self.dir.join(".lock");
        let f = File::create(&path).map_err(|e| io("cannot open", &path, e))?;
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(io("cannot lock", &path, std::io::Error::last_os_error()));
        }
        Ok(Lock(f))
    }

    fn index_path(&self) -> PathBuf {
        self.dir.join("index.json")
    }

    fn run_path(&self, check: &str, id: &str) -> PathBuf {
        self.dir.join("runs").join(check).join(format!("{id}.json"))
    }

    /// The index, or an empty one if it is missing or unreadable (it is
    /// rebuilt from the run files; only baselines would be lost).
    fn read_index(&self) -> Index {
        std::fs::read(self.index_path())
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn write_index(&self, index: &Index) -> Result<(), String> {
        let body = serde_json::to_vec_pretty(index).expect("serializable");
        write_atomic(&self.index_path(), &body)
            .map_err(|e| io("cannot write", &self.index_path(), e))
    }

    /// Drops index entries without a file, adds files without an entry,
    /// and removes leftover temp files.
    fn reconcile(&self, index: &mut Index) -> Result<(), String> {
        index.version = 1;
        index
            .runs
            .retain(|e| self.run_path(&e.check, &e.id).exists());
        let runs = self.dir.join("runs");
        let checks = std::fs::read_dir(&runs).map_err(|e| io("cannot read", &runs, e))?;
        for check in checks.flatten().filter(|d| d.path().is_dir()) {
            for f in std::fs::read_dir(check.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                let p = f.path();
                let name = f.file_name().to_string_lossy().to_string();
                if name.starts_with('.') && name.contains(".tmp.") {
                    let _ = std::fs::remove_file(&p);
                    continue;
                }
                let Some(id) = name.strip_suffix(".json") else {
                    continue;
                };
                if index.runs.iter().any(|e| e.id == id) {
                    continue;
                }
                if let Some(r) = read_result(&p) {
                    index.runs.push(entry(&r));
                }
            }
        }
        for f in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            let name = f.file_name().to_string_lossy().to_string();
            if name.starts_with('.') && name.contains(".tmp.") {
                let _ = std::fs::remove_file(f.path());
            }
        }
        index.runs.sort_by(|a, b| {
            a.started_unix
                .total_cmp(&b.started_unix)
                .then(a.id.cmp(&b.id))
        });
        index
            .baselines
            .retain(|_, id| index.runs.iter().any(|e| &e.id == id));
        Ok(())
    }

    /// Saves a run (optionally as its check's new baseline) and prunes
    /// old runs beyond `keep` per check; baselines are never pruned.
    pub fn save(&self, r: &CheckResult, accept: bool) -> Result<(), String> {
        let _lock = self.lock()?;
        let path = self.run_path(&r.check, &r.id);
        let dir = path.parent().expect("has a parent");
        create_dir_durable(dir).map_err(|e| io("cannot create", dir, e))?;
        let body = serde_json::to_vec_pretty(r).expect("serializable");
        write_atomic(&path, &body).map_err(|e| io("cannot write", &path, e))?;
        let mut index = self.read_index();
        self.reconcile(&mut index)?;
        if accept {
            index.baselines.insert(r.check.clone(), r.id.clone());
        }
        let doomed = self.prune(&index, &r.check);
        index.runs.retain(|e| !doomed.contains(&e.id));
        self.write_index(&index)?;
        for id in doomed {
            let _ = std::fs::remove_file(self.run_path(&r.check, &id));
        }
        Ok(())
    }

    /// Runs of `check` beyond the newest `keep`, sparing the baseline.
    fn prune(&self, index: &Index, check: &str) -> Vec<String> {
        let base = index.baselines.get(check);
        let runs: Vec<&IndexEntry> = index
            .runs
            .iter()
            .filter(|e| e.check == check && Some(&e.id) != base)
            .collect();
        let extra = runs.len().saturating_sub(self.keep);
        runs[..extra].iter().map(|e| e.id.clone()).collect()
    }

    /// Runs, oldest first, optionally of one check.
    pub fn list(&self, check: Option<&str>) -> Vec<IndexEntry> {
        self.read_index()
            .runs
            .into_iter()
            .filter(|e| check.is_none_or(|c| e.check == c))
            .collect()
    }

    /// Each check's baseline run id.
    pub fn baselines(&self) -> BTreeMap<String, String> {
        self.read_index().baselines
    }

    pub fn get(&self, id: &str) -> Result<CheckResult, String> {
        let e = self
            .read_index()
            .runs
            .into_iter()
            .find(|e| e.id == id)
            .ok_or_else(|| format!("no run `{id}` in {}", self.dir.display()))?;
        let p = self.run_path(&e.check, &e.id);
        read_result(&p).ok_or_else(|| format!("cannot read {}", p.display()))
    }

    /// The accepted baseline of `check`, if any.
    pub fn baseline(&self, check: &str) -> Option<CheckResult> {
        let id = self.read_index().baselines.get(check)?.clone();
        self.get(&id).ok()
    }

    pub fn accept(&self, id: &str) -> Result<String, String> {
        let _lock = self.lock()?;
        let mut index = self.read_index();
        let check = index
            .runs
            .iter()
            .find(|e| e.id == id)
            .map(|e| e.check.clone())
            .ok_or_else(|| format!("no run `{id}` in {}", self.dir.display()))?;
        index.baselines.insert(check.clone(), id.to_string());
        self.write_index(&index)?;
        Ok(check)
    }

    /// Forgets `check`'s baseline; true if there was one.
    pub fn reset(&self, check: &str) -> Result<bool, String> {
        let _lock = self.lock()?;
        let mut index = self.read_index();
        let had = index.baselines.remove(check).is_some();
        self.write_index(&index)?;
        Ok(had)
    }
}

fn entry(r: &CheckResult) -> IndexEntry {
    IndexEntry {
        id: r.id.clone(),
        check: r.check.clone(),
        kind: r.kind,
        started_unix: r.started_unix,
        verdict: r.verdict,
    }
}

fn read_result(p: &Path) -> Option<CheckResult> {
    serde_json::from_slice(&std::fs::read(p).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::result::{Details, FORMAT};

    pub fn sample(check: &str, n: u32) -> CheckResult {
        CheckResult {
            format: FORMAT,
            id: format!("2026010{n}T000000.000Z-{check}"),
            check: check.into(),
            kind: ScenarioKind::Load,
            started_unix: f64::from(n),
            duration_seconds: 1.0,
            verdict: Verdict::Pass,
            aborted_by: None,
            phases: Vec::new(),
            thresholds: Vec::new(),
            findings: Vec::new(),
            details: Details::Load,
            windows: Vec::new(),
            memory: Vec::new(),
            memory_process: None,
            baseline: None,
            comparisons: Vec::new(),
        }
    }

    #[test]
    fn keeps_runs_prunes_old_ones_but_never_the_baseline() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path(), 2).unwrap();
        s.save(&sample("a", 1), true).unwrap();
        for n in 2..=5 {
            s.save(&sample("a", n), false).unwrap();
        }
        s.save(&sample("b", 1), false).unwrap();
        let ids: Vec<String> = s.list(Some("a")).into_iter().map(|e| e.id).collect();
        assert_eq!(ids.len(), 3, "{ids:?}");
        assert!(
            ids[0].starts_with("20260101"),
            "the baseline stays: {ids:?}"
        );
        assert_eq!(s.baseline("a").unwrap().id, ids[0]);
        assert_eq!(s.list(None).len(), 4);
        assert_eq!(s.accept(&ids[2]).unwrap(), "a");
        assert_eq!(s.baseline("a").unwrap().id, ids[2]);
        assert!(s.reset("a").unwrap());
        assert!(s.baseline("a").is_none());
        assert!(s.get("nope").is_err());
    }

    #[test]
    fn open_repairs_what_a_crash_leaves() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path(), 5).unwrap();
        s.save(&sample("a", 1), true).unwrap();
        // A run file whose index update never happened, and a torn temp file.
        let r = sample("a", 2);
        let dir = d.path().join("runs/a");
        std::fs::write(
            dir.join(format!("{}.json", r.id)),
            serde_json::to_vec(&r).unwrap(),
        )
        .unwrap();
        std::fs::write(dir.join(".x.json.tmp.123"), b"{\"half").unwrap();
        std::fs::write(d.path().join(".index.json.tmp.9"), b"{").unwrap();
        let s = Store::open(d.path(), 5).unwrap();
        assert_eq!(s.list(None).len(), 2);
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 2);
        assert!(!d.path().join(".index.json.tmp.9").exists());
        assert_eq!(s.baselines().len(), 1);
    }
}
