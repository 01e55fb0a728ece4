//! BuildKit's own parser and shell-expansion test data, run against rbuild's
//! frontend as `../shared/conformance/buildkit/FORMAT.md` describes.

use rbuild::frontend::lines::scan;
use rbuild::frontend::raw::dump_all;
use rbuild::frontend::shell::Lexer;
use std::path::PathBuf;

/// The conformance folder, or `None` (a failure under `CI=true`).
fn conformance_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("RBUILD_CONFORMANCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance/buildkit")
        });
    if dir.is_dir() {
        return Some(dir);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "conformance data missing at {} (required when CI=true)",
            dir.display()
        );
    }
    eprintln!("SKIPPED: conformance data not found at {}", dir.display());
    None
}

fn cases(dir: PathBuf) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read conformance cases")
        .map(|e| e.expect("dir entry").path())
        .collect();
    v.sort();
    v
}

fn read_lossy(p: &std::path::Path) -> String {
    String::from_utf8_lossy(&std::fs::read(p).expect("read file")).into_owned()
}

#[test]
fn parser_positive_cases_dump_like_buildkit() {
    let Some(dir) = conformance_dir() else { return };
    let mut failures = Vec::new();
    let all = cases(dir.join("parser/testfiles"));
    for case in &all {
        let src = read_lossy(&case.join("Dockerfile"));
        let expected = read_lossy(&case.join("result"));
        match scan(&src) {
            Ok(lines) => {
                let got = dump_all(&lines.nodes);
                if got != expected {
                    failures.push(format!(
                        "{}:\n--- expected\n{expected}--- got\n{got}",
                        case.display()
                    ));
                }
            }
            Err(e) => failures.push(format!("{}: unexpected error {e}", case.display())),
        }
    }
    println!(
        "parser positive: {} of {} pass",
        all.len() - failures.len(),
        all.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        all.len() >= 33,
        "expected at least 33 cases, found {}",
        all.len()
    );
}

#[test]
fn parser_negative_cases_are_rejected() {
    let Some(dir) = conformance_dir() else { return };
    let all = cases(dir.join("parser/testfiles-negative"));
    let mut accepted = Vec::new();
    for case in &all {
        let src = read_lossy(&case.join("Dockerfile"));
        if scan(&src).is_ok() {
            accepted.push(case.display().to_string());
        }
    }
    println!(
        "parser negative: {} of {} rejected",
        all.len() - accepted.len(),
        all.len()
    );
    assert!(accepted.is_empty(), "accepted: {accepted:?}");
    assert!(all.len() >= 4);
}

#[test]
fn shell_env_var_table_unix_rows() {
    let Some(dir) = conformance_dir() else { return };
    let env: Vec<(String, String)> = [
        ("PWD", "/home"),
        ("SHELL", "bash"),
        ("KOREAN", "한국어"),
        ("NULL", ""),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let lexer = Lexer::new('\\');
    let text = read_lossy(&dir.join("shell/envVarTest"));
    let (mut total, mut failures) = (0, Vec::new());
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('|').collect();
        assert_eq!(fields.len(), 3, "malformed row {line:?}");
        let (platform, input, expected) = (fields[0].trim(), fields[1].trim(), fields[2].trim());
        if platform == "W" {
            continue;
        }
        total += 1;
        let got = lexer.expand(input, &env);
        let ok = match (&got, expected) {
            (Err(_), "error") => true,
            (Ok(v), e) => v == e && e != "error",
            _ => false,
        };
        if !ok {
            failures.push(format!("{input:?}: expected {expected:?}, got {got:?}"));
        }
    }
    println!(
        "shell envVarTest: {} of {total} pass",
        total - failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn shell_words_table() {
    let Some(dir) = conformance_dir() else { return };
    let lexer = Lexer::new('\\');
    let text = read_lossy(&dir.join("shell/wordsTest"));
    let mut env: Vec<(String, String)> = Vec::new();
    let (mut total, mut failures) = (0, Vec::new());
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        if let Some(rest) = line.strip_prefix("ENV ") {
            let (k, v) = rest.trim_start().split_once('=').expect("ENV NAME=VALUE");
            env.push((k.to_string(), v.to_string()));
            continue;
        }
        let Some((input, expected)) = line.split_once('|') else {
            continue;
        };
        total += 1;
        let expected: Vec<String> = expected.trim_start().split(',').map(String::from).collect();
        let got = lexer
            .expand_words(input.trim(), &env)
            .unwrap_or_else(|_| vec!["error".to_string()]);
        if got != expected {
            failures.push(format!("{input:?}: expected {expected:?}, got {got:?}"));
        }
    }
    println!(
        "shell wordsTest: {} of {total} pass",
        total - failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
