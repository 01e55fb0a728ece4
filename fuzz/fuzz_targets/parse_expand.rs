//! Fuzz target: any bytes as a Dockerfile through parse, lowering (with
//! expansion) and the shell lexer; nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rbuild::frontend::lower::{BuildOptions, UnknownImages, lower};
use rbuild::frontend::parse_dockerfile;
use rbuild::frontend::shell::{Lexer, NoEnv};

fuzz_target!(|data: &[u8]| {
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
    let _ = rbuild::frontend::dockerignore::IgnoreMatcher::parse(&text, std::path::Path::new("f"))
        .map(|m| m.is_excluded(&text));
});
