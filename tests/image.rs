//! The container image `scripts/image` builds FROM scratch with buildah,
//! tried from the outside as a cluster would run it: its config says user
//! 65532, it has no shell and no debug info, it is at most 25 MB, and inside
//! it (`buildah run --isolation chroot`) sidewatch validates every example
//! config, runs a check that writes the data dir and /tmp, and runs as 65532
//! probing the nginx of `scripts/test` while the host scrapes its /metrics.
//!
//! Skipped, with the reason printed, where buildah is missing or cannot
//! create a container. Builds the release binary first if it is not
//! current (`scripts/image` runs `cargo build --release`).

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// The target for the uncompressed image.
const MAX_IMAGE_BYTES: u64 = 25_000_000;
const DATA_DIR: &str = "/var/lib/sidewatch";

/// buildah with its storage in a temporary directory, removed on drop.
struct Buildah {
    dir: tempfile::TempDir,
}

impl Buildah {
    fn new() -> Buildah {
        Buildah {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new("buildah");
        c.arg("--root")
            .arg(self.dir.path().join("storage"))
            .arg("--runroot")
            .arg(self.dir.path().join("run"))
            .args(["--storage-driver", "vfs"])
            .stdin(Stdio::null());
        c
    }

    fn output(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("buildah runs")
    }

    /// stdout of a buildah command that must succeed.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.output(args);
        assert!(out.status.success(), "buildah {args:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// `buildah run --isolation chroot` in `ctr`, with `config_dir`
    /// mounted read-only at `at` and `env` set.
    fn run(&self, ctr: &str, (config_dir, at): (&Path, &str), env: &[(&str, String)]) -> Command {
        let mut c = self.cmd();
        c.args(["run", "--isolation", "chroot", "--volume"])
            .arg(format!("{}:{at}:ro", config_dir.display()));
        for (k, v) in env {
            c.arg("--env").arg(format!("{k}={v}"));
        }
        c.args([ctr, "--"]);
        c
    }
}

impl Drop for Buildah {
    fn drop(&mut self) {
        // Errors ignored: buildah may be missing (the test was skipped).
        let _ = self.cmd().args(["rm", "--all"]).output();
        let _ = self.cmd().args(["rmi", "--all", "--force"]).output();
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Printed past the test harness's capture, so `./scripts/test` shows it.
fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "image: {line}");
}

/// Why buildah cannot build an image here, or None when it can.
fn cannot_build(buildah: &Buildah) -> Option<String> {
    // Rootless buildah needs `buildah unshare` around `mount`; CI is root.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root: the test mounts buildah's storage".into());
    }
    match buildah.cmd().args(["from", "scratch"]).output() {
        Err(e) => Some(format!(
            "buildah cannot be run ({e}); install it: apt-get install buildah"
        )),
        Ok(out) if !out.status.success() => Some(format!(
            "`buildah from scratch` fails here: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Ok(_) => None,
    }
}

/// A directory every user can read, for the configs mounted at /config
/// (the container runs as 65532, the test as whoever runs it).
fn readable_dir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

fn write_readable(path: &Path, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, body).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
}

/// Every regular file under `root`, with its size.
fn files(root: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                dirs.push(entry.path());
            } else {
                out.push((entry.path().strip_prefix(root).unwrap().into(), meta.len()));
            }
        }
    }
    out
}

