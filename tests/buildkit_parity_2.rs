//! Image configs and histories matched to BuildKit's (its integration
//! tests named in each test).

mod common;
use common::parity::with_base;

/// The image config of the single image in an OCI layout directory.
fn layout_config(dir: &std::path::Path) -> serde_json::Value {
    let blob = |d: &str| {
        let p = dir
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"));
        serde_json::from_slice::<serde_json::Value>(&std::fs::read(p).unwrap()).unwrap()
    };
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let manifest = blob(index["manifests"][0]["digest"].as_str().unwrap());
    blob(manifest["config"]["digest"].as_str().unwrap())
}

/// Build `df` to an OCI layout; its config.
fn config_of(env: &common::Env, name: &str, df: &str, files: &[(&str, &str)]) -> serde_json::Value {
    let mut all = vec![("Dockerfile", df)];
    all.extend_from_slice(files);
    let ctx = env.project(name, &all);
    let out = env.path(&format!("{name}-layout"));
    env.build_ok(
        &["-o", &format!("type=oci-dir,dest={}", out.display())],
        &ctx,
    );
    layout_config(&out)
}

/// The `created_by` texts of a config's history.
fn created_by(cfg: &serde_json::Value) -> Vec<String> {
    cfg["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["created_by"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn scratch_images_have_buildkits_default_config() {
    // BuildKit: testDockerfileScratchConfig.
    let env = common::Env::new();
    let cfg = config_of(&env, "scratch-cfg", "FROM scratch\nENV foo=bar\n", &[]);
    assert_eq!(cfg["config"]["WorkingDir"], "/", "{cfg}");
    assert_eq!(cfg["rootfs"]["type"], "layers");
    assert_eq!(cfg["rootfs"]["diff_ids"].as_array().unwrap().len(), 0);
    let env_list = cfg["config"]["Env"].as_array().unwrap();
    assert!(env_list.iter().any(|e| e == "foo=bar"), "{cfg}");
    assert!(
        env_list
            .iter()
            .any(|e| e.as_str().unwrap().starts_with("PATH=")),
        "{cfg}"
    );
    assert_eq!(created_by(&cfg), ["ENV foo=bar"]);
    assert_eq!(cfg["history"][0]["empty_layer"], true);
}

#[test]
fn history_entries_read_like_buildkits() {
    // BuildKit: testExportedHistory and testExportedHistoryFlattenArgs.
    let env = with_base();
    let df = "FROM test/busybox:latest AS base\nENV foo=bar\nCOPY foo /foo2\n\
              FROM test/busybox:latest\nLABEL lbl=val\nCOPY --from=base foo2 foo3\n\
              WORKDIR /\nRUN echo bar > foo4\nRUN [\"ls\"]\n\
              ARG foo=bar\nARG bar=123\nARG foo=bar2\nARG none\nRUN ls /etc/\n\
              EXPOSE 2375 5000 1234/udp\n";
    let base = config_of(&env, "hist-base", "FROM test/busybox:latest\n", &[]);
    let cfg = config_of(&env, "hist", df, &[("foo", "contents0")]);
    let n = base["history"].as_array().unwrap().len();
    let hist = cfg["history"].as_array().unwrap();
    let own: Vec<(String, bool)> = hist[n..]
        .iter()
        .map(|h| {
            let by = h["created_by"].as_str().unwrap().to_string();
            (by, h.get("empty_layer").is_some_and(|e| e == true))
        })
        .collect();
    let expect = [
        ("LABEL lbl=val", true),
        ("COPY --from=base foo2 foo3 # buildkit", false),
        ("WORKDIR /", true),
        ("RUN /bin/sh -c echo bar > foo4 # buildkit", false),
        // A RUN that changes nothing still adds a layer.
        ("RUN ls # buildkit", false),
        ("ARG foo=bar", true),
        ("ARG bar=123", true),
        ("ARG foo=bar2", true),
        ("ARG none", true),
        // Args in the order first declared, the last value, valueless too.
        (
            "RUN |3 foo=bar2 bar=123 none= /bin/sh -c ls /etc/ # buildkit",
            false,
        ),
        // This instruction's ports, in its sorted arguments' order.
        ("EXPOSE [1234/udp 2375/tcp 5000/tcp]", true),
    ];
    let expect: Vec<(String, bool)> = expect.iter().map(|(s, e)| (s.to_string(), *e)).collect();
    assert_eq!(own, expect);
    assert!(hist.iter().all(|h| h["created"].is_string()), "{cfg}");
    let layers = |c: &serde_json::Value| c["rootfs"]["diff_ids"].as_array().unwrap().len();
    assert_eq!(layers(&cfg), layers(&base) + 4);
}

#[test]
fn undeclared_from_args_are_named_with_the_closest_declared_one() {
    // BuildKit: testUndeclaredArg.
    let env = common::Env::new();
    let ok = |name: &str, df: &str| {
        let ctx = env.project(name, &[("Dockerfile", df)]);
        env.build_ok(&[], &ctx)
    };
    for (i, df) in [
        "ARG base=scratch\nFROM $base\nCOPY Dockerfile .\n",
        "ARG BUILDPLATFORM=linux/amd64\nFROM --platform=$BUILDPLATFORM scratch\nCOPY Dockerfile .\n",
        "FROM --platform=$BUILDPLATFORM scratch\nCOPY Dockerfile .\n",
        "ARG DEBUG\nFROM scratch${DEBUG}\nCOPY Dockerfile .\n",
        "ARG DEBUG\nFROM scra${DEBUG:-tch}\nCOPY Dockerfile .\n",
        "ARG DEBUG=\"\"\nFROM scratch${DEBUG-@bogus}\nCOPY Dockerfile .\n",
    ]
    .iter()
    .enumerate()
    {
        let err = ok(&format!("declared-{i}"), df);
        assert!(!err.contains("warning"), "{df}: {err}");
    }
    let err = ok(
        "undeclared",
        "ARG tag=latest\nFROM scratch${tag:+}${version} AS b\nCOPY Dockerfile .\n",
    );
    assert!(
        err.contains(
            "Dockerfile:2:1: warning: UndefinedArgInFrom: FROM argument 'version' is not declared\n"
        ),
        "{err}"
    );
    let fails = |name: &str, df: &str| {
        let ctx = env.project(name, &[("Dockerfile", df)]);
        env.build_err(&[], &ctx)
    };
    let err = fails(
        "empty-platform",
        "\nFROM --platform=$BULIDPLATFORM scratch\nCOPY Dockerfile .\n",
    );
    assert!(
        err.contains("Dockerfile:2:1: error: empty platform value from expression $BULIDPLATFORM (did you mean BUILDPLATFORM?)"),
        "{err}"
    );
    let err = fails(
        "bad-platform",
        "\nARG MY_OS=linux\nARG MY_ARCH=amd64\nFROM --platform=linux/${MYARCH} scratch\nCOPY Dockerfile .\n",
    );
    assert!(
        err.contains("Dockerfile:4:1: error: failed to parse platform linux/${MYARCH}: \"\" is an invalid component of \"linux/\": platform specifier component must match \"^[A-Za-z0-9_.-]+$\": invalid argument (did you mean MY_ARCH?)"),
        "{err}"
    );
}

#[test]
fn from_platform_checks_and_check_comments_above_an_instruction() {
    // BuildKit: testRedundantTargetPlatform and
    // testFromPlatformFlagConstDisallowed.
    let env = common::Env::new();
    let warnings = |name: &str, df: &str| {
        let ctx = env.project(name, &[("Dockerfile", df)]);
        let err = env.build_ok(&[], &ctx);
        err.lines()
            .filter_map(|l| l.split_once(": warning: ").map(|(_, w)| w.to_string()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        warnings("redundant", "\nFROM --platform=$TARGETPLATFORM scratch\n"),
        [
            "RedundantTargetPlatform: Setting platform to predefined $TARGETPLATFORM in FROM is redundant as this is the default behavior"
        ]
    );
    assert_eq!(
        warnings(
            "redundant-braces",
            "\nFROM --platform=${TARGETPLATFORM} scratch\n"
        ),
        [
            "RedundantTargetPlatform: Setting platform to predefined ${TARGETPLATFORM} in FROM is redundant as this is the default behavior"
        ]
    );
    assert_eq!(
        warnings("const", "\nFROM --platform=linux/amd64 scratch\n"),
        [
            "FromPlatformFlagConstDisallowed: FROM --platform flag should not use constant value \"linux/amd64\""
        ]
    );
    let none: [&str; 0] = [];
    assert_eq!(
        warnings(
            "const-named",
            "\nFROM --platform=linux/amd64 scratch AS my_amd64_stage\n"
        ),
        none
    );
    assert_eq!(
        warnings(
            "const-os",
            "\nFROM --platform=linux/amd64 scratch AS linux\n"
        ),
        none
    );
    assert_eq!(
        warnings("buildplatform", "FROM --platform=$BUILDPLATFORM scratch\n"),
        none
    );
    // A `# check=` comment right above an instruction (not a directive:
    // the file starts with an empty line) skips rules for it alone.
    assert_eq!(
        warnings(
            "local-skip",
            "\n# check=skip=RedundantTargetPlatform\nFROM --platform=$TARGETPLATFORM scratch\n\
             # check=skip=JSONArgsRecommended\nCMD echo hi\nENTRYPOINT echo x\n"
        ),
        [
            "JSONArgsRecommended: JSON arguments recommended for ENTRYPOINT to prevent unintended behavior related to OS signals"
        ]
    );
}

#[test]
fn secrets_in_arg_or_env_are_found_by_word() {
    // BuildKit: testSecretsUsedInArgOrEnv.
    let env = common::Env::new();
    let df = "\n\nFROM scratch\nARG SECRET_PASSPHRASE\nENV SUPER_Secret=foo\nENV password=bar secret=baz\n\
              ARG super_duper_secret_token=foo auth=bar\nENV apikey=bar sunflower=foo\nENV git_key=\n\
              ENV PUBLIC_KEY=\nARG public_token\nARG SECRET_PASSPHRASE_FILE\n\
              ENV password_file=bar secret_File=baz\nARG AUTH_MODULE_VERSION\n\
              # check=skip=SecretsUsedInArgOrEnv // allow secret in environment\nENV password=bar\n\
              # check=skip=SecretsUsedInArgOrEnv // allow secret in arg\nARG password\n\
              # check=skip=all // is local to only this instruction\nENV alternate_password=bar\n\
              # check=skip=all // is local to only this instruction\nARG alternate_password\n";
    let ctx = env.project("secrets", &[("Dockerfile", df)]);
    let err = env.build_ok(&[], &ctx);
    let found: Vec<(usize, String)> = err
        .lines()
        .filter_map(|l| {
            let (at, w) = l.split_once(": warning: SecretsUsedInArgOrEnv: ")?;
            let line = at.split(':').nth(1)?.parse().ok()?;
            let name = w.rsplit_once('(')?.1.trim_end_matches(')').to_string();
            Some((line, name))
        })
        .collect();
    let expect = [
        (4, "ARG \"SECRET_PASSPHRASE\""),
        (5, "ENV \"SUPER_Secret\""),
        (6, "ENV \"password\""),
        (6, "ENV \"secret\""),
        (7, "ARG \"super_duper_secret_token\""),
        (7, "ARG \"auth\""),
        (8, "ENV \"apikey\""),
        (9, "ENV \"git_key\""),
    ];
    let expect: Vec<(usize, String)> = expect.iter().map(|(l, n)| (*l, n.to_string())).collect();
    assert_eq!(found, expect, "{err}");
}

#[test]
fn bases_invalid_with_default_args_get_a_warning() {
    // BuildKit: testInvalidDefaultArgInFrom.
    let env = with_base();
    let rule = "InvalidDefaultArgInFrom: Default value for ARG";
    let cases = [
        (
            "VERSION=latest",
            "\nARG VERSION\nFROM test/busybox:$VERSION\n",
            true,
        ),
        (
            "IMAGE=test/busybox:latest",
            "\nARG IMAGE\nFROM $IMAGE\n",
            true,
        ),
        (
            "VERSION=latest",
            "\nARG VERSION=\"latest\"\nFROM test/busybox:${VERSION}\n",
            false,
        ),
        ("V=atest", "\nARG V=\"\"\nFROM test/busybox:l${V}\n", false),
        ("V=atest", "\nARG V\nFROM test/busybox:l${V}\n", false),
    ];
    for (i, (arg, df, warns)) in cases.iter().enumerate() {
        let ctx = env.project(&format!("default-arg-{i}"), &[("Dockerfile", df)]);
        let err = env.build_ok(&["--build-arg", arg], &ctx);
        assert_eq!(err.contains(rule), *warns, "{df}: {err}");
    }
    let ctx = env.project(
        "default-arg-msg",
        &[("Dockerfile", "\nARG IMAGE\nFROM $IMAGE\n")],
    );
    let err = env.build_ok(&["--build-arg", "IMAGE=test/busybox:latest"], &ctx);
    assert!(
        err.contains("Dockerfile:3:1: warning: InvalidDefaultArgInFrom: Default value for ARG $IMAGE results in empty or invalid base image name"),
        "{err}"
    );
}

#[test]
fn expose_checks_and_host_mappings_dropped() {
    // BuildKit: testExposeProtoCasing and testExposeInvalidFormat.
    let env = common::Env::new();
    let df = "\nFROM scratch\nEXPOSE 80/TcP 8080/TCP 8080/udp\n\
              EXPOSE 127.0.0.1:81:81 [::1]:8081:8081 5000:5000 8000\n";
    let ctx = env.project("expose-checks", &[("Dockerfile", df)]);
    let out = env.path("expose-layout");
    let err = env.build_ok(
        &["-o", &format!("type=oci-dir,dest={}", out.display())],
        &ctx,
    );
    let mut found: Vec<&str> = err
        .lines()
        .filter_map(|l| l.split_once(": warning: ").map(|(_, w)| w))
        .collect();
    found.sort();
    assert_eq!(
        found,
        [
            "ExposeInvalidFormat: EXPOSE instruction should not define an IP address or host-port mapping, found '127.0.0.1:81:81'",
            "ExposeInvalidFormat: EXPOSE instruction should not define an IP address or host-port mapping, found '5000:5000'",
            "ExposeInvalidFormat: EXPOSE instruction should not define an IP address or host-port mapping, found '[::1]:8081:8081'",
            "ExposeProtoCasing: Defined protocol '80/TcP' in EXPOSE instruction should be lowercase",
            "ExposeProtoCasing: Defined protocol '8080/TCP' in EXPOSE instruction should be lowercase",
        ]
    );
    let cfg = layout_config(&out);
    let mut ports: Vec<&String> = cfg["config"]["ExposedPorts"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    ports.sort();
    assert_eq!(
        ports,
        [
            "5000/tcp", "80/tcp", "8000/tcp", "8080/tcp", "8080/udp", "8081/tcp", "81/tcp"
        ]
    );
}

/// The regular files of a tar archive: path → contents.
fn tar_files(data: &[u8]) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    let mut ar = tar::Archive::new(data);
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        if e.header().entry_type().is_file() {
            let path = e.path().unwrap().display().to_string();
            let mut s = String::new();
            std::io::Read::read_to_string(&mut e, &mut s).unwrap();
            out.insert(path, s);
        }
    }
    out
}

#[test]
fn tar_exporter_writes_the_filesystem_as_an_archive() {
    // BuildKit: testTarExporterBasic and testTarExporterMulti (linux only).
    let env = common::Env::new();
    let ctx = env.project(
        "tar-export",
        &[
            ("Dockerfile", "FROM scratch\nCOPY foo foo\n"),
            ("foo", "data"),
        ],
    );
    let out = env.path("out.tar");
    env.build_ok(&["-o", &format!("type=tar,dest={}", out.display())], &ctx);
    let files = tar_files(&std::fs::read(&out).unwrap());
    assert_eq!(
        files.into_iter().collect::<Vec<_>>(),
        [("foo".to_string(), "data".to_string())]
    );
    // To standard output.
    let o = env
        .rbuild()
        .args(["build", "-q", "-o", "type=tar,dest=-"])
        .arg(&ctx)
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    assert_eq!(tar_files(&o.stdout)["foo"], "data");
    // Several platforms: one directory each.
    let multi = env.path("multi.tar");
    env.build_ok(
        &[
            "--platform",
            "linux/amd64,linux/arm64",
            "-o",
            &format!("type=tar,dest={}", multi.display()),
        ],
        &ctx,
    );
    let files = tar_files(&std::fs::read(&multi).unwrap());
    let names: Vec<&String> = files.keys().collect();
    assert_eq!(names, ["linux_amd64/foo", "linux_arm64/foo"]);
}

#[test]
fn other_os_targets_build_without_run_and_get_their_defaults() {
    // BuildKit: testPlatformArgsExplicit and testDefaultShellAndPath.
    let env = with_base();
    let df = "FROM --platform=$BUILDPLATFORM test/busybox:latest AS build\nARG TARGETPLATFORM\nARG TARGETOS\n\
              RUN mkdir /out && echo -n $TARGETPLATFORM > /out/platform && echo -n $TARGETOS > /out/os\n\
              FROM scratch\nCOPY --from=build out .\n";
    let ctx = env.project("darwin", &[("Dockerfile", df)]);
    let out = env.path("darwin-out");
    let args = [
        "--platform",
        "darwin/ppc64le",
        "--build-arg",
        "TARGETOS=freebsd",
        "-o",
    ];
    let dest = format!("type=local,dest={}", out.display());
    let mut all: Vec<&str> = args.to_vec();
    all.push(&dest);
    env.build_ok(&all, &ctx);
    assert_eq!(
        std::fs::read_to_string(out.join("platform")).unwrap(),
        "darwin/ppc64le"
    );
    assert_eq!(std::fs::read_to_string(out.join("os")).unwrap(), "freebsd");
    // Windows: cmd's shell form and no PATH; a RUN cannot run there.
    let ctx = env.project(
        "windows",
        &[(
            "Dockerfile",
            "FROM scratch\nENTRYPOINT foo bar\nCOPY Dockerfile .\n",
        )],
    );
    let layout = env.path("windows-layout");
    env.build_ok(
        &[
            "--platform",
            "windows/amd64",
            "-o",
            &format!("type=oci-dir,dest={}", layout.display()),
        ],
        &ctx,
    );
    let cfg = layout_config(&layout);
    assert_eq!(cfg["os"], "windows");
    assert_eq!(
        cfg["config"]["Entrypoint"],
        serde_json::json!(["cmd", "/S", "/C", "foo bar"])
    );
    assert!(cfg["config"]["Env"].is_null(), "{cfg}");
    let ctx = env.project("windows-run", &[("Dockerfile", "FROM scratch\nRUN foo\n")]);
    let err = env.build_err(&["--platform", "windows/amd64"], &ctx);
    assert!(
        err.contains("RUN for platform windows/amd64: rbuild runs Linux steps only"),
        "{err}"
    );
}

// BuildKit: testWarningsBeforeError
#[test]
fn warnings_found_before_an_error_are_shown_with_it() {
    let env = common::Env::new();
    let df = "\nFROM scratch AS BadStageName\nMAINTAINER me@example.org\nBADCMD\n";
    let ctx = env.project("warn-then-fail", &[("Dockerfile", df)]);
    let stage = "warning: StageNameCasing: Stage name 'BadStageName' should be lowercase";
    let maintainer = "warning: MaintainerDeprecated: Maintainer instruction is deprecated in favor of using label";
    let error = "Dockerfile:4:1: error: unknown instruction: BADCMD";
    let build = env.build_err(&[], &ctx);
    let check = env.rbuild().arg("check").arg(&ctx).output().unwrap();
    assert!(!check.status.success());
    for err in [build, String::from_utf8_lossy(&check.stderr).into_owned()] {
        let at = |s: &str| err.find(s).unwrap_or_else(|| panic!("{s} missing:\n{err}"));
        assert!(at(stage) < at(error) && at(maintainer) < at(error), "{err}");
    }
    // An error while lowering (a stage copying from itself) keeps them too.
    let df = "FROM scratch AS Base\nCOPY --from=0 /a /a\n";
    let ctx = env.project("lower-fail", &[("Dockerfile", df)]);
    let err = env.build_err(&[], &ctx);
    let at = |s: &str| err.find(s).unwrap_or_else(|| panic!("{s} missing:\n{err}"));
    assert!(
        at("StageNameCasing") < at("circular dependency detected on stage: base"),
        "{err}"
    );
}

// BuildKit: testCopyIgnoredFiles
#[test]
fn copying_a_file_the_dockerignore_excludes_is_a_warning() {
    let env = common::Env::new();
    let check = |name: &str, ignore: &str, df: &str| {
        let ctx = env.project(name, &[("Dockerfile", df), (".dockerignore", ignore)]);
        let out = env.rbuild().arg("check").arg(&ctx).output().unwrap();
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let df = "\nFROM scratch\nCOPY Dockerfile .\nADD Dockerfile /windy\n";
    let err = check("ignored", "\nDockerfile\n", df);
    assert!(
        err.contains("Dockerfile:3:1: warning: CopyIgnoredFile: Attempting to Copy file \"Dockerfile\" that is excluded by .dockerignore"),
        "{err}"
    );
    assert!(
        err.contains("Dockerfile:4:1: warning: CopyIgnoredFile: Attempting to Add file \"Dockerfile\" that is excluded by .dockerignore"),
        "{err}"
    );
    // The build fails (the file is not in the context) with the warnings.
    let ctx = env.path("ignored");
    let build = env.build_err(&[], &ctx);
    assert!(build.contains("CopyIgnoredFile"), "{build}");
    let skipped = format!("# check=skip=CopyIgnoredFile\n{df}");
    let err = check("skipped", "\nDockerfile\n", &skipped);
    assert!(!err.contains("CopyIgnoredFile"), "{err}");
    // A file of another stage is not the context's.
    let df = "\nFROM scratch AS base\nCOPY Dockerfile /foobar\nADD Dockerfile /windy\n\n\
              FROM base\nCOPY --from=base /foobar /Dockerfile\n";
    let err = check("other-stage", "\nfoobar\n", df);
    assert!(!err.contains("CopyIgnoredFile"), "{err}");
    // With exception patterns nothing is checked.
    for (name, df) in [
        ("negated", "\nFROM scratch\nCOPY ./Dockerfile .\n"),
        ("whole", "\nFROM scratch\nCOPY . .\n"),
    ] {
        let err = check(name, "\n**\n!Dockerfile\n", df);
        assert!(!err.contains("CopyIgnoredFile"), "{name}: {err}");
    }
}
