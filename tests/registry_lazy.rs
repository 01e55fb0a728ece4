//! The registry and store side of lazy base layers (BuildKit's lazy refs):
//! a base resolved with `pull_lazy` has its manifest and config stored but
//! no layer downloaded, and an image on top of it pushed to the same
//! registry gets the base's layers by cross-repository mounts, so they are
//! never downloaded nor uploaded. (The solver decides when a build needs
//! no base files; this tests what it calls.)

mod common;

use common::Env;
use common::registry::*;
use rbuild::cache::{LockMode, Store};
use rbuild::frontend::platform::Platform;
use rbuild::registry::{Reference, RegistryOptions};
use std::sync::Arc;

#[test]
fn a_lazily_pulled_base_is_never_downloaded_and_its_layers_are_mounted_on_push() {
    let seed = Env::new();
    let layout = seed.path("layout");
    busybox_layout(&seed, &layout);
    let reg = Registry::start_logged();
    let host = reg.host();
    let base = format!("{host}/library/busybox:latest");
    push(&layout, "latest", &base, None, false);
    let before = reg.requests().len();

    let env = isolated();
    let store = Arc::new(Store::open(&env.root(), LockMode::Shared).expect("store"));
    let opts = RegistryOptions::default();
    let r = Reference::parse(&base).expect("reference");
    let pulled =
        rbuild::registry::pull_lazy(&store, &r, &opts, &Platform::host()).expect("pull_lazy");
    store
        .tag_pulled(&r.to_string(), pulled.config, pulled.manifest)
        .expect("tag");
    assert_eq!(pulled.downloaded, 0);
    let manifest: serde_json::Value =
        serde_json::from_slice(&store.read_blob(&pulled.manifest).expect("manifest")).unwrap();
    let layers: Vec<String> = manifest["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| l["digest"].as_str().expect("digest").to_string())
        .collect();
    for l in &layers {
        assert!(!store.has_blob(&l.parse().unwrap()), "{l} was downloaded");
    }
    let reqs = reg.requests()[before..].to_vec();
    assert!(
        !reqs
            .iter()
            .any(|q| layers.iter().any(|l| q.contains(&format!("/blobs/{l}")))),
        "{reqs:#?}"
    );

    // The image a build of `FROM base` + config instructions gives: the
    // base's layers, another config.
    let mut config: serde_json::Value =
        serde_json::from_slice(&store.read_blob(&pulled.config).expect("config")).unwrap();
    config["config"]["Labels"] = serde_json::json!({"lazy": "yes"});
    let (cd, cs) = store
        .put_blob(&serde_json::to_vec(&config).unwrap())
        .expect("config blob");
    let mut app = manifest.clone();
    app["config"]["digest"] = cd.to_string().into();
    app["config"]["size"] = cs.into();
    let (md, _) = store
        .put_blob(&serde_json::to_vec(&app).unwrap())
        .expect("manifest blob");

    let before = reg.requests().len();
    let target = Reference::parse(&format!("{host}/team/app:1")).expect("target");
    let pushed = rbuild::registry::push(&store, &md, &target, &opts).expect("push");
    assert_eq!(
        (pushed.mounted, pushed.uploaded),
        (layers.len(), 1),
        "{pushed:?}"
    );
    let reqs = reg.requests()[before..].to_vec();
    for l in &layers {
        let enc = l.replace(':', "%3A");
        assert!(
            reqs.iter()
                .any(|q| q.starts_with("POST /v2/team/app/blobs/uploads/?")
                    && q.contains(&format!("mount={enc}"))
                    && q.ends_with(" 201")),
            "{l} mounted: {reqs:#?}"
        );
        assert!(
            !reqs.iter().any(|q| q.starts_with("GET ") && q.contains(l)),
            "{reqs:#?}"
        );
    }
    let info = remote_manifest(&format!("{host}/team/app:1"));
    assert_eq!(info["layers"], manifest["layers"]);

    // Another registry cannot mount from this one: a clear error.
    let other = Registry::start(None);
    let elsewhere = Reference::parse(&format!("{}/team/app:1", other.host())).expect("ref");
    let err = rbuild::registry::push(&store, &md, &elsewhere, &opts).unwrap_err();
    assert!(err.to_string().contains("is not stored"), "{err}");

    // A build that needs the base's files downloads the missing layers.
    drop(store);
    let before = reg.requests().len();
    build_local(
        &env,
        &format!("FROM {base}\nRUN cp /etc/passwd /p\n"),
        &env.path("out"),
        &[],
    );
    assert!(read(env.path("out/p")).starts_with("root:"));
    let reqs = reg.requests()[before..].to_vec();
    for l in &layers {
        assert!(
            reqs.iter()
                .any(|q| q.starts_with(&format!("GET /v2/library/busybox/blobs/{l} 200"))),
            "{l} downloaded: {reqs:#?}"
        );
    }
}

#[test]
fn the_resolver_loads_a_base_lazily_and_the_image_written_on_it_is_pushed_by_mounts() {
    use rbuild::image::manifest::{MediaTypes, write_image};
    use rbuild::image::resolver::Resolver;
    use rbuild::layer::compress::Compression;

    let seed = Env::new();
    let layout = seed.path("layout");
    busybox_layout(&seed, &layout);
    let reg = Registry::start_logged();
    let host = reg.host();
    let base = format!("{host}/library/busybox:latest");
    push(&layout, "latest", &base, None, false);
    let before = reg.requests().len();

    let env = isolated();
    let store = Arc::new(Store::open(&env.root(), LockMode::Shared).expect("store"));
    let resolver = Resolver::new(
        store.clone(),
        RegistryOptions::default(),
        false,
        Platform::host(),
    );
    let loaded = resolver.load_lazy(&base).expect("load_lazy");
    assert!(!loaded.state.layers.is_empty());
    for l in &loaded.state.layers {
        assert!(!store.has_snapshot(&l.diff_id));
    }
    // Loaded again (as a later stage would): from the store, no request.
    let n = reg.requests().len();
    assert_eq!(
        resolver.load_lazy(&base).expect("again").manifest,
        loaded.manifest
    );
    assert_eq!(reg.requests().len(), n);

    // FROM base + LABEL, written and pushed to the same registry.
    let mut state = loaded.state.clone();
    state
        .config
        .config
        .labels
        .insert("lazy".into(), "yes".into());
    let written =
        write_image(&store, &state, Compression::default(), MediaTypes::Oci).expect("write_image");
    let target = Reference::parse(&format!("{host}/team/lazy:1")).expect("target");
    let pushed = rbuild::registry::push(
        &store,
        &written.manifest,
        &target,
        &RegistryOptions::default(),
    )
    .expect("push");
    assert_eq!(
        (pushed.mounted, pushed.uploaded),
        (loaded.state.layers.len(), 1),
        "{pushed:?}"
    );
    let reqs = reg.requests()[before..].to_vec();
    for l in &written.layers {
        let d = l.digest.to_string();
        assert!(
            !reqs.iter().any(|q| q.starts_with("GET ") && q.contains(&d)),
            "{d} downloaded: {reqs:#?}"
        );
        assert!(
            !reqs.iter().any(|q| q.starts_with("PUT ") && q.contains(&d)),
            "{d} uploaded: {reqs:#?}"
        );
    }
    let pushed_manifest = remote_manifest(&format!("{host}/team/lazy:1"));
    let base_manifest = remote_manifest(&base);
    let digests = |m: &serde_json::Value| -> Vec<String> {
        m["layers"]
            .as_array()
            .expect("layers")
            .iter()
            .map(|l| l["digest"].as_str().expect("digest").to_string())
            .collect()
    };
    assert_eq!(digests(&pushed_manifest), digests(&base_manifest));
}

#[test]
fn a_build_that_never_reads_its_base_is_pushed_without_downloading_the_base() {
    let seed = Env::new();
    let layout = seed.path("layout");
    busybox_layout(&seed, &layout);
    let reg = Registry::start_logged();
    let host = reg.host();
    let base = format!("{host}/library/busybox:latest");
    push(&layout, "latest", &base, None, false);
    let base_manifest = remote_manifest(&base);
    let layers: Vec<String> = base_manifest["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| l["digest"].as_str().expect("digest").to_string())
        .collect();
    assert!(!layers.is_empty());

    // FROM, config instructions and COPY --link, pushed to the base's
    // registry from a fresh store: the base's layers are never fetched.
    let env = isolated();
    let target = format!("{host}/team/lazy:1");
    let dockerfile = format!(
        "FROM {base}\nLABEL lazy=yes\nENV GREETING=hi\nCOPY --link --chown=1000:1000 <<EOT /hello.txt\nhello\nEOT\nCMD [\"cat\", \"/hello.txt\"]\n"
    );
    let before = reg.requests().len();
    build(&env, &["-t", &target, "--push"], &dockerfile, true);
    let reqs = reg.requests()[before..].to_vec();
    for l in &layers {
        assert!(
            !reqs.iter().any(|q| q.starts_with("GET ") && q.contains(l)),
            "{l} was downloaded: {reqs:#?}"
        );
        let enc = l.replace(':', "%3A");
        assert!(
            reqs.iter()
                .any(|q| q.starts_with("POST /v2/team/lazy/blobs/uploads/?")
                    && q.contains(&format!("mount={enc}"))
                    && q.ends_with(" 201")),
            "{l} mounted: {reqs:#?}"
        );
    }
    let pushed = remote_manifest(&target);
    let pushed_layers = pushed["layers"].as_array().expect("layers");
    assert_eq!(pushed_layers.len(), layers.len() + 1);
    assert_eq!(
        pushed_layers[..layers.len()],
        base_manifest["layers"].as_array().unwrap()[..]
    );

    // Again with --pull: one HEAD for the base, shared by the Dockerfile's
    // lowering and the solver; still nothing downloaded.
    let before = reg.requests().len();
    build(
        &env,
        &["-t", &target, "--push", "--pull"],
        &dockerfile,
        true,
    );
    let reqs = reg.requests()[before..].to_vec();
    let heads = reqs
        .iter()
        .filter(|q| q.starts_with("HEAD /v2/library/busybox/manifests/"))
        .count();
    assert_eq!(heads, 1, "{reqs:#?}");
    assert!(
        !reqs
            .iter()
            .any(|q| q.starts_with("GET /v2/library/busybox/blobs/")),
        "{reqs:#?}"
    );

    // Run where it was built: the layers left in the registry are fetched.
    let out = env
        .rbuild()
        .env_remove("RBUILD_OFFLINE")
        .env("DOCKER_CONFIG", env.path("docker-config"))
        .env("RBUILD_CONFIG", env.path("registries.toml"))
        .args(["run", "--rm", "--network", "none", &target])
        .output()
        .expect("rbuild run");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hello\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The pushed image is whole: a build on it in another store reads the
    // base's files and the new one.
    let other = isolated();
    build_local(
        &other,
        &format!(
            "FROM {target}\nRUN ls /bin/busybox > /o && cat /hello.txt >> /o && stat -c %u /hello.txt >> /o && echo $GREETING >> /o\n"
        ),
        &other.path("out"),
        &[],
    );
    assert_eq!(read(other.path("out/o")), "/bin/busybox\nhello\n1000\nhi\n");

    // A step that reads the base (a named owner) downloads it.
    let env = isolated();
    let before = reg.requests().len();
    let dockerfile = format!("FROM {base}\nCOPY --link --chown=root <<EOT /x\nx\nEOT\n");
    build(&env, &["-t", &target, "--push"], &dockerfile, true);
    let reqs = reg.requests()[before..].to_vec();
    assert!(
        layers
            .iter()
            .all(|l| reqs.iter().any(|q| q.starts_with("GET ") && q.contains(l))),
        "{reqs:#?}"
    );
}

#[test]
fn a_push_whose_registry_does_not_mount_the_lazy_base_downloads_the_base_and_uploads_it() {
    // The base is resolved through a mirror: its layers are on the mirror,
    // not on the registry pushed to, so no mount can work there.
    let seed = Env::new();
    let layout = seed.path("layout");
    busybox_layout(&seed, &layout);
    let mirror = Registry::start_logged();
    let origin = Registry::start_logged();
    let (mhost, host) = (mirror.host(), origin.host());
    push(
        &layout,
        "latest",
        &format!("{mhost}/library/busybox:latest"),
        None,
        false,
    );
    let layers: Vec<String> = remote_manifest(&format!("{mhost}/library/busybox:latest"))["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| l["digest"].as_str().expect("digest").to_string())
        .collect();
    let env = isolated();
    std::fs::write(
        env.path("registries.toml"),
        format!("[registry.\"{host}\"]\nmirrors = [\"{mhost}\"]\n"),
    )
    .expect("config");
    let target = format!("{host}/team/app:1");
    let dockerfile = format!(
        "FROM {host}/library/busybox\nLABEL lazy=yes\nCOPY --link <<EOT /hello.txt\nhello\nEOT\n"
    );
    let err = build(&env, &["-t", &target, "--push"], &dockerfile, true);
    assert!(
        err.contains("the push needs base layers left in their registry"),
        "{err}"
    );
    // The base's layers came from the mirror once the mount was refused,
    // and were uploaded to the registry pushed to.
    let from_mirror = mirror.requests();
    let at_origin = origin.requests();
    for l in &layers {
        assert!(
            from_mirror
                .iter()
                .any(|q| q.starts_with("GET ") && q.contains(l.as_str()) && q.ends_with(" 200")),
            "{l} downloaded: {from_mirror:#?}"
        );
        let enc = l.replace(':', "%3A");
        assert!(
            !at_origin
                .iter()
                .any(|q| q.contains(&format!("mount={enc}")) && q.ends_with(" 201")),
            "{l} was mounted: {at_origin:#?}"
        );
    }
    // The pushed image is whole: skopeo copies every blob of it.
    let pushed = remote_manifest(&target);
    assert_eq!(
        pushed["layers"].as_array().expect("layers").len(),
        layers.len() + 1
    );
    let copy = seed.path("copy");
    let out = std::process::Command::new(common::require_tool("skopeo", "skopeo"))
        .args(["copy", "--src-tls-verify=false"])
        .arg(format!("docker://{target}"))
        .arg(format!("oci:{}:x", copy.display()))
        .output()
        .expect("skopeo");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let other = isolated();
    build_local(
        &other,
        &format!("FROM {target}\nRUN ls /bin/busybox > /o && cat /hello.txt >> /o\n"),
        &other.path("out"),
        &[],
    );
    assert_eq!(read(other.path("out/o")), "/bin/busybox\nhello\n");
}

/// The layer digests of a manifest in a registry.
fn layer_digests(image: &str) -> Vec<String> {
    remote_manifest(image)["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| l["digest"].as_str().expect("digest").to_string())
        .collect()
}

#[test]
fn a_base_of_several_layers_stays_in_its_registry_and_a_run_step_downloads_it() {
    let seed = Env::new();
    let layout = seed.path("layout");
    busybox_layout(&seed, &layout);
    let reg = Registry::start_logged();
    let host = reg.host();
    let busybox = format!("{host}/library/busybox:latest");
    push(&layout, "latest", &busybox, None, false);
    // A base of several layers: busybox's and two more, pushed by rbuild.
    let base = format!("{host}/library/base:1");
    build(
        &isolated(),
        &["-t", &base, "--push"],
        &format!("FROM {busybox}\nRUN echo a > /a\nRUN echo b > /b\n"),
        true,
    );
    let layers = layer_digests(&base);
    assert_eq!(layers.len(), layer_digests(&busybox).len() + 2);

    // Config instructions and COPY --link: no layer of the base is fetched,
    // each is mounted.
    let env = isolated();
    let app = format!("{host}/team/app:1");
    let before = reg.requests().len();
    build(
        &env,
        &["-t", &app, "--push"],
        &format!("FROM {base}\nLABEL a=b\nENV E=1\nCOPY --link <<EOT /w/f\nf\nEOT\n"),
        true,
    );
    let reqs = reg.requests()[before..].to_vec();
    for l in &layers {
        assert!(
            !reqs
                .iter()
                .any(|q| q.starts_with("GET ") && q.contains(l.as_str())),
            "{l} was downloaded: {reqs:#?}"
        );
        let enc = l.replace(':', "%3A");
        assert!(
            reqs.iter().any(|q| q.contains(&format!("mount={enc}"))
                && q.contains("from=library%2Fbase")
                && q.ends_with(" 201")),
            "{l} mounted: {reqs:#?}"
        );
    }
    assert_eq!(layer_digests(&app)[..layers.len()], layers[..]);

    // A RUN step reads the base: its layers are downloaded, and the image
    // pushed has the base's files and the step's.
    let env = isolated();
    let ran = format!("{host}/team/app:2");
    let before = reg.requests().len();
    build(
        &env,
        &["-t", &ran, "--push"],
        &format!("FROM {base}\nRUN cat /a /b > /c\n"),
        true,
    );
    let reqs = reg.requests()[before..].to_vec();
    for l in &layers {
        assert!(
            reqs.iter()
                .any(|q| q.starts_with("GET ") && q.contains(l.as_str()) && q.ends_with(" 200")),
            "{l} not downloaded: {reqs:#?}"
        );
    }
    let other = isolated();
    build_local(
        &other,
        &format!(
            "FROM {app} AS app\nFROM {ran}\nCOPY --from=app /w/f /f\nRUN cat /a /b /c /f > /o\n"
        ),
        &other.path("out"),
        &[],
    );
    assert_eq!(read(other.path("out/o")), "a\nb\na\nb\nf\n");
}

#[test]
fn a_zstd_base_stays_in_its_registry_only_under_oci_media_types() {
    let seed = Env::new();
    let layout = seed.path("layout");
    busybox_layout_compressed(&seed, &layout, "zstd");
    let reg = Registry::start_logged();
    let host = reg.host();
    let base = format!("{host}/library/busybox:zstd");
    push(&layout, "latest", &base, None, false);
    let base_layers = remote_manifest(&base)["layers"].clone();
    let layers = layer_digests(&base);
    let dockerfile = format!("FROM {base}\nLABEL z=1\nCOPY --link <<EOT /f\nf\nEOT\n");

    // OCI media types (the default; gzip new layers): the zstd blobs are
    // pointed at as they are, mounted, never fetched.
    let env = isolated();
    let oci = format!("{host}/team/oci:1");
    let before = reg.requests().len();
    build(&env, &["-t", &oci, "--push"], &dockerfile, true);
    let reqs = reg.requests()[before..].to_vec();
    assert!(
        !reqs
            .iter()
            .any(|q| q.starts_with("GET ") && layers.iter().any(|l| q.contains(l.as_str()))),
        "{reqs:#?}"
    );
    let pushed = remote_manifest(&oci);
    let pushed_layers = pushed["layers"].as_array().expect("layers");
    assert_eq!(
        pushed_layers[..layers.len()],
        base_layers.as_array().unwrap()[..]
    );
    assert_eq!(
        pushed_layers[layers.len()]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );

    // Docker media types have no zstd: the base is downloaded and its
    // layers pushed as gzip.
    let env = isolated();
    let docker = format!("{host}/team/docker:1");
    let before = reg.requests().len();
    let out = format!("type=image,name={docker},push=true,oci-mediatypes=false");
    build(&env, &["-o", &out], &dockerfile, true);
    let reqs = reg.requests()[before..].to_vec();
    assert!(
        layers.iter().all(|l| reqs
            .iter()
            .any(|q| q.starts_with("GET ") && q.contains(l.as_str()))),
        "{reqs:#?}"
    );
    let pushed = remote_manifest(&docker);
    for l in pushed["layers"].as_array().expect("layers") {
        assert_eq!(
            l["mediaType"],
            "application/vnd.docker.image.rootfs.diff.tar.gzip"
        );
    }
    // Both results are whole images.
    let other = isolated();
    build_local(
        &other,
        &format!(
            "FROM {oci} AS o\nFROM {docker}\nCOPY --from=o /f /g\nRUN cat /f /g > /o && ls /bin/busybox >> /o\n"
        ),
        &other.path("out"),
        &[],
    );
    assert_eq!(read(other.path("out/o")), "f\nf\n/bin/busybox\n");
}
