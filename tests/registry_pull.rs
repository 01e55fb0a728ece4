//! Pulling base images from a real registry (Debian's `docker-registry`,
//! i.e. distribution) started on 127.0.0.1 by each test, filled by skopeo:
//! FROM by host:port, Docker Hub names through a mirror, multi-platform
//! indexes, layer formats, offline reuse, `--pull`, htpasswd auth.

mod common;

use common::Env;
use common::registry::*;
use common::{require_tool, run};
use std::path::Path;
use std::process::Command;

#[test]
fn from_a_registry_by_host_port_then_offline_and_pull_refused_when_down() {
    let (_seed, _layout, reg, host) = busybox_registry();

    let env = isolated();
    let df = format!("FROM {host}/library/busybox:latest\nRUN echo pulled > /pulled\n");
    let log = build_local(&env, &df, &env.path("out1"), &["-t", "pulled:1"]);
    assert_eq!(read(env.path("out1/pulled")), "pulled\n");
    assert!(
        log.contains(&format!("resolve {host}/library/busybox:latest@sha256:"))
            && log.contains(&format!("(pulled from {host}: ")),
        "{log}"
    );
    assert!(env.path("out1/bin/busybox").exists());
    // --pull with the tag unchanged: checked again, nothing downloaded,
    // the steps stay cached (the manifest digest in their keys is the same).
    let again = build_local(&env, &df, &env.path("out1b"), &["--pull"]);
    assert!(
        again.contains(&format!("(up to date at {host})")) && again.contains("0 steps run"),
        "{again}"
    );
    // The pulled layers' compressed blobs are kept in the store.
    let layer_blobs = std::fs::read_dir(env.root().join("blobs/sha256"))
        .expect("blobs")
        .count();
    assert!(layer_blobs >= 3, "manifest, config and layer blobs stored");

    let digest = log
        .split(&format!("resolve {host}/library/busybox:latest@"))
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .expect("resolved digest")
        .to_string();

    // The registry goes away: a stored base needs no request, under the
    // name as written or normalised differently, or by its digest.
    drop(reg);
    let by_digest = format!("FROM {host}/library/busybox@{digest}\nRUN echo d > /d\n");
    build_local(&env, &by_digest, &env.path("out-digest"), &[]);
    assert_eq!(read(env.path("out-digest/d")), "d\n");
    let df2 = format!("FROM {host}/library/busybox\nRUN echo offline > /offline\n");
    let log = build_local(&env, &df2, &env.path("out2"), &[]);
    assert_eq!(read(env.path("out2/offline")), "offline\n");
    assert!(log.contains("(stored)"), "{log}");

    // --pull must ask the registry: a clear error naming the reference.
    let err = build(&env, &["--pull"], &df2, false);
    assert!(
        err.contains(&format!(
            "failed to resolve source metadata for {host}/library/busybox:latest"
        )) && err.contains("cannot reach registry"),
        "{err}"
    );
}

/// Write blob `data` into an OCI layout; its descriptor fields.
fn put_blob(layout: &Path, data: &[u8]) -> (String, usize) {
    use sha2::Digest as _;
    let hex = hex::encode(sha2::Sha256::digest(data));
    std::fs::write(layout.join("blobs/sha256").join(&hex), data).expect("blob");
    (format!("sha256:{hex}"), data.len())
}

