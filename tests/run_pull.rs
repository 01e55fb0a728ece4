//! `rbuild run` of an image not in the store pulls it first (`--pull
//! missing`, Docker's default), from a real registry on 127.0.0.1;
//! `--pull never` and RBUILD_OFFLINE refuse instead.

mod common;
use common::registry::{busybox_registry, isolated};

#[test]
fn a_missing_image_is_pulled_then_run() {
    let (_seed, _layout, _reg, host) = busybox_registry();
    let env = isolated();
    let image = format!("{host}/library/busybox:latest");
    let run = |extra: &[&str], offline: bool| {
        let mut c = env.rbuild();
        if !offline {
            c.env_remove("RBUILD_OFFLINE");
        }
        c.env("DOCKER_CONFIG", env.path("docker-config"))
            .env("RBUILD_CONFIG", env.path("registries.toml"))
            .arg("run")
            .args(extra)
            .args(["--rm", "--network", "none", &image, "echo", "ran"])
            .output()
            .expect("rbuild run")
    };
    let o = run(&["--pull", "never"], false);
    assert_eq!(o.status.code(), Some(125));
    let o = run(&[], true);
    assert_eq!(o.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&o.stderr).contains("RBUILD_OFFLINE"));
    let o = run(&[], false);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout), "ran\n");
    assert!(String::from_utf8_lossy(&o.stderr).contains("pulled from"));
    // Stored now: no registry needed any more.
    let o = run(&["--pull", "never"], true);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "ran\n");
}
