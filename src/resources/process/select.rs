//! Selection: which processes belong to a group (pid file, comm, cmdline
//! regex, all in the pod, sidewatch itself), resolved again at every sample
//! so restarts and new processes are followed.

use std::collections::HashMap;
use std::path::PathBuf;

use procfs::process::{Process, Stat};
use regex::Regex;

use super::read::Reading;
use crate::config::{BuildCx, ProcessSelector};

/// The `process` label of sidewatch's own group.
pub(crate) const SELF_LABEL: &str = "sidewatch";

#[derive(Clone, Debug)]
enum How {
    PidFile(PathBuf),
    Comm(String),
    Cmdline(Regex),
    AllInPod,
    Myself,
}

/// A compiled selector.
#[derive(Clone, Debug)]
pub(crate) struct Selector {
    pub(crate) label: String,
    how: How,
}

impl Selector {
    pub(crate) fn build(cfg: &ProcessSelector, cx: &mut BuildCx) -> Option<Selector> {
        let label_ok = !cfg.label.is_empty()
            && cfg.label.len() <= 64
            && cfg
                .label
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
        if !label_ok {
            cx.problem_at("label", "must be 1 to 64 letters, digits, `_`, `-` or `.`");
        }
        if cfg.label == SELF_LABEL {
            cx.problem_at(
                "label",
                "`sidewatch` is reserved for sidewatch's own process",
            );
        }
        let set = [
            cfg.pid_file.is_some(),
            cfg.comm.is_some(),
            cfg.cmdline.is_some(),
            cfg.all_in_pod,
        ];
        if set.iter().filter(|b| **b).count() != 1 {
            cx.problem("set exactly one of `pid_file`, `comm`, `cmdline` or `all_in_pod: true`");
            return None;
        }
        let how = if let Some(p) = &cfg.pid_file {
            How::PidFile(p.clone())
        } else if let Some(c) = &cfg.comm {
            if c.len() > 15 {
                cx.problem_at(
                    "comm",
                    "the kernel keeps at most 15 characters of a process name",
                );
            }
            How::Comm(c.clone())
        } else if let Some(re) = &cfg.cmdline {
            match Regex::new(re) {
                Ok(r) => How::Cmdline(r),
                Err(e) => {
                    cx.problem_at("cmdline", format!("invalid regex: {e}"));
                    return None;
                }
            }
        } else {
            How::AllInPod
        };
        label_ok.then_some(Selector {
            label: cfg.label.clone(),
            how,
        })
    }

    /// sidewatch's own process.
    pub(crate) fn myself() -> Selector {
        Selector {
            label: SELF_LABEL.into(),
            how: How::Myself,
        }
    }

    /// The group's total RSS and CPU seconds, its newest start time and its
    /// size, read now; for checks, which watch one group closely.
    pub(crate) fn totals(&self) -> Totals {
        let scan = Scan::take(&[self]);
        let mut t = Totals::default();
        for r in scan.members(self).into_iter().filter_map(|pid| {
            let stat = scan.stat(pid)?;
            Reading::read_with(pid, stat, &mut None)
        }) {
            t.rss += r.rss;
            t.cpu_seconds += r.user_seconds + r.system_seconds;
            t.newest_start = t.newest_start.max(r.start_ticks);
            t.processes += 1;
        }
        t
    }

    fn needs_scan(&self) -> bool {
        matches!(self.how, How::Comm(_) | How::Cmdline(_) | How::AllInPod)
    }
}

/// A group's totals at one instant.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Totals {
    pub(crate) rss: u64,
    pub(crate) cpu_seconds: f64,
    /// Start time (clock ticks after boot) of the newest member.
    pub(crate) newest_start: u64,
    pub(crate) processes: u32,
}

/// The processes present at one sample, read once for every selector; their
/// `stat` is kept so matched processes are not read twice.
pub(crate) struct Scan {
    me: i32,
    procs: Vec<(i32, String, Option<String>)>,
    stats: HashMap<i32, Stat>,
}

