//! What `rbuild serve` shows: `/metrics` moving with real builds (misses on
//! a cold build, hits from the store on a rebuild), and the status page in
//! headless Chromium while a build runs (its DOM, a screenshot artifact,
//! client strings escaped).

mod common;

use common::Env;
use common::registry::free_port;
use common::serve::{Serve, value, wait_for};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// `rbuild build --server ADDR ARGS CTX` (token from the server); (ok, stderr).
fn build(env: &Env, server: &Serve, args: &[&str], ctx: &Path) -> (bool, String) {
    let mut c = env.rbuild();
    c.args(["build", "--progress", "plain", "--server", &server.addr]);
    match &server.token {
        Some(t) => c.env("RBUILD_SERVER_TOKEN", t),
        None => c.env_remove("RBUILD_SERVER_TOKEN"),
    };
    let out = c.args(args).arg(ctx).output().expect("rbuild build");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.success(), err)
}

/// `built in …: N steps run, M cached` of a build's output: (run, cached).
fn counts(err: &str) -> (f64, f64) {
    let l = err
        .lines()
        .find(|l| l.starts_with("built in "))
        .unwrap_or_else(|| panic!("no summary in\n{err}"));
    let n = |s: &str| s.split_whitespace().next().unwrap().parse().unwrap();
    let (_, rest) = l.split_once(": ").unwrap();
    let (run, cached) = rest.split_once(", ").unwrap();
    (n(run), n(cached))
}

/// Check the Prometheus text format: every sample's metric has HELP and
/// TYPE lines, names and values parse, histogram buckets only grow.
fn check_format(text: &str) {
    let mut typed = std::collections::HashMap::new();
    let mut last_bucket = 0.0;
    for l in text.lines() {
        if let Some(rest) = l.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            typed.insert(name.to_string(), kind.to_string());
            assert!(
                text.contains(&format!("# HELP {name} ")),
                "no HELP for {name}"
            );
            continue;
        }
        if l.starts_with("# HELP ") {
            continue;
        }
        let (series, v) = l
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad line {l:?}"));
        let v: f64 = v.parse().unwrap_or_else(|_| panic!("bad value in {l:?}"));
        let name = series.split('{').next().unwrap();
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{l:?}"
        );
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|b| typed.get(*b).is_some_and(|k| k == "histogram"))
            })
            .unwrap_or(name);
        assert!(typed.contains_key(base), "no TYPE for {l:?}");
        if name.ends_with("_bucket") {
            assert!(v >= last_bucket, "buckets must not shrink: {l:?}");
            last_bucket = v;
        }
    }
}

const HIT_LOCAL: &str = "rbuild_cache_steps_total{result=\"hit\",source=\"local\"}";
const HIT_IMPORTED: &str = "rbuild_cache_steps_total{result=\"hit\",source=\"imported\"}";
const MISS: &str = "rbuild_cache_steps_total{result=\"miss\",source=\"none\"}";
const DURATIONS: &str = "rbuild_step_duration_seconds_count";

#[test]
fn metrics_count_a_cold_build_as_misses_and_its_rebuild_as_hits() {
    let env = Env::new();
    env.busybox_base("bb");
    let sock = env.path("s.sock");
    let offline = [("RBUILD_OFFLINE", Path::new("1"))];
    let server = Serve::start(&env, &format!("unix://{}", sock.display()), &[], &offline);
    let ctx = env.project(
        "p",
        &[
            (
                "Dockerfile",
                "FROM bb\nRUN echo one > /one\nENV X=1\nCOPY f.txt /f.txt\nRUN sleep 1.2\n",
            ),
            ("f.txt", "f\n"),
        ],
    );
    let m0 = server.metrics();
    assert_eq!(value(&m0, MISS), 0.0);
    let warm = server.request("POST", "/warm").expect("POST /warm");
    assert_eq!(warm.0, 404, "no --warm config: {warm:?}");

    let (ok, err) = build(&env, &server, &[], &ctx);
    assert!(ok, "{err}");
    let (run, cached) = counts(&err);
    assert_eq!((run, cached), (3.0, 0.0), "{err}");
    let m1 = server.metrics();
    check_format(&m1);
    assert_eq!(value(&m1, MISS), run, "{m1}");
    assert_eq!(value(&m1, HIT_LOCAL), 0.0, "{m1}");
    assert_eq!(value(&m1, HIT_IMPORTED), 0.0, "{m1}");
    // Every step run has a duration; `RUN sleep 1.2` falls above 1s.
    assert_eq!(value(&m1, DURATIONS), run, "{m1}");
    assert_eq!(
        value(&m1, "rbuild_step_duration_seconds_bucket{le=\"+Inf\"}"),
        run
    );
    let le1 = value(&m1, "rbuild_step_duration_seconds_bucket{le=\"1\"}");
    let le5 = value(&m1, "rbuild_step_duration_seconds_bucket{le=\"5\"}");
    assert_eq!((le1, le5), (run - 1.0, run), "{m1}");
    assert!(
        value(&m1, "rbuild_step_duration_seconds_sum") >= 1.2,
        "{m1}"
    );
    assert_eq!(value(&m1, "rbuild_builds_total{result=\"succeeded\"}"), 1.0);
    assert_eq!(value(&m1, "rbuild_queue_length"), 0.0);
    assert!(
        value(&m1, "rbuild_store_bytes") > 1_000_000.0,
        "busybox is stored: {m1}"
    );

    // The same build again: every step is a hit from this store, the ENV
    // step too (though each served build has its own context directory).
    let (ok, err) = build(&env, &server, &[], &ctx);
    assert!(ok, "{err}");
    let (run2, cached2) = counts(&err);
    assert_eq!((run2, cached2), (0.0, 3.0), "{err}");
    let m2 = server.metrics();
    assert_eq!(value(&m2, HIT_LOCAL), cached2, "{m2}");
    assert_eq!(value(&m2, HIT_IMPORTED), 0.0, "{m2}");
    assert_eq!(value(&m2, MISS), run + run2, "{m2}");
    assert_eq!(value(&m2, DURATIONS), run + run2, "{m2}");
    assert_eq!(value(&m2, "rbuild_steps_total{cache=\"hit\"}"), cached2);
    assert_eq!(value(&m2, "rbuild_builds_total{result=\"succeeded\"}"), 2.0);

    // A failing build counts as failed; its step that ran is a miss.
    let bad = env.project("bad", &[("Dockerfile", "FROM bb\nRUN exit 3\n")]);
    let (ok, _) = build(&env, &server, &[], &bad);
    assert!(!ok);
    let m3 = server.metrics();
    assert_eq!(value(&m3, "rbuild_builds_total{result=\"failed\"}"), 1.0);
}

