//! Layers of an imported cache left in their registry (BuildKit's lazy
//! refs): a fully cached build whose output is a push to the cache's
//! registry downloads no layer blob (each is mounted from the cache's
//! repository), and the pushed image is whole; a step that reads cached
//! layers downloads them. Against Debian's `docker-registry` on 127.0.0.1,
//! with its access log.

mod common;

use common::Env;
use common::registry::*;

const EPOCH: &str = "SOURCE_DATE_EPOCH=1700000000";

fn dockerfile(base: &str, extra: &str) -> String {
    format!(
        "FROM {base}\n\
         COPY <<EOT /a.txt\nhello\nEOT\n\
         RUN cat /a.txt > /b && echo built >> /b\n\
         ENV DONE=1\n{extra}"
    )
}

/// Layer digests of a manifest.
fn layers(m: &serde_json::Value) -> Vec<String> {
    m["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| l["digest"].as_str().expect("digest").to_string())
        .collect()
}

/// The `GET`s of blobs among `digests` in `reqs`.
fn blob_gets<'a>(reqs: &'a [String], digests: &[String]) -> Vec<&'a String> {
    reqs.iter()
        .filter(|q| q.starts_with("GET ") && q.contains("/blobs/"))
        .filter(|q| digests.iter().any(|d| q.contains(d.as_str())))
        .collect()
}

fn metadata(env: &Env) -> serde_json::Value {
    serde_json::from_str(&read(env.path("m.json"))).expect("metadata")
}

#[test]
fn a_fully_cached_push_downloads_no_layer_and_mounts_them_from_the_cache() {
    let seed = Env::new();
    let layout = seed.path("layout");
    busybox_layout(&seed, &layout);
    let reg = Registry::start_logged();
    let host = reg.host();
    let base = format!("{host}/library/busybox:latest");
    push(&layout, "latest", &base, None, false);
    let cache = format!("{host}/cache/app:buildcache");
    let to = format!("type=registry,ref={cache},mode=max");

    // A first machine builds and exports the cache.
    let a = isolated();
    let meta_a = a.path("m.json").display().to_string();
    let df = dockerfile(&base, "");
    let log = build(
        &a,
        &[
            "--build-arg",
            EPOCH,
            "--cache-to",
            &to,
            "--metadata-file",
            &meta_a,
        ],
        &df,
        true,
    );
    assert!(log.contains("exported cache to"), "{log}");
    let cache_layers = layers(&remote_manifest(&cache));

    // A fresh machine: every step from the cache, pushed to the cache's
    // registry: no layer blob is fetched, each is mounted.
    let b = isolated();
    let target = format!("{host}/team/app:1");
    let meta_b = b.path("m.json").display().to_string();
    let before = reg.requests().len();
    let log = build(
        &b,
        &[
            "--build-arg",
            EPOCH,
            "--cache-from",
            &cache,
            "-t",
            &target,
            "--push",
            "--metadata-file",
            &meta_b,
            "--cache-to",
            &format!("type=registry,ref={cache}-again,mode=max"),
        ],
        &df,
        true,
    );
    let reqs = reg.requests()[before..].to_vec();
    assert!(log.contains("0 steps run"), "{log}");
    // Exported again from there, layers still left in the registry: the
    // same records and layers.
    let again = remote_manifest(&format!("{cache}-again"));
    assert_eq!(layers(&again), cache_layers, "{log}");
    let pushed = remote_manifest(&target);
    let pushed_layers = layers(&pushed);
    let mut all = cache_layers.clone();
    all.extend(pushed_layers.iter().cloned());
    let gets = blob_gets(&reqs, &all);
    assert!(gets.is_empty(), "layers downloaded: {gets:#?}\n{log}");
    for l in &pushed_layers {
        let enc = l.replace(':', "%3A");
        assert!(
            reqs.iter()
                .any(|q| q.starts_with("POST /v2/team/app/blobs/uploads/?")
                    && q.contains(&format!("mount={enc}"))
                    && q.ends_with(" 201")),
            "{l} not mounted: {reqs:#?}"
        );
    }
    // Nothing of the layers is in the fresh store.
    for l in &pushed_layers {
        let hex = l.trim_start_matches("sha256:");
        assert!(
            !b.root().join("blobs/sha256").join(hex).exists(),
            "{l} stored"
        );
    }
    // The same image as the first machine's.
    let (ma, mb) = (metadata(&a), metadata(&b));
    assert_eq!(
        ma["containerimage.config.digest"],
        mb["containerimage.config.digest"]
    );
    assert_eq!(ma["containerimage.digest"], mb["containerimage.digest"]);

    // Run where it was built: the layers left in the registry are fetched.
    let out = b
        .rbuild()
        .env_remove("RBUILD_OFFLINE")
        .env("DOCKER_CONFIG", b.path("docker-config"))
        .env("RBUILD_CONFIG", b.path("registries.toml"))
        .args(["run", "--rm", "--network", "none", &target, "cat", "/b"])
        .output()
        .expect("rbuild run");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hello\nbuilt\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The pushed image is whole: another store builds on it and reads it.
    let c = isolated();
    build_local(
        &c,
        &format!("FROM {target}\nRUN cat /b > /o && echo $DONE >> /o\n"),
        &c.path("out"),
        &[],
    );
    assert_eq!(read(c.path("out/o")), "hello\nbuilt\n1\n");

    // A step that reads the cached layers fetches them (only then), and
    // its image is right too.
    let d = isolated();
    let target2 = format!("{host}/team/app:2");
    let before = reg.requests().len();
    let log = build(
        &d,
        &[
            "--build-arg",
            EPOCH,
            "--cache-from",
            &cache,
            "-t",
            &target2,
            "--push",
        ],
        &dockerfile(&base, "RUN cat /b /a.txt > /c\n"),
        true,
    );
    assert!(log.contains("1 step run"), "{log}");
    let reqs = reg.requests()[before..].to_vec();
    assert!(!blob_gets(&reqs, &cache_layers).is_empty(), "{reqs:#?}");
    let e = isolated();
    build_local(
        &e,
        &format!("FROM {target2}\nRUN cp /c /o\n"),
        &e.path("out"),
        &[],
    );
    assert_eq!(read(e.path("out/o")), "hello\nbuilt\nhello\n");
}

