//! `rbuild serve --warm`: a base pushed to a real registry on 127.0.0.1, a
//! project in a local git repository; warm runs on demand and on the
//! schedule rebuild the project when the base's tag moves, and a client's
//! build afterwards is all cached.

mod common;

use common::registry::{isolated, push};
use common::serve::{Serve, value, wait_for};
use common::{Env, copy_dir, require_file, require_tool, run};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Build the busybox base (with `extra` Dockerfile lines) into an OCI layout.
fn base_layout(env: &Env, layout: &Path, extra: &str) {
    let busybox = require_file("/bin/busybox", "busybox-static");
    let dir = env.path(&format!("base-ctx-{}", extra.len()));
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("demo/busybox-base"),
        &dir,
    );
    std::fs::copy(busybox, dir.join("busybox")).expect("copy busybox");
    let df = std::fs::read_to_string(dir.join("Dockerfile")).unwrap() + extra;
    std::fs::write(dir.join("Dockerfile"), df).unwrap();
    env.build_ok(
        &[
            "-o",
            &format!("type=oci-dir,dest={},name=base:latest", layout.display()),
        ],
        &dir,
    );
}

/// A git repository holding the project; its `file://` URL.
fn git_project(env: &Env) -> String {
    let git = require_tool("git", "git");
    let repo = env.project(
        "repo",
        &[
            (
                "app/Dockerfile",
                "ARG BASE\nFROM $BASE\nCOPY app.txt /app.txt\nRUN cat /app.txt > /built\n",
            ),
            ("app/app.txt", "warm me\n"),
        ],
    );
    for args in [
        &["init", "-q", "-b", "main"][..],
        &["add", "."],
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-q",
            "-m",
            "app",
        ],
    ] {
        run(Command::new(&git).arg("-C").arg(&repo).args(args));
    }
    format!("file://{}", repo.display())
}

