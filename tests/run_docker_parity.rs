//! An image built by another builder runs under `rbuild run` as under
//! `docker run`: Docker's classic builder builds it (FROM the busybox base
//! rbuild made and `docker load`ed), `docker save` and skopeo turn it into
//! an OCI layout, and rbuild runs it from there (`oci-layout://`). Output,
//! environment, user, working directory, the image's VOLUME (filled from
//! the image) and exit codes match the engine's for the same arguments.

mod common;
use common::dockerd::Dockerd;
use common::{Env, require_tool, run};
use std::process::Output;

/// dockerd 20.10 here fails a container start now and then with runc's
/// `stat /bin/sh: permission denied` (seen with images of any builder):
/// such a start is tried again, up to three times.
fn engine(mut cmd: impl FnMut() -> std::process::Command) -> Output {
    let mut tries = 0;
    loop {
        let o = cmd().output().unwrap();
        let flake = String::from_utf8_lossy(&o.stderr).contains("stat /bin/sh: permission denied");
        tries += 1;
        if !flake || tries == 3 {
            return o;
        }
    }
}

fn both(d: &Dockerd, env: &Env, layout: &str, flags: &[&str], args: &[&str]) -> (Output, Output) {
    let docker = engine(|| {
        let mut c = d.docker();
        c.args(["run", "--rm", "--network=none"])
            .args(flags)
            .arg("rbuild-test/parity:1")
            .args(args);
        c
    });
    let rbuild = env
        .rbuild()
        .args(["run", "--rm", "--network=none"])
        .args(flags)
        .arg(layout)
        .args(args)
        .output()
        .unwrap();
    (docker, rbuild)
}

/// `HOSTNAME` differs by design (a container id each); the rest is compared.
fn normal(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| !l.starts_with("HOSTNAME="))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn an_image_built_by_docker_runs_as_docker_runs_it() {
    let skopeo = require_tool("skopeo", "skopeo");
    let env = Env::new();
    env.busybox_base("rbuild.local/busybox:latest");
    let base_tar = env.path("base.tar");
    let base_ctx = env.path("busybox-ctx");
    env.build_ok(
        &[
            "-t",
            "rbuild.local/busybox:latest",
            "-o",
            &format!(
                "type=docker,dest={},name=rbuild.local/busybox:latest",
                base_tar.display()
            ),
        ],
        &base_ctx,
    );
    let d = Dockerd::start();
    run(d.docker().arg("load").arg("-i").arg(&base_tar));
    let ctx = env.project(
        "parity",
        &[(
            "Dockerfile",
            "FROM rbuild.local/busybox:latest\nRUN adduser -D app && addgroup -g 2000 extra && addgroup app extra && mkdir /data && echo seeded > /data/seed && chown -R app /data\nENV GREETING=hello\nWORKDIR /data\nUSER app\nVOLUME /data\nENTRYPOINT [\"/bin/sh\", \"-c\"]\nCMD [\"echo $GREETING; id; pwd; ls -l /data | tail -n +2 | sed 's/ .* / /'\"]\n",
        )],
    );
    let built = engine(|| {
        let mut c = d.docker();
        c.env("DOCKER_BUILDKIT", "0")
            .args([
                "build",
                "-q",
                "--network=none",
                "-t",
                "rbuild-test/parity:1",
            ])
            .arg(&ctx);
        c
    });
    assert!(
        built.status.success(),
        "docker build: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    let saved = env.path("parity.tar");
    run(d
        .docker()
        .args(["save", "-o"])
        .arg(&saved)
        .arg("rbuild-test/parity:1"));
    let layout = env.path("parity-oci");
    run(std::process::Command::new(skopeo)
        .arg("copy")
        .arg(format!("docker-archive:{}", saved.display()))
        .arg(format!("oci:{}:parity", layout.display())));
    let layout = format!("oci-layout://{}:parity", layout.display());
    let cases: [(&[&str], &[&str]); 6] = [
        (&[], &[]),
        (&[], &["echo args replace CMD: $0", "x"]),
        (&["--entrypoint", "env"], &[]),
        (
            &["-u", "root", "-w", "/", "-e", "GREETING=flag"],
            &["echo $GREETING; id; pwd"],
        ),
        (&["--entrypoint", "id"], &["-G"]),
        (&[], &["exit 3"]),
    ];
    for (flags, args) in cases {
        let (docker, rbuild) = both(&d, &env, &layout, flags, args);
        assert_eq!(
            rbuild.status.code(),
            docker.status.code(),
            "{flags:?} {args:?}: {}",
            String::from_utf8_lossy(&rbuild.stderr)
        );
        let (mut dl, mut rl): (Vec<String>, Vec<String>) = (
            normal(&docker).lines().map(String::from).collect(),
            normal(&rbuild).lines().map(String::from).collect(),
        );
        if flags.contains(&"env") {
            dl.sort();
            rl.sort();
        }
        assert_eq!(rl, dl, "{flags:?} {args:?}");
        if flags.is_empty() && args.is_empty() {
            assert_eq!(
                dl[..3],
                [
                    "hello",
                    "uid=1000(app) gid=1000(app) groups=1000(app),2000(extra)",
                    "/data"
                ]
            );
            assert!(
                dl[3].contains("seed"),
                "the volume holds the image's file: {dl:?}"
            );
        }
    }
    // Not found and not runnable, as the engine says.
    for cmd in ["no-such-command", "/etc"] {
        let (docker, rbuild) = both(&d, &env, &layout, &["--entrypoint", cmd], &[]);
        assert_eq!(rbuild.status.code(), docker.status.code(), "{cmd}");
    }
}
