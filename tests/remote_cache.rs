//! The shared build cache (`--cache-to`, `--cache-from`) through a real
//! registry (Debian's `docker-registry` on 127.0.0.1, behind htpasswd
//! auth) and an OCI layout directory: a fresh store in another directory
//! takes every step from the imported cache and makes the same image; bad
//! caches are warnings, never a wrong layer.

mod common;

use common::Env;
use common::registry::*;
use std::path::Path;

const USER: (&str, &str) = ("ci", "s3cret");
const EPOCH: &str = "SOURCE_DATE_EPOCH=1700000000";

/// An authenticated registry holding the busybox base; its seed env and host.
fn auth_registry() -> (Env, Registry, String) {
    let seed = Env::new();
    let layout = seed.path("layout");
    busybox_layout(&seed, &layout);
    let reg = Registry::start(Some(USER));
    let host = reg.host();
    let creds = format!("{}:{}", USER.0, USER.1);
    push(
        &layout,
        "latest",
        &format!("{host}/library/busybox:latest"),
        Some(&creds),
        false,
    );
    (seed, reg, host)
}

/// A two-stage project (a side stage read by COPY --from) in `dir`.
fn project(env: &Env, dir: &str, host: &str, text: &str) -> std::path::PathBuf {
    let df = format!(
        "FROM {host}/library/busybox AS side\n\
         RUN echo side > /side\n\
         FROM {host}/library/busybox\n\
         COPY a.txt /a.txt\n\
         COPY --from=side /side /side\n\
         RUN cat /a.txt /side > /both\n\
         ENV DONE=1\n"
    );
    env.project(dir, &[("Dockerfile", &df), ("a.txt", text)])
}

/// A logged-in isolated environment.
fn logged_in(host: &str) -> Env {
    let env = isolated();
    docker_login(&env, host, &format!("{}:{}", USER.0, USER.1));
    env
}

/// `rbuild build` in `env` with `args` on `ctx`; (success, stderr).
fn rbuild(env: &Env, args: &[&str], ctx: &Path) -> (bool, String) {
    let out = env
        .rbuild()
        .env_remove("RBUILD_OFFLINE")
        .env("DOCKER_CONFIG", env.path("docker-config"))
        .env("RBUILD_CONFIG", env.path("registries.toml"))
        .args(["build", "--progress", "plain", "--build-arg", EPOCH])
        .args(args)
        .arg(ctx)
        .output()
        .expect("run rbuild");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(env: &Env, args: &[&str], ctx: &Path) -> String {
    let (success, err) = rbuild(env, args, ctx);
    assert!(success, "rbuild {args:?}:\n{err}");
    err
}

/// (image ID, manifest digest) from `--metadata-file`.
fn digests(env: &Env, file: &str) -> (String, String) {
    let m: serde_json::Value = serde_json::from_str(&read(env.path(file))).expect("metadata");
    (
        m["containerimage.config.digest"].as_str().unwrap().into(),
        m["containerimage.digest"].as_str().unwrap().into(),
    )
}

fn meta(env: &Env, name: &str) -> String {
    env.path(name).display().to_string()
}

#[test]
fn a_fresh_store_takes_every_step_from_the_registry_cache() {
    let (_seed, _reg, host) = auth_registry();
    let cache = format!("{host}/cache/app:buildcache");
    let a = logged_in(&host);
    let ctx_a = project(&a, "first", &host, "hello\n");
    let to = format!("type=registry,ref={cache},mode=max");
    let log = ok(
        &a,
        &["--cache-to", &to, "--metadata-file", &meta(&a, "m.json")],
        &ctx_a,
    );
    assert!(log.contains("exported cache to"), "{log}");
    let m = remote_manifest_as(&cache);
    assert_eq!(
        m["config"]["mediaType"],
        "application/vnd.rbuild.cache.config.v1+json"
    );

    // Another machine: a fresh store, the project in another directory.
    let b = logged_in(&host);
    let ctx_b = project(&b, "elsewhere/checkout", &host, "hello\n");
    let from = format!("type=registry,ref={cache}");
    let log = ok(
        &b,
        &[
            "--cache-from",
            &from,
            "--explain",
            "--metadata-file",
            &meta(&b, "m.json"),
        ],
        &ctx_b,
    );
    for step in [
        "RUN echo side > /side",
        "COPY a.txt /a.txt",
        "COPY --from=side /side /side",
        "RUN cat /a.txt /side > /both",
    ] {
        assert!(
            imported_line_for(&log, step, &cache),
            "{step} not from the cache:\n{log}"
        );
    }
    assert!(log.contains("0 steps run"), "{log}");
    assert_eq!(digests(&a, "m.json"), digests(&b, "m.json"), "{log}");

    // A changed file: the steps from it on run (ENV's key changes too);
    // the side stage still comes from the cache.
    let ctx_c = project(&b, "changed", &host, "changed\n");
    let log = ok(&b, &["--cache-from", &from], &ctx_c);
    assert!(log.contains("4 steps run, 1 cached"), "{log}");
}

/// Whether the plain log says that `step` came from the imported `cache`.
fn imported_line_for(log: &str, step: &str, cache: &str) -> bool {
    // `#N [stage] STEP` then `#N cache hit: ... from the imported cache REF`.
    let Some(id) = log
        .lines()
        .find(|l| l.ends_with(step))
        .and_then(|l| l.split_whitespace().next())
    else {
        return false;
    };
    log.lines().any(|l| {
        l.starts_with(&format!("{id} ")) && l.ends_with(&format!("imported cache {cache}"))
    })
}

/// The manifest of `image` in the authenticated registry.
fn remote_manifest_as(image: &str) -> serde_json::Value {
    let raw = common::run(
        std::process::Command::new(common::require_tool("skopeo", "skopeo")).args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            "--creds",
            &format!("{}:{}", USER.0, USER.1),
            &format!("docker://{image}"),
        ]),
    );
    serde_json::from_str(&raw).expect("manifest")
}
