//! Builds through the CLI, end to end, checked with real OCI tools.

mod common;
use common::{Env, cached_steps, require_tool, run};
use std::process::Command as Proc;

const MULTI: &str = r#"# syntax=docker/dockerfile:1
FROM scratch AS assets
COPY assets/ /assets/
LABEL stage=assets

FROM scratch AS docs
COPY docs/readme.md /docs/

FROM scratch
COPY --from=assets /assets /srv/assets
COPY --from=docs /docs/readme.md /srv/
COPY --chmod=0755 bin/tool /usr/local/bin/tool
ENV APP=demo VERSION=1.0
WORKDIR /srv
LABEL org.example.kind=test
EXPOSE 8080 53/udp
USER 1000:1000
ENTRYPOINT ["/usr/local/bin/tool"]
CMD ["--help"]
"#;

fn multi_project(env: &Env) -> std::path::PathBuf {
    env.project(
        "multi",
        &[
            ("Dockerfile", MULTI),
            ("assets/a.txt", "alpha\n"),
            ("assets/sub/b.txt", "beta\n"),
            ("docs/readme.md", "# readme\n"),
            ("bin/tool", "#!/bin/sh\necho tool\n"),
            ("ignored.log", "nope"),
            (".dockerignore", "*.log\n"),
        ],
    )
}

