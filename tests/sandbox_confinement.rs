//! RUN is confined as Docker confines it: only Docker's default devices can
//! be opened, no terminal, no inherited descriptors, Docker's seccomp
//! profile, read-only /sys and masked paths, death with rbuild, and
//! nosuid/nodev (read-only all the way down) on every extra mount.

mod common;
use common::Env;
use std::path::{Path, PathBuf};

fn with_base() -> Env {
    let env = Env::new();
    env.busybox_base("test/busybox:latest");
    env
}

fn build_to_dir(env: &Env, name: &str, df: &str) -> PathBuf {
    let ctx = env.project(name, &[("Dockerfile", df)]);
    let out = env.path(&format!("{name}-out"));
    env.build_ok(&["-o", &format!("type=local,dest={}", out.display())], &ctx);
    out
}

fn read(out: &Path, p: &str) -> String {
    std::fs::read_to_string(out.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"))
}

#[test]
fn only_dockers_default_devices_can_be_opened() {
    let env = with_base();
    // Nodes of harmless devices (null, loop0 opened without I/O), made where
    // a step can write: the rootfs, /dev, a tmpfs mount and a cache mount.
    let df = r#"FROM test/busybox:latest
RUN mknod /tmp/n c 1 3; (: > /tmp/n) 2>/dev/null && echo tmp-write-opened >> /r || echo tmp-write-denied >> /r; (: < /tmp/n) 2>/dev/null && echo tmp-read-opened >> /r || echo tmp-read-denied >> /r
RUN mknod /dev/n c 1 3; (: > /dev/n) 2>/dev/null && echo dev-opened >> /r || echo dev-denied >> /r
RUN mknod /dev/loopx b 7 0; (: < /dev/loopx) 2>/dev/null && echo block-opened >> /r || echo block-denied >> /r
RUN --mount=type=tmpfs,target=/scratch mknod /scratch/n c 1 3; (: > /scratch/n) 2>/dev/null && echo tmpfs-opened >> /r || echo tmpfs-denied >> /r
RUN --mount=type=cache,target=/cache mknod /cache/n c 1 3; (: > /cache/n) 2>/dev/null && echo cache-opened >> /r || echo cache-denied >> /r
RUN for d in kvm:10:232 userfaultfd:10:126; do n=${d%%:*}; (: < /dev/$n) 2>/dev/null && echo "$n-opened" >> /r || echo "$n-denied" >> /r; done
RUN mknod /tmp/kvm c 10 232; (: < /tmp/kvm) 2>/dev/null && echo madekvm-opened >> /r || echo madekvm-denied >> /r
RUN echo x > /dev/null && test "$(head -c 4 /dev/zero | wc -c)" = 4 && test "$(head -c 4 /dev/urandom | wc -c)" = 4 && test "$(head -c 4 /dev/random | wc -c)" = 4 && (echo x > /dev/full) 2>/dev/null; echo defaults-work >> /r
"#;
    let out = build_to_dir(&env, "devices", df);
    let r = read(&out, "r");
    for what in [
        "tmp-write",
        "tmp-read",
        "dev",
        "block",
        "tmpfs",
        "cache",
        "kvm",
        "userfaultfd",
        "madekvm",
    ] {
        assert!(r.contains(&format!("{what}-denied\n")), "{what}: {r}");
    }
    assert!(r.contains("defaults-work"), "{r}");
}

#[test]
fn a_step_has_its_own_session_and_dev_null_as_stdin() {
    let env = with_base();
    let df = r#"FROM test/busybox:latest
RUN echo "sid=$(cut -d' ' -f6 /proc/1/stat) pid=$$" > /s; readlink /proc/$$/fd/0 > /stdin; (cat /dev/tty >/dev/null 2>/tmp/e; cat /tmp/e) > /tty
"#;
    let out = build_to_dir(&env, "session", df);
    assert_eq!(
        read(&out, "s"),
        "sid=1 pid=1\n",
        "the step leads its own session"
    );
    assert_eq!(read(&out, "stdin"), "/dev/null\n");
    assert!(
        read(&out, "tty").contains("No such device or address"),
        "no controlling terminal: {}",
        read(&out, "tty")
    );
}

#[test]
fn descriptors_inherited_from_the_caller_do_not_reach_a_step() {
    let env = with_base();
    let ctx = env.project(
        "fds",
        &[(
            "Dockerfile",
            "FROM test/busybox:latest\nRUN ls /proc/self/fd > /fds; (cat /proc/self/fd/7/etc/hostname 2>/dev/null && echo leaked || echo closed) > /fd7\n",
        )],
    );
    let out = env.path("fds-out");
    let bin = assert_cmd::cargo::cargo_bin("rbuild");
    // fd 7: the host's / without close-on-exec, as `rbuild build … 7</`.
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(r#"exec 7</ ; exec "$0" "$@""#)
        .arg(&bin)
        .args(["build", "--progress", "plain", "-o"])
        .arg(format!("type=local,dest={}", out.display()))
        .arg(&ctx)
        .env("RBUILD_ROOT", env.root())
        .env_remove("SOURCE_DATE_EPOCH")
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(read(&out, "fd7"), "closed\n");
    let fds: Vec<String> = read(&out, "fds").lines().map(String::from).collect();
    assert!(
        fds.iter()
            .all(|f| ["0", "1", "2", "3"].contains(&f.as_str())),
        "only stdio (and ls's own directory): {fds:?}"
    );
}

#[test]
fn dockers_seccomp_profile_applies_and_ordinary_commands_work() {
    let env = with_base();
    let df = r#"FROM test/busybox:latest
RUN grep '^Seccomp:' /proc/self/status > /seccomp
RUN (unshare -U -r true 2>/dev/null && echo userns-created || echo userns-denied) > /userns
RUN (unshare -m true 2>/dev/null && echo mountns-created || echo mountns-denied) > /mountns
RUN ls / > /dev/null && cp /bin/busybox /tmp/bb && tar -cf /tmp/t.tar /etc && tar -tf /tmp/t.tar > /dev/null && (wget --help > /dev/null 2>&1; true) && adduser -D someone && su someone -c 'id -un' > /who && chroot / true && sh -c 'sleep 0 & wait' && echo ok > /ordinary
"#;
    let out = build_to_dir(&env, "seccomp", df);
    assert_eq!(read(&out, "seccomp"), "Seccomp:\t2\n");
    assert_eq!(read(&out, "userns"), "userns-denied\n");
    assert_eq!(read(&out, "mountns"), "mountns-denied\n");
    assert_eq!(read(&out, "ordinary"), "ok\n");
    assert_eq!(read(&out, "who"), "someone\n");
}

#[test]
fn sys_is_read_only_and_dockers_paths_are_masked() {
    let env = with_base();
    // The busybox base has no /sys: it is mounted all the same.
    let df = r#"FROM test/busybox:latest
RUN (touch /sys/x 2>/dev/null && echo sys-writable || echo sys-readonly) > /sys.txt; grep -c . /proc/self/mountinfo > /dev/null; awk '$5 == "/sys" {print $6}' /proc/self/mountinfo | cut -d, -f1 > /sysmode
RUN ls -A /sys/firmware | wc -l > /firmware; (ls -A /proc/asound 2>/dev/null | wc -l) > /asound; (cat /proc/kcore 2>/dev/null | wc -c) > /kcore; (cat /proc/interrupts 2>/dev/null | wc -c) > /interrupts
RUN (echo 1 > /proc/sysrq-trigger) 2>/dev/null && echo sysrq-written > /sysrq || echo sysrq-denied > /sysrq
"#;
    let out = build_to_dir(&env, "masks", df);
    assert_eq!(read(&out, "sys.txt"), "sys-readonly\n");
    assert_eq!(read(&out, "sysmode"), "ro\n");
    assert_eq!(read(&out, "firmware").trim(), "0");
    assert_eq!(read(&out, "asound").trim(), "0");
    assert_eq!(read(&out, "kcore").trim(), "0");
    assert_eq!(read(&out, "interrupts").trim(), "0");
    assert_eq!(read(&out, "sysrq"), "sysrq-denied\n");
    assert!(
        !out.join("sys").exists(),
        "the mount point stays out of the layer"
    );
}

/// Processes whose command line contains `marker`.
fn processes_with(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(c) = std::fs::read(e.path().join("cmdline")) {
            let c = String::from_utf8_lossy(&c).replace('\0', " ");
            if c.contains(marker) && !c.contains("cargo") {
                found.push(format!("{}: {c}", e.file_name().to_string_lossy()));
            }
        }
    }
    found
}

#[test]
fn a_non_root_step_dies_with_rbuild() {
    let env = with_base();
    let marker = format!("marker-{}", std::process::id());
    let ctx = env.project(
        "death",
        &[(
            "Dockerfile",
            &format!("FROM test/busybox:latest\nUSER 65534\nRUN sleep 3131; echo {marker}\n"),
        )],
    );
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("rbuild"))
        .args(["build", "--progress", "plain"])
        .arg(&ctx)
        .env("RBUILD_ROOT", env.root())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while processes_with(&marker).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the step never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let left = processes_with(&marker);
        if left.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the step outlived rbuild: {left:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn extra_mounts_are_nosuid_and_nodev_and_read_only_binds_stay_read_only() {
    let env = with_base();
    let df = r#"FROM test/busybox:latest AS s
RUN mkdir -p /opt/x && echo x > /opt/x/f
FROM test/busybox:latest
RUN --mount=type=cache,target=/cache cp /bin/busybox /cache/bb && chmod u+s /cache/bb && awk '$5 == "/cache" {print $6}' /proc/self/mountinfo > /cache-flags
RUN --mount=type=bind,source=data,target=/src awk '$5 == "/src" {print $6}' /proc/self/mountinfo > /src-flags; (touch /src/x 2>/dev/null && echo src-writable || echo src-readonly) > /src-write
RUN --mount=type=bind,from=s,source=/opt/x,target=/st awk '$5 == "/st" {print $6}' /proc/self/mountinfo > /stage-flags
RUN --mount=type=tmpfs,target=/t awk '$5 == "/t" {print $6}' /proc/self/mountinfo > /tmpfs-flags
"#;
    let ctx = env.project("extra", &[("Dockerfile", df), ("data/f", "")]);
    let out = env.path("extra-out");
    env.build_ok(&["-o", &format!("type=local,dest={}", out.display())], &ctx);
    for f in ["cache-flags", "tmpfs-flags", "src-flags", "stage-flags"] {
        let flags = read(&out, f);
        assert!(
            flags.contains("nosuid") && flags.contains("nodev"),
            "{f}: {flags}"
        );
    }
    for f in ["src-flags", "stage-flags"] {
        assert!(read(&out, f).starts_with("ro,"), "{f}: {}", read(&out, f));
    }
    assert_eq!(read(&out, "src-write"), "src-readonly\n");
}

/// Run rbuild as nobody (65534): a rootless build.
fn rootless_build(root: &Path, args: &[&str]) {
    let setpriv = common::require_tool("setpriv", "util-linux");
    let out = std::process::Command::new(setpriv)
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(root.join("rbuild"))
        .args(["build", "--progress", "plain"])
        .args(args)
        .env("HOME", root)
        .env("RBUILD_ROOT", root.join("store"))
        .current_dir(root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "rbuild {args:?} as nobody failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn rootless_sys_is_the_hosts_read_only_all_the_way_down_and_masked() {
    use std::os::unix::fs::PermissionsExt;
    let busybox = common::require_file("/bin/busybox", "busybox-static");
    let dir = tempfile::Builder::new()
        .prefix("rbuild-rootless-sys")
        .tempdir_in("/tmp")
        .unwrap();
    let root = dir.path();
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).unwrap();
    common::copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("demo/busybox-base"),
        &root.join("base"),
    );
    std::fs::copy(busybox, root.join("base/busybox")).unwrap();
    std::fs::create_dir_all(root.join("app")).unwrap();
    std::fs::write(
        root.join("app/Dockerfile"),
        "FROM rl/busybox:latest\nRUN --network=host awk '$5 ~ \"^/sys\" {print $5, substr($6, 1, 2)}' /proc/self/mountinfo > /sys-mounts; ls -A /sys/firmware | wc -l > /firmware\n",
    )
    .unwrap();
    std::fs::copy(assert_cmd::cargo::cargo_bin("rbuild"), root.join("rbuild")).unwrap();
    common::run(
        std::process::Command::new("chown")
            .args(["-R", "65534:65534"])
            .arg(root),
    );
    rootless_build(root, &["-t", "rl/busybox:latest", "base"]);
    rootless_build(
        root,
        &[
            "--allow",
            "network.host",
            "-o",
            "type=local,dest=out",
            "app",
        ],
    );
    let out = root.join("out");
    let mounts = read(&out, "sys-mounts");
    assert!(
        mounts.lines().count() > 1,
        "the host's /sys with its submounts: {mounts}"
    );
    for l in mounts.lines() {
        assert!(
            l.ends_with(" ro"),
            "every mount below /sys is read-only: {mounts}"
        );
    }
    assert_eq!(read(&out, "firmware").trim(), "0");
}

#[test]
fn a_bind_from_a_stage_resolves_its_source_inside_the_stage() {
    let env = with_base();
    let marker = env.path("host-only-marker");
    std::fs::write(&marker, "host").unwrap();
    let df = format!(
        r#"FROM test/busybox:latest AS s
RUN ln -s / /hostroot && echo stage > /stage-marker
FROM test/busybox:latest
RUN --mount=type=bind,from=s,source=/hostroot,target=/h (test -e /h{marker} && echo host-visible || echo host-hidden) > /a; (test -f /h/stage-marker && echo stage-root) >> /a; (test -e /h/proc/sys/kernel/core_pattern && echo core-pattern-reachable || echo core-pattern-unreachable) >> /a
"#,
        marker = marker.display()
    );
    let out = build_to_dir(&env, "stage-link", &df);
    assert_eq!(
        read(&out, "a"),
        "host-hidden\nstage-root\ncore-pattern-unreachable\n"
    );
}

#[test]
fn mount_targets_and_etc_hosts_are_created_inside_the_rootfs() {
    let env = with_base();
    let hostdir = env.path("hostdir");
    std::fs::create_dir(&hostdir).unwrap();
    // Empty host directories where a step swaps a mount target's parent
    // for a link: cleaning the layer's mount points must not remove them.
    let victim = env.path("victim");
    std::fs::create_dir_all(victim.join("a/b")).unwrap();
    let df = format!(
        r#"FROM test/busybox:latest AS links
RUN mkdir /etc-links && ln -s {h}/hosts /etc-links/hosts && ln -s {h}/resolv.conf /etc-links/resolv.conf
FROM test/busybox:latest
RUN ln -s {h} /hostdir
RUN --mount=type=tmpfs,target=/hostdir/a/b echo x > /hostdir/a/b/f && echo tmpfs-ok > /t
RUN --mount=type=cache,target=/hostdir/c/d echo x > /hostdir/c/d/f && echo cache-ok > /c
COPY --from=links /etc-links/ /etc/
RUN cat /etc/hosts > /dev/null && echo hosts-ok > /e
RUN --mount=type=tmpfs,target=/x/a/b mv /x /moved && ln -s {v} /x && echo swapped > /s
"#,
        h = hostdir.display(),
        v = victim.display()
    );
    let out = build_to_dir(&env, "targets", &df);
    assert_eq!(read(&out, "t"), "tmpfs-ok\n");
    assert_eq!(read(&out, "c"), "cache-ok\n");
    assert_eq!(read(&out, "e"), "hosts-ok\n");
    let left: Vec<_> = std::fs::read_dir(&hostdir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "created on the host: {left:?}");
    assert_eq!(read(&out, "s"), "swapped\n");
    assert!(victim.join("a/b").is_dir(), "a host directory was removed");
}

#[test]
fn a_heredoc_script_is_written_inside_the_copy_snapshotters_rootfs() {
    let env = with_base();
    let host_file = env.path("host-file");
    std::fs::write(&host_file, "original\n").unwrap();
    let df = format!(
        "FROM test/busybox:latest\nRUN ln -s {f} /.rbuild-heredoc-EOT\nRUN <<EOT\n#!/bin/sh\necho from-script > /script-ran\nEOT\n",
        f = host_file.display()
    );
    let ctx = env.project("heredoc-link", &[("Dockerfile", &df)]);
    let out = env.path("heredoc-link-out");
    let o = env
        .rbuild()
        .env("RBUILD_SNAPSHOTTER", "copy")
        .args(["build", "--progress", "plain", "-o"])
        .arg(format!("type=local,dest={}", out.display()))
        .arg(&ctx)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(read(&out, "script-ran"), "from-script\n");
    assert_eq!(std::fs::read_to_string(&host_file).unwrap(), "original\n");
}
