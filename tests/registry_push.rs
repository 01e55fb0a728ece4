//! Pushing to a real registry (Debian's `docker-registry`) on 127.0.0.1:
//! `build --push`, `-o type=registry` / `type=image,push=true`, `rbuild
//! push` and `rbuild tag`; what was pushed is read back with skopeo, the
//! registry's access log shows which blobs went up.

mod common;

use common::Env;
use common::registry::*;
use common::{require_tool, run};
use std::process::Command;

/// Run `rbuild ARGS` in the isolated environment; its standard error.
fn rbuild(env: &Env, args: &[&str], success: bool) -> String {
    let out = env
        .rbuild()
        .env_remove("RBUILD_OFFLINE")
        .env("DOCKER_CONFIG", env.path("docker-config"))
        .env("RBUILD_CONFIG", env.path("registries.toml"))
        .args(args)
        .output()
        .expect("run rbuild");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.success(), success, "rbuild {args:?}:\n{err}");
    err
}

/// `skopeo inspect` of an image in the registry.
fn inspect(image: &str, creds: Option<&str>) -> serde_json::Value {
    let mut c = Command::new(require_tool("skopeo", "skopeo"));
    c.args(["inspect", "--tls-verify=false"]);
    if let Some(cr) = creds {
        c.args(["--creds", cr]);
    }
    let raw = run(c.arg(format!("docker://{image}")));
    serde_json::from_str(&raw).expect("skopeo inspect output")
}

