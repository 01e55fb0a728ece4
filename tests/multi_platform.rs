//! Multi-platform builds (`--platform linux/amd64,linux/arm64`) without
//! RUN: the image index in a real registry (Debian's docker-registry on
//! 127.0.0.1) and in OCI layouts, read back with skopeo and umoci; steps
//! whose key matches on both platforms run once; BuildKit's platform args;
//! base selection from a pushed index; a Docker engine pulling the amd64
//! image of the index and running it.

mod common;

use common::dockerd::Dockerd;
use common::registry::{Registry, isolated};
use common::{Env, require_file, require_tool, run};
use std::path::Path;
use std::process::Command;

/// This machine's architecture as OCI names it.
fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => panic!("no test platform for {other}"),
    }
}

/// `rbuild build --progress plain ARGS CTX` with the registry reachable.
fn build_in(env: &Env, ctx: &Path, args: &[&str], success: bool) -> String {
    let out = env
        .rbuild()
        .env_remove("RBUILD_OFFLINE")
        .env("DOCKER_CONFIG", env.path("docker-config"))
        .env("RBUILD_CONFIG", env.path("registries.toml"))
        .args(["build", "--progress", "plain"])
        .args(args)
        .arg(ctx)
        .output()
        .expect("run rbuild");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.success(),
        success,
        "rbuild build {args:?}:\n{err}"
    );
    err
}

/// How many of the progress vertices whose name contains `step` were
/// taken from the cache, and how many there were.
fn cached_of(log: &str, step: &str) -> (usize, usize) {
    let ids: Vec<String> = log
        .lines()
        .filter(|l| l.contains(step) && l.starts_with('#'))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect();
    let cached = ids
        .iter()
        .filter(|id| log.lines().any(|l| l == format!("{id} CACHED")))
        .count();
    (cached, ids.len())
}

fn skopeo(args: &[&str]) -> serde_json::Value {
    let out = run(Command::new(require_tool("skopeo", "skopeo")).args(args));
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("skopeo {args:?}: {e}\n{out}"))
}

/// The platforms an index lists, as `os/arch[/variant]`.
fn platforms(index: &serde_json::Value) -> Vec<String> {
    index["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .map(|m| {
            let p = &m["platform"];
            let mut s = format!(
                "{}/{}",
                p["os"].as_str().unwrap(),
                p["architecture"].as_str().unwrap()
            );
            if let Some(v) = p["variant"].as_str() {
                s.push('/');
                s.push_str(v);
            }
            s
        })
        .collect()
}

const APP: &str = "FROM scratch\nARG TARGETARCH\nCOPY a.txt /a.txt\nARG TARGETPLATFORM\nARG BUILDPLATFORM\nARG TARGETVARIANT\nENV ARCH=$TARGETARCH TP=$TARGETPLATFORM BP=$BUILDPLATFORM TV=v$TARGETVARIANT\n";