impl Scan {
    /// Lists processes with their names; command lines only if asked for.
    pub(crate) fn take(selectors: &[&Selector]) -> Scan {
        let me = std::process::id() as i32;
        let mut procs = Vec::new();
        let mut stats = HashMap::new();
        if selectors.iter().any(|s| s.needs_scan()) {
            let want_cmdline = selectors.iter().any(|s| matches!(s.how, How::Cmdline(_)));
            if let Ok(all) = procfs::process::all_processes() {
                for p in all.flatten() {
                    let Ok(stat) = p.stat() else { continue };
                    let cmdline = want_cmdline
                        .then(|| p.cmdline().ok().map(|a| a.join(" ")))
                        .flatten();
                    procs.push((p.pid(), stat.comm.clone(), cmdline));
                    stats.insert(p.pid(), stat);
                }
            }
        }
        Scan { me, procs, stats }
    }

    /// The pids `selector` matches now.
    pub(super) fn members(&self, selector: &Selector) -> Vec<i32> {
        self.select(&selector.how)
    }

    /// The process's `stat` from the scan, or read now.
    pub(super) fn stat(&self, pid: i32) -> Option<Stat> {
        match self.stats.get(&pid) {
            Some(s) => Some(s.clone()),
            None => Process::new(pid).ok()?.stat().ok(),
        }
    }

    fn select(&self, how: &How) -> Vec<i32> {
        match how {
            How::Myself => vec![self.me],
            How::PidFile(path) => read_pid_file(path)
                .filter(|pid| Process::new(*pid).is_ok())
                .into_iter()
                .collect(),
            How::Comm(name) => self.filter(|_, comm, _| comm == name),
            How::Cmdline(re) => self.filter(|_, _, cmd| cmd.is_some_and(|c| re.is_match(c))),
            How::AllInPod => self.filter(|pid, comm, _| pid != self.me && comm != "pause"),
        }
    }

    fn filter(&self, f: impl Fn(i32, &str, Option<&str>) -> bool) -> Vec<i32> {
        self.procs
            .iter()
            .filter(|(pid, comm, cmd)| f(*pid, comm, cmd.as_deref()))
            .map(|(pid, _, _)| *pid)
            .collect()
    }
}

/// The PID in a pid file. Only a regular file is read, and only its first
/// bytes: opened non-blocking, so a FIFO nobody writes cannot hang the
/// sampler, and `/dev/zero` cannot fill its memory.
fn read_pid_file(path: &std::path::Path) -> Option<i32> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let mut text = String::new();
    file.take(64).read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Problems;
    use crate::redact::Redactor;

    /// A pid file that is a FIFO nobody writes, or `/dev/zero`, must not
    /// hang the sampler or fill its memory: it selects nothing.
    #[test]
    fn a_pid_file_that_is_not_a_small_regular_file_selects_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pid");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(read_pid_file(&fifo));
        });
        let read = rx.recv_timeout(std::time::Duration::from_secs(5));
        assert_eq!(read, Ok(None), "a FIFO pid file must not block");
        let regular = dir.path().join("app.pid");
        std::fs::write(&regular, "42\n").unwrap();
        assert_eq!(read_pid_file(&regular), Some(42));
    }

    #[test]
    fn selectors_need_exactly_one_criterion() {
        let mut p = Problems::default();
        let cfg = ProcessSelector {
            label: "app".into(),
            pid_file: None,
            comm: None,
            cmdline: None,
            all_in_pod: false,
        };
        assert!(
            Selector::build(&cfg, &mut BuildCx::new(&mut p, &mut Redactor::default())).is_none()
        );
        let cfg = ProcessSelector {
            label: "sidewatch".into(),
            pid_file: None,
            comm: Some("x".into()),
            cmdline: None,
            all_in_pod: false,
        };
        assert!(
            Selector::build(&cfg, &mut BuildCx::new(&mut p, &mut Redactor::default())).is_some()
        );
        assert_eq!(p.0.len(), 2);
    }

    #[test]
    fn self_selection_finds_this_process() {
        let sel = Selector::myself();
        let scan = Scan::take(&[&sel]);
        assert_eq!(scan.select(&sel.how), vec![std::process::id() as i32]);
    }
}
