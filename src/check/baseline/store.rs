//! The result store: one JSON file per run under `runs/CHECK/`, each
//! check's baseline in `runs/CHECK/baseline` (the run id, or empty for
//! none), and `index.json` listing the runs with a copy of the baselines.
//!
//! Every file is written atomically (temp file, fsync, rename, fsync of the
//! directory), a new directory is fsynced in its parent, and a save writes
//! the run file, then the baseline file, then the index, so a crash at any
//! point leaves a readable store: at worst a run file the index does not
//! list yet, which the next open adds back.
//!
//! The index is a cache of the files. When it cannot be read it is rebuilt
//! from the run files that parse and the baseline files, so no baseline is
//! lost with it. A baseline that is recorded but cannot be read is an
//! error ([`Store::baseline`]), never "no baseline", so no run replaces it
//! until someone accepts another or resets it.
//!
//! Writers ([`Store::open`]) hold an exclusive `flock` on `.lock` for each
//! change (the sidecar and a `sidewatch check` CronJob may share a volume).
//! Readers ([`Store::open_read`]: `baseline list|show`, `report`) take a
//! shared one if they can, and create, write and remove nothing, so they
//! work on a read-only mount.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::ErrorKind;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::check::result::{CheckResult, ScenarioKind, Verdict};
use crate::fsutil::{create_dir_durable, write_atomic};

/// One run as the index lists it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct IndexEntry {
    pub id: String,
    pub(crate) check: String,
    pub kind: ScenarioKind,
    pub(crate) started_unix: f64,
    pub verdict: Verdict,
    /// How long the run took; 0 in an index written before this field
    /// (the index is a cache, rebuilt from the run files when unreadable).
    #[serde(default)]
    pub(crate) duration_seconds: f64,
}

/// A check's baseline as the store records it.
#[derive(Clone, Debug, PartialEq)]
pub enum Baseline {
    /// This run is the baseline.
    Run(String),
    /// A baseline is recorded, but the record cannot be read (why). Only
    /// `accept` or `reset` replaces it.
    Unreadable(String),
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Index {
    version: u32,
    runs: Vec<IndexEntry>,
    /// A copy of each check's baseline file (versions before 2 kept the
    /// baselines only here).
    baselines: BTreeMap<String, String>,
    /// Checks whose baseline went with an unreadable index before it had
    /// its own file: unreadable until accepted or reset.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    lost: BTreeSet<String>,
}

/// The index's version: 2 since each baseline has its own file.
const VERSION: u32 = 2;

/// The store as the files say: the index's runs checked against the run
/// files, and each check's baseline.
struct View {
    runs: Vec<IndexEntry>,
    baselines: BTreeMap<String, Baseline>,
    /// Checks whose baseline the index lost (see [`Index::lost`]).
    lost: BTreeSet<String>,
    /// Checks without a baseline file, and what the index says (the file a
    /// writer adds).
    unrecorded: BTreeMap<String, Option<String>>,
    /// The index as read; `None` when missing or unreadable.
    index_bytes: Option<Vec<u8>>,
    /// Why the index was not used.
    index_problem: Option<String>,
    /// Temp files a crash left behind.
    leftovers: Vec<PathBuf>,
}

impl View {
    fn index(&self) -> Index {
        Index {
            version: VERSION,
            runs: self.runs.clone(),
            baselines: self
                .baselines
                .iter()
                .filter_map(|(c, b)| match b {
                    Baseline::Run(id) => Some((c.clone(), id.clone())),
                    Baseline::Unreadable(_) => None,
                })
                .collect(),
            lost: self.lost.clone(),
        }
    }

    fn entry(&self, id: &str) -> Option<&IndexEntry> {
        self.runs.iter().find(|e| e.id == id)
    }
}

#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    keep: usize,
    /// Opened with [`Store::open_read`]: never writes.
    read_only: bool,
}

/// Holds the store's lock until dropped.
struct Lock(File);