fn layer_digests(manifest: &serde_json::Value) -> Vec<String> {
    manifest["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| l["digest"].as_str().expect("digest").to_string())
        .collect()
}

/// Requests that upload blob content (starting or finishing an upload).
fn uploads(reqs: &[String]) -> Vec<&String> {
    reqs.iter()
        .filter(|r| r.contains("/blobs/uploads/") && !r.contains("mount="))
        .collect()
}

#[test]
fn build_push_is_read_back_by_skopeo_and_a_second_push_uploads_nothing() {
    let env = isolated();
    env.busybox_base("busybox:latest");
    let reg = Registry::start_logged();
    let host = reg.host();
    let app = format!("{host}/test/app:1");
    let df = "FROM busybox\nLABEL org.example.purpose=push-test\nRUN echo pushed > /pushed\n";
    let log = build(&env, &["-t", &app, "--push"], df, true);
    // The base's layers and the RUN step's, plus the config.
    let m = remote_manifest(&app);
    let n = layer_digests(&m).len();
    assert!(n >= 2, "{m}");
    assert!(
        log.contains(&format!("pushed {app}@sha256:"))
            && log.contains(&format!(
                "{} blobs uploaded, 0 mounted, 0 already present",
                n + 1
            )),
        "{log}"
    );

    // OCI media types (BuildKit's default), the config's labels, the layers.
    assert_eq!(
        m["mediaType"], "application/vnd.oci.image.manifest.v1+json",
        "{m}"
    );
    assert_eq!(
        m["config"]["mediaType"],
        "application/vnd.oci.image.config.v1+json"
    );
    assert_eq!(
        m["layers"][n - 1]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    let info = inspect(&app, None);
    assert_eq!(info["Labels"]["org.example.purpose"], "push-test", "{info}");
    assert_eq!(info["Layers"].as_array().map(Vec::len), Some(n), "{info}");
    assert_eq!(info["Os"], "linux");
    // The image is whole: skopeo copies it out and the layer has the file.
    let oci = env.path("copied");
    run(Command::new(require_tool("skopeo", "skopeo")).args([
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        &format!("docker://{app}"),
        &format!("oci:{}:app", oci.display()),
    ]));
    let top = layer_digests(&m)[n - 1]
        .trim_start_matches("sha256:")
        .to_string();
    let listing = run(Command::new("tar")
        .arg("-tzf")
        .arg(oci.join("blobs/sha256").join(top)));
    assert!(listing.lines().any(|l| l == "pushed"), "{listing}");

    // Pushed again, by name: the registry has every blob, only the
    // manifest goes up (no upload request at all).
    let before = reg.requests().len();
    let again = rbuild(&env, &["push", &app], true);
    assert!(
        again.contains(&format!(
            "0 blobs uploaded, 0 mounted, {} already present",
            n + 1
        )),
        "{again}"
    );
    let reqs = reg.requests()[before..].to_vec();
    assert!(uploads(&reqs).is_empty(), "{reqs:#?}");
    assert!(
        reqs.iter()
            .any(|r| r.starts_with("PUT /v2/test/app/manifests/1 201")),
        "{reqs:#?}"
    );
    assert_eq!(digest_of(&app), pushed_digest(&again, &app));
    assert_eq!(pushed_digest(&again, &app), pushed_digest(&log, &app));

    // A changed build through `-o type=image,push=true` and `type=registry`:
    // the base layer is found in the repository, the new ones go up.
    let df2 = "FROM busybox\nRUN echo second > /second\n";
    let before = reg.requests().len();
    let out = format!("type=image,name={host}/test/app:2,push=true");
    let log = build(&env, &["-o", &out], df2, true);
    assert!(
        log.contains(&format!(
            "2 blobs uploaded, 0 mounted, {} already present",
            n - 1
        )),
        "{log}"
    );
    let reqs = reg.requests()[before..].to_vec();
    let base_layer = &layer_digests(&m)[0];
    assert!(
        reqs.iter()
            .any(|r| r.starts_with(&format!("HEAD /v2/test/app/blobs/{base_layer} 200"))),
        "{reqs:#?}"
    );
    let out = format!("type=registry,name={host}/test/other:1");
    let log = build(&env, &["-o", &out], df2, true);
    assert!(
        log.contains(&format!("pushed {host}/test/other:1@")),
        "{log}"
    );
    assert_eq!(
        layer_digests(&remote_manifest(&format!("{host}/test/other:1"))),
        layer_digests(&remote_manifest(&format!("{host}/test/app:2")))
    );
}

/// The manifest digest the registry serves for an image.
fn digest_of(image: &str) -> String {
    inspect(image, None)["Digest"]
        .as_str()
        .expect("Digest")
        .to_string()
}

/// The digest in rbuild's `pushed NAME@DIGEST` line.
fn pushed_digest(log: &str, name: &str) -> String {
    log.split(&format!("pushed {name}@"))
        .nth(1)
        .map(|r| r.chars().take("sha256:".len() + 64).collect())
        .expect("pushed line")
}

#[test]
fn pushing_needs_credentials_on_an_htpasswd_registry() {
    let env = isolated();
    env.busybox_base("busybox:latest");
    let reg = Registry::start(Some(("pusher", "s3cret")));
    let host = reg.host();
    let app = format!("{host}/team/app:1");
    let df = "FROM busybox\nRUN echo auth > /auth\n";

    let err = build(&env, &["-t", &app, "--push"], df, false);
    assert!(
        err.contains(&format!("failed to push {app}"))
            && err.contains("push access denied")
            && err.contains(&format!("no credentials for {host}")),
        "{err}"
    );
    // The image was built and named locally all the same.
    let err = rbuild(&env, &["push", &app], false);
    assert!(err.contains("push access denied"), "{err}");

    docker_login(&env, &host, "pusher:wrong");
    let err = rbuild(&env, &["push", &app], false);
    assert!(
        err.contains(&format!("the credentials for {host} were refused")),
        "{err}"
    );

    docker_login(&env, &host, "pusher:s3cret");
    let log = rbuild(&env, &["push", &app], true);
    assert!(
        log.contains("blobs uploaded, 0 mounted, 0 already present"),
        "{log}"
    );
    let info = inspect(&app, Some("pusher:s3cret"));
    assert!(info["Layers"].as_array().map(Vec::len) >= Some(2), "{info}");

    // No name to push to.
    let err = build(&env, &["--push"], df, false);
    assert!(err.contains("tag is needed when pushing"), "{err}");

    // Nothing listening: the error names the reference and the registry.
    let gone = format!("127.0.0.1:{}", free_port());
    let target = format!("{gone}/team/app:1");
    rbuild(&env, &["tag", &app, &target], true);
    let err = rbuild(&env, &["push", &target], false);
    assert!(
        err.contains(&format!(
            "failed to push {target}: cannot reach registry {gone}"
        )),
        "{err}"
    );
    let err = rbuild(&env, &["push", &format!("{gone}/never/built:1")], false);
    assert!(err.contains("An image does not exist locally"), "{err}");
}

#[test]
fn a_pulled_base_keeps_its_layer_digests_and_is_mounted_across_repositories() {
    let seed = Env::new();
    let layout = seed.path("layout");
    busybox_layout(&seed, &layout);
    let reg = Registry::start_logged();
    let host = reg.host();
    let base = format!("{host}/library/busybox:latest");
    push(&layout, "latest", &base, None, false);
    let base_manifest = remote_manifest(&base);
    let base_layers = layer_digests(&base_manifest);
    let nb = base_layers.len();

    let env = isolated();
    let app = format!("{host}/test/app:2");
    let df = format!("FROM {base}\nRUN echo on-base > /on-base\n");
    let before = reg.requests().len();
    let log = build(&env, &["-t", &app, "--push"], &df, true);
    // The base's layers are not uploaded again: mounted from its repository.
    assert!(
        log.contains(&format!(
            "2 blobs uploaded, {nb} mounted, 0 already present"
        )),
        "{log}"
    );
    let reqs = reg.requests()[before..].to_vec();
    assert!(
        reqs.iter()
            .any(|r| r.starts_with("POST /v2/test/app/blobs/uploads/?")
                && r.contains(&format!("mount={}", base_layers[0].replace(':', "%3A")))
                && r.contains("from=library%2Fbusybox")
                && r.ends_with(" 201")),
        "{reqs:#?}"
    );
    let pushed = remote_manifest(&app);
    assert_eq!(layer_digests(&pushed)[..nb], base_layers[..], "{pushed}");
    assert_eq!(layer_digests(&pushed).len(), nb + 1);

    // A pulled image renamed and pushed keeps its manifest, digest and all.
    let copy = format!("{host}/mirror/busybox:1");
    rbuild(&env, &["tag", &base, &copy], true);
    let log = rbuild(&env, &["push", &copy], true);
    assert!(
        log.contains(&format!("0 blobs uploaded, {} mounted", nb + 1)),
        "{log}"
    );
    assert_eq!(digest_of(&copy), digest_of(&base));
    assert_eq!(pushed_digest(&log, &copy), digest_of(&base));

    // A digest reference is not a place to push to.
    let err = rbuild(
        &env,
        &[
            "push",
            &format!("{host}/mirror/busybox@{}", digest_of(&base)),
        ],
        false,
    );
    assert!(
        err.contains("An image does not exist locally") || err.contains("cannot push to a digest"),
        "{err}"
    );
}

#[test]
fn a_loopback_registry_over_https_with_a_self_signed_certificate_takes_the_push() {
    let env = isolated();
    env.busybox_base("busybox:latest");
    let reg = Registry::start_with(None, true);
    let app = format!("{}/tls/app:1", reg.host());
    // Loopback is an insecure registry (Docker's rule): HTTPS without
    // verifying the certificate is tried first and works.
    let log = build(
        &env,
        &["-t", &app, "--push"],
        "FROM busybox\nRUN true\n",
        true,
    );
    assert!(log.contains(&format!("pushed {app}@sha256:")), "{log}");
    let info = inspect(&app, None);
    assert_eq!(info["Name"], format!("{}/tls/app", reg.host()), "{info}");
}

/// A proxy in front of `upstream` that drops the first blob upload
/// (`PUT .../blobs/uploads/...`) once its body has arrived, without an
/// answer. Returns its port and how many uploads it saw.
fn dropping_proxy(upstream: u16) -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::Ordering;
    let puts = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = puts.clone();
    let port = proxy(upstream, move |first| {
        let upload = first.starts_with("PUT ") && first.contains("/blobs/uploads/");
        match upload && counter.fetch_add(1, Ordering::SeqCst) == 0 {
            true => Proxied::Drop,
            false => Proxied::Forward(first.to_string()),
        }
    });
    (port, puts)
}

#[test]
fn a_dropped_blob_upload_is_tried_again() {
    let env = isolated();
    env.busybox_base("busybox:latest");
    let reg = Registry::start(None);
    let upstream: u16 = reg
        .host()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    let (port, puts) = dropping_proxy(upstream);
    let app = format!("127.0.0.1:{port}/retry/app:1");
    let log = build(
        &env,
        &["-t", &app, "--push"],
        "FROM busybox\nRUN echo r > /r\n",
        true,
    );
    assert!(log.contains(&format!("pushed {app}@sha256:")), "{log}");
    // Every blob went up once, one of them twice.
    let n = layer_digests(&remote_manifest(&format!("{}/retry/app:1", reg.host()))).len();
    assert_eq!(puts.load(std::sync::atomic::Ordering::SeqCst), n + 1 + 1);
}