/// Add to `layout` a two-platform index tagged `multi`: an arm64 image
/// listed first and an amd64 one, the same layers, configs differing by
/// `PICKED=<arch>` in their Env.
fn add_multi_platform_index(layout: &Path) {
    let index: serde_json::Value =
        serde_json::from_str(&read(layout.join("index.json"))).expect("index");
    let mdesc = &index["manifests"][0];
    let mhex = mdesc["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:");
    let manifest: serde_json::Value =
        serde_json::from_str(&read(layout.join("blobs/sha256").join(mhex))).expect("manifest");
    let chex = manifest["config"]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:");
    let config: serde_json::Value =
        serde_json::from_str(&read(layout.join("blobs/sha256").join(chex))).expect("config");
    let mut entries = Vec::new();
    for arch in ["arm64", "amd64"] {
        let mut c = config.clone();
        c["architecture"] = arch.into();
        let env = c["config"]["Env"].as_array_mut().expect("Env");
        env.push(format!("PICKED={arch}").into());
        let (cd, cs) = put_blob(layout, &serde_json::to_vec(&c).unwrap());
        let mut m = manifest.clone();
        m["config"]["digest"] = cd.into();
        m["config"]["size"] = cs.into();
        let mt = m["mediaType"].clone();
        let (md, ms) = put_blob(layout, &serde_json::to_vec(&m).unwrap());
        entries.push(serde_json::json!({
            "mediaType": mt, "digest": md, "size": ms,
            "platform": {"os": "linux", "architecture": arch}
        }));
    }
    let idx = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": entries,
    });
    let (id, is) = put_blob(layout, &serde_json::to_vec(&idx).unwrap());
    let mut top = index.clone();
    top["manifests"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": id, "size": is,
            "annotations": {"org.opencontainers.image.ref.name": "multi"}
        }));
    std::fs::write(layout.join("index.json"), serde_json::to_vec(&top).unwrap()).expect("index");
}

#[test]
fn mirror_serves_docker_hub_names_and_pull_re_resolves_a_moved_tag_to_the_host_platform() {
    let seed = Env::new();
    let layout = seed.path("layout");
    busybox_layout(&seed, &layout);
    add_multi_platform_index(&layout);
    let reg = Registry::start(None);
    let host = reg.host();
    push(
        &layout,
        "latest",
        &format!("{host}/library/busybox:latest"),
        None,
        false,
    );

    let env = isolated();
    std::fs::write(
        env.path("registries.toml"),
        format!("[registry.\"docker.io\"]\nmirrors = [\"{host}\"]\n"),
    )
    .expect("config");
    // FROM, COPY --from and RUN --mount from= an image, all by Docker Hub name.
    let df = "FROM busybox AS base\nRUN echo \"picked=$PICKED\" > /picked\n\
              RUN --mount=type=bind,from=index.docker.io/library/busybox,target=/m \
                  cp /m/etc/group /group\n\
              FROM scratch\nCOPY --from=docker.io/library/busybox:latest /etc/passwd /passwd\n\
              COPY --from=base /picked /group /\n";
    build_local(&env, df, &env.path("out1"), &[]);
    assert!(read(env.path("out1/group")).starts_with("root:"));
    assert!(read(env.path("out1/passwd")).starts_with("root:"));
    assert_eq!(read(env.path("out1/picked")), "picked=\n");

    // The tag moves to a multi-platform index: without --pull the stored
    // image is used, with --pull the amd64 (host) entry of the index.
    push(
        &layout,
        "multi",
        &format!("{host}/library/busybox:latest"),
        None,
        true,
    );
    build_local(&env, df, &env.path("out2"), &[]);
    assert_eq!(read(env.path("out2/picked")), "picked=\n");
    build_local(&env, df, &env.path("out3"), &["--pull"]);
    let host_arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    assert_eq!(
        read(env.path("out3/picked")),
        format!("picked={host_arch}\n")
    );
    // And the new image is what the name means from then on, offline.
    drop(reg);
    build_local(&env, df, &env.path("out4"), &[]);
    assert_eq!(
        read(env.path("out4/picked")),
        format!("picked={host_arch}\n")
    );
}