impl Drop for Lock {
    fn drop(&mut self) {
        // SAFETY: flock on a descriptor we own; unlocking cannot violate memory safety.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

/// Takes a reader's shared lock without blocking for long: a writer holds
/// the lock only for a save, so a reader that cannot have it within
/// [`READ_LOCK_WAIT`] gives up ("store busy") rather than tie up a thread.
fn shared_lock(file: &File, path: &Path) -> Result<(), String> {
    let deadline = std::time::Instant::now() + READ_LOCK_WAIT;
    loop {
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) } == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != ErrorKind::WouldBlock {
            return Err(io("cannot lock", path, e));
        }
        if std::time::Instant::now() >= deadline {
            return Err(format!(
                "store busy: {} is locked by a writer",
                path.display()
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Longest a reader waits for a writer to let go of the store.
const READ_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Why a store operation failed: the run asked for is not in the store, or
/// the store could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    NotFound(String),
    Io(String),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::NotFound(e) | StoreError::Io(e) => f.write_str(e),
        }
    }
}

impl From<String> for StoreError {
    fn from(e: String) -> Self {
        StoreError::Io(e)
    }
}

fn io(what: &str, path: &Path, e: impl std::fmt::Display) -> String {
    format!("{what} {}: {e}", path.display())
}

fn is_temp(name: &str) -> bool {
    name.starts_with('.') && name.contains(".tmp.")
}

impl Store {
    /// Opens (creating) the store for writing, clears temp files a crash
    /// left behind, rebuilds an unreadable index from the files, and gives
    /// every check its baseline file.
    pub fn open(dir: &Path, keep: usize) -> Result<Store, String> {
        let runs = dir.join("runs");
        create_dir_durable(&runs).map_err(|e| io("cannot create", &runs, e))?;
        let store = Store {
            dir: dir.to_path_buf(),
            keep: keep.max(1),
            read_only: false,
        };
        let _lock = store.lock(true)?;
        store.repair()?;
        Ok(store)
    }

    /// Opens the store for reading only: creates, writes and removes
    /// nothing, and locks only if `.lock` can be opened for reading, so it
    /// works on a read-only mount. An index a crash or a disk left
    /// unreadable is rebuilt in memory. A store not created yet is empty.
    pub fn open_read(dir: &Path) -> Result<Store, String> {
        match std::fs::metadata(dir) {
            Ok(m) if !m.is_dir() => Err(format!("{} is not a directory", dir.display())),
            Err(e) if e.kind() != ErrorKind::NotFound => Err(io("cannot open", dir, e)),
            _ => Ok(Store {
                dir: dir.to_path_buf(),
                keep: usize::MAX,
                read_only: true,
            }),
        }
    }

    /// The store's directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// An exclusive lock for a writer, or a shared one for a reader (none
    /// when `.lock` cannot be opened for reading: a store no writer has
    /// opened, or a mount that does not let us).
    fn lock(&self, exclusive: bool) -> Result<Option<Lock>, String> {
        let path = self.dir.join(".lock");
        let file = if exclusive {
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(|e| io("cannot open", &path, e))?
        } else {
            match File::open(&path) {
                Ok(f) => f,
                Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::PermissionDenied) => {
                    return Ok(None)
                }
                Err(e) => return Err(io("cannot open", &path, e)),
            }
        };
        if exclusive {
            // SAFETY: flock on a descriptor we own.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
                return Err(io("cannot lock", &path, std::io::Error::last_os_error()));
            }
        } else {
            shared_lock(&file, &path)?;
        }
        Ok(Some(Lock(file)))
    }

    fn writable(&self) -> Result<(), String> {
        if self.read_only {
            return Err(format!("{} was opened read-only", self.dir.display()));
        }
        Ok(())
    }

    fn index_path(&self) -> PathBuf {
        self.dir.join("index.json")
    }

    fn check_dir(&self, check: &str) -> PathBuf {
        self.dir.join("runs").join(check)
    }

    fn run_path(&self, check: &str, id: &str) -> PathBuf {
        self.check_dir(check).join(format!("{id}.json"))
    }

    fn baseline_path(&self, check: &str) -> PathBuf {
        self.check_dir(check).join("baseline")
    }