/// The config blob of `image` (skopeo).
fn remote_config(image: &str) -> serde_json::Value {
    let raw = common::run(
        std::process::Command::new(common::require_tool("skopeo", "skopeo")).args([
            "inspect",
            "--config",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{image}"),
        ]),
    );
    serde_json::from_str(&raw).expect("config")
}

#[test]
fn an_inline_cache_in_the_pushed_image_makes_a_fresh_store_fully_cached() {
    let seed = Env::new();
    let layout = seed.path("layout");
    busybox_layout(&seed, &layout);
    let reg = Registry::start_logged();
    let host = reg.host();
    let base = format!("{host}/library/busybox:latest");
    push(&layout, "latest", &base, None, false);
    let df = dockerfile(&base, "");

    let a = isolated();
    let first = format!("{host}/team/inline:1");
    let meta_a = a.path("m.json").display().to_string();
    let log = build(
        &a,
        &[
            "--build-arg",
            EPOCH,
            "--cache-to",
            "type=inline",
            "-t",
            &first,
            "--push",
            "--metadata-file",
            &meta_a,
        ],
        &df,
        true,
    );
    assert!(log.contains("inline cache: 3 records"), "{log}");
    let config = remote_config(&first);
    let inline = &config["rbuild.inline-cache.v1"];
    assert_eq!(inline["schema"], "rbuild.inline-cache.v1", "{config}");
    assert_eq!(inline["records"].as_array().map(Vec::len), Some(3));

    // A fresh store elsewhere, the image as --cache-from: every step from
    // its inline cache (said by --explain), no layer downloaded, the same
    // image pushed.
    let b = isolated();
    let second = format!("{host}/team/inline:2");
    let meta_b = b.path("m.json").display().to_string();
    let before = reg.requests().len();
    let log = build(
        &b,
        &[
            "--build-arg",
            EPOCH,
            "--cache-from",
            &first,
            "--cache-to",
            "type=inline",
            "--explain",
            "-t",
            &second,
            "--push",
            "--metadata-file",
            &meta_b,
        ],
        &df,
        true,
    );
    assert!(log.contains("0 steps run, 3 cached"), "{log}");
    for step in [
        "COPY <<EOT /a.txt",
        "RUN cat /a.txt > /b && echo built >> /b",
    ] {
        let id = log
            .lines()
            .find(|l| l.ends_with(step))
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or_else(|| panic!("{step}:\n{log}"));
        assert!(
            log.lines().any(|l| l.starts_with(&format!("{id} "))
                && l.ends_with(&format!("from the imported cache {first}"))),
            "{step} not said to come from {first}:\n{log}"
        );
    }
    let reqs = reg.requests()[before..].to_vec();
    let gets = blob_gets(&reqs, &layers(&remote_manifest(&first)));
    assert!(gets.is_empty(), "{gets:#?}");
    let (ma, mb) = (metadata(&a), metadata(&b));
    assert_eq!(
        remote_config(&first),
        remote_config(&second),
        "{}\n{}",
        remote_config(&first),
        remote_config(&second)
    );
    assert_eq!(ma["containerimage.digest"], mb["containerimage.digest"]);
    assert_eq!(
        ma["containerimage.config.digest"],
        mb["containerimage.config.digest"]
    );

    // An image built on it does not inherit its inline cache.
    let c = isolated();
    let child = format!("{host}/team/child:1");
    build(
        &c,
        &["-t", &child, "--push"],
        &format!("FROM {second}\nRUN cat /b > /o\n"),
        true,
    );
    let config = remote_config(&child);
    assert!(config.get("rbuild.inline-cache.v1").is_none(), "{config}");
}

