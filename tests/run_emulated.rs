//! RUN on a foreign architecture (arm64 on this amd64 machine) under QEMU
//! user emulation, with the arm64 busybox from Debian's
//! busybox-static:arm64 (scripts/test-assets.sh) and qemu-user-static.

mod common;
use common::{Env, copy_dir, require_file};
use std::path::{Path, PathBuf};

/// The arm64 busybox made by scripts/test-assets.sh.
fn arm64_busybox() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-assets/busybox-arm64");
    assert!(
        p.is_file(),
        "missing {}: run ./scripts/test.sh (it runs scripts/test-assets.sh)",
        p.display()
    );
    p
}

/// Build the busybox base for linux/arm64 as `name` (its RUN steps run
/// emulated already).
fn arm64_base(env: &Env, name: &str) {
    require_file("/usr/bin/qemu-aarch64-static", "qemu-user-static");
    let ctx = Path::new(env!("CARGO_MANIFEST_DIR")).join("demo/busybox-base");
    let dir = env.path("busybox-arm64-ctx");
    copy_dir(&ctx, &dir);
    std::fs::copy(arm64_busybox(), dir.join("busybox")).unwrap();
    env.build_ok(&["--platform", "linux/arm64", "-t", name], &dir);
}

/// Build a two-platform (amd64, arm64) busybox base as `name`, each
/// platform with its own busybox; its context directory.
fn multi_base(env: &Env, name: &str) -> PathBuf {
    require_file("/usr/bin/qemu-aarch64-static", "qemu-user-static");
    let base = env.project(
        "base",
        &[(
            "Dockerfile",
            "FROM scratch\nARG TARGETARCH\nCOPY busybox-${TARGETARCH} /bin/busybox\n\
             RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n",
        )],
    );
    std::fs::copy(
        require_file("/bin/busybox", "busybox-static"),
        base.join("busybox-amd64"),
    )
    .unwrap();
    std::fs::copy(arm64_busybox(), base.join("busybox-arm64")).unwrap();
    env.build_ok(
        &["--platform", "linux/amd64,linux/arm64", "-t", name],
        &base,
    );
    base
}

/// Build `ctx` into an OCI layout directory; the build's log and the layout.
fn build_to_layout(env: &Env, ctx: &Path) -> (String, PathBuf) {
    let layout = env.path("out");
    let dest = format!(
        "type=oci-dir,dest={},name=local/emu:latest",
        layout.display()
    );
    (env.build_ok(&["-o", &dest], ctx), layout)
}

fn layout_file(layout: &Path, path: &str) -> Vec<u8> {
    let bundle = format!("{}-bundle", layout.display());
    if !Path::new(&bundle).exists() {
        let umoci = common::require_tool("umoci", "umoci");
        common::run(std::process::Command::new(umoci).args([
            "unpack",
            "--image",
            &format!("{}:latest", layout.display()),
            &bundle,
        ]));
    }
    std::fs::read(format!("{}-bundle/rootfs/{path}", layout.display())).unwrap()
}

#[test]
fn run_steps_of_an_arm64_stage_run_emulated_and_feed_a_native_stage() {
    let env = Env::new();
    arm64_base(&env, "bb-arm64");
    env.busybox_base("bb-native");
    // Children of the shell are emulated too (the step's own binfmt_misc):
    // programs by path, as Debian's busybox starts applets named bare
    // through /proc/self/exe, which QEMU 7.2 cannot exec.
    let df = "FROM --platform=linux/arm64 bb-arm64 AS arm\n\
              RUN uname -m > /arch && /bin/cat /arch && /bin/echo abc | /bin/tr a-c x-z > /tr \
              && /bin/ls /bin | /bin/wc -l > /count\n\
              FROM bb-native\n\
              COPY --from=arm /arch /tr /count /out/\n\
              RUN uname -m > /out/native\n";
    let ctx = env.project("emu", &[("Dockerfile", df)]);
    let (err, layout) = build_to_layout(&env, &ctx);
    assert!(
        err.contains("aarch64"),
        "the RUN printed its machine: {err}"
    );
    let read = |p: &str| String::from_utf8(layout_file(&layout, p)).unwrap();
    assert_eq!(read("out/arch"), "aarch64\n");
    assert_eq!(read("out/tr"), "xyz\n");
    let count: u32 = read("out/count").trim().parse().unwrap();
    assert!(count > 100, "busybox's applets are listed: {count}");
    assert_eq!(read("out/native"), "x86_64\n", "the final stage is native");
}