    /// The store as its files say, without writing anything (the caller
    /// holds a lock).
    fn view(&self) -> Result<View, String> {
        let path = self.index_path();
        let (index, index_bytes, index_problem) = match std::fs::read(&path) {
            Ok(b) => match serde_json::from_slice::<Index>(&b) {
                Ok(i) => (Some(i), Some(b), None),
                Err(e) => (None, None, Some(io("cannot parse", &path, e))),
            },
            Err(e) if e.kind() == ErrorKind::NotFound => (None, None, None),
            Err(e) => (None, None, Some(io("cannot read", &path, e))),
        };
        let mut view = View {
            runs: Vec::new(),
            baselines: BTreeMap::new(),
            lost: BTreeSet::new(),
            unrecorded: BTreeMap::new(),
            index_bytes,
            index_problem,
            leftovers: Vec::new(),
        };
        for f in entries(&self.dir)? {
            if is_temp(&f) {
                view.leftovers.push(self.dir.join(f));
            }
        }
        let listed: BTreeMap<(&str, &str), &IndexEntry> = index
            .iter()
            .flat_map(|i| &i.runs)
            .map(|e| ((e.check.as_str(), e.id.as_str()), e))
            .collect();
        let runs = self.dir.join("runs");
        let mut checks = BTreeSet::new();
        for check in entries(&runs)? {
            let dir = runs.join(&check);
            if !dir.is_dir() {
                continue;
            }
            let mut has_runs = false;
            for f in entries(&dir)? {
                if is_temp(&f) {
                    view.leftovers.push(dir.join(&f));
                    continue;
                }
                let Some(id) = f.strip_suffix(".json").filter(|id| !id.starts_with('.')) else {
                    continue;
                };
                if let Some(e) = listed.get(&(check.as_str(), id)) {
                    view.runs.push((*e).clone());
                } else if let Some(r) = read_result(&dir.join(&f))
                    .ok()
                    .filter(|r| r.id == id && r.check == check)
                {
                    view.runs.push(entry(&r));
                } else {
                    continue;
                }
                has_runs = true;
            }
            let base = match self.read_baseline_file(&check) {
                Ok(Some(recorded)) => recorded.map(Baseline::Run),
                Err(why) => Some(Baseline::Unreadable(why)),
                // No file: a store written before baselines had files, or
                // a check whose first save a crash cut short.
                Ok(None) => match &index {
                    Some(i) if i.lost.contains(&check) => {
                        view.lost.insert(check.clone());
                        Some(self.lost(&check))
                    }
                    Some(i) => {
                        let id = i.baselines.get(&check).cloned();
                        view.unrecorded.insert(check.clone(), id.clone());
                        id.map(Baseline::Run)
                    }
                    None if has_runs => {
                        view.lost.insert(check.clone());
                        Some(self.lost(&check))
                    }
                    None => {
                        view.unrecorded.insert(check.clone(), None);
                        None
                    }
                },
            };
            if let Some(b) = base {
                view.baselines.insert(check.clone(), b);
            }
            checks.insert(check);
        }
        // A baseline the index names for a check whose directory is gone:
        // kept, so that asking for it is an error rather than "none".
        for (check, id) in index.iter().flat_map(|i| &i.baselines) {
            if !checks.contains(check) {
                view.baselines
                    .insert(check.clone(), Baseline::Run(id.clone()));
            }
        }
        // In the order they were saved, as the index lists them: a wall
        // clock stepped back must not make a fresh run the first pruned.
        // Runs the index does not list (a crash, a rebuilt index) go last,
        // by time.
        let saved: BTreeMap<&str, usize> = index
            .iter()
            .flat_map(|i| &i.runs)
            .enumerate()
            .map(|(n, e)| (e.id.as_str(), n))
            .collect();
        let position = |e: &IndexEntry| saved.get(e.id.as_str()).copied().unwrap_or(usize::MAX);
        view.runs.sort_by(|a, b| {
            position(a)
                .cmp(&position(b))
                .then(a.started_unix.total_cmp(&b.started_unix))
                .then(a.id.cmp(&b.id))
        });
        Ok(view)
    }

    fn lost(&self, check: &str) -> Baseline {
        Baseline::Unreadable(format!(
            "{} was unreadable and {} does not exist; accept a run or reset the baseline",
            self.index_path().display(),
            self.baseline_path(check).display()
        ))
    }