/// The image's files: no shell, no debug info, at most 25 MB.
fn check_contents(buildah: &Buildah, ctr: &str) {
    let root = PathBuf::from(buildah.ok(&["mount", ctr]));
    let all = files(&root);
    let total: u64 = all.iter().map(|(_, n)| n).sum();
    say(&format!(
        "{} files, {total} bytes uncompressed (limit {MAX_IMAGE_BYTES})",
        all.len()
    ));
    let shells = ["sh", "bash", "dash", "ash", "zsh", "busybox", "toybox"];
    for (path, _) in &all {
        let name = path.file_name().unwrap().to_string_lossy();
        assert!(!shells.contains(&&*name), "a shell in the image: {path:?}");
    }
    assert!(total <= MAX_IMAGE_BYTES, "image is {total} bytes");
    let sections = Command::new("readelf")
        .args(["--section-headers", "--wide"])
        .arg(root.join("sidewatch"))
        .output()
        .expect("readelf (binutils) runs");
    let sections = String::from_utf8_lossy(&sections.stdout);
    assert!(sections.contains(".text"), "readelf read no sections");
    // `.debug_gdb_scripts` is loaded (names rustc's pretty-printers), not
    // debug info; strip keeps it.
    let debug: Vec<&str> = sections
        .split_whitespace()
        .filter(|w| w.starts_with(".debug_") && *w != ".debug_gdb_scripts")
        .collect();
    assert!(debug.is_empty(), "debug info in the image: {debug:?}");
    assert!(!sections.contains(".symtab"), "symbols in the image");
    buildah.ok(&["umount", ctr]);
}

/// `check-config` inside the image accepts every file in config/examples.
fn check_examples(buildah: &Buildah, ctr: &str) {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/examples");
    let env = [
        ("TARGET", nginx()),
        ("SERVICE_COMM", "nginx".into()),
        ("SERVICE_CMDLINE", "nginx".into()),
        ("KAFKA_BROKERS", "127.0.0.1:9092".into()),
        ("SIDEWATCH_DATA", DATA_DIR.into()),
    ];
    let mut names: Vec<String> = std::fs::read_dir(&examples)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    names.sort();
    assert!(!names.is_empty(), "no examples in {}", examples.display());
    for name in names {
        let out = finish(|| {
            let mut c = buildah.run(ctr, (&examples, "/config"), &env);
            c.args(["/sidewatch", "check-config", &format!("/config/{name}")]);
            c
        });
        assert!(out.status.success(), "check-config {name}: {}", text(&out));
    }
}

/// Runs a `buildah run` command to its end. buildah's chroot isolation now
/// and then fails before it starts the command ("Close_Fd sealing memfd
/// copy: Device or resource busy", from the copy of its own binary it runs
/// from): that is buildah's failure, not sidewatch's answer, so it is
/// retried, twice at most.
fn finish(make: impl Fn() -> Command) -> Output {
    for _ in 0..2 {
        let out = make().output().unwrap();
        if !text(&out).contains("sealing memfd") {
            return out;
        }
        say("buildah run failed before starting the command (sealing memfd); again");
    }
    make().output().unwrap()
}

/// The container's processes are descendants of `buildah run`: the one
/// named sidewatch.
fn sidewatch_pid(buildah_pid: u32) -> Option<u32> {
    let mut parents = Vec::new();
    for entry in std::fs::read_dir("/proc").ok()? {
        let Ok(pid) = entry.ok()?.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // `pid (comm) state ppid …`; comm may hold spaces and parentheses.
        let after = &stat[stat.rfind(')')? + 2..];
        let ppid: u32 = after.split_whitespace().nth(1)?.parse().ok()?;
        parents.push((pid, ppid));
    }
    let mut family = vec![buildah_pid];
    for _ in 0..8 {
        for &(pid, ppid) in &parents {
            if family.contains(&ppid) && !family.contains(&pid) {
                family.push(pid);
            }
        }
    }
    family.into_iter().find(|pid| {
        std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "sidewatch")
    })
}

/// The real and effective uid and gid of `pid`, from /proc.
fn ids(pid: u32) -> (String, String) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap()
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    };
    (field("Uid:"), field("Gid:"))
}

