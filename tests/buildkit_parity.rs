//! Behaviour and messages matched to BuildKit's (its integration tests and
//! dockerfile2llb), one test per difference that was closed.

mod common;
use common::Env;
use common::parity::{build_fails, build_to_dir, with_base};

#[test]
fn mount_without_target_uses_the_workdir() {
    let env = with_base();
    let df = "FROM test/busybox:latest
WORKDIR /src
RUN --mount=type=bind,source=dir cat /src/hello > /hello.txt
WORKDIR /w
RUN --mount=type=tmpfs,target=t touch /w/t/x && ls /w > /ls.txt
";
    let (_, out) = build_to_dir(&env, "notarget", df, &[("dir/hello", "hi\n")]);
    assert_eq!(
        std::fs::read_to_string(out.join("hello.txt")).unwrap(),
        "hi\n"
    );
    assert_eq!(std::fs::read_to_string(out.join("ls.txt")).unwrap(), "t\n");
    let err = build_fails(
        &env,
        "roottarget",
        "FROM test/busybox:latest\nRUN --mount=type=cache true\n",
    );
    assert!(err.contains("invalid mount target \"/\""), "{err}");
}

#[test]
fn misspelled_flags_and_mount_types_get_suggestions() {
    let env = Env::new();
    for (df, want) in [
        (
            "FROM scratch\nRUN --mont=target=/mytmp,type=tmpfs /bin/true\n",
            "unknown flag: --mont (did you mean mount?)",
        ),
        (
            "FROM scratch\nRUN --mount=typ=tmpfs /bin/true\n",
            "unexpected key 'typ' in 'typ=tmpfs' (did you mean type?)",
        ),
        (
            "FROM scratch\nRUN --mount=type=tmp /bin/true\n",
            "unsupported mount type \"tmp\" (did you mean tmpfs?)",
        ),
    ] {
        let err = build_fails(&env, "typo", df);
        assert!(err.contains(want), "{df}: {err}");
    }
}

#[test]
fn files_without_instructions_or_stages_get_buildkits_messages() {
    let env = Env::new();
    for (df, want) in [
        ("", "file with no instructions"),
        ("# just a comment\n\n", "file with no instructions"),
        (
            "# syntax=docker/dockerfile:1\n",
            "file with no instructions",
        ),
        ("ARG A=1\n", "dockerfile contains no stages to build"),
        ("FROM scratch\n\\\n", "unknown instruction"),
    ] {
        let err = build_fails(&env, "empty", df);
        assert!(err.contains(want), "{df:?}: {err}");
        assert!(!err.contains("kw_"), "grammar rule names leak: {err}");
    }
}

#[test]
fn check_error_directive_fails_the_build() {
    let env = Env::new();
    let ctx = env.project(
        "lint",
        &[(
            "Dockerfile",
            "#check=skip=ConsistentInstructionCasing;error=true\nFROM scratch as base\ncopy Dockerfile .\n",
        )],
    );
    let err = env.build_err(&[], &ctx);
    assert!(
        err.contains("lint violation found for rules: FromAsCasing"),
        "{err}"
    );
    let ok = env.project(
        "lint-off",
        &[(
            "Dockerfile",
            "#check=error=false\nFROM scratch as base\nCOPY Dockerfile .\n",
        )],
    );
    env.build_ok(&[], &ok);
    // The BUILDKIT_DOCKERFILE_CHECK build arg replaces the directive.
    let over = env.project(
        "lint-arg",
        &[(
            "Dockerfile",
            "#check=skip=all\nFROM scratch as base\ncopy Dockerfile .\n",
        )],
    );
    env.build_ok(&[], &over);
    let err = env.build_err(
        &[
            "--build-arg",
            "BUILDKIT_DOCKERFILE_CHECK=skip=ConsistentInstructionCasing;error=true",
        ],
        &over,
    );
    assert!(
        err.contains("lint violation found for rules: FromAsCasing"),
        "{err}"
    );
}