#[test]
fn multi_stage_copy_build_exports_every_format_accepted_by_real_tools() {
    let skopeo = require_tool("skopeo", "skopeo");
    let umoci = require_tool("umoci", "umoci");
    let env = Env::new();
    let ctx = multi_project(&env);
    let (oci_dir, oci_tar, docker_tar, rootfs) = (
        env.path("oci"),
        env.path("img.oci.tar"),
        env.path("img.docker.tar"),
        env.path("rootfs"),
    );
    env.build_ok(
        &[
            "-t",
            "example.com/multi:1.0",
            "-o",
            &format!("type=oci-dir,dest={}", oci_dir.display()),
            "-o",
            &format!("type=oci,dest={}", oci_tar.display()),
            "-o",
            &format!("type=docker,dest={}", docker_tar.display()),
            "-o",
            &format!("type=local,dest={}", rootfs.display()),
        ],
        &ctx,
    );
    // skopeo reads all three image formats and sees the config we wrote.
    for src in [
        format!("oci:{}:1.0", oci_dir.display()),
        format!("oci-archive:{}", oci_tar.display()),
        format!("docker-archive:{}", docker_tar.display()),
    ] {
        let out = run(Proc::new(&skopeo).args(["inspect", "--config", &src]));
        let cfg: serde_json::Value = serde_json::from_str(&out).expect("config json");
        let c = &cfg["config"];
        assert_eq!(
            c["Entrypoint"],
            serde_json::json!(["/usr/local/bin/tool"]),
            "{src}"
        );
        assert_eq!(c["Cmd"], serde_json::json!(["--help"]));
        assert_eq!(c["WorkingDir"], "/srv");
        assert_eq!(c["User"], "1000:1000");
        assert_eq!(c["Labels"]["org.example.kind"], "test");
        assert!(
            c["ExposedPorts"].get("8080/tcp").is_some()
                && c["ExposedPorts"].get("53/udp").is_some()
        );
        assert!(c["Env"].as_array().unwrap().iter().any(|e| e == "APP=demo"));
        // Layers: 3 COPY and the WORKDIR (as BuildKit: /srv exists
        // already, its layer is empty); every config-only step is an
        // empty_layer history entry.
        assert_eq!(cfg["rootfs"]["diff_ids"].as_array().unwrap().len(), 4);
        let hist = cfg["history"].as_array().unwrap();
        let with_layer = hist
            .iter()
            .filter(|h| h.get("empty_layer").is_none())
            .count();
        assert_eq!(with_layer, 4, "history: {hist:?}");
    }
    // umoci unpacks the layout into the expected filesystem.
    let bundle = env.path("bundle");
    run(Proc::new(&umoci)
        .args(["unpack", "--rootless", "--image"])
        .arg(format!("{}:1.0", oci_dir.display()))
        .arg(&bundle));
    let fs_root = bundle.join("rootfs");
    for root in [&fs_root, &rootfs] {
        assert_eq!(
            std::fs::read_to_string(root.join("srv/assets/sub/b.txt")).unwrap(),
            "beta\n"
        );
        assert_eq!(
            std::fs::read_to_string(root.join("srv/readme.md")).unwrap(),
            "# readme\n"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(root.join("usr/local/bin/tool"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
        assert!(!root.join("srv/assets/ignored.log").exists());
    }
}

#[test]
fn rebuild_is_fully_cached_and_gives_the_same_image() {
    let env = Env::new();
    let ctx = multi_project(&env);
    let (id1, id2) = (env.path("id1"), env.path("id2"));
    env.build_ok(&["--iidfile", id1.to_str().unwrap()], &ctx);
    let out = env
        .rbuild()
        .args([
            "build",
            "--progress",
            "rawjson",
            "--iidfile",
            id2.to_str().unwrap(),
        ])
        .arg(&ctx)
        .output()
        .unwrap();
    assert!(out.status.success());
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let fin = events
        .iter()
        .find(|e| e["event"] == "finished")
        .expect("finished event");
    assert_eq!(
        fin["executed"], 0,
        "everything should come from the cache: {events:?}"
    );
    // Every step BuildKit shows (COPY, COPY, 3 COPY and WORKDIR); the
    // config-only ones are not counted.
    assert_eq!(fin["cached"], 6, "{events:?}");
    assert_eq!(
        std::fs::read_to_string(id1).unwrap(),
        std::fs::read_to_string(id2).unwrap()
    );
}

#[test]
fn a_changed_file_rebuilds_only_what_depends_on_it_and_says_why() {
    let env = Env::new();
    let ctx = multi_project(&env);
    env.build_ok(&[], &ctx);
    std::fs::write(ctx.join("docs/readme.md"), "# changed\n").unwrap();
    let err = env.build_ok(&[], &ctx);
    assert!(
        err.contains("cache miss: files:docs/readme.md: docs/readme.md changed"),
        "{err}"
    );
    // Exactly what does not depend on docs/ comes from the cache: the
    // assets stage and the final stage's copy from it (numbered as BuildKit
    // numbers steps: a scratch base and config-only steps are no steps).
    assert_eq!(
        cached_steps(&err),
        [
            "[assets 1/1] COPY assets/ /assets/",
            "[stage-2 1/4] COPY --from=assets /assets /srv/assets",
        ],
        "{err}"
    );
    let line = err.lines().find(|l| l.starts_with("built in")).unwrap();
    assert!(line.contains("cached"), "{line}");
}

#[test]
fn explain_prints_reasons_for_every_step() {
    let env = Env::new();
    let ctx = env.project(
        "e",
        &[
            (
                "Dockerfile",
                "FROM scratch\nCOPY g /g\nARG V=1\nENV V=$V\nCOPY f /f\n",
            ),
            ("f", "x"),
            ("g", "y"),
        ],
    );
    // A first build: with --explain, every step says it was never built.
    let first = env.build_ok(&["--explain"], &ctx);
    assert_eq!(
        first
            .matches("cache miss: no earlier build of this step")
            .count(),
        4,
        "{first}"
    );
    let err = env.build_ok(&["--explain", "--build-arg", "V=2"], &ctx);
    assert!(err.contains("cache miss: def: \"V=1\" -> \"V=2\""), "{err}");
    // The unchanged step says why it was taken from the cache...
    assert!(err.contains("#2 cache hit: key sha256:"), "{err}");
    // (an ARG's value is in the keys of the steps that use it, here the
    // ENV, as in BuildKit: the ARG itself is unchanged).
    assert_eq!(
        cached_steps(&err),
        ["[stage-0 1/2] COPY g /g", "[stage-0] ARG V=1"],
        "{err}"
    );
    // ...which only --explain prints.
    let plain = env.build_ok(&["--build-arg", "V=2"], &ctx);
    assert!(!plain.contains("cache hit"), "{plain}");
    assert!(!plain.contains("no earlier build"), "{plain}");
}

#[test]
fn source_date_epoch_builds_are_reproducible_from_clean_stores() {
    let a = Env::new();
    let b = Env::new();
    let ctx = multi_project(&a);
    let meta = |env: &Env, name: &str| {
        let f = env.path(name);
        let out = env
            .rbuild()
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .args(["build", "-q", "--metadata-file", f.to_str().unwrap()])
            .arg(&ctx)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap();
        v["containerimage.digest"].as_str().unwrap().to_string()
    };
    let d1 = meta(&a, "m1");
    // Touch every file: mtimes change, the image must not.
    for f in [
        "assets/a.txt",
        "assets/sub/b.txt",
        "docs/readme.md",
        "bin/tool",
    ] {
        let p = ctx.join(f);
        let content = std::fs::read(&p).unwrap();
        std::fs::write(&p, content).unwrap();
    }
    let d2 = meta(&b, "m2");
    assert_eq!(d1, d2);
}

#[test]
fn bad_input_fails_clearly_and_leaves_the_store_unchanged() {
    let env = Env::new();
    let ctx = env.project(
        "bad",
        &[
            ("Dockerfile", "FROM scratch\nCOPY ok /ok\n"),
            ("ok", "fine"),
        ],
    );
    std::os::unix::fs::symlink("../../../../etc/passwd", ctx.join("leak")).unwrap();
    env.build_ok(&[], &ctx);
    let records = || std::fs::read_dir(env.root().join("cache")).unwrap().count();
    let before = records();
    let cases = [
        (
            "FROM scratch\nCOPY ../outside /x\n",
            "path escapes the build context",
        ),
        // A link is followed inside the context, where its target is missing.
        ("FROM scratch\nCOPY leak /x\n", "\"/leak\": not found"),
        ("FROM scratch\nCOPY missing /x\n", "\"/missing\": not found"),
        ("FROM scratch\nCOPY --from=nostage /x /x\n", "not found"),
        (
            "FROM scratch\nCOPY ok ok /notadir\n",
            "destination must be a directory",
        ),
    ];
    for (df, msg) in cases {
        std::fs::write(ctx.join("Dockerfile"), df).unwrap();
        let err = env.build_err(&[], &ctx);
        assert!(err.contains(msg), "{df:?}: expected {msg:?} in\n{err}");
    }
    let err = env.build_err(&["-o", "type=nope,dest=x"], &ctx);
    assert!(err.contains("invalid --output"), "{err}");
    assert_eq!(
        records(),
        before,
        "failed builds must not add cache records"
    );
}

#[test]
fn from_oci_layout_and_local_names_and_onbuild_triggers() {
    let env = Env::new();
    let base = env.project(
        "base",
        &[("Dockerfile", "FROM scratch\nCOPY base.txt /\nONBUILD COPY trigger.txt /from-trigger.txt\nENV BASEVAR=b\n"), ("base.txt", "base")],
    );
    let layout = env.path("base-layout");
    env.build_ok(
        &[
            "-t",
            "local/onbuild:1",
            "-o",
            &format!(
                "type=oci-dir,dest={},name=local/onbuild:1",
                layout.display()
            ),
        ],
        &base,
    );
    for from in [
        format!("oci-layout://{}:1", layout.display()),
        "local/onbuild:1".to_string(),
    ] {
        let df = format!("FROM {from}\nWORKDIR /w-$BASEVAR\n");
        let ctx = env.project(
            &format!("child-{}", from.len()),
            &[("Dockerfile", &df), ("trigger.txt", "T")],
        );
        let out = env.path(&format!("out-{}", from.len()));
        env.build_ok(&["-o", &format!("type=local,dest={}", out.display())], &ctx);
        assert_eq!(
            std::fs::read_to_string(out.join("base.txt")).unwrap(),
            "base"
        );
        assert_eq!(
            std::fs::read_to_string(out.join("from-trigger.txt")).unwrap(),
            "T",
            "ONBUILD ran"
        );
        assert!(
            out.join("w-b").is_dir(),
            "base image ENV expands in the child"
        );
    }
}

#[test]
fn prune_and_du() {
    let env = Env::new();
    let ctx = multi_project(&env);
    env.build_ok(&["-t", "keep:1"], &ctx);
    let du = env.rbuild().arg("du").output().unwrap();
    assert!(String::from_utf8_lossy(&du.stdout).contains("cache records:"));
    env.rbuild().args(["prune", "--all"]).assert().success();
    let du = String::from_utf8_lossy(&env.rbuild().arg("du").output().unwrap().stdout).into_owned();
    assert!(du.contains("cache records:      0"), "{du}");
    let steps = std::fs::read_dir(env.root().join("cache/steps"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(steps, 0, "prune --all leaves no step pointers or notes");
    // The named image still works as a base after prune.
    let child = env.project(
        "child",
        &[("Dockerfile", "FROM keep:1\nCOPY x /x\n"), ("x", "x")],
    );
    env.build_ok(&[], &child);
    env.rbuild()
        .args(["prune", "--keep-storage", "nonsense"])
        .assert()
        .failure();
}

#[test]
fn concurrent_builds_share_one_store_safely() {
    let env = Env::new();
    let ctx = multi_project(&env);
    let children: Vec<_> = (0..4)
        .map(|_| {
            std::process::Command::new(assert_cmd::cargo::cargo_bin("rbuild"))
                .env("RBUILD_ROOT", env.root())
                .args(["build", "-q"])
                .arg(&ctx)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let ids: Vec<String> = children
        .into_iter()
        .map(|c| {
            let o = c.wait_with_output().unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            String::from_utf8_lossy(&o.stdout).trim().to_string()
        })
        .collect();
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "{ids:?}");
}

#[test]
fn the_first_failing_step_cancels_the_other_stages_and_is_the_error() {
    // BuildKit cancels the rest of a build on its first error: the slow
    // side stage's RUN is killed, not waited for, and the error is the
    // failing step's (not the killed one's).
    let env = Env::new();
    env.busybox_base("busybox:latest");
    let df = "FROM busybox AS slow\nRUN sleep 120 && echo done > /slow\n\
              FROM busybox AS bad\nRUN sleep 1 && exit 3\n\
              FROM busybox\nCOPY --from=slow /slow /slow\nCOPY --from=bad /etc/passwd /p\n";
    let ctx = env.project("cancel", &[("Dockerfile", df)]);
    let t = std::time::Instant::now();
    let err = env.build_err(&[], &ctx);
    assert!(
        t.elapsed() < std::time::Duration::from_secs(60),
        "the slow stage was waited for: {err}"
    );
    assert!(err.contains("sleep 1 && exit 3"), "{err}");
    assert!(err.contains("exit code: 3"), "{err}");
    let last = err
        .lines()
        .rev()
        .find(|l| l.starts_with("error"))
        .unwrap_or("");
    assert!(
        last.contains("exit 3"),
        "the failing step is the error: {last}\n{err}"
    );
}
