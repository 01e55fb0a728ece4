//! Secrets live in a private, randomly named directory in memory while
//! their step runs, cannot be redirected by anything planted in advance,
//! and do not outlive a killed build; the store is private to its owner.

mod common;
use common::Env;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Proc, Stdio};
use std::time::{Duration, Instant};

const SHM: &str = "/dev/shm";

fn with_base() -> Env {
    let env = Env::new();
    env.busybox_base("test/busybox:latest");
    env
}

/// Start `rbuild build` of a project whose Dockerfile is `df`, with the
/// secret `s` from a file.
fn spawn_build(env: &Env, name: &str, df: &str) -> Child {
    let ctx = env.project(name, &[("Dockerfile", df)]);
    let secret = env.path(&format!("{name}-secret.txt"));
    std::fs::write(&secret, "the-secret-value").unwrap();
    Proc::new(assert_cmd::cargo::cargo_bin("rbuild"))
        .env("RBUILD_ROOT", env.root())
        .args(["build", "--progress", "plain", "--no-cache", "--secret"])
        .arg(format!("id=s,src={}", secret.display()))
        .arg(&ctx)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The secret directories of process `pid` in /dev/shm.
fn secret_dirs(pid: u32) -> Vec<PathBuf> {
    let prefix = format!("rbuild-secrets-{pid}-");
    std::fs::read_dir(SHM)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect()
}

/// Wait (up to 60 s) until process `pid` has a secret directory holding a file.
fn wait_for_secret_dir(pid: u32) -> PathBuf {
    let start = Instant::now();
    loop {
        for d in secret_dirs(pid) {
            if std::fs::read_dir(&d).is_ok_and(|mut r| r.next().is_some()) {
                return d;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no secret directory for pid {pid} in {SHM}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn finish(child: Child) {
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn require_tmpfs_shm() {
    let out = common::run(Proc::new("stat").args(["-f", "-c", "%T", SHM]));
    assert_eq!(out.trim(), "tmpfs", "these tests need {SHM} to be a tmpfs");
}

#[test]
fn a_running_steps_secret_is_in_a_private_random_directory_removed_afterwards() {
    require_tmpfs_shm();
    let env = with_base();
    let child = spawn_build(
        &env,
        "private",
        "FROM test/busybox:latest\nRUN --mount=type=secret,id=s,uid=1234,mode=0440 cat /run/secrets/s > /dev/null && sleep 2\n",
    );
    let pid = child.id();
    let dir = wait_for_secret_dir(pid);
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    let random = name.trim_start_matches(&format!("rbuild-secrets-{pid}-"));
    assert!(random.len() >= 6, "no random part in {name}");
    let dm = std::fs::symlink_metadata(&dir).unwrap();
    assert!(dm.is_dir());
    assert_eq!(dm.mode() & 0o7777, 0o700, "{name}");
    assert_eq!(dm.uid(), rustix::process::geteuid().as_raw());
    let files: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().collect();
    assert_eq!(files.len(), 1);
    let fm = std::fs::symlink_metadata(files[0].path()).unwrap();
    assert!(fm.is_file());
    assert_eq!(fm.mode() & 0o7777, 0o440);
    assert_eq!(fm.uid(), 1234);
    assert_eq!(
        std::fs::read_to_string(files[0].path()).unwrap(),
        "the-secret-value"
    );
    finish(child);
    assert!(!dir.exists(), "{} outlived its step", dir.display());
}

#[test]
fn a_link_planted_at_the_old_predictable_name_is_not_followed() {
    require_tmpfs_shm();
    let env = with_base();
    let victim = env.path("victim");
    std::fs::create_dir(&victim).unwrap();
    let child = spawn_build(
        &env,
        "planted",
        "FROM test/busybox:latest\nRUN sleep 1\nRUN --mount=type=secret,id=s cat /run/secrets/s > /dev/null\n",
    );
    let pid = child.id();
    // The name rbuild used to use: rbuild-secret-<pid>-<mount index>-<sha256(id)>.
    let sha = common::run(Proc::new("sh").args(["-c", "printf s | sha256sum"]));
    let old = Path::new(SHM).join(format!(
        "rbuild-secret-{pid}-0-{}",
        sha.split_whitespace().next().unwrap()
    ));
    std::os::unix::fs::symlink(&victim, &old).unwrap();
    finish(child);
    let left: Vec<_> = std::fs::read_dir(&victim).unwrap().flatten().collect();
    let _ = std::fs::remove_file(&old);
    assert!(left.is_empty(), "rbuild wrote through a planted link");
}

#[test]
fn the_next_build_removes_what_a_killed_build_left() {
    require_tmpfs_shm();
    let env = with_base();
    // A directory of a live process (this test) must survive the cleanup.
    let live = Path::new(SHM).join(format!("rbuild-secrets-{}-livetest", std::process::id()));
    std::fs::create_dir(&live).unwrap();
    let mut child = spawn_build(
        &env,
        "killed",
        "FROM test/busybox:latest\nRUN --mount=type=secret,id=s sleep 60\n",
    );
    let pid = child.id();
    let dir = wait_for_secret_dir(pid);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(dir.exists(), "expected a leftover to clean up");
    let ctx = env.project(
        "after",
        &[("Dockerfile", "FROM test/busybox:latest\nRUN true\n")],
    );
    env.build_ok(&[], &ctx);
    let live_kept = live.exists();
    let _ = std::fs::remove_dir(&live);
    assert!(!dir.exists(), "{} was not removed", dir.display());
    assert!(live_kept, "a live process's directory was removed");
}

#[test]
fn the_store_root_is_private_to_its_owner() {
    let env = Env::new();
    // An existing store made with looser permissions is tightened on open.
    std::fs::create_dir_all(env.root()).unwrap();
    std::fs::set_permissions(
        env.root(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let ctx = env.project("s", &[("Dockerfile", "FROM scratch\nCOPY Dockerfile /\n")]);
    env.build_ok(&[], &ctx);
    let mode = std::fs::metadata(env.root()).unwrap().mode() & 0o7777;
    assert_eq!(mode, 0o700, "store root mode {mode:o}");
    // A new store is created private.
    let fresh = Env::new();
    let ctx = fresh.project("s", &[("Dockerfile", "FROM scratch\nCOPY Dockerfile /\n")]);
    fresh.build_ok(&[], &ctx);
    let mode = std::fs::metadata(fresh.root()).unwrap().mode() & 0o7777;
    assert_eq!(mode, 0o700, "store root mode {mode:o}");
}
