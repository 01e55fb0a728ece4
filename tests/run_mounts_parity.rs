//! RUN --mount details as BuildKit has them: cache mounts' owner and mode,
//! caches seeded from a stage, and writable binds of a stage.

mod common;
use common::Env;

#[test]
fn cache_mounts_owner_mode_and_seeding_from_a_stage() {
    let env = Env::new();
    env.busybox_base("test/busybox:latest");
    let df = r#"FROM test/busybox:latest AS s
RUN mkdir /data && echo seeded > /data/f

FROM test/busybox:latest
RUN --mount=type=cache,target=/mycache,uid=1001,gid=1002,mode=0751 stat -c "%u %g %f" /mycache > /owner
RUN --mount=type=cache,from=s,source=/data,target=/c cat /c/f > /seeded && echo more > /c/g
RUN --mount=type=cache,from=s,source=/data,target=/c ls /c > /second
RUN --mount=type=cache,target=/c ls /c > /unseeded
RUN --mount=from=s,source=/data,target=/d,rw echo x > /d/new && cat /d/f > /rw
RUN --mount=from=s,source=/data,target=/d ls /d > /after
"#;
    let ctx = env.project("ctx", &[("Dockerfile", df)]);
    let out = env.path("out");
    env.build_ok(&["-o", &format!("type=local,dest={}", out.display())], &ctx);
    let read = |p: &str| std::fs::read_to_string(out.join(p)).unwrap();
    assert_eq!(read("owner"), "1001 1002 41e9\n");
    assert_eq!(read("seeded"), "seeded\n");
    assert_eq!(read("second"), "f\ng\n", "the seeded cache persists");
    assert_eq!(
        read("unseeded"),
        "",
        "a cache without from= is another cache"
    );
    assert_eq!(read("rw"), "seeded\n");
    assert_eq!(read("after"), "f\n", "writes to a rw bind are discarded");
}

#[test]
fn a_cache_source_leading_out_of_the_cache_fails() {
    // BuildKit's testCacheMountSourceEscape.
    let env = Env::new();
    env.busybox_base("test/busybox:latest");
    let df = "FROM test/busybox:latest\n\
        RUN --mount=type=cache,target=/c ln -s ../../../../../../ /c/sel && mkdir /c/ok && echo in > /c/ok/f\n\
        RUN --mount=type=cache,target=/c,source=ok cat /c/f > /via-source\n";
    let ctx = env.project("ctx", &[("Dockerfile", df)]);
    let out = env.path("out");
    env.build_ok(&["-o", &format!("type=local,dest={}", out.display())], &ctx);
    assert_eq!(
        std::fs::read_to_string(out.join("via-source")).unwrap(),
        "in\n"
    );
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("{df}RUN --mount=type=cache,target=/c,source=sel ls /c\n"),
    )
    .unwrap();
    let err = env.build_err(&[], &ctx);
    assert!(err.contains("escapes the cache mount"), "{err}");
}

#[test]
fn a_cache_source_swapped_for_a_link_while_waiting_for_the_lock_never_mounts_the_host() {
    // Review finding: source= was resolved before the lock and mounted by
    // its host path, so a step holding the lock could swap it for a link.
    let env = Env::new();
    env.busybox_base("test/busybox:latest");
    let host = env.path("host");
    std::fs::create_dir_all(host.join("hostdir")).unwrap();
    let df = format!(
        "FROM test/busybox:latest AS a\n\
         RUN --mount=type=cache,id=c,target=/c,sharing=locked mkdir -p /c/a/hostdir\n\
         RUN --mount=type=cache,id=c,target=/c,sharing=locked sh -c 'sleep 3; mv /c/a /c/a.old; ln -s {h} /c/a'\n\
         FROM test/busybox:latest AS b\n\
         RUN sleep 1\n\
         RUN --mount=type=cache,id=c,target=/x,source=a/hostdir,sharing=locked sh -c 'echo pwned > /x/cache-pwned'\n\
         FROM test/busybox:latest\n\
         COPY --from=a /etc/hostname /a\n\
         COPY --from=b /etc/hostname /b\n",
        h = host.display()
    );
    let ctx = env.project("ctx", &[("Dockerfile", &df)]);
    let out = env
        .rbuild()
        .args(["build", "--progress", "plain"])
        .arg(&ctx)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !host.join("hostdir/cache-pwned").exists(),
        "the host directory was mounted into the step:\n{err}"
    );
}

#[test]
fn slirp4netns_inherits_no_descriptor_of_rbuilds_caller() {
    let env = Env::new();
    env.busybox_base("test/busybox:latest");
    let ctx = env.project(
        "ctx",
        &[("Dockerfile", "FROM test/busybox:latest\nRUN sleep 2\n")],
    );
    let rbuild = assert_cmd::cargo::cargo_bin("rbuild");
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "exec 7</; exec {} build --no-cache --progress plain {}",
            rbuild.display(),
            ctx.display()
        ))
        .env("RBUILD_ROOT", env.root())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut checked = 0;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {
        for p in std::fs::read_dir("/proc").unwrap().flatten() {
            let cmd = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
            let argv0 = cmd.split(|b| *b == 0).next().unwrap_or_default();
            if !argv0.ends_with(b"slirp4netns") {
                continue;
            }
            // Only slirp4netns processes started by this rbuild (its children).
            let stat = std::fs::read_to_string(p.path().join("stat")).unwrap_or_default();
            let ppid: u32 = stat
                .rsplit(')')
                .next()
                .and_then(|s| s.split_whitespace().nth(1))
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            if ppid != child.id() {
                continue;
            }
            if let Ok(t) = std::fs::read_link(p.path().join("fd/7")) {
                panic!("slirp4netns holds the caller's fd 7 -> {}", t.display());
            }
            checked += 1;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(child.wait().unwrap().success());
    assert!(checked > 0, "slirp4netns was never seen running");
}

#[test]
fn bind_mounts_of_a_stage_are_cached_by_content() {
    // BuildKit: testMountRWCache. The mounted stage is rebuilt (its context
    // file changed) with the same files at the mounted path: the RUN that
    // mounts it is taken from the cache; other files there make it run.
    let env = Env::new();
    env.busybox_base("test/busybox:latest");
    let df = "from test/busybox:latest AS build\ncopy cachebust /\nrun mkdir out && echo foo > out/foo\n\
              from test/busybox:latest as second\n\
              RUN --mount=from=build,src=out,target=/out,rw touch /out/bar && cat /dev/urandom | head -c 100 | sha256sum > /unique\n\
              from scratch\nCOPY --from=second /unique /unique\n";
    let ctx = env.project("rwcache", &[("Dockerfile", df), ("cachebust", "0")]);
    let unique = |name: &str| {
        let out = env.path(name);
        env.build_ok(&["-o", &format!("type=local,dest={}", out.display())], &ctx);
        std::fs::read_to_string(out.join("unique")).unwrap()
    };
    let first = unique("out1");
    std::fs::write(ctx.join("cachebust"), "1").unwrap();
    assert_eq!(unique("out2"), first, "same files mounted: cached");
    let df2 = df.replace("echo foo", "echo changed");
    std::fs::write(ctx.join("Dockerfile"), df2).unwrap();
    assert_ne!(unique("out3"), first, "other files mounted: run again");
}