#[test]
fn two_platforms_push_an_index_and_share_the_context_copy() {
    let env = isolated();
    let reg = Registry::start(None);
    let image = format!("{}/mp/app:1", reg.host());
    let ctx = env.project("app", &[("Dockerfile", APP), ("a.txt", "same on both\n")]);
    let iid = env.path("iid");
    let meta = env.path("meta.json");
    let log = build_in(
        &env,
        &ctx,
        &[
            "--platform",
            "linux/amd64,linux/arm64",
            "-t",
            &image,
            "--push",
            "--iidfile",
            iid.to_str().unwrap(),
            "--metadata-file",
            meta.to_str().unwrap(),
        ],
        true,
    );
    // The COPY onto scratch has one key for both platforms (an ARG's value
    // is in the keys of the steps that use it only): run once.
    assert_eq!(cached_of(&log, "COPY a.txt"), (1, 2), "{log}");
    let docker_ref = format!("docker://{image}");
    let raw = skopeo(&["inspect", "--raw", "--tls-verify=false", &docker_ref]);
    assert_eq!(
        raw["mediaType"], "application/vnd.oci.image.index.v1+json",
        "{raw}"
    );
    assert_eq!(platforms(&raw), ["linux/amd64", "linux/arm64"], "{raw}");
    // --iidfile and --metadata-file name the index, as buildx's do.
    let digest = std::fs::read_to_string(&iid).unwrap();
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(&meta).unwrap()).unwrap();
    assert_eq!(m["containerimage.digest"], digest.as_str(), "{m}");
    let by_digest = format!("docker://{}@{digest}", image.rsplit_once(':').unwrap().0);
    let same = skopeo(&["inspect", "--raw", "--tls-verify=false", &by_digest]);
    assert_eq!(same, raw);
    let mut layers = Vec::new();
    for arch in ["amd64", "arm64"] {
        let i = skopeo(&[
            "inspect",
            "--tls-verify=false",
            "--override-os",
            "linux",
            "--override-arch",
            arch,
            &docker_ref,
        ]);
        assert_eq!(i["Architecture"], arch, "{i}");
        assert_eq!(i["Os"], "linux", "{i}");
        let env_list: Vec<&str> = i["Env"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        assert!(env_list.contains(&format!("ARCH={arch}").as_str()), "{i}");
        assert!(
            env_list.contains(&format!("TP=linux/{arch}").as_str()),
            "{i}"
        );
        assert!(
            env_list.contains(&format!("BP=linux/{}", host_arch()).as_str()),
            "{i}"
        );
        // BuildKit: linux/arm64 has no variant (v8 is normalised away).
        assert!(env_list.contains(&"TV=v"), "{i}");
        layers.push(i["Layers"].clone());
    }
    assert_eq!(layers[0], layers[1], "one layer blob for both platforms");
    // The store's name is this machine's image.
    let out = env.rbuild().args(["inspect", &image]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("inspect json");
    assert_eq!(v[0]["Architecture"], host_arch(), "{v}");
    // The store keeps the index (through a prune): `rbuild push` sends it again.
    let pruned = env.rbuild().args(["prune", "--all"]).output().unwrap();
    assert!(pruned.status.success());
    let pushed = env
        .rbuild()
        .env_remove("RBUILD_OFFLINE")
        .env("DOCKER_CONFIG", env.path("docker-config"))
        .env("RBUILD_CONFIG", env.path("registries.toml"))
        .args(["push", &image])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&pushed.stderr);
    assert!(pushed.status.success(), "{err}");
    assert!(err.contains("0 blobs uploaded"), "{err}");
    let again = skopeo(&["inspect", "--raw", "--tls-verify=false", &docker_ref]);
    assert_eq!(again, raw);
    // Docker media types: a manifest list over Docker manifests.
    let list = format!("{}/mp/list:1", reg.host());
    build_in(
        &env,
        &ctx,
        &[
            "--platform",
            "linux/amd64,linux/arm64",
            "-o",
            &format!("type=registry,name={list},oci-mediatypes=false"),
        ],
        true,
    );
    let raw_list = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{list}"),
    ]);
    assert_eq!(
        raw_list["mediaType"], "application/vnd.docker.distribution.manifest.list.v2+json",
        "{raw_list}"
    );
    assert_eq!(platforms(&raw_list), ["linux/amd64", "linux/arm64"]);
    assert_eq!(
        raw_list["manifests"][1]["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    // `rbuild tag` keeps the index with the new name.
    let second = format!("{}/mp/app:2", reg.host());
    let out = env
        .rbuild()
        .args(["tag", &image, &second])
        .output()
        .unwrap();
    assert!(out.status.success());
    let out = env
        .rbuild()
        .env_remove("RBUILD_OFFLINE")
        .env("DOCKER_CONFIG", env.path("docker-config"))
        .env("RBUILD_CONFIG", env.path("registries.toml"))
        .args(["push", &second])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tagged = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{second}"),
    ]);
    assert_eq!(tagged, raw);
}