#[test]
fn htpasswd_registry_uses_docker_config_credentials_and_refuses_without() {
    let seed = Env::new();
    let layout = seed.path("layout");
    busybox_layout(&seed, &layout);
    let reg = Registry::start(Some(("tester", "s3cret")));
    let host = reg.host();
    push(
        &layout,
        "latest",
        &format!("{host}/private/busybox:1"),
        Some("tester:s3cret"),
        false,
    );
    let env = isolated();
    let df = format!("FROM {host}/private/busybox:1\nRUN echo in > /in\n");

    let err = build(&env, &[], &df, false);
    assert!(
        err.contains(&format!(
            "failed to resolve source metadata for {host}/private/busybox:1: pull access denied"
        )) && err.contains("401")
            && err.contains("no credentials"),
        "{err}"
    );

    let config = |auth: &str| docker_login(&env, &host, auth);
    config("tester:wrong");
    let err = build(&env, &[], &df, false);
    assert!(err.contains("were refused"), "{err}");

    config("tester:s3cret");
    build_local(&env, &df, &env.path("out"), &[]);
    assert_eq!(read(env.path("out/in")), "in\n");

    // A credential helper named by credHelpers (`docker-credential-NAME get`).
    let bin = env.path("helper-bin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    let helper = bin.join("docker-credential-rbtest");
    std::fs::write(
        &helper,
        "#!/bin/sh\nread server\nprintf '{\"ServerURL\":\"%s\",\"Username\":\"tester\",\"Secret\":\"s3cret\"}' \"$server\"\n",
    )
    .expect("helper");
    let mut perm = std::fs::metadata(&helper).expect("meta").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
    std::fs::set_permissions(&helper, perm).expect("chmod");
    std::fs::write(
        env.path("docker-config/config.json"),
        format!("{{\"credHelpers\":{{\"{host}\":\"rbtest\"}}}}"),
    )
    .expect("config.json");
    let ctx = env.project("helper-ctx", &[("Dockerfile", &df)]);
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = env
        .rbuild()
        .env_remove("RBUILD_OFFLINE")
        .env("DOCKER_CONFIG", env.path("docker-config"))
        .env("RBUILD_CONFIG", env.path("registries.toml"))
        .env("PATH", path)
        .args(["build", "--progress", "plain", "--pull"])
        .arg(&ctx)
        .output()
        .expect("rbuild");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn rbuild_pull_stores_the_image_and_exports_name_it_as_docker_does() {
    let (_seed, _layout, reg, host) = busybox_registry();

    let env = isolated();
    let out = env
        .rbuild()
        .env_remove("RBUILD_OFFLINE")
        .env("DOCKER_CONFIG", env.path("docker-config"))
        .env("RBUILD_CONFIG", env.path("registries.toml"))
        .args(["pull", &format!("{host}/library/busybox")])
        .output()
        .expect("rbuild pull");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("Digest: sha256:")
            && stdout.contains(&format!("{host}/library/busybox:latest")),
        "{stdout}"
    );
    drop(reg);

    // Pulled before: builds offline. Exports carry Docker's names.
    let tar = env.path("image.tar");
    let dir = env.path("oci");
    build(
        &env,
        &[
            "-t",
            "mine",
            "-o",
            &format!("type=docker,dest={}", tar.display()),
            "-o",
            &format!("type=oci-dir,dest={}", dir.display()),
        ],
        &format!("FROM {host}/library/busybox\nRUN touch /x\n"),
        true,
    );
    let mut archive = tar::Archive::new(std::fs::File::open(&tar).expect("tar"));
    let mut manifest = String::new();
    for e in archive.entries().expect("entries") {
        let mut e = e.expect("entry");
        if e.path().expect("path").to_str() == Some("manifest.json") {
            std::io::Read::read_to_string(&mut e, &mut manifest).expect("read");
        }
    }
    let m: serde_json::Value = serde_json::from_str(&manifest).expect("manifest.json");
    assert_eq!(m[0]["RepoTags"], serde_json::json!(["mine:latest"]));
    let index: serde_json::Value =
        serde_json::from_str(&read(dir.join("index.json"))).expect("index");
    assert_eq!(
        index["manifests"][0]["annotations"]["io.containerd.image.name"],
        "docker.io/library/mine:latest"
    );
    assert_eq!(
        index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"],
        "latest"
    );
}

#[test]
fn zstd_uncompressed_and_docker_schema2_images_and_digest_references() {
    let reg = Registry::start(None);
    let host = reg.host();
    for comp in ["zstd", "uncompressed"] {
        let seed = Env::new();
        let layout = seed.path("layout");
        busybox_layout_compressed(&seed, &layout, comp);
        // As the layout has it (skopeo would otherwise compress).
        push_as(
            &layout,
            "latest",
            &format!("{host}/{comp}/busybox:1"),
            None,
            false,
            &["--preserve-digests"],
        );
        let raw = run(Command::new(require_tool("skopeo", "skopeo")).args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{host}/{comp}/busybox:1"),
        ]));
        let m: serde_json::Value = serde_json::from_str(&raw).expect("manifest");
        let want = match comp {
            "zstd" => "application/vnd.oci.image.layer.v1.tar+zstd",
            _ => "application/vnd.oci.image.layer.v1.tar",
        };
        assert_eq!(m["layers"][0]["mediaType"], want);
    }
    let seed = Env::new();
    let layout = seed.path("layout");
    busybox_layout(&seed, &layout);
    push_as(
        &layout,
        "latest",
        &format!("{host}/v2/busybox:1"),
        None,
        false,
        &["--format", "v2s2"],
    );
    let raw = run(Command::new(require_tool("skopeo", "skopeo")).args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{host}/v2/busybox:1"),
    ]));
    let m: serde_json::Value = serde_json::from_str(&raw).expect("manifest");
    assert_eq!(
        m["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert_eq!(
        m["layers"][0]["mediaType"],
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
    );
    let digest = {
        use sha2::Digest as _;
        format!(
            "sha256:{}",
            hex::encode(sha2::Sha256::digest(raw.as_bytes()))
        )
    };

    // Each in a fresh store, so that each layer format is unpacked.
    for from in [
        format!("{host}/zstd/busybox:1"),
        format!("{host}/uncompressed/busybox:1"),
        format!("{host}/v2/busybox@{digest}"),
        format!("{host}/v2/busybox:1@{digest}"),
    ] {
        let env = isolated();
        let df = format!("FROM {from}\nRUN busybox echo ok > /ok\n");
        build_local(&env, &df, &env.path("out"), &[]);
        assert_eq!(read(env.path("out/ok")), "ok\n", "{from}");
        assert!(env.path("out/bin/sh").exists(), "{from}");
    }
    let env = isolated();
    let wrong = format!("sha256:{}", "0".repeat(64));
    let err = build(
        &env,
        &[],
        &format!("FROM {host}/v2/busybox@{wrong}\n"),
        false,
    );
    assert!(
        err.contains(&format!("{host}/v2/busybox@{wrong}: not found")),
        "{err}"
    );
}