#[test]
fn emulated_steps_are_as_confined_as_native_ones() {
    let env = Env::new();
    arm64_base(&env, "bb-arm64");
    // No capability to mount, no host devices, no way out of the step's
    // user namespace's binfmt_misc (registering needs CAP_SYS_ADMIN).
    let df = "FROM --platform=linux/arm64 bb-arm64\n\
              RUN /bin/mount -t tmpfs none /mnt && echo MOUNT''ED; \
              /bin/ls /dev > /devs; \
              echo ':x:M::abc::/bin/sh:' > /proc/sys/fs/binfmt_misc/register && echo REGISTER''ED; \
              /bin/cat /proc/self/status | /bin/grep -i '^CapEff' > /caps; true\n";
    let ctx = env.project("confined", &[("Dockerfile", df)]);
    let (err, layout) = build_to_layout(&env, &ctx);
    assert!(!err.contains("MOUNTED"), "{err}");
    assert!(!err.contains("REGISTERED"), "{err}");
    let devs = String::from_utf8(layout_file(&layout, "devs")).unwrap();
    let devs: Vec<&str> = devs.lines().collect();
    for d in ["null", "zero", "random", "urandom", "tty", "full"] {
        assert!(devs.contains(&d), "/dev/{d}: {devs:?}");
    }
    for d in ["mem", "kmsg", "sda", "vda"] {
        assert!(!devs.contains(&d), "no host /dev/{d}: {devs:?}");
    }
    // Docker's default capabilities, as for a native step (a5 = no SYS_ADMIN).
    let caps = String::from_utf8(layout_file(&layout, "caps")).unwrap();
    assert_eq!(caps.trim(), "CapEff:\t00000000a80425fb", "{caps}");
}

#[test]
fn without_a_binfmt_of_its_own_the_first_program_runs_emulated_and_confined() {
    // What a kernel before 6.7 gives (RBUILD_QEMU_BINFMT=0 asks for it
    // here): the command itself runs under the emulator, as BuildKit's.
    let env = Env::new();
    arm64_base(&env, "bb-arm64");
    let df = "FROM --platform=linux/arm64 bb-arm64\n\
              RUN [\"/bin/uname\", \"-m\"]\n\
              RUN [\"/bin/cat\", \"/proc/self/status\"]\n\
              RUN [\"/bin/cat\", \"/proc/self/mounts\"]\n";
    let ctx = env.project("first-only", &[("Dockerfile", df)]);
    let out = env
        .rbuild()
        .env("RBUILD_QEMU_BINFMT", "0")
        .args(["build", "--progress", "plain"])
        .arg(&ctx)
        .output()
        .expect("run rbuild");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(" aarch64\n"),
        "the command ran emulated: {err}"
    );
    // The emulator is confined as a native step: Docker's capabilities,
    // no_new_privs, the seccomp filter.
    assert!(err.contains("CapEff:\t00000000a80425fb"), "{err}");
    assert!(err.contains("NoNewPrivs:\t1"), "{err}");
    assert!(err.contains("Seccomp:\t2"), "{err}");
    assert!(
        !err.contains("binfmt_misc"),
        "no binfmt_misc of its own: {err}"
    );
}

