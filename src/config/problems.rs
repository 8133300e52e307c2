//! Errors: located config errors, the problems a build collects by path, and
//! the context every config-compiling `build` gets.

use std::fmt;

use super::{Path, Pos};
use crate::redact::Redactor;

/// One configuration error, located in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConfigError {
    pub(crate) file: String,
    pub(crate) pos: Pos,
    pub(crate) path: Path,
    pub(crate) message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: {}",
            self.file, self.pos.line, self.pos.col, self.path, self.message
        )
    }
}

/// All errors found in one configuration file, in file order.
#[derive(Debug)]
pub struct ConfigErrors(pub(crate) Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Problems found while compiling config values, by path. Positions are
/// attached later from the document tree.
#[derive(Debug, Default)]
pub(crate) struct Problems(pub(crate) Vec<(Path, String)>);

impl Problems {
    pub(crate) fn push(&mut self, path: &Path, message: impl Into<String>) {
        self.0.push((path.clone(), message.into()));
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What every config-compiling `build` gets (vector's `SourceContext` is the
/// model): where in the file it is, where problems go, and the redactor that
/// learns each secret it meets. A build reports every problem it can find and
/// returns `None` if it found any; [`BuildCx::checked`] does that sum.
pub(crate) struct BuildCx<'a> {
    pub(crate) path: Path,
    pub(crate) problems: &'a mut Problems,
    pub(crate) redactor: &'a mut Redactor,
}

impl<'a> BuildCx<'a> {
    /// A context at the document root.
    pub(crate) fn new(problems: &'a mut Problems, redactor: &'a mut Redactor) -> BuildCx<'a> {
        BuildCx {
            path: Path::default(),
            problems,
            redactor,
        }
    }

    /// The context of the field `key` below this one.
    pub(crate) fn key(&mut self, key: &str) -> BuildCx<'_> {
        BuildCx {
            path: self.path.key(key),
            problems: self.problems,
            redactor: self.redactor,
        }
    }

    /// The context of list item `i` below this one.
    pub(crate) fn index(&mut self, i: usize) -> BuildCx<'_> {
        BuildCx {
            path: self.path.index(i),
            problems: self.problems,
            redactor: self.redactor,
        }
    }

    /// Reports a problem with this value.
    pub(crate) fn problem(&mut self, message: impl Into<String>) {
        self.problems.push(&self.path, message);
    }

    /// Reports a problem with the field `key` below this one.
    pub(crate) fn problem_at(&mut self, key: &str, message: impl Into<String>) {
        self.problems.push(&self.path.key(key), message);
    }

    /// Runs `f`, and keeps its value only if it reported no new problem.
    pub(crate) fn checked<T>(
        &mut self,
        f: impl FnOnce(&mut BuildCx<'_>) -> Option<T>,
    ) -> Option<T> {
        let before = self.problems.0.len();
        let value = f(self);
        value.filter(|_| self.problems.0.len() == before)
    }
}

/// Probe names become label values: 1 to 64 of `[A-Za-z0-9_.-]`.
pub(crate) fn check_name(name: &str, cx: &mut BuildCx) {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if name.is_empty() || name.len() > 64 || !ok_chars {
        cx.problem("must be 1 to 64 letters, digits, `_`, `-` or `.` (it becomes a label value)");
    }
}

/// Check names are label values and also directory names (`runs/NAME/` in
/// the store): the label rule, and no leading `.`, so neither `.` nor `..`
/// (which would put runs beside `runs/` or in it) nor a hidden directory.
pub(crate) fn check_dir_name(name: &str, cx: &mut BuildCx) {
    check_name(name, cx);
    if name.starts_with('.') {
        cx.problem(
            "must not start with `.`: a check name is also a directory name in the store (`.` and `..` would leave runs/)",
        );
    }
}