#[test]
fn docker_hub_spellings_of_a_name_are_one_stored_image_found_offline() {
    let env = Env::new();
    let base = env.project(
        "base",
        &[("Dockerfile", "FROM scratch\nCOPY f /f\n"), ("f", "base\n")],
    );
    env.build_ok(&["-t", "mybase"], &base);
    for from in [
        "mybase",
        "mybase:latest",
        "docker.io/mybase",
        "docker.io/library/mybase:latest",
        "index.docker.io/library/mybase",
    ] {
        let ctx = env.project(
            "child",
            &[(
                "Dockerfile",
                &format!("FROM {from} AS b\nFROM scratch\nCOPY --from=b /f /g\n"),
            )],
        );
        let out = env.path(&format!("out-{}", from.replace(['/', ':'], "_")));
        env.build_ok(&["-o", &format!("type=local,dest={}", out.display())], &ctx);
        assert_eq!(read(out.join("g")), "base\n", "{from}");
    }
    // A different repository is a different image: not in the store, and
    // RBUILD_OFFLINE (set for every test) forbids asking a registry.
    let ctx = env.project("other", &[("Dockerfile", "FROM docker.io/other/mybase\n")]);
    let err = env.build_err(&[], &ctx);
    assert!(
        err.contains("image docker.io/other/mybase:latest not found in the store")
            && err.contains("RBUILD_OFFLINE"),
        "{err}"
    );
}