/// A config keeping `watched` current and the project warm, its cache
/// exported to (`cache_to`) or imported from (else) `cache`.
fn config(
    base: &str,
    watched: &str,
    url: &str,
    cache: &Path,
    cache_to: bool,
    interval: &str,
) -> String {
    let cache = match cache_to {
        true => format!("cache_to = [\"type=local,dest={}\"]", cache.display()),
        false => format!("cache_from = [\"type=local,src={}\"]", cache.display()),
    };
    format!(
        "# kept warm by the test\ninterval = \"{interval}\"\nbases = [\"{watched}\"]\n\n\
         [[project]]\nname = \"app\"\ngit = \"{url}\"\nref = \"main\"\ncontext = \"app\"\n\
         build_args = {{ BASE = \"{base}\" }}\ntags = [\"app:warm\"]\n{cache}\n"
    )
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// The project's entry in a run.
fn app(run: &serde_json::Value) -> &serde_json::Value {
    &run["projects"][0]
}

#[test]
fn a_moved_base_is_rebuilt_ahead_of_the_pipelines() {
    let env = isolated();
    let reg = common::registry::Registry::start(None);
    let base = format!("{}/warm/base:v1", reg.host());
    let (v1, v2) = (env.path("v1"), env.path("v2"));
    base_layout(&env, &v1, "");
    base_layout(&env, &v2, "LABEL base=v2\n");
    push(&v1, "latest", &base, None, false);
    let watched = format!("{}/warm/watched:1", reg.host());
    push(&v1, "latest", &watched, None, false);
    let url = git_project(&env);
    let cache = env.path("cache-export");
    let cfg = env.path("warm.toml");
    std::fs::write(&cfg, config(&base, &watched, &url, &cache, true, "1h")).unwrap();
    let served = Env::new();
    let sock = served.path("s.sock");
    let addr = format!("unix://{}", sock.display());
    let vars = [
        ("DOCKER_CONFIG", env.path("docker-config")),
        ("RBUILD_CONFIG", env.path("registries.toml")),
    ];
    let vars: Vec<(&str, &Path)> = vars.iter().map(|(k, v)| (*k, v.as_path())).collect();
    let extra = ["--warm", cfg.to_str().unwrap()];

    let server = Serve::start(&served, &addr, &extra, &vars);
    let (status, body) = server.request("POST", "/warm").expect("POST /warm");
    assert_eq!(status, 200, "{body}");
    let first = json(&body);
    assert_eq!(first["trigger"], "api");
    assert_eq!(first["result"], "ok", "{first:#}");
    assert_eq!(app(&first)["result"], "built", "{first:#}");
    assert_eq!(app(&first)["reason"], "not built yet");
    assert!(app(&first)["steps_run"].as_u64().unwrap() >= 1, "{first:#}");
    // The watched base first, then the project's (from its FROM $BASE).
    assert_eq!(first["bases"][0]["reference"], watched.as_str());
    assert_eq!(first["bases"][1]["reference"], base.as_str());
    let d1 = first["bases"][1]["digest"]
        .as_str()
        .expect("digest")
        .to_string();
    assert!(cache.join("index.json").is_file(), "--cache-to exported");
    let images = served.rbuild().arg("images").output().unwrap();
    let images = String::from_utf8_lossy(&images.stdout);
    assert!(
        images.contains("warm/watched"),
        "the watched base is pulled: {images}"
    );
    // Nothing moved: nothing is built.
    let (_, body) = server.request("POST", "/warm").unwrap();
    let second = json(&body);
    assert_eq!(app(&second)["result"], "unchanged", "{second:#}");
    assert_eq!(second["bases"][1]["changed"], false);
    drop(server);

    // The tag moves while the server is down; a server with a short
    // schedule finds it on its own, and still lists the earlier runs.
    push(&v2, "latest", &base, None, false);
    std::fs::write(&cfg, config(&base, &watched, &url, &cache, true, "1s")).unwrap();
    let server = Serve::start(&served, &addr, &extra, &vars);
    let listed = json(&server.get("/warm").expect("GET /warm"));
    let ids: Vec<u64> = listed["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_u64().unwrap())
        .collect();
    assert!(
        ids.ends_with(&[2, 1]),
        "runs kept across restarts: {listed:#}"
    );
    let mut rebuilt = serde_json::Value::Null;
    wait_for(120, "a scheduled run that rebuilds the project", || {
        let listed = json(&server.get("/warm").unwrap());
        let found = listed["runs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["trigger"] == "schedule" && app(r)["result"] != "unchanged");
        if let Some(r) = found {
            rebuilt = r.clone();
        }
        found.is_some()
    });
    assert_eq!(app(&rebuilt)["result"], "built", "{rebuilt:#}");
    let b = &rebuilt["bases"][1];
    assert_eq!(b["changed"], true, "{rebuilt:#}");
    assert_eq!(b["previous"], d1.as_str());
    assert_ne!(b["digest"], d1.as_str());
    let reason = app(&rebuilt)["reason"].as_str().unwrap();
    assert!(reason.contains("changed"), "{reason}");
    assert!(
        app(&rebuilt)["steps_run"].as_u64().unwrap() >= 1,
        "{rebuilt:#}"
    );

    // A pipeline's build of the project through the server: all cached.
    let checkout = env.path("checkout");
    let git = require_tool("git", "git");
    run(Command::new(git).args(["clone", "-q", &url]).arg(&checkout));
    let out = env
        .rbuild()
        .env("RBUILD_ROOT", served.root())
        .args(["build", "--progress", "plain", "--server", &addr])
        .args(["--build-arg", &format!("BASE={base}")])
        .arg(checkout.join("app"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains(": 0 steps run, 2 cached"), "{err}");
    let m = server.metrics();
    assert!(
        value(&m, "rbuild_warm_runs_total{result=\"ok\"}") >= 1.0,
        "{m}"
    );
    let page = server.get("/").unwrap();
    assert!(
        page.contains("Warm runs") && page.contains("warm app -t app:warm"),
        "{page}"
    );
    drop(server);

    // Another server, with an empty store, warms the project from the
    // exported cache; a project that cannot be checked out fails alone.
    let fresh = Env::new();
    let text = config(&base, &watched, &url, &cache, false, "1h")
        + "\n[[project]]\nname = \"broken\"\ndir = \"/nonexistent-rbuild-project\"\n";
    std::fs::write(&cfg, text).unwrap();
    let addr = format!("unix://{}", fresh.path("s.sock").display());
    let server = Serve::start(&fresh, &addr, &extra, &vars);
    let (_, body) = server.request("POST", "/warm").unwrap();
    let run = json(&body);
    assert_eq!(run["result"], "failed", "{run:#}");
    assert_eq!(app(&run)["result"], "built", "{run:#}");
    assert_eq!(
        app(&run)["steps_run"],
        0,
        "all from the imported cache: {run:#}"
    );
    let broken = &run["projects"][1];
    assert_eq!(broken["result"], "failed");
    assert!(
        broken["reason"].as_str().unwrap().contains("no Dockerfile"),
        "{run:#}"
    );
    let m = server.metrics();
    let imported = "rbuild_cache_steps_total{result=\"hit\",source=\"imported\"}";
    assert_eq!(value(&m, imported), 2.0, "COPY and RUN imported: {m}");
    assert_eq!(
        value(&m, "rbuild_warm_runs_total{result=\"failed\"}"),
        1.0,
        "{m}"
    );
}

/// A config that names no valid project is refused at start, naming it.
#[test]
fn a_bad_warm_config_is_refused_with_its_file() {
    let env = Env::new();
    let cfg: PathBuf = env.path("warm.toml");
    std::fs::write(&cfg, "[[project]]\nname = \"x\"\n").unwrap();
    let out = env
        .rbuild()
        .args(["serve", "--listen"])
        .arg(format!("unix://{}", env.path("s.sock").display()))
        .arg("--warm")
        .arg(&cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("warm.toml") && err.contains("needs dir or git"),
        "{err}"
    );
}

#[test]
fn sigterm_stops_a_running_warm_build_and_its_run_step() {
    let env = isolated();
    let reg = common::registry::Registry::start(None);
    let base = format!("{}/warm/slow-base:v1", reg.host());
    let layout = env.path("v1");
    base_layout(&env, &layout, "");
    push(&layout, "latest", &base, None, false);
    let dir = env.project(
        "slow",
        &[(
            "Dockerfile",
            "ARG BASE\nFROM $BASE\nRUN sleep 23\nRUN echo WARM-AFTER\n",
        )],
    );
    let cfg = env.path("warm.toml");
    let text = format!(
        "interval = \"1s\"\n\n[[project]]\nname = \"slow\"\ndir = \"{}\"\n\
         build_args = {{ BASE = \"{base}\" }}\n",
        dir.display()
    );
    std::fs::write(&cfg, text).unwrap();
    let served = Env::new();
    let addr = format!("unix://{}", served.path("s.sock").display());
    let vars = [
        ("DOCKER_CONFIG", env.path("docker-config")),
        ("RBUILD_CONFIG", env.path("registries.toml")),
    ];
    let vars: Vec<(&str, &Path)> = vars.iter().map(|(k, v)| (*k, v.as_path())).collect();
    let mut server = Serve::start(&served, &addr, &["--warm", cfg.to_str().unwrap()], &vars);
    let sleeping = || {
        let ps = Command::new("ps").args(["-eo", "args"]).output().unwrap();
        String::from_utf8_lossy(&ps.stdout)
            .lines()
            .any(|l| l.trim() == "sleep 23")
    };
    wait_for(60, "the warm build's RUN step", sleeping);
    let pid = server.child.id() as i32;
    // SAFETY: a signal to the server this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let t0 = std::time::Instant::now();
    let status = server.child.wait().unwrap();
    assert!(status.success(), "server exit {status:?}");
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(15),
        "the server waited for the warm build's step ({:?})",
        t0.elapsed()
    );
    assert!(!sleeping(), "the warm build's RUN step was killed");
}