/// The manifest digest of a build of `ctx` in a fresh store.
fn manifest_digest(ctx: &std::path::Path, args: &[&str], epoch_env: Option<&str>) -> String {
    let env = Env::new();
    let meta = env.path("meta.json");
    let mut cmd = env.rbuild();
    if let Some(e) = epoch_env {
        cmd.env("SOURCE_DATE_EPOCH", e);
    }
    let out = cmd
        .args(["build", "--progress", "plain", "--metadata-file"])
        .arg(&meta)
        .args(args)
        .arg(ctx)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&meta).unwrap()).unwrap();
    v["containerimage.digest"].as_str().unwrap().to_string()
}

#[test]
fn source_date_epoch_build_arg_works_like_the_environment_variable() {
    let env = Env::new();
    let ctx = env.project(
        "sde",
        &[
            ("Dockerfile", "FROM scratch\nCOPY a /a\nENV X=1\n"),
            ("a", "content\n"),
        ],
    );
    let by_env = manifest_digest(&ctx, &[], Some("1700000000"));
    let by_arg = manifest_digest(&ctx, &["--build-arg", "SOURCE_DATE_EPOCH=1700000000"], None);
    assert_eq!(by_env, by_arg);
    let other = manifest_digest(&ctx, &["--build-arg", "SOURCE_DATE_EPOCH=1600000000"], None);
    assert_ne!(by_env, other);
    let err = env.build_err(&["--build-arg", "SOURCE_DATE_EPOCH=soon"], &ctx);
    assert!(err.contains("SOURCE_DATE_EPOCH=soon"), "{err}");
}

#[test]
fn unused_build_args_get_a_warning() {
    let env = Env::new();
    let ctx = env.project(
        "unused",
        &[("Dockerfile", "FROM scratch\nARG USED\nENV X=$USED\n")],
    );
    let err = env.build_ok(
        &[
            "--build-arg",
            "USED=1",
            "--build-arg",
            "FOO=2",
            "--build-arg",
            "HTTP_PROXY=x",
        ],
        &ctx,
    );
    assert!(
        err.contains("[Warning] One or more build-args [FOO] were not consumed"),
        "{err}"
    );
    let err = env.build_ok(&["--build-arg", "USED=1"], &ctx);
    assert!(!err.contains("not consumed"), "{err}");
}

#[test]
fn tags_are_checked_with_dockers_reference_grammar() {
    let env = Env::new();
    let ctx = env.project("tags", &[("Dockerfile", "FROM scratch\nENV A=1\n")]);
    let long = "a".repeat(256);
    for (tag, want) in [
        (
            "Foo",
            "invalid reference format: repository name (library/Foo) must be lowercase",
        ),
        ("a b", "invalid reference format"),
        ("a::b", "invalid reference format"),
        ("a:", "invalid reference format"),
        (
            long.as_str(),
            "repository name must not be more than 255 characters",
        ),
    ] {
        let err = env.build_err(&["-t", tag], &ctx);
        assert!(
            err.contains(&format!(
                "invalid argument {tag:?} for \"-t, --tag\" flag: {want}"
            )),
            "{tag}: {err}"
        );
    }
    env.build_ok(&["-t", "localhost:5000/ok/name:v1.2_3"], &ctx);
}

#[test]
fn missing_secret_file_fails_before_the_build() {
    let env = Env::new();
    // The RUN would fail if the build started: there is no shell in scratch.
    let ctx = env.project("secret", &[("Dockerfile", "FROM scratch\nRUN true\n")]);
    let err = env.build_err(&["--secret", "id=X,src=/nonexistent/secret-file"], &ctx);
    assert!(
        err.contains("failed to stat /nonexistent/secret-file"),
        "{err}"
    );
    assert!(!err.contains("RUN true"), "the build must not start: {err}");
    // `id=X` alone: the variable X if set, else the file X (as buildx).
    let err = env.build_err(&["--secret", "id=RBUILD_TEST_NO_SUCH_SECRET"], &ctx);
    assert!(
        err.contains("failed to stat RBUILD_TEST_NO_SUCH_SECRET"),
        "{err}"
    );
}