#[test]
fn a_cached_copy_from_a_side_stage_is_found_by_definition_and_downloads_no_layer() {
    let seed = Env::new();
    let layout = seed.path("layout");
    busybox_layout(&seed, &layout);
    let reg = Registry::start_logged();
    let host = reg.host();
    let base = format!("{host}/library/busybox:latest");
    push(&layout, "latest", &base, None, false);
    let cache = format!("{host}/cache/multi:c");
    let df = format!(
        "FROM {base} AS side\nRUN echo side > /side\n\
         FROM {base}\nCOPY --from=side /side /side\nRUN cat /side /side > /both\n"
    );
    let a = isolated();
    let to = format!("type=registry,ref={cache},mode=max");
    build(&a, &["--build-arg", EPOCH, "--cache-to", &to], &df, true);
    let cache_layers = layers(&remote_manifest(&cache));

    // Fresh store, push only: COPY --from is found by its definition and
    // the side stage's key, so no file of the side stage is read and no
    // layer is downloaded (BuildKit's definition-based cache key).
    let b = isolated();
    let target = format!("{host}/team/multi:1");
    let before = reg.requests().len();
    let log = build(
        &b,
        &[
            "--build-arg",
            EPOCH,
            "--cache-from",
            &cache,
            "-t",
            &target,
            "--push",
            "--explain",
        ],
        &df,
        true,
    );
    let reqs = reg.requests()[before..].to_vec();
    assert!(log.contains("0 steps run, 3 cached"), "{log}");
    assert!(log.contains("cache hit by definition"), "{log}");
    let mut all = cache_layers.clone();
    all.extend(layers(&remote_manifest(&target)));
    let gets = blob_gets(&reqs, &all);
    assert!(gets.is_empty(), "layers downloaded: {gets:#?}\n{log}");

    // The pushed image is whole and right.
    let c = isolated();
    build_local(
        &c,
        &format!("FROM {target}\nRUN cat /side /both > /o\n"),
        &c.path("out"),
        &[],
    );
    assert_eq!(read(c.path("out/o")), "side\nside\nside\n");

    // The side stage changed: the definition key misses, the side stage
    // runs, and COPY is keyed by content again (its output differs).
    let df2 = df.replace("echo side", "echo other");
    let log = build(&b, &["--build-arg", EPOCH, "--explain"], &df2, true);
    assert!(log.contains("3 steps run, 0 cached"), "{log}");
    let c2 = isolated();
    let out = c2.path("out");
    build_local(&c2, &df2, &out, &[]);
    assert_eq!(read(out.join("both")), "other\nother\n");
}

