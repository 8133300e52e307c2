//! Files that must never be seen half-written: results and baselines, and
//! the directories that hold them.

use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` atomically: a temporary file in the same
/// directory, fsync, rename, then fsync of the directory. A crash leaves
/// either the old file or the new one, never a torn one.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = parent(path);
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("out");
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Creates `dir` and any missing parents, fsyncing each new directory's
/// parent so that its entry survives a crash (as `create_dir_all` does not).
pub(crate) fn create_dir_durable(dir: &Path) -> std::io::Result<()> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    let up = parent(dir);
    create_dir_durable(up)?;
    match std::fs::create_dir(dir) {
        Ok(()) => sync_dir(up),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(e),
    }
}

/// fsync of a directory: makes the entries created, renamed or removed in
/// it durable.
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// The directory holding `path` (`.` for a bare name).
fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn replaces_whole_files() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("r.json");
        super::write_atomic(&p, b"one").unwrap();
        super::write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "two");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn creates_directories_and_their_parents() {
        let d = tempfile::tempdir().unwrap();
        let deep = d.path().join("a/b/c");
        super::create_dir_durable(&deep).unwrap();
        assert!(deep.is_dir());
        super::create_dir_durable(&deep).unwrap();
        std::fs::write(d.path().join("file"), b"").unwrap();
        assert!(super::create_dir_durable(&d.path().join("file/x")).is_err());
    }
}