#[test]
fn an_https_registry_on_loopback_is_used_without_verification_as_docker_does() {
    let seed = Env::new();
    let layout = seed.path("layout");
    busybox_layout(&seed, &layout);
    let reg = Registry::start_with(None, true);
    let host = reg.host();
    push(
        &layout,
        "latest",
        &format!("{host}/library/busybox:latest"),
        None,
        false,
    );
    let env = isolated();
    let df = format!("FROM {host}/library/busybox\nRUN echo tls > /tls\n");
    build_local(&env, &df, &env.path("out"), &[]);
    assert_eq!(read(env.path("out/tls")), "tls\n");
    // Forcing plain HTTP to it fails, naming the registry.
    std::fs::write(
        env.path("registries.toml"),
        format!("[registry.\"{host}\"]\nhttp = true\n"),
    )
    .expect("config");
    let err = build(&env, &["--pull"], &df, false);
    assert!(
        err.contains(&format!(
            "failed to resolve source metadata for {host}/library/busybox:latest"
        )),
        "{err}"
    );
}

#[test]
fn pull_on_stored_bases_makes_one_head_request_per_base_and_none_without_it() {
    let seed = Env::new();
    let layout = seed.path("layout");
    busybox_layout(&seed, &layout);
    add_multi_platform_index(&layout);
    let reg = Registry::start_logged();
    let host = reg.host();
    let base = format!("{host}/library/busybox:latest");
    push(&layout, "latest", &base, None, false);
    push(
        &layout,
        "multi",
        &format!("{host}/library/multi:1"),
        None,
        true,
    );

    let env = isolated();
    // Two bases: a plain manifest and a multi-platform index.
    let df = format!(
        "FROM {host}/library/busybox AS a\nRUN echo \"a=$PICKED\" > /a\n\
         FROM {host}/library/multi:1\nCOPY --from=a /a /a\nRUN echo \"b=$PICKED\" > /b\n"
    );
    build_local(&env, &df, &env.path("out1"), &[]);
    assert_eq!(read(env.path("out1/a")), "a=\n");
    let after_first = reg.requests().len();

    build_local(&env, &df, &env.path("out2"), &[]);
    assert_eq!(
        reg.requests().len(),
        after_first,
        "no request without --pull"
    );

    let log = build_local(&env, &df, &env.path("out3"), &["--pull"]);
    let reqs = reg.requests()[after_first..].to_vec();
    assert_eq!(
        {
            let mut r = reqs.clone();
            r.sort();
            r
        },
        [
            "HEAD /v2/library/busybox/manifests/latest 200",
            "HEAD /v2/library/multi/manifests/1 200",
        ],
        "one request per base"
    );
    assert!(
        log.matches(&format!("(up to date at {host})")).count() == 2 && log.contains("0 steps run"),
        "{log}"
    );

    // The tag moves: the HEAD sees another digest and the base is resolved
    // in full, for the host's platform.
    push(&layout, "multi", &base, None, true);
    let before = reg.requests().len();
    let log = build_local(&env, &df, &env.path("out4"), &["--pull"]);
    let host_arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    assert_eq!(read(env.path("out4/a")), format!("a={host_arch}\n"));
    assert!(log.contains(&format!("(pulled from {host}: ")), "{log}");
    let reqs = reg.requests()[before..].to_vec();
    assert!(
        reqs.iter()
            .any(|r| r.starts_with("GET /v2/library/busybox/manifests/latest 200")),
        "{reqs:?}"
    );
}
