//! The server's limits: a full queue refuses, RUN steps share slots,
//! sizes are bounded, and a client cannot name files it does not hold.

use crate::common::Env;
use crate::harness::{Serve, build, build_cmd, text};
use rbuild::server::client::Client;
use rbuild::server::wire::{BuildRequest, FileEntry};
use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

fn served(env: &Env, extra: &[&str]) -> (Serve, String) {
    let addr = format!("unix://{}", env.path("s.sock").display());
    (Serve::start(env, &addr, extra), addr)
}

#[test]
fn a_full_queue_refuses_and_run_steps_share_slots() {
    let env = Env::new();
    env.busybox_base("bb");
    let args = ["--max-builds", "2", "--max-queue", "1", "--max-runs", "1"];
    let (_server, addr) = served(&env, &args);
    let slow = |name: &str| {
        let df = format!("FROM bb\nRUN sleep 2 && echo {name}-done\n");
        let ctx = env.project(name, &[("Dockerfile", &df)]);
        build_cmd(&env, Some(&addr), &[], &ctx)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (slow("a"), slow("b"));
    std::thread::sleep(Duration::from_millis(700));
    let c = slow("c");
    std::thread::sleep(Duration::from_millis(500));
    // Two running, one queued: a fourth is refused at once.
    let d = env.project("d", &[("Dockerfile", "FROM bb\nRUN echo d\n")]);
    let (ok, err, _) = build(&env, Some(&addr), &[], &d);
    assert!(
        !ok && err.contains("server busy") && err.contains("--max-queue"),
        "{err}"
    );
    let outs: Vec<_> = [a, b, c]
        .into_iter()
        .map(|p| text(p.wait_with_output().unwrap()))
        .collect();
    for o in &outs {
        assert!(o.0, "{}", o.1);
    }
    let waited = outs
        .iter()
        .filter(|o| o.1.contains("waiting for a free RUN slot"))
        .count();
    assert!(waited >= 1, "one RUN slot: a and b took turns");
}

#[test]
fn sizes_are_bounded_and_files_need_proof_of_possession() {
    let env = Env::new();
    env.busybox_base("bb");
    let (server, addr) = served(
        &env,
        &[
            "--max-file",
            "1KiB",
            "--max-context",
            "2KiB",
            "--max-log",
            "2KiB",
        ],
    );
    let big = "x".repeat(2048);
    let ctx = env.project(
        "big",
        &[("Dockerfile", "FROM bb\nCOPY big /\n"), ("big", &big)],
    );
    let (ok, err, _) = build(&env, Some(&addr), &[], &ctx);
    assert!(!ok && err.contains("--max-file"), "{err}");
    // Files under --max-file that add up to more than --max-context.
    let half = "y".repeat(700);
    let files: Vec<(String, String)> = (0..4)
        .map(|i| (format!("f{i}"), format!("{i}{half}")))
        .collect();
    let mut list: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    list.push(("Dockerfile", "FROM bb\nCOPY . /\n"));
    let wide = env.project("wide", &list);
    let (ok, err, _) = build(&env, Some(&addr), &[], &wide);
    assert!(!ok && err.contains("--max-context"), "{err}");
    let noisy = env.project(
        "noisy",
        &[(
            "Dockerfile",
            "FROM bb\nRUN for i in $(seq 1 400); do echo line-$i; done\n",
        )],
    );
    let (ok, err, _) = build(&env, Some(&addr), &[], &noisy);
    assert!(ok && err.contains("log limit reached (--max-log)"), "{err}");
    assert!(!err.contains("line-400"), "later lines are not sent");

    // One client's file, built through the server.
    let secret = "private-content-4711\n";
    let ctx = env.project(
        "owner",
        &[("Dockerfile", "FROM bb\nCOPY s /s\n"), ("s", secret)],
    );
    let (ok, err, _) = build(&env, Some(&addr), &[], &ctx);
    assert!(ok, "{err}");
    // Another knows its digest only: naming it gets nothing.
    let digest = format!("sha256:{}", sha256_hex(secret.as_bytes()));
    let file = FileEntry {
        path: "s".into(),
        kind: "file".into(),
        mode: 0o644,
        mtime: (0, 0),
        digest: Some(digest.clone()),
        link: None,
    };
    let mut req = BuildRequest {
        files: vec![file],
        dockerfile: "FROM bb\nCOPY s /s\nRUN cat /s\n".into(),
        dockerfile_name: "Dockerfile".into(),
        args: vec![],
        secrets: vec![],
        proofs: HashMap::new(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = Client::new(&server.addr, None).unwrap();
    for proof in [None, Some("00".repeat(32)), Some(digest.clone())] {
        req.proofs = proof.map(|p| (digest.clone(), p)).into_iter().collect();
        let mut seen = String::new();
        let r = rt.block_on(client.build(&req, |f| seen += &format!("{f:?}\n")));
        let e = r.expect_err("refused").to_string();
        assert!(e.contains("403") && e.contains("proof"), "{e}");
        assert!(!seen.contains("private-content"), "{seen}");
    }
}

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(b))
}
