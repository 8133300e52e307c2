//! Sets what `sidewatch_build_info` reports besides the version:
//! `SIDEWATCH_REVISION`, the git commit (or "unknown"), and
//! `SIDEWATCH_RUSTC`, the version of the rustc that compiles the crate.
//!
//! The revision comes, in order, from a `SIDEWATCH_REVISION` set by the
//! builder (a container build without `.git` passes it in), from git when
//! the crate is the top of a git checkout, from `.cargo_vcs_info.json` in a
//! package made by `cargo package`, or is "unknown" (a source tarball).

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=SIDEWATCH_REVISION");
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let revision = given_revision()
        .or_else(|| git_revision(&dir))
        .or_else(|| packaged_revision(&dir))
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=SIDEWATCH_REVISION={revision}");
    println!("cargo:rustc-env=SIDEWATCH_RUSTC={}", rustc_version());
}

fn given_revision() -> Option<String> {
    let v = std::env::var("SIDEWATCH_REVISION").ok()?;
    let v = v.trim();
    (!v.is_empty()).then(|| v.to_string())
}

/// The output of `git ARGS` in `dir`, trimmed, if it succeeds.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_string())
}

/// HEAD's commit, when `dir` is the top of a git work tree (not a tarball
/// unpacked somewhere inside another repository). Asks cargo to run this
/// again when HEAD moves: HEAD itself (a branch switch) and the file of the
/// branch it names (a commit), or packed-refs.
fn git_revision(dir: &Path) -> Option<String> {
    let top = PathBuf::from(git(dir, &["rev-parse", "--show-toplevel"])?);
    if top.canonicalize().ok()? != dir.canonicalize().ok()? {
        return None;
    }
    let mut watch = vec!["HEAD".to_string(), "packed-refs".to_string()];
    if let Some(branch) = git(dir, &["symbolic-ref", "-q", "HEAD"]) {
        watch.push(branch);
    }
    for name in watch {
        // Only paths that exist: cargo reruns on every build for one that
        // does not.
        if let Some(path) = git(
            dir,
            &["rev-parse", "--path-format=absolute", "--git-path", &name],
        ) {
            if Path::new(&path).exists() {
                println!("cargo:rerun-if-changed={path}");
            }
        }
    }
    git(dir, &["rev-parse", "HEAD"])
}

/// The commit `cargo package` recorded: `"sha1": "…"` in
/// `.cargo_vcs_info.json`.
fn packaged_revision(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join(".cargo_vcs_info.json")).ok()?;
    let rest = &text[text.find("\"sha1\"")? + "\"sha1\"".len()..];
    let start = rest.find('"')? + 1;
    let len = rest[start..].find('"')?;
    let sha = &rest[start..start + len];
    sha.chars()
        .all(|c| c.is_ascii_hexdigit())
        .then(|| sha.to_string())
}

/// "1.95.0" from `rustc 1.95.0 (59807616e 2026-04-14)`, run with the rustc
/// cargo uses; "unknown" if that fails.
fn rustc_version() -> String {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    Command::new(rustc)
        .arg("-V")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.split_whitespace().nth(1).map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}
