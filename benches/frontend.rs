//! Frontend throughput: parse + lower (expand) a generated 5,000-line
//! Dockerfile. Run: `cargo bench --bench frontend`. Target: >= 50 MB/s.

use rbuild::frontend::lint::Linter;
use rbuild::frontend::lower::{BuildOptions, UnknownImages, lower};
use rbuild::frontend::parse_dockerfile;
use std::fmt::Write;
use std::time::Instant;

/// A realistic mix: stages, ARG/ENV with expansions, COPY/ADD with flags,
/// RUN shell/exec/heredoc forms, continuations and comments.
fn generate(lines: usize) -> String {
    let mut s = String::from("# syntax=docker/dockerfile:1\nARG BASE=scratch\nARG VERSION=1.2.3\n");
    let mut stage = 0;
    let mut n = 3;
    while n < lines {
        if n % 250 == 3 {
            let _ = writeln!(s, "FROM ${{BASE}} AS stage{stage}");
            let _ = writeln!(s, "ARG VERSION");
            stage += 1;
            n += 2;
            continue;
        }
        match n % 10 {
            0 => {
                let _ = writeln!(
                    s,
                    "ENV APP_HOME=/opt/app{n} PATH=/opt/app{n}/bin:$PATH LABEL_{n}=\"value with spaces ${{VERSION:-dev}}\""
                );
                n += 1;
            }
            1 => {
                let _ = writeln!(
                    s,
                    "COPY --chown=1000:1000 --chmod=0644 src/file{n}.txt ${{APP_HOME}}/data/file{n}.txt"
                );
                n += 1;
            }
            2 => {
                let _ = writeln!(
                    s,
                    "RUN set -eux; \\\n    apt-get update && apt-get install -y --no-install-recommends pkg{n} && \\\n    rm -rf /var/lib/apt/lists/*"
                );
                n += 3;
            }
            3 => {
                let _ = writeln!(s, "# a comment explaining step {n}");
                n += 1;
            }
            4 => {
                let _ = writeln!(s, "WORKDIR ${{APP_HOME}}/work{n}");
                n += 1;
            }
            5 => {
                let _ = writeln!(
                    s,
                    "RUN [\"/bin/sh\", \"-c\", \"echo step {n} > /tmp/out{n}\"]"
                );
                n += 1;
            }
            6 => {
                let _ = writeln!(
                    s,
                    "LABEL org.example.step{n}=\"${{VERSION}}\" org.example.kind=bench"
                );
                n += 1;
            }
            7 => {
                let _ = writeln!(
                    s,
                    "RUN --mount=type=cache,target=/root/.cache/{n} <<EOF\nset -e\necho heredoc {n}\nEOF"
                );
                n += 4;
            }
            8 => {
                let _ = writeln!(
                    s,
                    "ADD --checksum=sha256:0000000000000000000000000000000000000000000000000000000000000000 https://example.com/a{n}.tar.gz /tmp/"
                );
                n += 1;
            }
            _ => {
                let _ = writeln!(s, "EXPOSE {}", 8000 + n % 1000);
                n += 1;
            }
        }
    }
    s
}

fn main() {
    // `cargo test --all-targets` runs harness-less benches too: only measure under `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        println!("frontend: run with `cargo bench --bench frontend`");
        return;
    }
    let src = generate(5000);
    let lines = src.lines().count();
    let bytes = src.len();
    // Warm up, and check it parses.
    let (df, mut linter) = parse_dockerfile(&src).expect("generated Dockerfile parses");
    lower(&df, &BuildOptions::default(), &UnknownImages, &mut linter).expect("lowers");
    let iterations = 50;
    let start = Instant::now();
    for _ in 0..iterations {
        let (df, _) = parse_dockerfile(&src).unwrap();
        let mut linter = Linter::default();
        std::hint::black_box(
            lower(&df, &BuildOptions::default(), &UnknownImages, &mut linter).unwrap(),
        );
    }
    let per = start.elapsed().as_secs_f64() / iterations as f64;
    let start = Instant::now();
    for _ in 0..iterations {
        std::hint::black_box(parse_dockerfile(&src).unwrap());
    }
    let parse_only = start.elapsed().as_secs_f64() / iterations as f64;
    println!("frontend bench: {lines} lines, {bytes} bytes");
    println!(
        "  parse only:        {:8.3} ms  {:7.1} MB/s",
        parse_only * 1e3,
        bytes as f64 / parse_only / 1e6
    );
    println!(
        "  parse + expand:    {:8.3} ms  {:7.1} MB/s (target >= 50 MB/s)",
        per * 1e3,
        bytes as f64 / per / 1e6
    );
}
