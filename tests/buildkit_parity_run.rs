//! Behaviour and messages matched to BuildKit's around RUN, users, secrets
//! and ONBUILD (split from buildkit_parity.rs).

mod common;
use common::Env;
use common::parity::{build_fails, build_to_dir, with_base};

/// The config JSON of the image in an OCI layout directory.
fn layout_config(dir: &std::path::Path) -> serde_json::Value {
    let read = |p: &str| std::fs::read(dir.join(p)).unwrap();
    let index: serde_json::Value = serde_json::from_slice(&read("index.json")).unwrap();
    let m = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .replace("sha256:", "");
    let manifest: serde_json::Value =
        serde_json::from_slice(&read(&format!("blobs/sha256/{m}"))).unwrap();
    let c = manifest["config"]["digest"]
        .as_str()
        .unwrap()
        .replace("sha256:", "");
    serde_json::from_slice(&read(&format!("blobs/sha256/{c}"))).unwrap()
}

#[test]
fn proxy_build_args_reach_run_without_arg_and_stay_out_of_the_image() {
    let env = with_base();
    let ctx = env.project(
        "proxy",
        &[(
            "Dockerfile",
            "FROM test/busybox:latest\nRUN env | grep -i _proxy= | sort > /proxies\n",
        )],
    );
    let (rootfs, layout) = (env.path("proxy-fs"), env.path("proxy-oci"));
    let err = env.build_ok(
        &[
            "--build-arg",
            "HTTP_PROXY=http://127.0.0.1:3128",
            "--build-arg",
            "no_proxy=internal.example",
            "-o",
            &format!("type=local,dest={}", rootfs.display()),
            "-o",
            &format!("type=oci,tar=false,dest={}", layout.display()),
        ],
        &ctx,
    );
    assert!(!err.contains("not consumed"), "{err}");
    assert_eq!(
        std::fs::read_to_string(rootfs.join("proxies")).unwrap(),
        "HTTP_PROXY=http://127.0.0.1:3128\nNO_PROXY=internal.example\nhttp_proxy=http://127.0.0.1:3128\nno_proxy=internal.example\n"
    );
    let config = layout_config(&layout).to_string().to_lowercase();
    assert!(
        !config.contains("3128") && !config.contains("internal.example"),
        "{config}"
    );
}

#[test]
fn sandbox_hostname_build_arg_sets_hostname_and_hosts() {
    let env = with_base();
    let df = "FROM test/busybox:latest\nRUN hostname > /h && cat /etc/hosts > /hosts\n";
    let ctx = env.project("hostname", &[("Dockerfile", df)]);
    let out = env.path("hostname-out");
    let dest = format!("type=local,dest={}", out.display());
    let err = env.build_ok(
        &[
            "--build-arg",
            "BUILDKIT_SANDBOX_HOSTNAME=myhost",
            "-o",
            &dest,
        ],
        &ctx,
    );
    assert!(!err.contains("not consumed"), "{err}");
    assert_eq!(std::fs::read_to_string(out.join("h")).unwrap(), "myhost\n");
    let hosts = std::fs::read_to_string(out.join("hosts")).unwrap();
    assert!(hosts.contains("myhost"), "{hosts}");
    // The default stays BuildKit's, and is not served from the other's cache.
    env.build_ok(&["-o", &dest], &ctx);
    assert_eq!(
        std::fs::read_to_string(out.join("h")).unwrap(),
        "buildkitsandbox\n"
    );
}