    /// `Ok(None)` without a baseline file; `Ok(Some(None))` for "no
    /// baseline"; an error if the file cannot be read or holds no run id.
    fn read_baseline_file(&self, check: &str) -> Result<Option<Option<String>>, String> {
        let path = self.baseline_path(check);
        let text = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io("cannot read", &path, e)),
        };
        let text = String::from_utf8(text).unwrap_or_default();
        let id = text.trim();
        if id.is_empty() {
            return Ok(Some(None));
        }
        if id.starts_with('.') || id.contains(['/', '\0', '\n']) {
            return Err(format!("{} holds no run id", path.display()));
        }
        Ok(Some(Some(id.to_string())))
    }

    /// Records `check`'s baseline in its own file (`None`: no baseline).
    fn write_baseline_file(&self, check: &str, id: Option<&str>) -> Result<(), String> {
        let dir = self.check_dir(check);
        create_dir_durable(&dir).map_err(|e| io("cannot create", &dir, e))?;
        let path = self.baseline_path(check);
        let body = id.map(|id| format!("{id}\n")).unwrap_or_default();
        write_atomic(&path, body.as_bytes()).map_err(|e| io("cannot write", &path, e))
    }

    /// Writes the index if it differs from the one on disk.
    fn write_index(&self, view: &View) -> Result<(), String> {
        let body = serde_json::to_vec_pretty(&view.index()).expect("serializable");
        if view.index_bytes.as_deref() == Some(body.as_slice()) {
            return Ok(());
        }
        write_atomic(&self.index_path(), &body)
            .map_err(|e| io("cannot write", &self.index_path(), e))
    }

    /// Removes temp files, writes the baseline files an older store or a
    /// crash left out, and rewrites the index if it is stale or unreadable.
    fn repair(&self) -> Result<(), String> {
        let view = self.view()?;
        for p in &view.leftovers {
            let _ = std::fs::remove_file(p);
        }
        if let Some(problem) = &view.index_problem {
            tracing::warn!(store = %self.dir.display(), %problem, "rebuilding the index from the run files");
        }
        for (check, id) in &view.unrecorded {
            self.write_baseline_file(check, id.as_deref())?;
        }
        self.write_index(&view)
    }

    /// Saves a run (optionally as its check's new baseline) and prunes
    /// old runs beyond `keep` per check; baselines are never pruned.
    pub fn save(&self, r: &CheckResult, accept: bool) -> Result<(), String> {
        self.writable()?;
        let _lock = self.lock(true)?;
        let mut view = self.view()?;
        let dir = self.check_dir(&r.check);
        create_dir_durable(&dir).map_err(|e| io("cannot create", &dir, e))?;
        if !view.baselines.contains_key(&r.check) && !view.lost.contains(&r.check) {
            // Record "none" before the first run, so a lost index later
            // cannot leave this check's baseline unknown.
            if self.read_baseline_file(&r.check) == Ok(None) {
                self.write_baseline_file(&r.check, None)?;
            }
        }
        let path = self.run_path(&r.check, &r.id);
        let body = serde_json::to_vec_pretty(r).expect("serializable");
        write_atomic(&path, &body).map_err(|e| io("cannot write", &path, e))?;
        view.runs.retain(|e| e.id != r.id);
        view.runs.push(entry(r));
        if accept {
            self.write_baseline_file(&r.check, Some(&r.id))?;
            view.baselines
                .insert(r.check.clone(), Baseline::Run(r.id.clone()));
            view.lost.remove(&r.check);
        }
        let doomed = self.prune(&view, &r.check);
        view.runs.retain(|e| !doomed.contains(&e.id));
        self.write_index(&view)?;
        for id in doomed {
            let _ = std::fs::remove_file(self.run_path(&r.check, &id));
        }
        Ok(())
    }

    /// Runs of `check` beyond the newest `keep`, sparing the baseline (all
    /// of them while the baseline cannot be read).
    fn prune(&self, view: &View, check: &str) -> Vec<String> {
        let base = match view.baselines.get(check) {
            Some(Baseline::Unreadable(_)) => return Vec::new(),
            Some(Baseline::Run(id)) => Some(id),
            None => None,
        };
        let runs: Vec<&IndexEntry> = view
            .runs
            .iter()
            .filter(|e| e.check == check && Some(&e.id) != base)
            .collect();
        let extra = runs.len().saturating_sub(self.keep);
        runs[..extra].iter().map(|e| e.id.clone()).collect()
    }

    /// Reads under a shared lock.
    fn read_view(&self) -> Result<View, String> {
        let _lock = self.lock(false)?;
        self.view()
    }

    /// Runs in the order they were saved (oldest first), optionally of one
    /// check.
    pub fn list(&self, check: Option<&str>) -> Result<Vec<IndexEntry>, String> {
        let mut runs = self.read_view()?.runs;
        runs.retain(|e| check.is_none_or(|c| e.check == c));
        Ok(runs)
    }

    /// Each check's baseline, for the checks that have one.
    pub fn baselines(&self) -> Result<BTreeMap<String, Baseline>, String> {
        Ok(self.read_view()?.baselines)
    }

    pub fn get(&self, id: &str) -> Result<CheckResult, StoreError> {
        let view = self.read_view()?;
        let e = view.entry(id).ok_or_else(|| self.no_run(id))?;
        Ok(read_result(&self.run_path(&e.check, &e.id))?)
    }

    fn no_run(&self, id: &str) -> StoreError {
        StoreError::NotFound(format!("no run `{id}` in {}", self.dir.display()))
    }

    /// The accepted baseline of `check`: `None` if it has none, an error if
    /// one is recorded but cannot be read (so that it is never replaced as
    /// if there were none).
    pub fn baseline(&self, check: &str) -> Result<Option<CheckResult>, String> {
        let view = self.read_view()?;
        match view.baselines.get(check) {
            None => Ok(None),
            Some(Baseline::Unreadable(why)) => {
                Err(format!("the baseline of `{check}` cannot be read: {why}"))
            }
            Some(Baseline::Run(id)) => read_result(&self.run_path(check, id))
                .map(Some)
                .map_err(|e| format!("the baseline of `{check}`, run {id}, cannot be read: {e}")),
        }
    }

    pub(crate) fn accept(&self, id: &str) -> Result<String, StoreError> {
        self.writable()?;
        let _lock = self.lock(true)?;
        let mut view = self.view()?;
        let check = view
            .entry(id)
            .map(|e| e.check.clone())
            .ok_or_else(|| self.no_run(id))?;
        self.write_baseline_file(&check, Some(id))?;
        view.baselines
            .insert(check.clone(), Baseline::Run(id.to_string()));
        view.lost.remove(&check);
        self.write_index(&view)?;
        Ok(check)
    }

    /// Forgets `check`'s baseline (readable or not); true if there was one.
    pub(crate) fn reset(&self, check: &str) -> Result<bool, String> {
        self.writable()?;
        let _lock = self.lock(true)?;
        let mut view = self.view()?;
        let had = view.baselines.remove(check).is_some();
        view.lost.remove(check);
        if had || self.check_dir(check).is_dir() {
            self.write_baseline_file(check, None)?;
        }
        self.write_index(&view)?;
        Ok(had)
    }
}

