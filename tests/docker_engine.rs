//! The docker archive loads into a real Docker engine (Debian's docker.io),
//! `docker image inspect` shows what the Dockerfile says, and the image runs;
//! an image rbuild pushed to a registry on 127.0.0.1 is pulled and run, also
//! one pushed on a base whose layers stayed in the registry (lazy).
//! The test starts its own dockerd on a private socket and data directory,
//! without touching the host's network configuration.

mod common;
use common::dockerd::Dockerd;
use common::{Env, require_file, require_tool, run};
use std::process::Command as Proc;

fn start_dockerd() -> Dockerd {
    Dockerd::start()
}

fn docker(d: &Dockerd) -> Proc {
    d.docker()
}

#[test]
fn docker_archive_loads_inspects_and_runs_in_a_real_engine() {
    require_tool("docker", "docker.io");
    let busybox = require_file("/bin/busybox", "busybox-static");
    let env = Env::new();
    let ctx = env.project(
        "app",
        &[
            (
                "Dockerfile",
                "FROM scratch AS files\nCOPY msg.txt /msg.txt\n\nFROM scratch\nCOPY busybox /bin/busybox\nCOPY --from=files /msg.txt /srv/msg.txt\nRUN [\"/bin/busybox\", \"sh\", \"-c\", \"echo written by RUN >> /srv/msg.txt\"]\nENV GREETING=hello\nLABEL org.example.demo=yes\nWORKDIR /srv\nENTRYPOINT [\"/bin/busybox\"]\nCMD [\"cat\", \"/srv/msg.txt\"]\n",
            ),
            ("msg.txt", "loaded by a real engine\n"),
        ],
    );
    std::fs::copy(busybox, ctx.join("busybox")).unwrap();
    let archive = env.path("img.tar");
    env.build_ok(
        &[
            "-t",
            "rbuild-test/app:1",
            "-o",
            &format!("type=docker,dest={}", archive.display()),
        ],
        &ctx,
    );
    let d = start_dockerd();
    let out = run(docker(&d).arg("load").arg("-i").arg(&archive));
    assert!(out.contains("rbuild-test/app:1"), "{out}");
    let inspect = run(docker(&d).args(["image", "inspect", "rbuild-test/app:1"]));
    let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    let c = &v[0]["Config"];
    assert!(
        c["Env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e == "GREETING=hello")
    );
    assert_eq!(c["Labels"]["org.example.demo"], "yes");
    assert_eq!(c["WorkingDir"], "/srv");
    assert_eq!(c["Entrypoint"], serde_json::json!(["/bin/busybox"]));
    assert_eq!(c["Cmd"], serde_json::json!(["cat", "/srv/msg.txt"]));
    let out = run(docker(&d).args(["run", "--rm", "--network=none", "rbuild-test/app:1"]));
    assert_eq!(out, "loaded by a real engine\nwritten by RUN\n");
    let out = run(docker(&d).args([
        "run",
        "--rm",
        "--network=none",
        "rbuild-test/app:1",
        "sh",
        "-c",
        "echo $GREETING from $(pwd)",
    ]));
    assert_eq!(out, "hello from /srv\n");
}

#[test]
fn an_image_rbuild_pushed_to_a_registry_is_pulled_and_run_by_a_real_engine() {
    use common::registry::{Registry, build, isolated};
    require_tool("docker", "docker.io");
    let env = isolated();
    env.busybox_base("busybox:latest");
    let reg = Registry::start(None);
    let image = format!("{}/test/pushed:1", reg.host());
    build(
        &env,
        &["-t", &image, "--push"],
        "FROM busybox\nRUN echo \"Asia/Shanghai\" > /etc/timezone\nLABEL Version=1.0\nCMD [\"cat\", \"/etc/timezone\"]\n",
        true,
    );
    // dockerd treats 127.0.0.0/8 registries as insecure (plain HTTP).
    let d = start_dockerd();
    let out = run(docker(&d).args(["pull", &image]));
    assert!(
        out.contains(&format!("Downloaded newer image for {image}")),
        "{out}"
    );
    let inspect = run(docker(&d).args(["image", "inspect", &image]));
    let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(v[0]["Config"]["Labels"]["Version"], "1.0");
    let out = run(docker(&d).args(["run", "--rm", "--network=none", &image]));
    assert_eq!(out, "Asia/Shanghai\n");
}

#[test]
fn an_image_pushed_on_a_base_left_in_its_registry_is_pulled_and_run_by_a_real_engine() {
    use common::registry::{Registry, build, busybox_layout, isolated, push};
    require_tool("docker", "docker.io");
    let seed = Env::new();
    let layout = seed.path("layout");
    busybox_layout(&seed, &layout);
    let reg = Registry::start_logged();
    let base = format!("{}/library/busybox:latest", reg.host());
    push(&layout, "latest", &base, None, false);
    // Config instructions and COPY --link only: the base stays in the
    // registry (nothing of it fetched), its layers are mounted.
    let env = isolated();
    let image = format!("{}/test/lazy:1", reg.host());
    build(
        &env,
        &["-t", &image, "--push"],
        &format!(
            "FROM {base}\nLABEL Version=2.0\nCOPY --link <<EOT /hello\nhello from a lazy base\nEOT\nCMD [\"cat\", \"/hello\"]\n"
        ),
        true,
    );
    let reqs = reg.requests();
    let config = remote_config(&base);
    assert!(
        !reqs
            .iter()
            .any(|q| q.starts_with("GET /v2/library/busybox/blobs/") && !q.contains(&config)),
        "{reqs:#?}"
    );
    let d = start_dockerd();
    run(docker(&d).args(["pull", &image]));
    let inspect = run(docker(&d).args(["image", "inspect", &image]));
    let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(v[0]["Config"]["Labels"]["Version"], "2.0");
    let out = run(docker(&d).args([
        "run",
        "--rm",
        "--network=none",
        &image,
        "sh",
        "-c",
        "cat /hello && ls /bin/busybox",
    ]));
    assert_eq!(out, "hello from a lazy base\n/bin/busybox\n");
}

/// The config digest of an image in a registry.
fn remote_config(image: &str) -> String {
    common::registry::remote_manifest(image)["config"]["digest"]
        .as_str()
        .expect("config digest")
        .to_string()
}
