//! Behaviour and messages matched to BuildKit's (its integration tests and
//! dockerfile2llb), one test per difference that was closed.

mod common;
use common::Env;

fn with_base() -> Env {
    let env = Env::new();
    env.busybox_base("test/busybox:latest");
    env
}

/// Build `df` (plus `files`) to a local directory; returns stderr and the dir.
fn build_to_dir(
    env: &Env,
    name: &str,
    df: &str,
    files: &[(&str, &str)],
) -> (String, std::path::PathBuf) {
    let mut all = vec![("Dockerfile", df)];
    all.extend_from_slice(files);
    let ctx = env.project(name, &all);
    let out = env.path(&format!("{name}-out"));
    let err = env.build_ok(&["-o", &format!("type=local,dest={}", out.display())], &ctx);
    (err, out)
}

/// The stderr of a build of `df` that must fail.
fn build_fails(env: &Env, name: &str, df: &str) -> String {
    let ctx = env.project(name, &[("Dockerfile", df)]);
    env.build_err(&[], &ctx)
}

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