#[test]
fn a_missing_emulator_is_a_clear_error_naming_the_package() {
    let env = Env::new();
    arm64_base(&env, "bb-arm64");
    let ctx = env.project(
        "missing",
        &[(
            "Dockerfile",
            "FROM --platform=linux/arm64 bb-arm64\nRUN uname -m\n",
        )],
    );
    let out = env
        .rbuild()
        .env("RBUILD_QEMU_DIR", env.path("no-qemu-here"))
        .args(["build", "--progress=plain"])
        .arg(&ctx)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("install the Debian package qemu-user-static")
            && err.contains("linux/arm64")
            && err.contains("qemu-aarch64-static"),
        "{err}"
    );
}

#[test]
fn a_two_platform_build_runs_each_platforms_run_on_its_architecture() {
    let env = Env::new();
    let base = multi_base(&env, "bb-multi");
    let ctx = env.project(
        "two",
        &[(
            "Dockerfile",
            "FROM bb-multi\nARG TARGETPLATFORM\nRUN echo \"$TARGETPLATFORM $(uname -m)\" > /arch\n",
        )],
    );
    let out = env.path("out");
    env.build_ok(
        &[
            "--platform",
            "linux/amd64,linux/arm64",
            "-o",
            &format!("type=local,dest={}", out.display()),
        ],
        &ctx,
    );
    let read = |p: &str| std::fs::read_to_string(out.join(p)).unwrap();
    assert_eq!(read("linux_amd64/arch"), "linux/amd64 x86_64\n");
    assert_eq!(read("linux_arm64/arch"), "linux/arm64 aarch64\n");

    // --cache-to holds both platforms' steps: a fresh store elsewhere
    // takes every one of them from it, and runs nothing.
    let cache = env.path("cache");
    let to = format!("type=local,dest={},mode=max", cache.display());
    let both = ["--platform", "linux/amd64,linux/arm64"];
    let log = env.build_ok(&[&both[..], &["--cache-to", &to]].concat(), &base);
    assert!(log.contains("exported cache to"), "{log}");
    let fresh = Env::new();
    let again = fresh.path("elsewhere/base");
    copy_dir(&base, &again);
    let from = format!("type=local,src={}", cache.display());
    let log = fresh.build_ok(&[&both[..], &["--cache-from", &from]].concat(), &again);
    assert!(log.contains("0 steps run"), "{log}");
}

#[test]
fn a_name_built_here_for_arm64_is_used_by_a_build_for_this_machine_with_a_warning() {
    let env = Env::new();
    // A registry host nothing listens on: the name is only in the store.
    arm64_base(&env, "127.0.0.1:1/local/bb-arm64:1");
    let ctx = env.project(
        "use",
        &[(
            "Dockerfile",
            "FROM 127.0.0.1:1/local/bb-arm64:1\nRUN uname -m\n",
        )],
    );
    let out = env
        .rbuild()
        .env_remove("RBUILD_OFFLINE")
        .args(["build", "--progress=plain"])
        .arg(&ctx)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("InvalidBaseImagePlatform"), "{err}");
    assert!(
        err.contains("aarch64"),
        "the stored arm64 image ran, emulated: {err}"
    );
}

#[test]
fn a_failing_platform_cancels_the_others_and_is_the_error() {
    // As BuildKit: the arm64 solve fails, so the amd64 one's slow RUN is
    // killed rather than waited for, and the error names arm64's step.
    let env = Env::new();
    multi_base(&env, "bb-multi");
    let df = "FROM bb-multi\nARG TARGETARCH\n\
              RUN if [ \"$TARGETARCH\" = arm64 ]; then exit 4; fi; /bin/sleep 120\n";
    let ctx = env.project("fails", &[("Dockerfile", df)]);
    let t = std::time::Instant::now();
    let err = env.build_err(&["--platform", "linux/amd64,linux/arm64"], &ctx);
    assert!(
        t.elapsed() < std::time::Duration::from_secs(60),
        "the amd64 build was waited for: {err}"
    );
    let last = err
        .lines()
        .rev()
        .find(|l| l.starts_with("error"))
        .unwrap_or("");
    assert!(last.contains("[linux/arm64]"), "{last}\n{err}");
    assert!(last.contains("exit code: 4"), "{last}\n{err}");
}
