//! A build by an ordinary user: RUN gets a fresh user namespace where that
//! user is root, an unprivileged overlay (userxattr) and bound host devices.

mod common;
use common::{copy_dir, require_file, require_tool};
use std::os::unix::fs::PermissionsExt;
use std::process::Command as Proc;

fn chown_tree(p: &std::path::Path) {
    let st = Proc::new("chown")
        .args(["-R", "65534:65534"])
        .arg(p)
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn an_unprivileged_user_builds_with_run_in_a_user_namespace() {
    if !rustix::process::geteuid().is_root() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI must run the tests as root"
        );
        eprintln!("SKIPPED: needs root to switch to an unprivileged user (CI runs as root)");
        return;
    }
    let setpriv = require_tool("setpriv", "util-linux");
    let busybox = require_file("/bin/busybox", "busybox-static");
    let dir = tempfile::Builder::new()
        .prefix("rbuild-rootless")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let root = dir.path();
    copy_dir(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("demo/busybox-base"),
        &root.join("base"),
    );
    std::fs::copy(busybox, root.join("base/busybox")).unwrap();
    std::fs::create_dir_all(root.join("app")).unwrap();
    std::fs::write(
        root.join("app/Dockerfile"),
        "FROM rl/busybox:latest\nRUN --network=none echo \"uid $(id -u) on $(hostname)\" > /r.txt && mkdir /d && echo x > /d/x\nRUN --network=none rm /d/x && echo kept > /d/y\n",
    )
    .unwrap();
    let bin = root.join("rbuild");
    std::fs::copy(assert_cmd::cargo::cargo_bin("rbuild"), &bin).unwrap();
    chown_tree(root);
    let try_run = |args: &[&str]| {
        Proc::new(&setpriv)
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&bin)
            .args(args)
            .env("HOME", root)
            .env("RBUILD_ROOT", root.join("store"))
            .current_dir(root)
            .output()
            .unwrap()
    };
    let run = |args: &[&str]| {
        let out = try_run(args);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            out.status.success(),
            "rbuild {args:?} as nobody failed:\n{err}"
        );
    };
    run(&[
        "build",
        "--progress",
        "plain",
        "-t",
        "rl/busybox:latest",
        "base",
    ]);
    run(&[
        "build",
        "--progress",
        "plain",
        "-o",
        "type=local,dest=out",
        "app",
    ]);
    let out = root.join("out");
    assert_eq!(
        std::fs::read_to_string(out.join("r.txt")).unwrap(),
        "uid 0 on buildkitsandbox\n"
    );
    assert!(
        !out.join("d/x").exists(),
        "deletions in a rootless RUN are whiteouts too"
    );
    assert_eq!(std::fs::read_to_string(out.join("d/y")).unwrap(), "kept\n");
    // The default network (slirp4netns) needs /dev/net/tun, which some hosts
    // keep root-only: then the step fails and says what to do instead.
    std::fs::create_dir_all(root.join("net")).unwrap();
    std::fs::write(
        root.join("net/Dockerfile"),
        "FROM rl/busybox:latest\nRUN grep -c tap0 /proc/net/dev > /tap.txt\n",
    )
    .unwrap();
    chown_tree(&root.join("net"));
    let tun_open = Proc::new(&setpriv)
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .args(["sh", "-c", "exec 3<>/dev/net/tun"])
        .status()
        .unwrap()
        .success();
    let args = [
        "build",
        "--progress",
        "plain",
        "-o",
        "type=local,dest=netout",
        "net",
    ];
    if tun_open {
        run(&args);
        let tap = std::fs::read_to_string(root.join("netout/tap.txt")).unwrap();
        assert_eq!(tap, "1\n");
    } else {
        let out = try_run(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(
            err.contains("/dev/net/tun") && err.contains("--network=none"),
            "{err}"
        );
    }
}