/// Chromium, or None outside CI when it is not installed (a failure in CI).
fn chromium() -> Option<PathBuf> {
    let p = PathBuf::from("/usr/bin/chromium");
    if p.exists() {
        return Some(p);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "this test needs chromium (Debian package chromium); scripts/test.sh installs it"
    );
    eprintln!("skipped: chromium is not installed (Debian package chromium)");
    None
}

/// Run headless Chromium on `url` with `args`; its stdout. It may reach
/// 127.0.0.1 only: every host name resolves to nothing, and any other
/// address goes to a proxy on a closed loopback port (checked with strace:
/// its only other connect() is the UDP one of its IPv6 probe, which sends
/// no packet).
fn headless(chromium: &Path, profile: &Path, args: &[&str], url: &str) -> String {
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--disable-default-apps",
            "--proxy-server=http://127.0.0.1:9",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "--window-size=1280,900",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_status_page_shows_the_running_build_in_headless_chromium() {
    let Some(chromium) = chromium() else {
        return;
    };
    let env = Env::new();
    env.busybox_base("bb");
    let token_file = env.path("token");
    std::fs::write(&token_file, "page-t0ken\n").unwrap();
    let addr = format!("tcp://127.0.0.1:{}", free_port());
    let offline = [("RBUILD_OFFLINE", Path::new("1"))];
    let server = Serve::start(
        &env,
        &addr,
        &["--token-file", token_file.to_str().unwrap()],
        &offline,
    );
    // Client strings that would run as script if not escaped: a tag (the
    // build fails on it, and is listed) and a step's text.
    let payload = "<script>document.body.dataset.pwned=1</script>";
    let quick = env.project("quick", &[("Dockerfile", "FROM bb\n")]);
    let (ok, _) = build(&env, &server, &["-t", &format!("x{payload}")], &quick);
    assert!(!ok, "an invalid tag fails");
    let slow = env.project(
        "slow",
        &[(
            "Dockerfile",
            &format!("FROM bb\nRUN echo '{payload}' && sleep 20\n"),
        )],
    );
    let mut client = Command::new(assert_cmd::cargo::cargo_bin("rbuild"))
        .env("RBUILD_ROOT", env.root())
        .env("RBUILD_SERVER_TOKEN", "page-t0ken")
        .args([
            "build",
            "--progress",
            "plain",
            "--server",
            &addr,
            "-t",
            "slow:1",
        ])
        .arg(&slow)
        .stderr(Stdio::null())
        .spawn()
        .expect("client");
    wait_for(30, "the build to run its RUN step", || {
        let m = server.metrics();
        value(&m, "rbuild_builds_running") == 1.0
            && server
                .get("/")
                .is_some_and(|p| p.contains("sleep 20</td><td>running"))
    });

    // Without the token (header or query) the page is refused.
    let status = |path: &str| server.request_as(None, "GET", path).map(|r| r.0);
    assert_eq!(status("/"), Some(401));
    assert_eq!(status("/?token=wrong"), Some(401));
    assert_eq!(status("/?token=page-t0ken"), Some(200));
    assert_eq!(
        status("/metrics?token=page-t0ken"),
        Some(401),
        "only the page"
    );
    let warm = server.request_as(None, "POST", "/warm").map(|r| r.0);
    assert_eq!(warm, Some(401), "POST /warm needs the token");

    let url = format!(
        "http://{}/?token=page-t0ken",
        addr.trim_start_matches("tcp://")
    );
    let profile = tempfile::tempdir().unwrap();
    let dom = headless(&chromium, profile.path(), &["--dump-dom"], &url);
    assert!(dom.contains("<title>rbuild serve</title>"), "{dom}");
    let running = dom
        .split("<div class=\"build\"")
        .find(|b| b.contains("data-state=\"running\""))
        .unwrap_or_else(|| panic!("no running build in the DOM:\n{dom}"));
    assert!(running.contains("-t slow:1"), "{running}");
    assert!(running.contains("sleep 20</td><td>running"), "{running}");
    assert!(
        dom.contains("&lt;script&gt;document.body.dataset.pwned=1&lt;/script&gt;"),
        "{dom}"
    );
    assert!(
        !dom.contains("data-pwned"),
        "a client's script ran in the page:\n{dom}"
    );
    assert!(dom.contains("id=\"hit-ratio\""), "{dom}");

    let artifacts = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let png = artifacts.join("serve-status-page.png");
    let _ = std::fs::remove_file(&png);
    headless(
        &chromium,
        profile.path(),
        &[&format!("--screenshot={}", png.display())],
        &url,
    );
    let bytes = std::fs::read(&png).expect("screenshot written");
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(
        bytes.len() > 5_000,
        "an empty-looking PNG: {} bytes",
        bytes.len()
    );
    let _ = client.kill();
    let _ = client.wait();
}
