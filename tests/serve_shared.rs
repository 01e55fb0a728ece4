//! Builds sharing one store: a step two builds need at once runs once
//! (the other waits for it), locally and through `rbuild serve`; what a
//! served build writes on the client.

mod common;
#[path = "serve_shared/harness.rs"]
mod harness;
#[path = "serve_shared/inprocess.rs"]
mod inprocess;
#[path = "serve_shared/limits.rs"]
mod limits;
#[path = "serve_shared/outputs.rs"]
mod outputs;
#[path = "serve_shared/tls.rs"]
mod tls;

use common::Env;
use harness::{Serve, build_cmd, count, text};
use std::process::Stdio;

/// A RUN step slow enough for a second build to arrive while it runs; its
/// output line `RAN-2` appears once per execution (the command itself
/// shows `RAN-$((1+1))`).
const SLOW: &str = "FROM bb\nRUN sleep 3 && echo RAN-$((1+1)) > /ran && echo RAN-$((1+1))\n";

/// Start two builds at once; both outputs.
fn two_at_once(
    env: &Env,
    server: Option<&str>,
    ctx: &std::path::Path,
) -> [(bool, String, String); 2] {
    let iids = [env.path("a.iid"), env.path("b.iid")];
    let children: Vec<_> = iids
        .iter()
        .map(|iid| {
            build_cmd(env, server, &["--iidfile", iid.to_str().unwrap()], ctx)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    let outs: Vec<_> = children
        .into_iter()
        .map(|c| text(c.wait_with_output().expect("wait")))
        .collect();
    for o in &outs {
        assert!(o.0, "a build failed:\n{}", o.1);
    }
    let a = std::fs::read_to_string(&iids[0]).unwrap();
    let b = std::fs::read_to_string(&iids[1]).unwrap();
    assert_eq!(a, b, "both builds give the same image");
    let mut it = outs.into_iter();
    [it.next().unwrap(), it.next().unwrap()]
}

#[test]
fn two_local_builds_on_one_store_run_a_shared_step_once() {
    let env = Env::new();
    env.busybox_base("bb");
    let ctx = env.project("p", &[("Dockerfile", SLOW)]);
    let [a, b] = two_at_once(&env, None, &ctx);
    assert_eq!(
        count(&[&a.1, &b.1], "RAN-2"),
        1,
        "ran once:\n{}\n---\n{}",
        a.1,
        b.1
    );
    let waiter = if a.1.contains("RAN-2") { &b.1 } else { &a.1 };
    assert!(
        waiter.contains("waiting for another build running this step") && waiter.contains("CACHED"),
        "the other build waited and took the result:\n{waiter}"
    );
}

#[test]
fn two_builds_through_the_server_run_a_shared_step_once() {
    let env = Env::new();
    env.busybox_base("bb");
    let sock = env.path("s.sock");
    let addr = format!("unix://{}", sock.display());
    let _server = Serve::start(&env, &addr, &[]);
    let client = Env::new();
    let ctx = client.project("p", &[("Dockerfile", SLOW)]);
    let [a, b] = two_at_once(&client, Some(&addr), &ctx);
    assert_eq!(
        count(&[&a.1, &b.1], "RAN-2"),
        1,
        "ran once:\n{}\n---\n{}",
        a.1,
        b.1
    );
    assert_eq!(
        count(&[&a.1, &b.1], "waiting for another build running this step"),
        1,
        "the builds ran at once, one waiting for the other's step"
    );
}

#[test]
fn a_waiter_runs_the_step_itself_when_the_runner_is_killed() {
    let env = Env::new();
    env.busybox_base("bb");
    let ctx = env.project(
        "p",
        &[("Dockerfile", "FROM bb\nRUN sleep 4 && echo RAN-$((1+1))\n")],
    );
    let mut first = build_cmd(&env, None, &[], &ctx)
        .stderr(Stdio::piped())
        .spawn()
        .expect("first");
    // The first build holds the step's lock once its RUN runs.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let second = build_cmd(&env, None, &[], &ctx)
        .stderr(Stdio::piped())
        .spawn()
        .expect("second");
    std::thread::sleep(std::time::Duration::from_millis(800));
    first.kill().unwrap();
    first.wait().unwrap();
    let (ok, err, _) = text(second.wait_with_output().unwrap());
    assert!(ok, "{err}");
    assert!(
        err.contains("waiting for another build") && err.contains("RAN-2"),
        "the waiter ran the step itself:\n{err}"
    );
}

#[test]
fn images_du_and_prune_use_the_servers_store() {
    let env = Env::new();
    env.busybox_base("bb");
    let sock = env.path("s.sock");
    let addr = format!("unix://{}", sock.display());
    let _server = Serve::start(&env, &addr, &[]);
    let client = Env::new();
    let ctx = client.project(
        "p",
        &[
            ("Dockerfile", "FROM bb\nCOPY a.txt /a\nRUN echo x > /x\n"),
            ("a.txt", "context file\n"),
        ],
    );
    let (ok, err, _) = harness::build(&client, Some(&addr), &["-t", "served:1"], &ctx);
    assert!(ok, "{err}");
    let remote = |args: &[&str]| {
        text(
            client
                .rbuild()
                .arg("--server")
                .arg(&addr)
                .args(args)
                .output()
                .unwrap(),
        )
    };
    let (ok, err, out) = remote(&["images"]);
    assert!(
        ok && out.contains("served") && out.contains("bb"),
        "{err}{out}"
    );
    let (_, _, local) = text(client.rbuild().arg("images").output().unwrap());
    assert!(!local.contains("served"), "the client's store: {local}");
    let (ok, _, out) = remote(&["images", "-q", "served"]);
    assert!(ok && out.lines().count() == 1, "{out}");
    let (ok, err, out) = remote(&["du"]);
    assert!(ok && out.contains("total:"), "{err}{out}");
    assert!(
        out.contains(env.root().to_str().unwrap()),
        "the server's store: {out}"
    );
    // Removing the name, then pruning all, frees the RUN step's layer.
    env.rbuild().args(["rmi", "served:1"]).assert().success();
    // The context files uploaded an hour ago go with the prune too.
    let uploaded: Vec<_> = std::fs::read_dir(env.root().join("serve/sha256"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(!uploaded.is_empty(), "the context was uploaded");
    let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    for f in &uploaded {
        let file = std::fs::File::options().append(true).open(f).unwrap();
        file.set_modified(hour_ago).unwrap();
    }
    let (ok, err, out) = remote(&["prune", "--all"]);
    assert!(
        ok && out.contains("reclaimed") && !out.contains("reclaimed 0.0B"),
        "{err}{out}"
    );
    let removed = format!("removed {} context files", uploaded.len());
    assert!(out.contains(&removed), "{err}{out}");
    assert!(uploaded.iter().all(|f| !f.exists()), "{out}");
    // The next build uploads them again.
    let (ok, err, _) = harness::build(&client, Some(&addr), &["-t", "served:2"], &ctx);
    assert!(ok, "{err}");
    assert!(uploaded.iter().all(|f| f.exists()), "uploaded again");
    let (ok, err, _) = remote(&["run", "bb"]);
    assert!(!ok && err.contains("--server works with"), "{err}");
}

/// The load test (scripts/serve-load-test.sh), small: 8 clients on the
/// same project and on different ones, a killed client, the store
/// re-hashed, the server's peak memory bounded. Its timing targets are
/// printed, not enforced (the CI machine is shared).
#[test]
fn the_load_test_passes() {
    common::require_file("/bin/busybox", "busybox-static");
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/serve-load-test.sh");
    let out = std::process::Command::new("bash")
        .arg(script)
        .env("RBUILD", assert_cmd::cargo::cargo_bin("rbuild"))
        .env("N", "8")
        .env("SLEEP", "2")
        .env("REPS", "2")
        .output()
        .expect("run the load test");
    let (ok, err, out) = text(out);
    println!("{out}");
    assert!(
        ok && out.contains("PASS"),
        "load test failed:\n{err}\n{out}"
    );
}

#[test]
fn a_killed_client_whose_step_another_awaits_lets_it_finish() {
    let env = Env::new();
    env.busybox_base("bb");
    let addr = format!("unix://{}", env.path("s.sock").display());
    let server = Serve::start(&env, &addr, &[]);
    let ctx = env.project(
        "p",
        &[("Dockerfile", "FROM bb\nRUN sleep 3 && echo RAN-$((1+1))\n")],
    );
    let mut first = build_cmd(&env, Some(&addr), &[], &ctx)
        .stderr(Stdio::null())
        .spawn()
        .expect("first");
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let second = build_cmd(&env, Some(&addr), &[], &ctx)
        .stderr(Stdio::piped())
        .spawn()
        .expect("second");
    std::thread::sleep(std::time::Duration::from_millis(800));
    first.kill().unwrap();
    first.wait().unwrap();
    let (ok, err, _) = text(second.wait_with_output().unwrap());
    assert!(ok, "{err}");
    assert!(
        err.contains("waiting for another build")
            && err.contains("CACHED")
            && !err.contains("RAN-2"),
        "the killed client's step went on and the waiter took its result:\n{err}"
    );
    let m = server.metrics();
    assert_eq!(
        harness::value(&m, "rbuild_builds_total{result=\"cancelled\"}"),
        1.0,
        "{m}"
    );
}
