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

    // Exported again from there: the same cache, every blob already in
    // the registry, none uploaded.
    let log = ok(&b, &["--cache-from", &from, "--cache-to", &to], &ctx_b);
    assert!(log.contains("0 blobs uploaded, 0 mounted"), "{log}");

    // Only the layers a taken step needs are downloaded: building the side
    // stage alone leaves the final stage's layers in the registry.
    let d = logged_in(&host);
    let ctx_d = project(&d, "side-only", &host, "hello\n");
    let log = ok(&d, &["--cache-from", &from, "--target", "side"], &ctx_d);
    assert!(log.contains("0 steps run, 1 cached"), "{log}");
    let layers = m["layers"].as_array().expect("layers");
    let stored = layers
        .iter()
        .filter(|l| {
            let hex = l["digest"].as_str().unwrap().trim_start_matches("sha256:");
            d.root().join("blobs/sha256").join(hex).is_file()
        })
        .count();
    assert!(stored < layers.len(), "every cache layer was downloaded");

    // A changed file: the steps from it on run (ENV's key changes too);
    // the side stage still comes from the cache.
    let ctx_c = project(&b, "changed", &host, "changed\n");
    let log = ok(&b, &["--cache-from", &from], &ctx_c);
    assert!(log.contains("3 steps run, 1 cached"), "{log}");
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

#[test]
fn mode_min_holds_only_the_final_stage_and_a_local_layout_travels_too() {
    let (_seed, _reg, host) = auth_registry();
    let a = logged_in(&host);
    let ctx_a = project(&a, "first", &host, "hello\n");
    let dir = a.path("cache-dir");
    let local = format!("type=local,dest={},mode=max", dir.display());
    let cache = format!("{host}/cache/app:min");
    let min = format!("type=registry,ref={cache}");
    let log = ok(
        &a,
        &[
            "--cache-to",
            &local,
            "--cache-to",
            &min,
            "--metadata-file",
            &meta(&a, "m.json"),
        ],
        &ctx_a,
    );
    assert!(log.contains("exported cache to local:"), "{log}");
    assert!(dir.join("index.json").is_file() && dir.join("oci-layout").is_file());

    // mode=min: the side stage's RUN is not in the cache and runs again.
    let b = logged_in(&host);
    let ctx_b = project(&b, "b", &host, "hello\n");
    // Several --cache-from: a missing one is skipped, the next one used.
    let none = format!("{host}/cache/none:x");
    let log = ok(&b, &["--cache-from", &none, "--cache-from", &cache], &ctx_b);
    assert!(log.contains("1 step run, 3 cached"), "{log}");

    // The layout (mode=max), on a fresh store: nothing runs, same image.
    let c = logged_in(&host);
    let ctx_c = project(&c, "c", &host, "hello\n");
    let src = format!("type=local,src={}", dir.display());
    let log = ok(
        &c,
        &["--cache-from", &src, "--metadata-file", &meta(&c, "m.json")],
        &ctx_c,
    );
    assert!(log.contains("0 steps run, 4 cached"), "{log}");
    assert_eq!(digests(&a, "m.json"), digests(&c, "m.json"));

    // A layout whose layer blobs were altered: rejected, the steps run,
    // the image is the same.
    let index: serde_json::Value = serde_json::from_str(&read(dir.join("index.json"))).unwrap();
    let hex = |d: &serde_json::Value| {
        d.as_str()
            .unwrap()
            .trim_start_matches("sha256:")
            .to_string()
    };
    let blobs = dir.join("blobs/sha256");
    let m: serde_json::Value =
        serde_json::from_str(&read(blobs.join(hex(&index["manifests"][0]["digest"])))).unwrap();
    for l in m["layers"].as_array().unwrap() {
        let f = blobs.join(hex(&l["digest"]));
        let mut bytes = std::fs::read(&f).unwrap();
        let n = bytes.len();
        bytes[n / 2] ^= 0xff;
        std::fs::write(&f, bytes).unwrap();
    }
    let e = logged_in(&host);
    let ctx_e = project(&e, "e", &host, "hello\n");
    let log = ok(
        &e,
        &["--cache-from", &src, "--metadata-file", &meta(&e, "m.json")],
        &ctx_e,
    );
    assert!(
        log.contains("does not match its digest") && log.contains("the step is run"),
        "{log}"
    );
    assert_eq!(digests(&a, "m.json"), digests(&e, "m.json"));
}

