//! `rbuild run` by an ordinary user, rootless as RUN is: the container's
//! root is that user in a user namespace of its own; volumes (filled from
//! the image) and bind mounts work; another USER is refused, as in RUN.

mod common;
use common::{copy_dir, require_file, require_tool};
use std::os::unix::fs::PermissionsExt;
use std::process::Command as Proc;

#[test]
fn an_unprivileged_user_runs_an_image_rootless() {
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
        .prefix("rbuild-rootless-run")
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
    std::fs::create_dir_all(root.join("host")).unwrap();
    std::fs::write(
        root.join("app/Dockerfile"),
        "FROM rl/busybox:latest\nRUN --network=none mkdir /data && echo seeded > /data/f\nVOLUME /data\n",
    )
    .unwrap();
    let bin = root.join("rbuild");
    std::fs::copy(assert_cmd::cargo::cargo_bin("rbuild"), &bin).unwrap();
    let st = Proc::new("chown")
        .args(["-R", "65534:65534"])
        .arg(root)
        .status()
        .unwrap();
    assert!(st.success());
    let rbuild = |args: &[&str]| {
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
    for args in [
        &["build", "-q", "-t", "rl/busybox:latest", "base"][..],
        &["build", "-q", "-t", "rl/app:1", "app"],
    ] {
        let o = rbuild(args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let bind = format!("{}:/h", root.join("host").display());
    let o = rbuild(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        &bind,
        "-v",
        "vol:/data",
        "rl/app:1",
        "sh",
        "-c",
        "id -u; cat /data/f; echo new > /data/g; echo bound > /h/b; exit 4",
    ]);
    assert_eq!(
        o.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout), "0\nseeded\n");
    assert_eq!(
        std::fs::read_to_string(root.join("host/b")).unwrap(),
        "bound\n"
    );
    let o = rbuild(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        "vol:/v",
        "rl/app:1",
        "cat",
        "/v/g",
    ]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "new\n");
    let o = rbuild(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-u",
        "nobody",
        "rl/app:1",
        "id",
    ]);
    assert_eq!(o.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&o.stderr).contains("needs rbuild to run as root"));
}