#[test]
fn user_gets_supplementary_groups_and_buildkits_id_rules() {
    let env = with_base();
    let df = "FROM test/busybox:latest
RUN id > /id-root
USER 4242
RUN id > /tmp/id-num
USER 4242:4343
RUN id > /tmp/id-both
USER root:wheel
RUN id > /tmp/id-group
";
    let (_, out) = build_to_dir(&env, "users", df, &[]);
    let read = |p: &str| std::fs::read_to_string(out.join(p)).unwrap();
    assert_eq!(
        read("id-root"),
        "uid=0(root) gid=0(root) groups=0(root),10(wheel)\n"
    );
    assert_eq!(read("tmp/id-num"), "uid=4242 gid=0(root) groups=0(root)\n");
    assert_eq!(read("tmp/id-both"), "uid=4242 gid=4343 groups=4343\n");
    assert_eq!(
        read("tmp/id-group"),
        "uid=0(root) gid=10(wheel) groups=10(wheel)\n"
    );
    let err = build_fails(
        &env,
        "ghost",
        "FROM test/busybox:latest\nUSER ghost\nRUN true\n",
    );
    assert!(
        err.contains("unable to find user ghost: no matching entries in passwd file"),
        "{err}"
    );
}

#[test]
fn failing_run_reads_like_buildkit() {
    let env = with_base();
    let err = build_fails(
        &env,
        "runfail",
        "FROM test/busybox:latest\nRUN echo out-line && echo \"err line\" >&2 && exit 5\n",
    );
    assert!(
        err.contains("process \"/bin/sh -c echo out-line && echo \\\"err line\\\" >&2 && exit 5\" did not complete successfully: exit code: 5"),
        "{err}"
    );
    let tail = err.split("did not complete successfully").last().unwrap();
    assert!(
        tail.contains("out-line") && tail.contains("err line"),
        "{err}"
    );
    let err = build_fails(
        &env,
        "execfail",
        "FROM test/busybox:latest\nRUN [\"false\"]\n",
    );
    assert!(
        err.contains("process \"false\" did not complete successfully: exit code: 1"),
        "{err}"
    );
}

#[test]
fn add_checksum_needs_http_and_git_sources_are_refused_clearly() {
    let env = Env::new();
    let sum = "sha256:24454f830cdb571e2c4ad15481119c43b3cafd48dd869a9b2945d1036d1dc68d";
    for (df, want) in [
        (
            format!("FROM scratch\nADD --checksum={sum} a /a\n"),
            "checksum requires HTTP(S) or Git sources".to_string(),
        ),
        (
            format!("FROM scratch\nADD --checksum={sum} http://127.0.0.1:9/a b /d/\n"),
            "checksum can't be specified for multiple sources".to_string(),
        ),
        (
            "FROM scratch\nADD https://github.com/moby/buildkit.git#v0.10.1 /src\n".to_string(),
            "ADD https://github.com/moby/buildkit.git#v0.10.1: git sources are not supported yet"
                .to_string(),
        ),
        (
            "FROM scratch\nADD git@github.com:moby/buildkit.git /src\n".to_string(),
            "git sources are not supported yet".to_string(),
        ),
    ] {
        let ctx = env.project("addsum", &[("Dockerfile", &df), ("a", "a"), ("b", "b")]);
        let err = env.build_err(&[], &ctx);
        assert!(err.contains(&want), "{df}: {err}");
    }
}

#[test]
fn cache_miss_explanations_never_print_internal_json() {
    let env = with_base();
    let ctx = env.project(
        "explain",
        &[
            (
                "Dockerfile",
                "FROM test/busybox:latest\nCOPY a /a\nRUN echo one > /x\nCMD [\"one\"]\n",
            ),
            ("a", "a"),
        ],
    );
    env.build_ok(&[], &ctx);
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM test/busybox:latest\nCOPY --chmod=600 a /a\nRUN echo two > /x\nCMD [\"two\"]\n",
    )
    .unwrap();
    let err = env.build_ok(&["--explain"], &ctx);
    let misses: Vec<&str> = err.lines().filter(|l| l.contains("cache miss")).collect();
    assert_eq!(misses.len(), 3, "{err}");
    for l in &misses {
        assert!(!l.contains('{') && !l.contains("Some("), "{l}");
    }
    assert!(misses[0].contains("chmod: (none) -> \"600\""), "{err}");
    assert!(
        misses[1].contains("echo one") && misses[1].contains("echo two"),
        "{err}"
    );
}