/// The names in a directory; none if it does not exist.
fn entries(dir: &Path) -> Result<Vec<String>, String> {
    let it = match std::fs::read_dir(dir) {
        Ok(it) => it,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io("cannot read", dir, e)),
    };
    let mut names = Vec::new();
    for e in it {
        let e = e.map_err(|e| io("cannot read", dir, e))?;
        names.push(e.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

fn entry(r: &CheckResult) -> IndexEntry {
    IndexEntry {
        id: r.id.clone(),
        check: r.check.clone(),
        kind: r.kind,
        started_unix: r.started_unix,
        verdict: r.verdict,
        duration_seconds: r.duration_seconds,
    }
}

fn read_result(p: &Path) -> Result<CheckResult, String> {
    let bytes = std::fs::read(p).map_err(|e| io("cannot read", p, e))?;
    serde_json::from_slice(&bytes).map_err(|e| io("cannot read", p, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::result::{Details, FORMAT};

    pub(crate) fn sample(check: &str, n: u32) -> CheckResult {
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
        let ids = ids(&s, "a");
        assert_eq!(ids.len(), 3, "{ids:?}");
        assert!(
            ids[0].starts_with("20260101"),
            "the baseline stays: {ids:?}"
        );
        assert_eq!(base(&s, "a"), ids[0]);
        assert_eq!(s.list(None).unwrap().len(), 4);
        assert_eq!(s.accept(&ids[2]).unwrap(), "a");
        assert_eq!(base(&s, "a"), ids[2]);
        assert!(s.reset("a").unwrap());
        assert!(s.baseline("a").unwrap().is_none());
        assert!(!s.reset("a").unwrap());
        assert!(s.get("nope").is_err());
    }

    /// The ids of a check's runs, as listed.
    fn ids(s: &Store, check: &str) -> Vec<String> {
        s.list(Some(check))
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect()
    }

    #[test]
    fn a_clock_stepped_back_prunes_by_save_order_not_by_the_clock() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path(), 2).unwrap();
        for n in 5..=6 {
            s.save(&sample("a", n), false).unwrap();
        }
        // The wall clock stepped back: this run looks older than both.
        let fresh = sample("a", 3);
        s.save(&fresh, false).unwrap();
        s.save(&sample("a", 7), false).unwrap();
        let ids = ids(&s, "a");
        assert_eq!(
            ids,
            [fresh.id, sample("a", 7).id],
            "the two saved last stay"
        );
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
        assert_eq!(s.list(None).unwrap().len(), 2);
        // Two runs and the baseline file.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 3);
        assert!(!d.path().join(".index.json.tmp.9").exists());
        assert_eq!(s.baselines().unwrap().len(), 1);
    }

    /// A store in `d` with these runs: (check, n, accepted).
    fn holding(d: &Path, keep: usize, runs: &[(&str, u32, bool)]) -> Store {
        let s = Store::open(d, keep).unwrap();
        for &(check, n, accept) in runs {
            s.save(&sample(check, n), accept).unwrap();
        }
        s
    }

    #[test]
    fn a_corrupt_index_is_rebuilt_with_its_baselines() {
        let d = tempfile::tempdir().unwrap();
        let runs = [
            ("a", 1, true),
            ("a", 2, false),
            ("b", 1, false),
            ("b", 2, true),
        ];
        holding(d.path(), 5, &runs);
        std::fs::write(d.path().join("index.json"), b"{\"runs\": [").unwrap();
        let s = Store::open(d.path(), 5).unwrap();
        assert_eq!(s.list(None).unwrap().len(), 4);
        assert_eq!(base(&s, "a"), sample("a", 1).id);
        assert_eq!(base(&s, "b"), sample("b", 2).id);
        let index = std::fs::read(d.path().join("index.json")).unwrap();
        let index: Index = serde_json::from_slice(&index).expect("rewritten");
        assert_eq!(index.baselines.len(), 2);
    }

    /// The id of `check`'s baseline, which must read.
    fn base(s: &Store, check: &str) -> String {
        s.baseline(check).unwrap().expect("a baseline").id
    }

    /// Every file under `dir` with its bytes.
    fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut out = BTreeMap::new();
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            if e.path().is_dir() {
                out.extend(snapshot(&e.path()));
            } else {
                out.insert(e.path(), std::fs::read(e.path()).unwrap());
            }
        }
        out
    }

    #[test]
    fn reading_writes_nothing_even_when_the_store_needs_repair() {
        let d = tempfile::tempdir().unwrap();
        holding(d.path(), 5, &[("a", 1, true), ("a", 2, false)]);
        std::fs::write(d.path().join("index.json"), b"{").unwrap();
        std::fs::write(d.path().join("runs/a/.x.json.tmp.1"), b"{").unwrap();
        let before = snapshot(d.path());
        let r = Store::open_read(d.path()).unwrap();
        assert_eq!(r.list(None).unwrap().len(), 2);
        assert_eq!(base(&r, "a"), sample("a", 1).id);
        assert_eq!(r.get(&sample("a", 2).id).unwrap(), sample("a", 2));
        assert_eq!(snapshot(d.path()), before);
        assert!(r.save(&sample("a", 3), false).is_err());
        assert!(r.accept(&sample("a", 2).id).is_err());
        assert!(r.reset("a").is_err());
        assert_eq!(snapshot(d.path()), before);
        // Nothing stored yet: empty, and still nothing written.
        let none = d.path().join("none");
        assert!(Store::open_read(&none)
            .unwrap()
            .list(None)
            .unwrap()
            .is_empty());
        assert!(!none.exists());
    }

    #[test]
    fn a_baseline_that_cannot_be_read_is_an_error_and_stays() {
        let d = tempfile::tempdir().unwrap();
        let s = holding(d.path(), 2, &[("a", 1, true)]);
        let file = d
            .path()
            .join("runs/a")
            .join(format!("{}.json", sample("a", 1).id));
        std::fs::write(&file, b"{\"id\":").unwrap();
        let e = s.baseline("a").unwrap_err();
        assert!(
            e.contains("cannot read") && e.contains(&sample("a", 1).id),
            "{e}"
        );
        // Gone altogether: still an error, not "no baseline".
        std::fs::remove_file(&file).unwrap();
        let s = Store::open(d.path(), 2).unwrap();
        assert!(s.baseline("a").is_err());
        assert_eq!(
            s.baselines().unwrap()["a"],
            Baseline::Run(sample("a", 1).id)
        );
        // A baseline file that holds no id.
        std::fs::write(d.path().join("runs/a/baseline"), b"../../etc\n").unwrap();
        assert!(matches!(
            s.baselines().unwrap()["a"],
            Baseline::Unreadable(_)
        ));
        assert!(s.baseline("a").unwrap_err().contains("holds no run id"));
        // Until someone accepts another run, or resets it.
        s.save(&sample("a", 2), false).unwrap();
        assert_eq!(s.accept(&sample("a", 2).id).unwrap(), "a");
        assert_eq!(base(&s, "a"), sample("a", 2).id);
        assert!(s.reset("a").unwrap());
        assert!(s.baseline("a").unwrap().is_none());
    }

    /// A store written before baselines had their own files.
    fn legacy(d: &Path, index: &[u8]) {
        std::fs::create_dir_all(d.join("runs/a")).unwrap();
        for n in 1..=2 {
            let r = sample("a", n);
            std::fs::write(
                d.join("runs/a").join(format!("{}.json", r.id)),
                serde_json::to_vec(&r).unwrap(),
            )
            .unwrap();
        }
        std::fs::write(d.join("index.json"), index).unwrap();
    }

    #[test]
    fn an_older_stores_baselines_get_their_own_files() {
        let d = tempfile::tempdir().unwrap();
        let index = Index {
            version: 1,
            runs: vec![entry(&sample("a", 1)), entry(&sample("a", 2))],
            baselines: [("a".to_string(), sample("a", 1).id)].into(),
            lost: BTreeSet::new(),
        };
        legacy(d.path(), &serde_json::to_vec(&index).unwrap());
        assert_eq!(
            base(&Store::open_read(d.path()).unwrap(), "a"),
            sample("a", 1).id
        );
        let s = Store::open(d.path(), 5).unwrap();
        assert_eq!(
            std::fs::read_to_string(d.path().join("runs/a/baseline")).unwrap(),
            format!("{}\n", sample("a", 1).id)
        );
        std::fs::write(d.path().join("index.json"), b"garbage").unwrap();
        assert_eq!(base(&s, "a"), sample("a", 1).id);
    }

    #[test]
    fn an_older_store_with_a_corrupt_index_never_makes_its_baseline_none() {
        let d = tempfile::tempdir().unwrap();
        legacy(d.path(), b"{\"version\": 1, \"runs\": [");
        let s = Store::open(d.path(), 1).unwrap();
        assert_eq!(s.list(None).unwrap().len(), 2, "rebuilt from the run files");
        let e = s.baseline("a").unwrap_err();
        assert!(e.contains("index.json was unreadable"), "{e}");
        // It stays unknown across saves and opens, and nothing is pruned.
        for n in 3..=4 {
            s.save(&sample("a", n), false).unwrap();
        }
        let s = Store::open(d.path(), 1).unwrap();
        assert!(s.baseline("a").is_err());
        assert_eq!(s.list(None).unwrap().len(), 4);
        assert_eq!(s.accept(&sample("a", 1).id).unwrap(), "a");
        assert_eq!(
            base(&Store::open(d.path(), 1).unwrap(), "a"),
            sample("a", 1).id
        );
    }
}
