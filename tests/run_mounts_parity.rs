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
