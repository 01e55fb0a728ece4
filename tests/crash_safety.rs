//! A build killed with SIGKILL at any moment leaves a store that the next
//! build uses correctly: no partial blob, snapshot, record or name is ever
//! taken for a whole one.

mod common;
use common::Env;
use std::process::{Command as Proc, Stdio};
use std::time::Duration;

fn expected_files(ctx: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut v = Vec::new();
    for i in 0..300 {
        let rel = format!("data/d{}/f{i}.bin", i % 10);
        v.push((rel.clone(), std::fs::read(ctx.join(&rel)).unwrap()));
    }
    v
}

/// Whether a killed build left work in progress in the store (a temporary
/// directory or file), the sign it was killed mid-build.
fn has_partial_work(root: &std::path::Path) -> bool {
    std::fs::read_dir(root.join("tmp")).is_ok_and(|mut d| d.next().is_some())
}

#[test]
fn sigkill_at_any_moment_leaves_a_usable_store() {
    let env = Env::new();
    let mut files: Vec<(String, String)> = vec![(
        "Dockerfile".into(),
        "FROM scratch AS a\nCOPY data/ /data/\nFROM scratch AS b\nCOPY big.bin /big.bin\nFROM scratch\nCOPY --from=a /data /data\nCOPY --from=b /big.bin /big.bin\nENV DONE=1\n".into(),
    )];
    for i in 0..300 {
        files.push((
            format!("data/d{}/f{i}.bin", i % 10),
            format!("{i}-").repeat(2000),
        ));
    }
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let ctx = env.project("crash", &refs);
    // 24 MiB of incompressible-ish data makes the build last long enough to interrupt.
    let mut big = Vec::with_capacity(24 << 20);
    let mut x: u64 = 0x9E3779B97F4A7C15;
    while big.len() < (24 << 20) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        big.extend_from_slice(&x.to_le_bytes());
    }
    std::fs::write(ctx.join("big.bin"), &big).unwrap();
    let want = expected_files(&ctx);
    let bin = assert_cmd::cargo::cargo_bin("rbuild");
    let (mut running_at_kill, mut mid_build) = (0, 0);
    for (round, delay_ms) in [5u64, 15, 30, 60, 100, 150, 250, 400]
        .into_iter()
        .enumerate()
    {
        // Change one input each round so there is always work to interrupt.
        std::fs::write(ctx.join("data/d0/f0.bin"), format!("round {round}")).unwrap();
        let mut child = Proc::new(&bin)
            .env("RBUILD_ROOT", env.root())
            .args(["build", "-q", "--no-cache", "-t", "crash:latest"])
            .arg(&ctx)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        // The kill must land while the build runs, not after it ended.
        if child.try_wait().unwrap().is_none() {
            running_at_kill += 1;
        }
        let _ = child.kill(); // SIGKILL
        let status = child.wait().unwrap();
        if !status.success() && has_partial_work(&env.root()) {
            mid_build += 1;
        }
        // The next build must succeed and produce exactly the right filesystem.
        let out = env.path(&format!("out{round}"));
        env.build_ok(
            &[
                "-t",
                "crash:latest",
                "-o",
                &format!("type=local,dest={}", out.display()),
            ],
            &ctx,
        );
        assert_eq!(
            std::fs::read_to_string(out.join("data/d0/f0.bin")).unwrap(),
            format!("round {round}")
        );
        for (rel, content) in want.iter().skip(1) {
            assert_eq!(
                &std::fs::read(out.join(rel)).unwrap(),
                content,
                "round {round}: {rel}"
            );
        }
        assert_eq!(
            std::fs::read(out.join("big.bin")).unwrap(),
            big,
            "round {round}: big.bin"
        );
    }
    assert!(
        running_at_kill >= 6,
        "only {running_at_kill} of 8 kills hit a running build"
    );
    assert!(
        mid_build >= 1,
        "no kill interrupted a build with work in progress"
    );
    // A store full of interrupted builds still prunes and reports cleanly.
    env.rbuild().args(["prune"]).assert().success();
    let tmp_left = std::fs::read_dir(env.root().join("tmp")).unwrap().count();
    assert_eq!(tmp_left, 0, "prune clears what killed builds left behind");
    let out = env.path("final");
    env.build_ok(&["-o", &format!("type=local,dest={}", out.display())], &ctx);
    assert_eq!(std::fs::read(out.join("big.bin")).unwrap(), big);
}
