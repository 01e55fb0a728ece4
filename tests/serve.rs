//! `rbuild serve` and `rbuild build --server`: a real server process on a
//! unix socket or 127.0.0.1, real clients.

mod common;

use common::Env;
use common::registry::free_port;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `rbuild serve`, killed at drop.
struct Serve {
    child: Child,
    addr: String,
}

impl Serve {
    fn start(env: &Env, listen: &str, extra: &[&str]) -> Serve {
        let child = Command::new(assert_cmd::cargo::cargo_bin("rbuild"))
            .args(["serve", "--listen", listen])
            .args(extra)
            .env("RBUILD_ROOT", env.root())
            .env("RBUILD_OFFLINE", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start rbuild serve");
        let s = Serve {
            child,
            addr: listen.to_string(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while s.get("/healthz", None).as_deref() != Some("ok\n") {
            assert!(
                Instant::now() < deadline,
                "server on {listen} did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        s
    }

    /// A GET through the library's client; None when refused or down.
    fn get(&self, path: &str, token: Option<&str>) -> Option<String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let c = rbuild::server::client::Client::new(&self.addr, token.map(String::from)).ok()?;
        rt.block_on(c.get_text(path)).ok()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run `rbuild build` (with `--server` when given); (success, stderr, stdout).
fn build(
    env: &Env,
    server: Option<&str>,
    token: Option<&str>,
    args: &[&str],
    ctx: &Path,
) -> (bool, String, String) {
    let mut c = env.rbuild();
    c.args(["build", "--progress", "plain"]);
    if let Some(s) = server {
        c.args(["--server", s]);
    }
    match token {
        Some(t) => c.env("RBUILD_SERVER_TOKEN", t),
        None => c.env_remove("RBUILD_SERVER_TOKEN"),
    };
    let out = c.args(args).arg(ctx).output().expect("run rbuild build");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn project(env: &Env, name: &str) -> std::path::PathBuf {
    env.project(
        name,
        &[
            ("Dockerfile", "FROM scratch\nCOPY . /app/\n"),
            ("a.txt", "hello\n"),
            ("sub/b.txt", "b\n"),
            ("skip.log", "not sent\n"),
            (".dockerignore", "*.log\n"),
        ],
    )
}

fn value(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{metrics}"))
}

#[test]
fn a_build_through_the_server_matches_a_local_one_and_reuses_its_context() {
    let local = Env::new();
    let remote = Env::new();
    let sock = remote.path("rbuild.sock");
    let addr = format!("unix://{}", sock.display());
    let server = Serve::start(&remote, &addr, &[]);
    let mode = std::fs::metadata(&sock)
        .expect("socket")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "socket mode {mode:o}");

    let ctx = project(&local, "p");
    let epoch = ["--build-arg", "SOURCE_DATE_EPOCH=1700000000"];
    let local_iid = local.path("local.iid");
    let (ok, err, _) = build(
        &local,
        None,
        None,
        &[&epoch[..], &["--iidfile", local_iid.to_str().unwrap()]].concat(),
        &ctx,
    );
    assert!(ok, "{err}");
    let remote_iid = local.path("remote.iid");
    let (ok, err, _) = build(
        &local,
        Some(&addr),
        None,
        &[
            &epoch[..],
            &["-t", "served", "--iidfile", remote_iid.to_str().unwrap()],
        ]
        .concat(),
        &ctx,
    );
    assert!(ok, "{err}");
    // Four files after .dockerignore: Dockerfile, .dockerignore, a.txt, sub/b.txt.
    assert!(err.contains("context: 4 of 4 files uploaded"), "{err}");
    assert!(
        err.contains("COPY . /app/"),
        "progress rendered here:\n{err}"
    );
    assert_eq!(
        std::fs::read_to_string(&local_iid).unwrap(),
        std::fs::read_to_string(&remote_iid).unwrap(),
        "same image ID as the local build"
    );
    // The image is in the server's store, not the client's.
    let images = String::from_utf8_lossy(&remote.rbuild().arg("images").output().unwrap().stdout)
        .into_owned();
    assert!(images.contains("served"), "{images}");

    // Another client with the same files (another directory) uploads nothing.
    let other = project(&local, "q");
    let (ok, err, _) = build(&local, Some(&addr), None, &epoch, &other);
    assert!(ok, "{err}");
    assert!(err.contains("context: 0 of 4 files uploaded"), "{err}");
    let metrics = server.get("/metrics", None).expect("metrics");
    assert_eq!(value(&metrics, "rbuild_context_files_uploaded_total"), 4.0);
    assert_eq!(
        value(&metrics, "rbuild_builds_total{result=\"succeeded\"}"),
        2.0
    );

    // A broken Dockerfile fails as locally: its diagnostic, a failure code.
    let bad = local.project("bad", &[("Dockerfile", "FROM scratch\nNOPE x\n")]);
    let (ok_l, err_l, _) = build(&local, None, None, &[], &bad);
    let (ok_r, err_r, _) = build(&local, Some(&addr), None, &[], &bad);
    assert!(!ok_l && !ok_r, "{err_r}");
    assert!(err_l.contains("NOPE") && err_r.contains("NOPE"), "{err_r}");
    // Flags naming paths that would be the server's are refused.
    let (ok, err, _) = build(
        &local,
        Some(&addr),
        None,
        &["--cache-from", "type=local,src=/tmp/x"],
        &ctx,
    );
    assert!(!ok && err.contains("--cache-from"), "{err}");
}

#[test]
fn tcp_needs_the_token_and_metrics_parse() {
    let env = Env::new();
    let token_file = env.path("token");
    std::fs::write(&token_file, "s3cret\n").unwrap();
    let tf = token_file.to_str().unwrap();
    // No token, or a non-loopback address: refused at start.
    let port = free_port();
    let out = env
        .rbuild()
        .args(["serve", "--listen", &format!("tcp://127.0.0.1:{port}")])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--token-file"));
    let out = env
        .rbuild()
        .args(["serve", "--listen", "tcp://0.0.0.0:1", "--token-file", tf])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"));

    let addr = format!("tcp://127.0.0.1:{port}");
    let server = Serve::start(&env, &addr, &["--token-file", tf]);
    let _ = &server;
    let ctx = project(&env, "p");
    let (ok, err, _) = build(&env, Some(&addr), None, &[], &ctx);
    assert!(!ok && err.contains("401"), "{err}");
    let (ok, err, _) = build(&env, Some(&addr), Some("wrong"), &[], &ctx);
    assert!(!ok && err.contains("401"), "{err}");
    let (ok, err, _) = build(&env, Some(&addr), Some("s3cret"), &[], &ctx);
    assert!(ok, "{err}");
    assert!(
        server.get("/metrics", None).is_none(),
        "metrics without the token"
    );
    let metrics = server.get("/metrics", Some("s3cret")).expect("metrics");
    // Prometheus text: comments, or `name{labels} number`.
    for l in metrics.lines().filter(|l| !l.starts_with('#')) {
        let (series, v) = l
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad line {l:?}"));
        assert!(v.parse::<f64>().is_ok(), "bad value in {l:?}");
        let name = series.split('{').next().unwrap();
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{l:?}"
        );
    }
    assert_eq!(
        value(&metrics, "rbuild_builds_total{result=\"succeeded\"}"),
        1.0
    );
    assert!(value(&metrics, "rbuild_step_duration_seconds_count") >= 1.0);
    let page = server.get("/", Some("s3cret")).expect("page");
    assert!(
        page.contains("http-equiv=\"refresh\"") && page.contains("succeeded"),
        "{page}"
    );
}

#[test]
fn a_client_killed_mid_build_leaves_the_server_healthy() {
    let env = Env::new();
    env.busybox_base("bb");
    let sock = env.path("s.sock");
    let addr = format!("unix://{}", sock.display());
    let server = Serve::start(&env, &addr, &[]);
    let ctx = env.project("slow", &[("Dockerfile", "FROM bb\nRUN sleep 60\n")]);
    let mut client = Command::new(assert_cmd::cargo::cargo_bin("rbuild"))
        .env("RBUILD_ROOT", env.root())
        .args(["build", "--progress", "plain", "--server", &addr])
        .arg(&ctx)
        .stderr(Stdio::null())
        .spawn()
        .expect("client");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !server
        .get("/metrics", None)
        .is_some_and(|m| value(&m, "rbuild_builds_running") == 1.0)
    {
        assert!(Instant::now() < deadline, "the build never ran");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    client.kill().unwrap();
    client.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let m = server.get("/metrics", None).expect("server still answers");
        if value(&m, "rbuild_builds_total{result=\"cancelled\"}") == 1.0
            && value(&m, "rbuild_builds_running") == 0.0
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the build was not cancelled:\n{m}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // No `sleep 60` left behind, and the next build works.
    let ps = String::from_utf8_lossy(
        &Command::new("ps")
            .args(["-eo", "args"])
            .output()
            .unwrap()
            .stdout,
    )
    .into_owned();
    assert!(!ps.lines().any(|l| l.trim() == "sleep 60"), "{ps}");
    let ok_ctx = env.project("fine", &[("Dockerfile", "FROM bb\nRUN echo fine\n")]);
    let (ok, err, _) = build(&env, Some(&addr), None, &[], &ok_ctx);
    assert!(ok, "{err}");
}

#[test]
fn secrets_reach_the_build_but_not_the_store_and_a_full_server_queues() {
    let env = Env::new();
    env.busybox_base("bb");
    let sock = env.path("s.sock");
    let addr = format!("unix://{}", sock.display());
    let _server = Serve::start(&env, &addr, &["--max-builds", "1"]);
    let secret = env.path("secret.txt");
    std::fs::write(&secret, "topsecret-4711").unwrap();
    let ctx = env.project(
        "sec",
        &[(
            "Dockerfile",
            "FROM bb\nRUN --mount=type=secret,id=tok sed s/top/TOP/ /run/secrets/tok\n",
        )],
    );
    let src = format!("id=tok,src={}", secret.display());
    let (ok, err, _) = build(&env, Some(&addr), None, &["--secret", &src], &ctx);
    assert!(ok, "{err}");
    assert!(
        err.contains("TOPsecret-4711"),
        "the RUN step saw the secret:\n{err}"
    );
    let found = Command::new("grep")
        .args(["-r", "-l", "topsecret-4711"])
        .arg(env.root())
        .output()
        .unwrap();
    assert!(
        found.stdout.is_empty(),
        "secret stored in {}",
        String::from_utf8_lossy(&found.stdout)
    );

    // One slot: a second build waits, and is told its place.
    let slow = env.project("slow", &[("Dockerfile", "FROM bb\nRUN sleep 3\n")]);
    let first = Command::new(assert_cmd::cargo::cargo_bin("rbuild"))
        .env("RBUILD_ROOT", env.root())
        .args(["build", "--progress", "plain", "--server", &addr])
        .arg(&slow)
        .stderr(Stdio::null())
        .spawn()
        .expect("client");
    std::thread::sleep(Duration::from_millis(800));
    let other = env.project("other", &[("Dockerfile", "FROM bb\nRUN echo other\n")]);
    let (ok, err, _) = build(&env, Some(&addr), None, &[], &other);
    assert!(ok, "{err}");
    assert!(err.contains(": position 1"), "{err}");
    assert!(first.wait_with_output().unwrap().status.success());
}

#[test]
fn sigterm_lets_the_running_build_finish_then_stops() {
    let env = Env::new();
    env.busybox_base("bb");
    let sock = env.path("s.sock");
    let addr = format!("unix://{}", sock.display());
    let mut server = Serve::start(&env, &addr, &[]);
    let slow = env.project(
        "slow",
        &[("Dockerfile", "FROM bb\nRUN sleep 2 && echo slept\n")],
    );
    let client = Command::new(assert_cmd::cargo::cargo_bin("rbuild"))
        .env("RBUILD_ROOT", env.root())
        .args(["build", "--progress", "plain", "--server", &addr])
        .arg(&slow)
        .stderr(Stdio::piped())
        .spawn()
        .expect("client");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !server
        .get("/metrics", None)
        .is_some_and(|m| value(&m, "rbuild_builds_running") == 1.0)
    {
        assert!(Instant::now() < deadline, "the build never ran");
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = server.child.id() as i32;
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let out = client.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && err.contains("slept"), "{err}");
    let status = server.child.wait().unwrap();
    assert!(status.success(), "server exit {status:?}");
    assert!(!sock.exists(), "socket removed");
}