#[test]
fn local_output_to_stdout_is_rejected() {
    let env = Env::new();
    let ctx = env.project("stdout", &[("Dockerfile", "FROM scratch\nENV A=1\n")]);
    let err = env.build_err(&["-o", "type=local,dest=-"], &ctx);
    assert!(err.contains("not standard output (dest=-)"), "{err}");
}

/// The manifest and config media types and the layer types of an OCI
/// layout's (single) image, read from `index.json` and its blobs.
fn layout_media_types(read: &dyn Fn(&str) -> Vec<u8>) -> (String, String, String, Vec<String>) {
    let index: serde_json::Value = serde_json::from_slice(&read("index.json")).unwrap();
    let desc = &index["manifests"][0];
    let digest = desc["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:");
    let manifest: serde_json::Value =
        serde_json::from_slice(&read(&format!("blobs/sha256/{digest}"))).unwrap();
    let layers = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["mediaType"].as_str().unwrap().to_string())
        .collect();
    (
        desc["mediaType"].as_str().unwrap().to_string(),
        manifest["mediaType"].as_str().unwrap().to_string(),
        manifest["config"]["mediaType"]
            .as_str()
            .unwrap()
            .to_string(),
        layers,
    )
}

#[test]
fn oci_mediatypes_false_gives_docker_media_types() {
    let env = Env::new();
    let ctx = env.project(
        "mt",
        &[("Dockerfile", "FROM scratch\nCOPY a /a\n"), ("a", "x\n")],
    );
    let docker = (
        "application/vnd.docker.distribution.manifest.v2+json".to_string(),
        "application/vnd.docker.distribution.manifest.v2+json".to_string(),
        "application/vnd.docker.container.image.v1+json".to_string(),
        vec!["application/vnd.docker.image.rootfs.diff.tar.gzip".to_string()],
    );
    let dir = env.path("layout");
    env.build_ok(
        &[
            "-o",
            &format!(
                "type=oci,dest={},tar=false,oci-mediatypes=false",
                dir.display()
            ),
        ],
        &ctx,
    );
    let from_dir = |p: &str| std::fs::read(dir.join(p)).unwrap();
    assert_eq!(layout_media_types(&from_dir), docker);
    // The docker exporter uses Docker's types by default.
    let tarball = env.path("docker.tar");
    env.build_ok(
        &["-o", &format!("type=docker,dest={}", tarball.display())],
        &ctx,
    );
    let from_tar = |p: &str| {
        let mut a = tar::Archive::new(std::fs::File::open(&tarball).unwrap());
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            if e.path().unwrap().to_str() == Some(p) {
                let mut v = Vec::new();
                std::io::Read::read_to_end(&mut e, &mut v).unwrap();
                return v;
            }
        }
        panic!("{p} not in the archive")
    };
    assert_eq!(layout_media_types(&from_tar), docker);
    // OCI stays the default of the oci exporter.
    let oci = env.path("oci-layout");
    env.build_ok(
        &["-o", &format!("type=oci,dest={},tar=false", oci.display())],
        &ctx,
    );
    let (_, m, c, l) = layout_media_types(&|p: &str| std::fs::read(oci.join(p)).unwrap());
    assert_eq!(m, "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(c, "application/vnd.oci.image.config.v1+json");
    assert_eq!(l, ["application/vnd.oci.image.layer.v1.tar+gzip"]);
}

/// A platform this machine cannot run.
fn foreign_platform() -> &'static str {
    if std::env::consts::ARCH == "x86_64" {
        "linux/arm64"
    } else {
        "linux/amd64"
    }
}

