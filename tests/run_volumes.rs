//! `rbuild run` volumes on images rbuild built: bind mounts (created when
//! missing, `:ro` enforced), named volumes (kept in the store, filled from
//! the image on first use, outliving containers), anonymous volumes (the
//! image's VOLUMEs, `-v /path`; removed with `--rm`), tmpfs, and
//! `rbuild volume ls|create|inspect|rm`.

mod common;
use common::Env;
use std::process::Output;

fn with_image() -> Env {
    let env = Env::new();
    env.busybox_base("test/busybox:latest");
    let ctx = env.project(
        "vol",
        &[(
            "Dockerfile",
            "FROM test/busybox:latest\nRUN mkdir -p /data /seed && echo from-image > /seed/file && chown -R nobody /seed\nVOLUME /data\n",
        )],
    );
    env.build_ok(&["-t", "test/vol:1"], &ctx);
    env
}

fn run(env: &Env, args: &[&str]) -> Output {
    env.rbuild()
        .arg("run")
        .args(args)
        .output()
        .expect("rbuild run")
}

fn ok(env: &Env, args: &[&str]) -> String {
    let o = run(env, args);
    assert!(
        o.status.success(),
        "rbuild run {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn volume(env: &Env, args: &[&str]) -> Output {
    env.rbuild()
        .arg("volume")
        .args(args)
        .output()
        .expect("rbuild volume")
}

#[test]
fn bind_mounts_are_created_and_read_only_is_enforced() {
    let env = with_image();
    let host = env.path("host/made/by/run");
    let spec = format!("{}:/mnt", host.display());
    ok(
        &env,
        &[
            "--rm",
            "-v",
            &spec,
            "test/vol:1",
            "sh",
            "-c",
            "echo hi > /mnt/f",
        ],
    );
    assert_eq!(std::fs::read_to_string(host.join("f")).unwrap(), "hi\n");
    let ro = format!("{spec}:ro");
    let out = ok(
        &env,
        &[
            "--rm",
            "-v",
            &ro,
            "test/vol:1",
            "sh",
            "-c",
            "cat /mnt/f; echo x > /mnt/g || echo refused",
        ],
    );
    assert_eq!(out, "hi\nrefused\n");
    assert!(!host.join("g").exists());
    // --mount type=bind needs an existing source; readonly too.
    let m = format!("type=bind,source={},target=/m,readonly", host.display());
    let out = ok(
        &env,
        &[
            "--rm",
            "--mount",
            &m,
            "test/vol:1",
            "sh",
            "-c",
            "touch /m/x || echo refused",
        ],
    );
    assert_eq!(out, "refused\n");
    let missing = format!("type=bind,source={},target=/m", env.path("nope").display());
    let o = run(&env, &["--rm", "--mount", &missing, "test/vol:1", "true"]);
    assert_eq!(o.status.code(), Some(125));
    let t = ok(
        &env,
        &[
            "--rm",
            "--mount",
            "type=tmpfs,target=/scratch",
            "test/vol:1",
            "sh",
            "-c",
            "echo t > /scratch/t && cat /scratch/t",
        ],
    );
    assert_eq!(t, "t\n");
}

#[test]
fn named_volumes_persist_and_start_with_the_images_content() {
    let env = with_image();
    // First use: filled from the image at the mount path, owner included.
    let out = ok(
        &env,
        &[
            "--rm",
            "-v",
            "seed:/seed",
            "test/vol:1",
            "sh",
            "-c",
            "cat /seed/file; stat -c %U /seed; echo added > /seed/new",
        ],
    );
    assert_eq!(out, "from-image\nnobody\n");
    // A later container sees what the first one wrote.
    let out = ok(
        &env,
        &[
            "--rm",
            "-v",
            "seed:/other",
            "test/vol:1",
            "cat",
            "/other/new",
            "/other/file",
        ],
    );
    assert_eq!(out, "added\nfrom-image\n");
    let data = env.root().join("volumes/seed/_data");
    assert_eq!(
        std::fs::read_to_string(data.join("new")).unwrap(),
        "added\n"
    );
    // :ro on a volume.
    let out = ok(
        &env,
        &[
            "--rm",
            "-v",
            "seed:/seed:ro",
            "test/vol:1",
            "sh",
            "-c",
            "rm /seed/new || echo refused",
        ],
    );
    assert!(out.ends_with("refused\n"), "{out}");
    // The volume commands.
    let ls = volume(&env, &["ls", "-q"]);
    assert!(
        String::from_utf8_lossy(&ls.stdout)
            .lines()
            .any(|l| l == "seed")
    );
    let inspect = volume(&env, &["inspect", "seed"]);
    let v: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(v[0]["Name"], "seed");
    assert_eq!(v[0]["Driver"], "local");
    assert_eq!(v[0]["Mountpoint"], data.to_str().unwrap());
    let created = volume(&env, &["create", "made"]);
    assert_eq!(String::from_utf8_lossy(&created.stdout), "made\n");
    assert!(volume(&env, &["rm", "seed", "made"]).status.success());
    assert!(!data.exists());
    assert!(!volume(&env, &["inspect", "seed"]).status.success());
    assert!(!volume(&env, &["rm", "seed"]).status.success());
}

#[test]
fn a_volume_in_use_is_not_removed() {
    let env = with_image();
    let dir = env.path("flag");
    std::fs::create_dir_all(&dir).unwrap();
    let bind = format!("{}:/h", dir.display());
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("rbuild"))
        .env("RBUILD_ROOT", env.root())
        .args([
            "run",
            "--rm",
            "--init",
            "-v",
            "busy:/b",
            "-v",
            &bind,
            "test/vol:1",
            "sh",
            "-c",
            "touch /h/ready; sleep 30",
        ])
        .spawn()
        .unwrap();
    for _ in 0..200 {
        if dir.join("ready").exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // Another container uses it at the same time.
    let out = ok(
        &env,
        &[
            "--rm",
            "-v",
            "busy:/b",
            "test/vol:1",
            "sh",
            "-c",
            "echo shared",
        ],
    );
    assert_eq!(out, "shared\n");
    let rm = volume(&env, &["rm", "busy"]);
    assert!(!rm.status.success());
    assert!(String::from_utf8_lossy(&rm.stderr).contains("in use"));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    child.wait().unwrap();
    assert!(volume(&env, &["rm", "busy"]).status.success());
}

#[test]
fn anonymous_volumes_hold_the_images_volume_paths_and_go_with_rm() {
    let env = with_image();
    let names = |env: &Env| -> Vec<String> {
        let o = volume(env, &["ls", "-q"]);
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(String::from)
            .collect()
    };
    // The image's VOLUME /data is a volume: with --rm it is gone afterwards.
    let out = ok(
        &env,
        &[
            "--rm",
            "-v",
            "/extra",
            "test/vol:1",
            "sh",
            "-c",
            "grep -c ' /data \\| /extra ' /proc/self/mountinfo",
        ],
    );
    assert_eq!(out, "2\n");
    assert!(names(&env).is_empty(), "{:?}", names(&env));
    // Without --rm they stay, with what the container wrote.
    ok(&env, &["test/vol:1", "sh", "-c", "echo kept > /data/f"]);
    let left = names(&env);
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].len(), 64);
    let f = env.root().join("volumes").join(&left[0]).join("_data/f");
    assert_eq!(std::fs::read_to_string(f).unwrap(), "kept\n");
    // A user mount on the VOLUME path replaces the anonymous volume.
    let host = env.path("data-host");
    let spec = format!("{}:/data", host.display());
    ok(
        &env,
        &[
            "--rm",
            "-v",
            &spec,
            "test/vol:1",
            "sh",
            "-c",
            "echo bound > /data/b",
        ],
    );
    assert!(host.join("b").exists());
    assert_eq!(names(&env).len(), 1);
    // prune: anonymous ones go, named ones stay (unless --all).
    assert!(volume(&env, &["create", "named"]).status.success());
    assert!(volume(&env, &["prune"]).status.success());
    assert_eq!(names(&env), ["named"]);
    assert!(volume(&env, &["prune", "--all"]).status.success());
    assert!(names(&env).is_empty());
}