#[test]
fn a_base_on_another_registry_is_fetched_and_pushed_whole() {
    let seed = Env::new();
    let layout = seed.path("layout");
    busybox_layout(&seed, &layout);
    let other = Registry::start_logged();
    let base = format!("{}/library/busybox:latest", other.host());
    push(&layout, "latest", &base, None, false);
    let reg = Registry::start_logged();
    let host = reg.host();
    let cache = format!("{host}/cache/cfg:c");
    // Config steps only: the cache holds no layer of the base.
    let df = format!("FROM {base}\nLABEL team=ci\nENV MODE=cached\n");
    let a = isolated();
    let to = format!("type=registry,ref={cache}");
    build(&a, &["--cache-to", &to], &df, true);

    let b = isolated();
    let target = format!("{host}/team/cfg:1");
    let log = build(
        &b,
        &["--cache-from", &cache, "-t", &target, "--push"],
        &df,
        true,
    );
    assert!(log.contains("0 steps run"), "{log}");
    let c = isolated();
    build_local(
        &c,
        &format!("FROM {target}\nRUN echo $MODE > /o && ls /bin/busybox >> /o\n"),
        &c.path("out"),
        &[],
    );
    assert_eq!(read(c.path("out/o")), "cached\n/bin/busybox\n");
}

/// A request line with any cross-repository mount taken out: the registry
/// then starts a plain upload (202), as one without mounts answers.
fn without_mount(first: &str) -> String {
    match (first.starts_with("POST "), first.split_once('?')) {
        (true, Some((path, rest))) if rest.contains("mount=") => {
            let version = rest.rsplit(' ').next().unwrap_or("HTTP/1.1");
            format!("{path} {version}")
        }
        _ => first.to_string(),
    }
}

#[test]
fn a_registry_that_refuses_mounts_gets_the_cached_layers_downloaded_and_uploaded() {
    let seed = Env::new();
    let layout = seed.path("layout");
    busybox_layout(&seed, &layout);
    let reg = Registry::start_logged();
    let upstream = reg
        .host()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    // The registry reached through a proxy that turns every mount into a
    // plain upload: a registry without cross-repository mounts.
    let host = format!(
        "127.0.0.1:{}",
        proxy(upstream, |l| Proxied::Forward(without_mount(l)))
    );
    let base = format!("{host}/library/busybox:latest");
    push(&layout, "latest", &base, None, false);
    let cache = format!("{host}/cache/app:c");
    let df = dockerfile(&base, "");
    let a = isolated();
    let to = format!("type=registry,ref={cache},mode=max");
    build(&a, &["--build-arg", EPOCH, "--cache-to", &to], &df, true);

    // A fresh store, push only: every step from the cache, the layers left
    // in the registry; the mounts are refused, so they are downloaded from
    // the cache (verified) and uploaded.
    let b = isolated();
    let target = format!("{host}/team/app:1");
    let args = [
        "--build-arg",
        EPOCH,
        "--cache-from",
        &cache,
        "-t",
        &target,
        "--push",
    ];
    let log = build(&b, &args, &df, true);
    assert!(log.contains("0 steps run"), "{log}");
    assert!(log.contains("downloading them"), "{log}");
    assert!(log.contains(&format!("pushed {target}@sha256:")), "{log}");
    let reqs = reg.requests();
    assert!(
        reqs.iter()
            .any(|q| q.starts_with("PUT /v2/team/app/blobs/uploads/")),
        "layers uploaded to team/app: {reqs:#?}"
    );

    // The pushed image is whole.
    let c = isolated();
    build_local(
        &c,
        &format!("FROM {target}\nRUN cat /a.txt /b > /o\n"),
        &c.path("out"),
        &[],
    );
    assert_eq!(read(c.path("out/o")), "hello\nhello\nbuilt\n");
}