#[test]
fn secret_mount_source_names_the_secret() {
    let env = with_base();
    let secret = env.path("token.txt");
    std::fs::write(&secret, "s3cr3t").unwrap();
    let ctx = env.project(
        "secret-src",
        &[(
            "Dockerfile",
            "FROM test/busybox:latest\nRUN --mount=type=secret,source=tok cat /run/secrets/tok > /seen\n",
        )],
    );
    let out = env.path("secret-src-out");
    env.build_ok(
        &[
            "--secret",
            &format!("id=tok,src={}", secret.display()),
            "-o",
            &format!("type=local,dest={}", out.display()),
        ],
        &ctx,
    );
    assert_eq!(std::fs::read_to_string(out.join("seen")).unwrap(), "s3cr3t");
}

#[test]
fn onbuild_triggers_run_as_steps_of_the_child_and_their_env_reaches_it() {
    let env = with_base();
    let base = env.project(
        "ob-env-base",
        &[(
            "Dockerfile",
            "FROM test/busybox:latest\nONBUILD ENV FROM_TRIGGER=yes\nONBUILD RUN echo trigger > /t\n",
        )],
    );
    env.build_ok(&["-t", "test/ob-env"], &base);
    let (err, out) = build_to_dir(
        &env,
        "ob-env-child",
        "FROM test/ob-env\nRUN echo \"$FROM_TRIGGER\" > /env\n",
        &[],
    );
    // Each trigger is a step of the child, counted and shown as BuildKit
    // does: the ENV trigger counts but, config only, has no vertex.
    assert!(!err.contains("ONBUILD ENV"), "{err}");
    assert!(
        err.contains("[stage-0 2/4] ONBUILD RUN echo trigger > /t"),
        "{err}"
    );
    assert!(err.contains("[stage-0 3/4] RUN echo"), "{err}");
    assert_eq!(std::fs::read_to_string(out.join("t")).unwrap(), "trigger\n");
    assert_eq!(std::fs::read_to_string(out.join("env")).unwrap(), "yes\n");
    // The triggers ran: the child image does not carry them on.
    let ctx = env.project("ob-env-layout", &[("Dockerfile", "FROM test/ob-env\n")]);
    let layout = env.path("ob-env-layout-out");
    env.build_ok(
        &["-o", &format!("type=oci-dir,dest={}", layout.display())],
        &ctx,
    );
    let cfg = layout_config(&layout);
    assert!(
        cfg["config"]["OnBuild"]
            .as_array()
            .is_none_or(|a| a.is_empty()),
        "{cfg}"
    );
}

#[test]
fn steps_are_numbered_as_buildkit_numbers_them() {
    // BuildKit: testStepNames. A scratch base or another stage is no step;
    // config-only instructions count for nothing and show no vertex.
    let env = with_base();
    let ctx = env.project(
        "step-names",
        &[(
            "Dockerfile",
            "FROM test/busybox:latest AS base\nENV A=1\nWORKDIR /out\nRUN echo \"base\" > base\n\
             FROM scratch\nLABEL x=y\nCOPY --from=base --chmod=0644 /out /out\n",
        )],
    );
    let err = env.build_ok(&[], &ctx);
    assert!(err.contains("[base 3/3] RUN echo \"base\" > base"), "{err}");
    assert!(
        err.contains("[stage-1 1/1] COPY --from=base --chmod=0644 /out /out"),
        "{err}"
    );
    assert!(!err.contains("FROM scratch"), "{err}");
    assert!(!err.contains("ENV A=1"), "{err}");
    assert!(!err.contains("LABEL x=y"), "{err}");
    // The index is padded to the total's width.
    let runs = "RUN true\n".repeat(10);
    let df = format!("FROM test/busybox:latest AS base\nFROM base\n{runs}");
    let ctx = env.project("step-width", &[("Dockerfile", &df)]);
    let err = env.build_ok(&[], &ctx);
    assert!(err.contains("[stage-1  1/10] RUN true"), "{err}");
    assert!(err.contains("[stage-1 10/10] RUN true"), "{err}");
}
