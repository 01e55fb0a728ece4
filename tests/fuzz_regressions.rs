//! Inputs the fuzzer found (crashes, hangs, slow units), replayed through the
//! same path as the fuzz target: parse, lower with expansion, the shell lexer
//! and `.dockerignore` matching. Each must finish without a panic.

use rbuild::frontend::dockerignore::IgnoreMatcher;
use rbuild::frontend::lower::{BuildOptions, UnknownImages, lower};
use rbuild::frontend::parse_dockerfile;
use rbuild::frontend::shell::{Lexer, NoEnv};
use std::path::{Path, PathBuf};

fn exercise(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok((df, mut linter)) = parse_dockerfile(&text) {
        let opts = BuildOptions {
            build_args: vec![("A".into(), "x y".into())],
            ..Default::default()
        };
        let _ = lower(&df, &opts, &UnknownImages, &mut linter);
    }
    for escape in ['\\', '`'] {
        let _ = Lexer::new(escape).expand_word(&text, &NoEnv);
    }
    if let Ok(m) = IgnoreMatcher::parse(&text, Path::new("f")) {
        let _ = m.is_excluded(&text);
    }
}

#[test]
fn fuzz_found_inputs_are_handled() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_regressions");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("regression dir") {
        let path = entry.expect("entry").path();
        exercise(&std::fs::read(&path).expect("read input"));
        n += 1;
    }
    assert!(n > 0, "no regression inputs in {}", dir.display());
}

#[test]
fn pathological_ignore_patterns_stay_linear() {
    // Many stars against a long path with many parents: exponential for a
    // naive backtracking matcher, and quadratic per parent for a per-prefix one.
    let pattern = "*a*a*a*a*a*a*a*a*a*a*b\n".repeat(20);
    let m = IgnoreMatcher::parse(&pattern, Path::new("f")).unwrap();
    let path = "a/".repeat(2000) + "c";
    assert!(!m.is_excluded(&path));
}