#[test]
fn oci_layouts_hold_the_index_local_writes_a_folder_per_platform() {
    let env = isolated();
    let ctx = env.project("app", &[("Dockerfile", APP), ("a.txt", "files\n")]);
    let layout = env.path("layout");
    let local = env.path("local");
    let archive = env.path("img.tar");
    build_in(
        &env,
        &ctx,
        &[
            "--platform",
            "linux/arm64",
            "--platform",
            "linux/amd64,arm64/v8",
            "-t",
            "mp/layout:1",
            "-o",
            &format!("type=oci,tar=false,dest={}", layout.display()),
            "-o",
            &format!("type=local,dest={}", local.display()),
            "-o",
            &format!("type=oci,dest={},oci-mediatypes=false", archive.display()),
        ],
        true,
    );
    let oci = format!("oci:{}:1", layout.display());
    let raw = skopeo(&["inspect", "--raw", &oci]);
    assert_eq!(platforms(&raw), ["linux/arm64", "linux/amd64"], "{raw}");
    let i = skopeo(&["inspect", "--override-arch", "arm64", &oci]);
    assert_eq!(i["Architecture"], "arm64", "{i}");
    // --no-cache: a step both platforms have still runs once in the build.
    let log = build_in(
        &env,
        &ctx,
        &["--no-cache", "--platform", "linux/amd64,linux/arm64"],
        true,
    );
    assert_eq!(cached_of(&log, "COPY a.txt"), (1, 2), "{log}");
    // The layout as a base: each platform gets its own image of the index.
    let on_layout = env.project(
        "on-layout",
        &[(
            "Dockerfile",
            &format!("FROM oci-layout://{}:1\nENV Y=1\n", layout.display()),
        )],
    );
    let layout2 = env.path("layout2");
    build_in(
        &env,
        &on_layout,
        &[
            "--platform",
            "linux/amd64,linux/arm64",
            "-o",
            &format!("type=oci,tar=false,dest={},name=on:1", layout2.display()),
        ],
        true,
    );
    for arch in ["amd64", "arm64"] {
        let oci2 = format!("oci:{}:1", layout2.display());
        let i = skopeo(&["inspect", "--override-arch", arch, &oci2]);
        let env_list = i["Env"].to_string();
        assert!(env_list.contains(&format!("ARCH={arch}")), "{i}");
        assert!(env_list.contains("Y=1"), "{i}");
    }
    // umoci reads the layout and unpacks its image for this machine.
    let umoci = require_tool("umoci", "umoci");
    let ls = run(Command::new(&umoci).args(["ls", "--layout"]).arg(&layout));
    assert_eq!(ls.trim(), "1", "{ls}");
    for p in ["linux_amd64", "linux_arm64"] {
        assert_eq!(
            std::fs::read_to_string(local.join(p).join("a.txt")).unwrap(),
            "files\n"
        );
    }
    // The archive with Docker media types: a manifest list.
    let raw = skopeo(&[
        "inspect",
        "--raw",
        &format!("oci-archive:{}", archive.display()),
    ]);
    assert_eq!(
        raw["mediaType"], "application/vnd.docker.distribution.manifest.list.v2+json",
        "{raw}"
    );
    // A Docker archive holds one image: refused before the build, as BuildKit.
    let err = build_in(
        &env,
        &ctx,
        &[
            "--platform",
            "linux/amd64,linux/arm64",
            "-o",
            &format!("type=docker,dest={}", env.path("d.tar").display()),
        ],
        false,
    );
    assert!(
        err.contains("does not currently support exporting manifest lists"),
        "{err}"
    );
}

#[test]
fn a_buildplatform_stage_is_built_once_and_bases_come_from_a_pushed_index() {
    let env = isolated();
    let reg = Registry::start(None);
    let base = format!("{}/mp/base:1", reg.host());
    // A two-platform base whose file says its platform.
    let base_ctx = env.project(
        "base",
        &[
            (
                "Dockerfile",
                "FROM scratch\nARG TARGETARCH\nCOPY $TARGETARCH.txt /arch.txt\n",
            ),
            ("amd64.txt", "amd64 base\n"),
            ("arm64.txt", "arm64 base\n"),
        ],
    );
    build_in(
        &env,
        &base_ctx,
        &[
            "--platform",
            "linux/amd64,linux/arm64",
            "-t",
            &base,
            "--push",
        ],
        true,
    );
    let app = format!(
        "FROM --platform=$BUILDPLATFORM {base} AS tool\nCOPY tool.txt /tool.txt\n\n\
         FROM {base}\nCOPY --from=tool /arch.txt /build-arch.txt\nCOPY --from=tool /tool.txt /tool.txt\n"
    );
    let ctx = env.project(
        "app",
        &[("Dockerfile", app.as_str()), ("tool.txt", "tool\n")],
    );
    let out = env.path("out");
    let log = build_in(
        &env,
        &ctx,
        &[
            "--platform",
            "linux/amd64,linux/arm64",
            "-o",
            &format!("type=local,dest={}", out.display()),
        ],
        true,
    );
    // The build platform's stage is the same for both targets: once.
    assert_eq!(cached_of(&log, "COPY tool.txt"), (1, 2), "{log}");
    let host_file = format!("{} base\n", host_arch());
    for arch in ["amd64", "arm64"] {
        let dir = out.join(format!("linux_{arch}"));
        let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
        assert_eq!(
            read("arch.txt"),
            format!("{arch} base\n"),
            "base for {arch}"
        );
        assert_eq!(
            read("build-arch.txt"),
            host_file,
            "the tool stage runs on the build platform"
        );
        assert_eq!(read("tool.txt"), "tool\n");
    }
    // One foreign platform pushed on that base (the store's name holds
    // this machine's image): the base's arm64 layers, an arm64 config.
    let one = format!("{}/mp/one:1", reg.host());
    let ctx = env.project("one", &[("Dockerfile", &format!("FROM {base}\nENV X=1\n"))]);
    build_in(
        &env,
        &ctx,
        &["--platform", "linux/arm64", "-t", &one, "--push"],
        true,
    );
    let pushed = skopeo(&["inspect", "--tls-verify=false", &format!("docker://{one}")]);
    let base_arm64 = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--override-arch",
        "arm64",
        &format!("docker://{base}"),
    ]);
    assert_eq!(pushed["Architecture"], "arm64", "{pushed}");
    assert_eq!(
        pushed["Layers"], base_arm64["Layers"],
        "{pushed}\n{base_arm64}"
    );
}

