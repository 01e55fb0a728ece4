//! Round trips with a real Docker engine (docker.io 20.10, started
//! privately): `rbuild save` → `docker load` → `docker run`; `docker save`
//! (of an image Docker built with BuildKit) → `rbuild load` → the image is
//! listed, inspected and built on; `rbuild build --load` → `docker run`.

mod common;
use common::dockerd::Dockerd;
use common::{Env, require_file, run};
use std::io::Write;

/// A context with busybox and a message.
fn context(env: &Env, name: &str, dockerfile: &str) -> std::path::PathBuf {
    let ctx = env.project(
        name,
        &[
            ("Dockerfile", dockerfile),
            ("msg.txt", "from the archive\n"),
        ],
    );
    let busybox = require_file("/bin/busybox", "busybox-static");
    std::fs::copy(busybox, ctx.join("busybox")).unwrap();
    ctx
}

/// `docker run --rm --network=none ARGS...`.
fn docker_run(d: &Dockerd, args: &[&str]) -> std::process::Command {
    let mut c = d.docker();
    c.args(["run", "--rm", "--network=none"]).args(args);
    c
}

fn ok(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn rbuild_save_loads_and_runs_in_docker() {
    let env = Env::new();
    let ctx = context(
        &env,
        "app",
        "FROM scratch\nCOPY busybox /bin/busybox\nCOPY msg.txt /msg.txt\nENTRYPOINT [\"/bin/busybox\"]\nCMD [\"cat\", \"/msg.txt\"]\n",
    );
    ok(env
        .rbuild()
        .args(["build", "-q", "-t", "app:1"])
        .arg(&ctx)
        .output()
        .unwrap());
    let ctx2 = context(
        &env,
        "app2",
        "FROM app:1\nRUN [\"/bin/busybox\", \"sh\", \"-c\", \"echo second > /msg.txt\"]\n",
    );
    ok(env
        .rbuild()
        .args(["build", "-q", "-t", "example.com/team/app:2"])
        .arg(&ctx2)
        .output()
        .unwrap());
    let archive = env.path("both.tar");
    ok(env
        .rbuild()
        .args(["save", "-o"])
        .arg(&archive)
        .args(["app:1", "example.com/team/app:2"])
        .output()
        .unwrap());
    let d = Dockerd::start();
    let out = run(d.docker().arg("load").arg("-i").arg(&archive));
    assert!(out.contains("Loaded image: app:1"), "{out}");
    assert!(
        out.contains("Loaded image: example.com/team/app:2"),
        "{out}"
    );
    let out = run(&mut docker_run(&d, &["app:1"]));
    assert_eq!(out, "from the archive\n");
    let out = run(&mut docker_run(&d, &["example.com/team/app:2"]));
    assert_eq!(out, "second\n");
    // Docker sees the same image ID rbuild does.
    let id = ok(env
        .rbuild()
        .args(["inspect", "-f", "{{.Id}}", "app:1"])
        .output()
        .unwrap());
    let docker_id = run(d
        .docker()
        .args(["image", "inspect", "-f", "{{.Id}}", "app:1"]));
    assert_eq!(id, docker_id);
}

#[test]
fn docker_save_loads_into_rbuild_and_is_built_on() {
    let env = Env::new();
    let d = Dockerd::start();
    let ctx = context(
        &env,
        "dctx",
        "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\nCOPY msg.txt /srv/msg.txt\nRUN echo built by docker >> /srv/msg.txt && ln /srv/msg.txt /srv/hard && rm /bin/vi\nENV FROM_DOCKER=1\nWORKDIR /srv\nLABEL maker=docker\nCMD [\"cat\", \"msg.txt\"]\n",
    );
    run(d
        .docker()
        .env("DOCKER_BUILDKIT", "1")
        .args(["build", "--network=none", "-t", "made/by-docker:1"])
        .arg(&ctx));
    let docker_id = run(d
        .docker()
        .args(["image", "inspect", "-f", "{{.Id}}", "made/by-docker:1"]));
    // `docker save` to a file, loaded with -i; and gzip-compressed on stdin.
    let archive = env.path("docker-save.tar");
    run(d
        .docker()
        .args(["save", "-o"])
        .arg(&archive)
        .arg("made/by-docker:1"));
    let out = ok(env
        .rbuild()
        .args(["load", "-i"])
        .arg(&archive)
        .output()
        .unwrap());
    assert_eq!(out, "Loaded image: made/by-docker:1\n");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&std::fs::read(&archive).unwrap()).unwrap();
    let root2 = env.path("store2");
    let out = env
        .rbuild()
        .env("RBUILD_ROOT", &root2)
        .arg("load")
        .write_stdin(gz.finish().unwrap())
        .output()
        .unwrap();
    assert_eq!(ok(out), "Loaded image: made/by-docker:1\n");
    // Listed and inspected as Docker shows it (same ID, same config).
    let listed = ok(env
        .rbuild()
        .args(["images", "--no-trunc", "made/by-docker"])
        .output()
        .unwrap());
    assert!(listed.contains(docker_id.trim()), "{listed}");
    let v: serde_json::Value = serde_json::from_str(&ok(env
        .rbuild()
        .args(["inspect", "made/by-docker:1"])
        .output()
        .unwrap()))
    .unwrap();
    let dv: serde_json::Value = serde_json::from_str(&run(d.docker().args([
        "image",
        "inspect",
        "made/by-docker:1",
    ])))
    .unwrap();
    for key in ["Id", "RepoTags", "Architecture", "Os", "Size"] {
        assert_eq!(v[0][key], dv[0][key], "{key}");
    }
    assert_eq!(v[0]["RootFS"], dv[0]["RootFS"]);
    for key in ["Env", "Cmd", "WorkingDir", "Labels", "Entrypoint"] {
        assert_eq!(v[0]["Config"][key], dv[0]["Config"][key], "Config.{key}");
    }
    // The layers' content (files, hard links, deletions) as Docker runs it.
    let ctx3 = env.project(
        "on-docker",
        &[(
            "Dockerfile",
            "FROM made/by-docker:1\nRUN cat msg.txt hard > /seen && (test -e /bin/vi && echo vi || echo no-vi) >> /seen && echo \"$FROM_DOCKER\" >> /seen\n",
        )],
    );
    let out_dir = env.path("exported");
    ok(env
        .rbuild()
        .args(["build", "-q", "-o"])
        .arg(format!("type=local,dest={}", out_dir.display()))
        .arg(&ctx3)
        .output()
        .unwrap());
    let seen = std::fs::read_to_string(out_dir.join("seen")).unwrap();
    let docker_seen = run(&mut docker_run(
        &d,
        &[
            "made/by-docker:1",
            "sh",
            "-c",
            "cat msg.txt hard; (test -e /bin/vi && echo vi || echo no-vi); echo \"$FROM_DOCKER\"",
        ],
    ));
    assert_eq!(seen, docker_seen);
    assert_eq!(
        seen,
        "from the archive\nbuilt by docker\nfrom the archive\nbuilt by docker\nno-vi\n1\n"
    );
    // `docker save` → `rbuild load` → `rbuild run`: its CMD, WORKDIR and ENV
    // as `docker run` gives them.
    let ran = ok(env
        .rbuild()
        .args(["run", "--rm", "--network", "none", "made/by-docker:1"])
        .output()
        .unwrap());
    assert_eq!(ran, run(&mut docker_run(&d, &["made/by-docker:1"])));
    let out = env
        .rbuild()
        .args(["run", "--rm", "--network", "none", "made/by-docker:1"])
        .args(["sh", "-c", "pwd; echo $FROM_DOCKER; exit 4"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "/srv\n1\n");
    // And back: the layers keep their bytes, so Docker takes the image again
    // under the same ID.
    let back = env.path("back.tar");
    ok(env
        .rbuild()
        .args(["save", "-o"])
        .arg(&back)
        .arg("made/by-docker:1")
        .output()
        .unwrap());
    // Saved as they came (uncompressed tars, named by their diff_ids), not
    // compressed again.
    let mut ar = tar::Archive::new(std::fs::File::open(&back).unwrap());
    let manifest: serde_json::Value = ar
        .entries()
        .unwrap()
        .flatten()
        .find(|e| e.path().unwrap().to_str() == Some("manifest.json"))
        .map(|e| serde_json::from_reader(e).unwrap())
        .unwrap();
    let layers: Vec<String> = v[0]["RootFS"]["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| format!("blobs/sha256/{}", &l.as_str().unwrap()[7..]))
        .collect();
    assert_eq!(manifest[0]["Layers"], serde_json::json!(layers));
    run(d.docker().args(["rmi", "made/by-docker:1"]));
    let out = run(d.docker().arg("load").arg("-i").arg(&back));
    assert!(out.contains("Loaded image: made/by-docker:1"), "{out}");
    let again = run(d
        .docker()
        .args(["image", "inspect", "-f", "{{.Id}}", "made/by-docker:1"]));
    assert_eq!(again, docker_id);
    let out = run(&mut docker_run(&d, &["made/by-docker:1"]));
    assert_eq!(out, "from the archive\nbuilt by docker\n");
}

#[test]
fn build_load_puts_the_image_into_the_engine() {
    let env = Env::new();
    let ctx = context(
        &env,
        "app",
        "FROM scratch\nCOPY busybox /bin/busybox\nCOPY msg.txt /msg.txt\nCMD [\"/bin/busybox\", \"cat\", \"/msg.txt\"]\n",
    );
    let d = Dockerd::start();
    let out = env
        .rbuild()
        .env("DOCKER_HOST", d.host())
        .args([
            "build",
            "--progress",
            "plain",
            "--load",
            "-t",
            "loaded/app:1",
        ])
        .arg(&ctx)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("Loaded image: loaded/app:1"), "{err}");
    let out = run(&mut docker_run(&d, &["loaded/app:1"]));
    assert_eq!(out, "from the archive\n");
    // No engine at DOCKER_HOST: a clear error naming the socket, exit 1.
    let missing = env.path("no-engine.sock");
    let out = env
        .rbuild()
        .env("DOCKER_HOST", format!("unix://{}", missing.display()))
        .args(["build", "-q", "--load", "-t", "loaded/app:2"])
        .arg(&ctx)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "docker engine at unix://{}: cannot connect",
            missing.display()
        )),
        "{err}"
    );
}
