//! `rbuild check` and `rbuild parse --json` as a user runs them.

use assert_cmd::Command;

fn rbuild() -> Command {
    Command::cargo_bin("rbuild").expect("binary built")
}

fn project(dockerfile: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Dockerfile"), dockerfile).unwrap();
    dir
}

#[test]
fn valid_dockerfile_exits_zero_and_prints_warnings_with_positions() {
    let dir = project("FROM scratch AS Base\nCMD run\n");
    let out = rbuild().arg("check").arg(dir.path()).output().unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Dockerfile:1:1: warning: StageNameCasing"),
        "{err}"
    );
    assert!(
        err.contains("Dockerfile:2:1: warning: JSONArgsRecommended"),
        "{err}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("OK (1 stage to build, 2 warnings)"));
}

#[test]
fn unknown_instruction_fails_with_location_caret_and_suggestion() {
    let dir = project("FROM scratch\nFORM x\n");
    let out = rbuild()
        .args(["check", "-f"])
        .arg(dir.path().join("Dockerfile"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Dockerfile:2:1: error: unknown instruction: FORM (did you mean FROM?)"),
        "{err}"
    );
    assert!(err.contains(" 2 | FORM x\n   | ^"), "{err}");
}

#[test]
fn check_reads_stdin_and_honours_build_args_and_target() {
    let df = "ARG IMG\nFROM ${IMG:?missing} AS a\nFROM scratch AS b\n";
    rbuild()
        .args(["check", "-f", "-"])
        .write_stdin(df)
        .assert()
        .failure();
    rbuild()
        .args(["check", "-f", "-", "--build-arg", "IMG=busybox"])
        .write_stdin(df)
        .assert()
        .success();
    let out = rbuild()
        .args([
            "check",
            "-f",
            "-",
            "--build-arg",
            "IMG=x",
            "--target",
            "nope",
        ])
        .write_stdin(df)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("target stage \"nope\" could not be found")
    );
}

#[test]
fn check_error_directive_makes_warnings_fatal() {
    let dir = project("# check=error=true\nFROM scratch\nCMD x\n");
    rbuild().arg("check").arg(dir.path()).assert().code(1);
}

#[test]
fn missing_dockerfile_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = rbuild().arg("check").arg(dir.path()).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("reading Dockerfile"));
}

#[test]
fn parse_json_prints_the_documented_schema() {
    let dir = project("FROM alpine AS b\nRUN [\"echo\", \"hi\"]\nCOPY --from=b a /b\n");
    let out = rbuild()
        .args(["parse", "--json", "-f"])
        .arg(dir.path().join("Dockerfile"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["schema_version"], 1);
    let stage = &v["dockerfile"]["stages"][0];
    assert_eq!(stage["base"], "alpine");
    assert_eq!(stage["name"], "b");
    let run = &stage["instructions"][0];
    assert_eq!(run["instruction"], "RUN");
    assert_eq!(run["exec_form"], true);
    assert_eq!(run["args"], serde_json::json!(["echo", "hi"]));
    assert_eq!(run["span"]["start"]["line"], 2);
    assert_eq!(stage["instructions"][1]["from"], "b");
}

#[test]
fn garbage_input_never_panics() {
    for input in [
        "",
        "\u{feff}",
        "FROM",
        "FROM a AS",
        "RUN [1,",
        "ENV",
        "\\\n\\",
        "ONBUILD ONBUILD RUN x",
        "FROM a\nRUN <<\n",
    ] {
        let out = rbuild()
            .args(["check", "-f", "-"])
            .write_stdin(input)
            .output()
            .unwrap();
        assert!(out.status.code().is_some(), "killed by signal on {input:?}");
        assert!(
            !String::from_utf8_lossy(&out.stderr).contains("panicked"),
            "panic on {input:?}"
        );
    }
}