/// The architecture `rbuild inspect NAME` gives.
fn stored_arch(env: &Env, name: &str) -> String {
    let out = env.rbuild().args(["inspect", name]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("inspect json");
    v[0]["Architecture"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn foreign_platforms_build_without_run_as_buildkit_labels_them() {
    let env = Env::new();
    let other = foreign_platform();
    let other_arch = other.rsplit('/').next().unwrap();
    let host_arch = std::env::consts::ARCH
        .replace("x86_64", "amd64")
        .replace("aarch64", "arm64");
    // As BuildKit: FROM --platform on scratch is the target's platform.
    let ctx = env.project(
        "fromplat",
        &[(
            "Dockerfile",
            &format!("FROM --platform={other} scratch\nENV A=1\n"),
        )],
    );
    env.build_ok(&["-t", "fromplat:1"], &ctx);
    assert_eq!(stored_arch(&env, "fromplat:1"), host_arch);
    // An explicit --platform is the image's, even for a final stage on
    // $BUILDPLATFORM (BuildKit's rule); stages not built do not matter.
    let ctx = env.project(
        "fromplat-ok",
        &[(
            "Dockerfile",
            "FROM --platform=linux/s390x scratch AS unused\nFROM --platform=$BUILDPLATFORM scratch\nENV A=1\n",
        )],
    );
    env.build_ok(&["-t", "native:1"], &ctx);
    assert_eq!(stored_arch(&env, "native:1"), host_arch);
    env.build_ok(&["--platform", other, "-t", "target:1"], &ctx);
    assert_eq!(stored_arch(&env, "target:1"), other_arch);
    // A base of another platform than the stage's is used with BuildKit's warning.
    let ctx2 = env.project("on-native", &[("Dockerfile", "FROM native:1\nENV B=1\n")]);
    let log = env.build_ok(&["--platform", other], &ctx2);
    assert!(
        log.contains(&format!(
            "InvalidBaseImagePlatform: Base image native:1 was pulled with platform \"linux/{host_arch}\", expected \"{other}\" for current build"
        )),
        "{log}"
    );
    let err = env.build_err(&["--platform", "linux/amd64,nonsense"], &ctx);
    assert!(
        err.contains("--platform linux/amd64,nonsense: invalid platform \"nonsense\""),
        "{err}"
    );
    let ctx = env.project(
        "fromplat-bad",
        &[("Dockerfile", "FROM --platform=linux/amd64/v2/x scratch\n")],
    );
    let err = env.build_err(&[], &ctx);
    assert!(
        err.contains("failed to parse platform linux/amd64/v2/x"),
        "{err}"
    );
}

/// Run `rbuild build ... -` with `stdin`; returns (success, stderr).
fn build_stdin(env: &Env, args: &[&str], stdin: Vec<u8>) -> (bool, String) {
    let out = env
        .rbuild()
        .args(["build", "--progress", "plain"])
        .args(args)
        .arg("-")
        .write_stdin(stdin)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn context_from_stdin_dockerfile_or_tar_and_clear_errors_for_urls() {
    let env = Env::new();
    // A Dockerfile on stdin: no context.
    let out = env.path("stdin-df");
    let dest = format!("type=local,dest={}", out.display());
    let (ok, err) = build_stdin(&env, &["-o", &dest], b"FROM scratch\nENV A=1\n".to_vec());
    assert!(ok, "{err}");
    let (ok, err) = build_stdin(&env, &[], b"FROM scratch\nCOPY x /x\n".to_vec());
    assert!(
        !ok && err.contains("not found in the build context"),
        "{err}"
    );
    // A gzipped tar on stdin: the context, with its Dockerfile.
    let mut tarball = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::default(),
    ));
    for (name, body) in [
        ("Dockerfile", "FROM scratch\nCOPY hello.txt /\n"),
        ("hello.txt", "from the archive\n"),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        tarball.append_data(&mut h, name, body.as_bytes()).unwrap();
    }
    let bytes = tarball.into_inner().unwrap().finish().unwrap();
    let out = env.path("stdin-tar");
    let dest = format!("type=local,dest={}", out.display());
    let (ok, err) = build_stdin(&env, &["-o", &dest], bytes);
    assert!(ok, "{err}");
    assert_eq!(
        std::fs::read_to_string(out.join("hello.txt")).unwrap(),
        "from the archive\n"
    );
    // Remote contexts are refused clearly, never as a missing ./Dockerfile.
    for (url, want) in [
        (
            "https://example.invalid/ctx.tar.gz",
            "remote build contexts (URLs) are not supported yet",
        ),
        (
            "https://example.invalid/repo.git",
            "git build contexts are not supported yet",
        ),
        (
            "git@example.invalid:repo",
            "git build contexts are not supported yet",
        ),
    ] {
        let err = env.build_err(&[], std::path::Path::new(url));
        assert!(
            err.contains(want) && !err.contains("Dockerfile"),
            "{url}: {err}"
        );
    }
}

#[test]
fn lower_case_dockerfile_is_used_when_there_is_no_dockerfile() {
    let env = Env::new();
    let ctx = env.project(
        "lower",
        &[("dockerfile", "FROM scratch\nCOPY a /a\n"), ("a", "x")],
    );
    let out = env.path("lower-out");
    env.build_ok(&["-o", &format!("type=local,dest={}", out.display())], &ctx);
    assert_eq!(std::fs::read_to_string(out.join("a")).unwrap(), "x");
}

#[test]
fn invalid_dockerignore_patterns_are_errors() {
    let env = Env::new();
    for (pattern, want) in [
        ("!\n", "illegal exclusion pattern: \"!\""),
        ("[a-]\n", "syntax error in pattern"),
        ("dir/x\\\n", "syntax error in pattern"),
    ] {
        let ctx = env.project(
            "ignore",
            &[
                ("Dockerfile", "FROM scratch\nCOPY . /\n"),
                (".dockerignore", pattern),
            ],
        );
        let err = env.build_err(&[], &ctx);
        assert!(
            err.contains(want) && err.contains(".dockerignore:1"),
            "{pattern}: {err}"
        );
    }
}

#[test]
fn stages_must_be_defined_before_they_are_used() {
    let env = Env::new();
    let df = "FROM scratch AS target\nCOPY --from=build /d2 /out\n\nFROM scratch AS build\nCOPY Dockerfile /d2\n\nFROM target\n";
    let err = build_fails(&env, "late", df);
    assert!(
        err.contains("cannot copy from stage \"build\", it needs to be defined before current stage \"target\""),
        "{err}"
    );
    let df = "FROM scratch AS first\nRUN --mount=from=later,target=/x true\nFROM scratch AS later\nFROM first\n";
    let err = build_fails(&env, "late-mount", df);
    assert!(
        err.contains("cannot mount from stage \"later\" to \"/x\", stage needs to be defined before current command"),
        "{err}"
    );
    // A stage that is not built may refer to anything.
    let ctx = env.project(
        "late-unused",
        &[(
            "Dockerfile",
            "FROM scratch AS unused\nCOPY --from=build /d2 /out\nFROM scratch AS build\nCOPY Dockerfile /d2\n",
        )],
    );
    env.build_ok(&[], &ctx);
}

#[test]
fn onbuild_copy_from_sees_the_child_builds_stages() {
    let env = Env::new();
    let base = env.project(
        "ob-base",
        &[(
            "Dockerfile",
            "FROM scratch\nONBUILD COPY --from=build /out /from-build\n",
        )],
    );
    env.build_ok(&["-t", "test/onbuild-base"], &base);
    let (_, out) = build_to_dir(
        &env,
        "ob-child",
        "FROM scratch AS build\nCOPY a /out\nFROM test/onbuild-base\n",
        &[("a", "built by the child\n")],
    );
    assert_eq!(
        std::fs::read_to_string(out.join("from-build")).unwrap(),
        "built by the child\n"
    );
    // Also when the trigger comes from a stage of the same Dockerfile.
    let (_, out) = build_to_dir(
        &env,
        "ob-stage",
        "FROM scratch AS base\nONBUILD COPY --from=build /out /x\nFROM scratch AS build\nCOPY a /out\nFROM base\n",
        &[("a", "same file\n")],
    );
    assert_eq!(
        std::fs::read_to_string(out.join("x")).unwrap(),
        "same file\n"
    );
}