/// Mount targets are resolved inside the container's root: a link in the
/// image pointing at an absolute path leads to that path in the image,
/// never on the host.
#[test]
fn mount_targets_through_links_stay_inside_the_container() {
    let env = with_image();
    let host_dir = env.path("host-target");
    std::fs::create_dir_all(&host_dir).unwrap();
    let ctx = env.project(
        "links",
        &[(
            "Dockerfile",
            &format!(
                "FROM test/vol:1\nRUN ln -s {} /esc && ln -s ../../../../../.. /up\n",
                host_dir.display()
            ),
        )],
    );
    env.build_ok(&["-t", "test/links:1"], &ctx);
    let src = env.path("src");
    let bind = format!("{}:/esc/m", src.display());
    let up = format!("{}:/up/tmp/u", src.display());
    let out = ok(
        &env,
        &[
            "--rm",
            "-v",
            &bind,
            "-v",
            &up,
            "-v",
            "linked:/esc/v",
            "test/links:1",
            "sh",
            "-c",
            "echo in > /esc/m/f; echo v > /esc/v/f; ls /tmp/u",
        ],
    );
    assert_eq!(out, "f\n", "the bind landed inside the container");
    assert_eq!(std::fs::read_to_string(src.join("f")).unwrap(), "in\n");
    assert!(
        std::fs::read_dir(&host_dir).unwrap().next().is_none(),
        "nothing was mounted or created on the host through the link"
    );
    assert!(!std::path::Path::new("/tmp/u").exists());
}