#[test]
fn bad_caches_are_warnings_and_never_give_a_wrong_layer() {
    let (_seed, reg, host) = auth_registry();
    let a = logged_in(&host);
    let ctx = project(&a, "first", &host, "hello\n");

    // A cache that does not exist: a warning and a cold build.
    let missing = format!("type=registry,ref={host}/cache/none:nothing");
    let log = ok(&a, &["--cache-from", &missing], &ctx);
    assert!(
        log.contains(&format!("warning: --cache-from {host}/cache/none:nothing"))
            && log.contains("not used"),
        "{log}"
    );
    assert!(log.contains("4 steps run"), "{log}");

    // An image that is not a cache: a clear warning, ignored.
    let foreign = format!("{host}/library/busybox:latest");
    let log = ok(&a, &["--cache-from", &foreign], &ctx);
    assert!(
        log.contains("warning: --cache-from") && log.contains("not an rbuild cache"),
        "{log}"
    );

    // Export refused by the registry (no credentials for this one): an
    // error naming the cause; a warning with ignore-error=true.
    let other = Registry::start(Some(USER));
    let refused = format!("type=registry,ref={}/cache/app:c", other.host());
    let (success, log) = rbuild(&a, &["--cache-to", &refused], &ctx);
    assert!(!success, "{log}");
    assert!(
        log.contains("error: exporting cache to") && log.contains("authorization required"),
        "{log}"
    );
    let (success, log) = rbuild(
        &a,
        &["--cache-to", &format!("{refused},ignore-error=true")],
        &ctx,
    );
    assert!(success, "{log}");
    assert!(
        log.contains("warning: exporting cache to") && log.contains("ignore-error=true"),
        "{log}"
    );

    // A wrong password for the cache's registry: the import is a warning
    // saying the credentials were refused and the build runs; the export
    // is an error saying so (a warning with ignore-error=true).
    let w = isolated();
    let auth = |u: &str| base64(u.as_bytes());
    std::fs::write(
        w.path("docker-config/config.json"),
        format!(
            "{{\"auths\":{{\"{host}\":{{\"auth\":\"{}\"}},\"{}\":{{\"auth\":\"{}\"}}}}}}",
            auth(&format!("{}:{}", USER.0, USER.1)),
            other.host(),
            auth(&format!("{}:wrong", USER.0)),
        ),
    )
    .unwrap();
    let ctx_w = project(&w, "w", &host, "hello\n");
    let wrong = format!("type=registry,ref={}/cache/app:w", other.host());
    let log = ok(&w, &["--cache-from", &wrong], &ctx_w);
    assert!(
        log.contains("warning: --cache-from") && log.contains("refused"),
        "{log}"
    );
    let (success, log) = rbuild(&w, &["--cache-to", &wrong], &ctx_w);
    assert!(!success, "{log}");
    assert!(
        log.contains("error: exporting cache to") && log.contains("refused"),
        "{log}"
    );
    let (success, log) = rbuild(
        &w,
        &["--cache-to", &format!("{wrong},ignore-error=true")],
        &ctx_w,
    );
    assert!(success, "{log}");
    assert!(
        log.contains("warning: exporting cache to") && log.contains("refused"),
        "{log}"
    );

    // A cache whose layer blobs were altered in the registry: the blobs are
    // rejected, the steps run, and the image is the one built from source.
    let cache = format!("{host}/cache/app:buildcache");
    let to = format!("type=registry,ref={cache},mode=max");
    let log = ok(
        &a,
        &["--cache-to", &to, "--metadata-file", &meta(&a, "m.json")],
        &ctx,
    );
    assert!(log.contains("exported cache to"), "{log}");
    let base = remote_manifest_as(&format!("{host}/library/busybox:latest"));
    let base_layers: Vec<&serde_json::Value> = base["layers"].as_array().unwrap().iter().collect();
    let m = remote_manifest_as(&cache);
    let mut altered = 0;
    for l in m["layers"].as_array().unwrap() {
        if base_layers.iter().any(|b| b["digest"] == l["digest"]) {
            continue;
        }
        let f = reg.blob_file(l["digest"].as_str().unwrap());
        let mut bytes = std::fs::read(&f).unwrap();
        let n = bytes.len();
        bytes[n / 2] ^= 0xff;
        std::fs::write(&f, bytes).unwrap();
        altered += 1;
    }
    assert!(altered >= 3, "{m}");
    let d = logged_in(&host);
    let ctx_d = project(&d, "d", &host, "hello\n");
    let from = format!("type=registry,ref={cache}");
    let log = ok(
        &d,
        &[
            "--cache-from",
            &from,
            "--metadata-file",
            &meta(&d, "m.json"),
        ],
        &ctx_d,
    );
    assert!(
        log.contains("warning: imported cache") && log.contains("the step is run"),
        "{log}"
    );
    // The steps whose layers were altered run; COPY --from's layers are
    // then all in the store (the same diff_ids, built here); ENV (config
    // only) is no step of the count, as in BuildKit's progress.
    assert!(log.contains("3 steps run, 1 cached"), "{log}");
    assert_eq!(digests(&a, "m.json"), digests(&d, "m.json"));
}