#[test]
fn a_docker_engine_pulls_and_runs_the_amd64_image_of_the_index() {
    if host_arch() != "amd64" {
        return;
    }
    let busybox = require_file("/bin/busybox", "busybox-static");
    let env = isolated();
    let reg = Registry::start(None);
    let image = format!("{}/mp/run:1", reg.host());
    let ctx = env.project(
        "app",
        &[
            (
                "Dockerfile",
                "FROM scratch\nARG TARGETARCH\nCOPY bin-$TARGETARCH /bin/busybox\nENV ARCH=$TARGETARCH\nCMD [\"/bin/busybox\", \"sh\", \"-c\", \"echo running $ARCH\"]\n",
            ),
            ("bin-arm64", "not run here\n"),
        ],
    );
    std::fs::copy(busybox, ctx.join("bin-amd64")).unwrap();
    build_in(
        &env,
        &ctx,
        &[
            "--platform",
            "linux/amd64,linux/arm64",
            "-t",
            &image,
            "--push",
        ],
        true,
    );
    let d = Dockerd::start();
    run(d.docker().args(["pull", &image]));
    let inspect = run(d.docker().args(["image", "inspect", &image]));
    let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(v[0]["Architecture"], "amd64", "{v}");
    let out = run(d.docker().args(["run", "--rm", "--network=none", &image]));
    assert_eq!(out, "running amd64\n");
}

#[test]
fn platform_args_are_visible_where_buildkit_declares_them() {
    let env = isolated();
    let df = "ARG TARGETARCH\nFROM scratch AS a\nENV UNDECLARED=x$TARGETARCH\nARG TARGETOS\nARG TARGETVARIANT\nARG BUILDARCH\nENV OS=$TARGETOS V=$TARGETVARIANT BA=$BUILDARCH\nFROM a\nARG TARGETPLATFORM\nARG BUILDPLATFORM\nENV TP=$TARGETPLATFORM BP=$BUILDPLATFORM\n";
    let ctx = env.project("args", &[("Dockerfile", df)]);
    // `arm` is normalised to linux/arm/v7, as containerd does.
    build_in(&env, &ctx, &["--platform", "arm", "-t", "args:1"], true);
    let out = env.rbuild().args(["inspect", "args:1"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("inspect json");
    assert_eq!(v[0]["Architecture"], "arm", "{v}");
    assert_eq!(v[0]["Variant"], "v7", "{v}");
    let host = host_arch();
    let want = [
        "UNDECLARED=x".to_string(),
        "OS=linux".to_string(),
        "V=v7".to_string(),
        format!("BA={host}"),
        "TP=linux/arm/v7".to_string(),
        format!("BP=linux/{host}"),
    ];
    let got: Vec<String> = v[0]["Config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e.as_str().map(str::to_string))
        .filter(|e| !e.starts_with("PATH="))
        .collect();
    assert_eq!(got, want, "{v}");
}