/// Stops `sidewatch run` (SIGTERM to the process in the container), then
/// `buildah run` itself if it outlives it by 10 s.
fn stop(child: &mut Child, pid: Option<u32>) {
    if let Some(pid) = pid {
        unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    }
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        if child.try_wait().unwrap().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Polls the host-side scrape of `addr` for up to 60 s until `done` holds
/// of the body; the last body.
fn scrape_until(addr: SocketAddr, done: impl Fn(&str) -> bool) -> String {
    let end = Instant::now() + Duration::from_secs(60);
    let mut body = String::new();
    while Instant::now() < end {
        if let Ok((200, b)) = http_get(addr, "/metrics", None) {
            body = b;
            if done(&body) {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    body
}

/// `sidewatch check` (writes the store in the data dir and JSON in /tmp),
/// then `sidewatch run` probing nginx: as 65532, scraped from the host.
fn run_against_nginx(buildah: &Buildah, ctr: &str) {
    let port = closed_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let dir = readable_dir();
    let nginx = nginx();
    let config = format!(
        "listen: {addr}\n\
         store: {{dir: {DATA_DIR}}}\n\
         probes:\n  - {{name: nginx, interval: 1s, http: {{url: '{nginx}/health'}}}}\n\
         checks:\n  - name: quick\n    \
           load: {{rate: 20/s, duration: 1s, mix: [{{http: {{url: '{nginx}/api/x'}}}}]}}\n    \
           thresholds: ['error_rate < 1%']\n"
    );
    write_readable(&dir.path().join("sidewatch.yaml"), &config);
    // Where the chart mounts it, so `run` finds it by the image's
    // SIDEWATCH_CONFIG.
    let mount = (dir.path(), "/etc/sidewatch");
    let out = finish(|| {
        let mut c = buildah.run(ctr, mount, &[]);
        c.args(["/sidewatch", "check", "--config"])
            .args(["/etc/sidewatch/sidewatch.yaml", "quick"])
            .args(["--json", "/tmp/quick.json"]);
        c
    });
    assert!(out.status.success(), "check in the image: {}", text(&out));

    let log = tempfile::NamedTempFile::new().unwrap();
    let mut child = buildah
        .run(ctr, mount, &[("SIDEWATCH_LOG_LEVEL", "warn".into())])
        .args(["/sidewatch", "run"])
        .stdout(Stdio::null())
        .stderr(log.reopen().unwrap())
        .spawn()
        .unwrap();
    let body = scrape_until(addr, |b| {
        b.lines()
            .any(|l| l.starts_with("sidewatch_probe_success{") && l.ends_with(" 1"))
    });
    let pid = sidewatch_pid(child.id());
    let uid_gid = pid.map(ids);
    stop(&mut child, pid);

    assert!(
        body.lines()
            .any(|l| l.starts_with("sidewatch_probe_success{")
                && l.contains("\"nginx\"")
                && l.ends_with(" 1")),
        "no successful nginx probe in /metrics scraped from the host:\n{body}\nlog:\n{}",
        std::fs::read_to_string(log.path()).unwrap_or_default()
    );
    let revision = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or("unknown".into());
    let info = body
        .lines()
        .find(|l| l.starts_with("sidewatch_build_info{"))
        .unwrap_or_default();
    assert!(info.contains(&format!("revision=\"{revision}\"")), "{info}");
    assert!(!info.contains("rustc=\"unknown\""), "{info}");
    let Some((uid, gid)) = uid_gid else {
        panic!(
            "no sidewatch process under buildah run (pid {})",
            child.id()
        );
    };
    assert_eq!((uid.as_str(), gid.as_str()), ("65532 65532", "65532 65532"));
}

/// The settings of the Containerfile's last stage (USER, ENTRYPOINT, CMD,
/// ENV, EXPOSE, VOLUME, WORKDIR) as an OCI image config holds them.
fn containerfile_settings() -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("Containerfile");
    let text = std::fs::read_to_string(path).unwrap();
    let last_stage = &text[text.rfind("\nFROM ").expect("a FROM line")..];
    let mut c = serde_json::json!({"Env": [], "ExposedPorts": {}, "Volumes": {}});
    for line in last_stage.lines() {
        let Some((word, rest)) = line.split_once(' ') else {
            continue;
        };
        let json = || serde_json::from_str::<serde_json::Value>(rest).unwrap();
        match word {
            "USER" => c["User"] = rest.into(),
            "WORKDIR" => c["WorkingDir"] = rest.into(),
            "ENTRYPOINT" => c["Entrypoint"] = json(),
            "CMD" => c["Cmd"] = json(),
            "ENV" => c["Env"].as_array_mut().unwrap().push(rest.into()),
            "EXPOSE" => c["ExposedPorts"][rest] = serde_json::json!({}),
            "VOLUME" => {
                for v in json().as_array().unwrap() {
                    c["Volumes"][v.as_str().unwrap()] = serde_json::json!({});
                }
            }
            _ => {}
        }
    }
    c
}

/// scripts/image and the Containerfile give the image the same settings.
fn assert_same_settings(image: &serde_json::Value, containerfile: &serde_json::Value) {
    for key in [
        "User",
        "WorkingDir",
        "Entrypoint",
        "Cmd",
        "Env",
        "ExposedPorts",
        "Volumes",
    ] {
        assert_eq!(
            image[key], containerfile[key],
            "{key}: scripts/image and the Containerfile differ"
        );
    }
}

/// The variables cargo sets for a test run, build.rs's `rustc-env` ones
/// included (not those a user sets, like `CARGO_HOME` or
/// `CARGO_TARGET_DIR`).
fn set_by_cargo_for_tests(name: &str) -> bool {
    ["CARGO_PKG_", "CARGO_BIN_"]
        .iter()
        .any(|p| name.starts_with(p))
        || [
            "CARGO_MANIFEST_DIR",
            "CARGO_MANIFEST_PATH",
            "CARGO_CRATE_NAME",
            "CARGO_PRIMARY_PACKAGE",
            "CARGO_TARGET_TMPDIR",
            "CARGO_RUSTC_CURRENT_DIR",
            "OUT_DIR",
            "SIDEWATCH_REVISION",
            "SIDEWATCH_RUSTC",
        ]
        .contains(&name)
}

/// Runs `scripts/image` into the test's directory; the archive's path.
fn build_image(buildah: &Buildah) -> PathBuf {
    let archive = buildah.dir.path().join("sidewatch.oci.tar");
    let started = Instant::now();
    let mut image = Command::new("scripts/image");
    // Without the variables cargo sets for a test: build scripts (ring's)
    // watch some of them, and `cargo build --release` from a shell would
    // then rebuild half the tree, and so would this one after it.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if set_by_cargo_for_tests(&name) {
            image.env_remove(&*name);
        }
    }
    let out = image
        .arg("--output")
        .arg(&archive)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "scripts/image: {}", text(&out));
    say(&format!(
        "{} ({:.0?} with the release build)",
        String::from_utf8_lossy(&out.stdout).trim(),
        started.elapsed()
    ));
    archive
}

#[test]
fn image_from_scratch_runs_sidewatch_as_65532_without_a_shell() {
    let buildah = Buildah::new();
    if let Some(why) = cannot_build(&buildah) {
        say(&format!("SKIPPED: {why}"));
        return;
    }
    buildah.ok(&["rm", "--all"]);
    let archive = build_image(&buildah);

    let ctr = buildah.ok(&[
        "from",
        "--quiet",
        &format!("oci-archive:{}", archive.display()),
    ]);
    let inspect: serde_json::Value = serde_json::from_str(&buildah.ok(&["inspect", &ctr])).unwrap();
    let config = &inspect["OCIv1"]["config"];
    assert_eq!(config["User"], "65532:65532");
    assert_same_settings(config, &containerfile_settings());
    check_contents(&buildah, &ctr);
    let sh = [
        "run",
        "--isolation",
        "chroot",
        &ctr,
        "--",
        "/bin/sh",
        "-c",
        "true",
    ];
    let sh = buildah.output(&sh);
    assert!(!sh.status.success(), "/bin/sh ran in the image");
    check_examples(&buildah, &ctr);
    run_against_nginx(&buildah, &ctr);
}
