//! Builds run inside the server's process: concurrent clients share one
//! solver and one store (a step runs once, counted in a cache mount the
//! step appends to), the server starts no `rbuild build` child, and a
//! client that goes away stops its build at the next step while a step
//! another build waits for goes on.

use crate::common::Env;
use crate::harness::{Serve, build, build_cmd, text, value};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// A RUN step that appends a line to the cache mount `runs` each time it
/// is executed, slow enough for a second build to arrive meanwhile.
const COUNTED: &str =
    "RUN --mount=type=cache,id=runs,target=/c echo x >> /c/runs && sleep 3 && echo SHARED-DONE";

/// The argv of every child process of every thread of `pid`.
fn children(pid: u32) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("server tasks");
    for t in tasks.flatten() {
        let list = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
        for child in list.split_whitespace() {
            let cmdline = std::fs::read(format!("/proc/{child}/cmdline")).unwrap_or_default();
            let argv = cmdline
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            out.push(argv);
        }
    }
    out
}

/// How often the counted step ran on `env`'s store: a local build reads
/// the cache mount (its step, with `--no-cache`, prints `COUNT=N`).
fn runs_counted(env: &Env) -> usize {
    let ctx = env.project(
        "count",
        &[(
            "Dockerfile",
            "FROM bb\nRUN --mount=type=cache,id=runs,target=/c echo COUNT=$(cat /c/runs | wc -l)\n",
        )],
    );
    let (ok, err, _) = build(env, None, &["--no-cache"], &ctx);
    assert!(ok, "{err}");
    // The step's output, not its command line (`COUNT=$(…`).
    err.split("COUNT=")
        .skip(1)
        .find_map(|rest| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .unwrap_or_else(|| panic!("no count printed:\n{err}"))
}

#[test]
fn two_clients_share_the_servers_solver_and_no_build_child_runs() {
    let env = Env::new();
    env.busybox_base("bb");
    let addr = format!("unix://{}", env.path("s.sock").display());
    let server = Serve::start(&env, &addr, &[]);
    let client = Env::new();
    let df = format!("FROM bb\n{COUNTED}\n");
    let ctx = client.project("p", &[("Dockerfile", &df)]);
    let spawn = || {
        build_cmd(&client, Some(&addr), &[], &ctx)
            .stderr(Stdio::piped())
            .spawn()
            .expect("client")
    };
    let statcaches = || {
        std::fs::read_dir(env.root().join("statcache"))
            .unwrap()
            .count()
    };
    let before = statcaches();
    let (a, b) = (spawn(), spawn());
    // While the step runs: the server's children are RUN sandboxes, never
    // a build process.
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let now = children(server.child.id());
        let sandbox = now
            .iter()
            .any(|c| c.get(1).map(String::as_str) == Some("__sandbox"));
        seen.extend(now);
        if sandbox {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let (a, b) = (
        text(a.wait_with_output().unwrap()),
        text(b.wait_with_output().unwrap()),
    );
    assert!(a.0 && b.0, "both built:\n{}\n---\n{}", a.1, b.1);
    assert!(
        seen.iter()
            .any(|c| c.get(1).map(String::as_str) == Some("__sandbox")),
        "the RUN step's sandbox was seen as the server's child: {seen:?}"
    );
    assert!(
        !seen.iter().any(|c| c.iter().any(|a| a == "build")),
        "no `rbuild build` child of the server: {seen:?}"
    );
    let waited = [&a.1, &b.1]
        .iter()
        .filter(|e| e.contains("waiting for another build running this step"))
        .count();
    assert_eq!(
        waited, 1,
        "one build awaited the other's step:\n{}\n---\n{}",
        a.1, b.1
    );
    assert_eq!(
        statcaches(),
        before,
        "no stat cache kept for the server's throwaway context copies"
    );
    drop(server);
    assert_eq!(runs_counted(&env), 1, "the shared RUN step ran once");
}

#[test]
fn a_gone_clients_build_stops_at_the_next_step_after_the_step_others_await() {
    let env = Env::new();
    env.busybox_base("bb");
    let addr = format!("unix://{}", env.path("s.sock").display());
    let server = Serve::start(&env, &addr, &[]);
    let next = "RUN --mount=type=cache,id=runs,target=/c echo next >> /c/next";
    let first = env.project(
        "first",
        &[("Dockerfile", &format!("FROM bb\n{COUNTED}\n{next}\n"))],
    );
    let second = env.project(
        "second",
        &[(
            "Dockerfile",
            &format!("FROM bb\n{COUNTED}\nRUN echo second\n"),
        )],
    );
    let mut a = build_cmd(&env, Some(&addr), &[], &first)
        .stderr(Stdio::null())
        .spawn()
        .expect("first client");
    std::thread::sleep(Duration::from_millis(1200));
    let b = build_cmd(&env, Some(&addr), &[], &second)
        .stderr(Stdio::piped())
        .spawn()
        .expect("second client");
    std::thread::sleep(Duration::from_millis(800));
    a.kill().unwrap();
    a.wait().unwrap();
    let (ok, err, _) = text(b.wait_with_output().unwrap());
    assert!(ok, "{err}");
    assert!(
        err.contains("waiting for another build running this step") && err.contains("CACHED"),
        "the gone client's step went on, and the other took its result:\n{err}"
    );
    // The gone client's build ends (cancelled) without its next step.
    let deadline = Instant::now() + Duration::from_secs(20);
    while value(
        &server.metrics(),
        "rbuild_builds_total{result=\"cancelled\"}",
    ) < 1.0
    {
        assert!(Instant::now() < deadline, "{}", server.metrics());
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(server);
    assert_eq!(runs_counted(&env), 1, "the shared step ran once");
    let ctx = env.project(
        "next",
        &[(
            "Dockerfile",
            "FROM bb\nRUN --mount=type=cache,id=runs,target=/c echo NEXT=$(cat /c/next 2>/dev/null | wc -l)\n",
        )],
    );
    let (ok, err, _) = build(&env, None, &["--no-cache"], &ctx);
    assert!(ok, "{err}");
    assert!(err.contains("NEXT=0"), "the next step did not run:\n{err}");
}

#[test]
fn a_gone_clients_run_step_is_killed_even_while_it_prints() {
    let env = Env::new();
    env.busybox_base("bb");
    let addr = format!("unix://{}", env.path("s.sock").display());
    let server = Serve::start(&env, &addr, &[]);
    let ctx = env.project(
        "chatty",
        &[(
            "Dockerfile",
            "FROM bb\nRUN while :; do echo CHATTY-TICK; sleep 0.02; done\n",
        )],
    );
    let mut client = build_cmd(&env, Some(&addr), &[], &ctx)
        .stderr(Stdio::piped())
        .spawn()
        .expect("client");
    let running = |m: &str| value(m, "rbuild_builds_running");
    let deadline = Instant::now() + Duration::from_secs(20);
    while running(&server.metrics()) < 1.0 {
        assert!(Instant::now() < deadline, "the build never ran");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(800));
    client.kill().unwrap();
    client.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let m = server.metrics();
        if value(&m, "rbuild_builds_total{result=\"cancelled\"}") == 1.0 && running(&m) == 0.0 {
            break;
        }
        assert!(Instant::now() < deadline, "the build was not stopped:\n{m}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let ps = std::process::Command::new("ps")
        .args(["-eo", "args"])
        .output()
        .unwrap();
    let ps = String::from_utf8_lossy(&ps.stdout);
    assert!(
        !ps.contains("CHATTY-TICK"),
        "the RUN step still runs:\n{ps}"
    );
}

#[test]
fn a_served_rebuild_of_the_same_inputs_writes_no_step_notes_nor_context_copy() {
    let env = Env::new();
    env.busybox_base("bb");
    let addr = format!("unix://{}", env.path("s.sock").display());
    let _server = Serve::start(&env, &addr, &[]);
    let client = Env::new();
    let ctx = client.project(
        "p",
        &[
            (
                "Dockerfile",
                "FROM bb\nENV A=1\nWORKDIR /w\nCOPY f .\nCMD [\"sh\"]\n",
            ),
            ("f", "x\n"),
        ],
    );
    let notes = || {
        std::fs::read_dir(env.root().join("cache/steps"))
            .unwrap()
            .count()
    };
    // The inodes of the context directories' copies of `f`.
    let copies = || {
        let dirs = std::fs::read_dir(env.root().join("serve/contexts")).unwrap();
        let inode = |d: std::fs::DirEntry| {
            let m = std::fs::metadata(d.path().join("f")).ok()?;
            Some(std::os::unix::fs::MetadataExt::ino(&m))
        };
        dirs.flatten().filter_map(inode).collect::<Vec<_>>()
    };
    let (ok, err, _) = build(&client, Some(&addr), &[], &ctx);
    assert!(ok, "{err}");
    let (after_first, first_copy) = (notes(), copies());
    assert_eq!(first_copy.len(), 1, "one context directory");
    for _ in 0..2 {
        let (ok, err, _) = build(&client, Some(&addr), &[], &ctx);
        assert!(ok && err.contains("CACHED"), "{err}");
    }
    assert_eq!(
        copies(),
        first_copy,
        "the rebuilds read the first build's context copy"
    );
    assert_eq!(
        notes(),
        after_first,
        "the rebuilds found the first build's notes"
    );
}
