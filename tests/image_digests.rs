//! Repository digests with a real registry on 127.0.0.1: a pulled image
//! shows its manifest digest (`images --digests`, inspect's RepoDigests)
//! and `rmi` reports it; a pushed image gets the digest it was pushed as;
//! a loaded image with fields rbuild does not model is pushed with its
//! config byte for byte (the registry has the ID `rbuild images` shows).

mod common;
use common::registry::{Registry, busybox_registry, isolated, remote_manifest};
use common::{Env, run};

fn rb(env: &Env, args: &[&str]) -> String {
    let out = env
        .rbuild()
        .env_remove("RBUILD_OFFLINE")
        .env("DOCKER_CONFIG", env.path("docker-config"))
        .env("RBUILD_CONFIG", env.path("registries.toml"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "rbuild {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn pulled_images_show_their_digest_and_rmi_reports_it() {
    let (_seed, _layout, _reg, host) = busybox_registry();
    let env = isolated();
    let name = format!("{host}/library/busybox");
    rb(&env, &["pull", &name]);
    let v: serde_json::Value = serde_json::from_str(&rb(&env, &["inspect", &name])).unwrap();
    let repo_digests = v[0]["RepoDigests"].as_array().unwrap().clone();
    assert_eq!(repo_digests.len(), 1, "{v}");
    let rd = repo_digests[0].as_str().unwrap().to_string();
    assert!(rd.starts_with(&format!("{name}@sha256:")), "{rd}");
    let d = rd.split_once('@').unwrap().1.to_string();
    // The same digest the registry serves for the tag.
    let served = run(std::process::Command::new("skopeo").args([
        "inspect",
        "--tls-verify=false",
        "--format",
        "{{.Digest}}",
        &format!("docker://{name}:latest"),
    ]));
    assert_eq!(served.trim(), d);
    let listed = rb(&env, &["images", "--digests"]);
    let row = listed.lines().nth(1).unwrap();
    assert!(
        row.split_whitespace()
            .take(3)
            .eq([name.as_str(), "latest", d.as_str()]),
        "{listed}"
    );
    // By digest, too.
    let id = rb(&env, &["inspect", "-f", "{{.Id}}", &rd]);
    assert!(id.starts_with("sha256:"));
    let out = rb(&env, &["rmi", &name]);
    assert_eq!(
        out,
        format!(
            "Untagged: {name}:latest\nUntagged: {rd}\nDeleted: {}\n",
            id.trim()
        )
    );
}

#[test]
fn pushed_images_get_a_digest_and_loaded_configs_go_up_unchanged() {
    let env = isolated();
    let reg = Registry::start(None);
    // An image as Docker saves it: a config with fields rbuild has no model for.
    let layer = {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(6);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, "hello.txt", &b"hello\n"[..]).unwrap();
        b.into_inner().unwrap()
    };
    let diff_id = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&layer));
    let config = format!(
        r#"{{"architecture":"amd64","container_config":{{"Hostname":"","Cmd":null}},"docker_version":"20.10.24","os":"linux","config":{{"Env":null,"OnBuild":null,"Cmd":["cat","/hello.txt"]}},"rootfs":{{"type":"layers","diff_ids":["sha256:{diff_id}"]}}}}"#
    );
    let id = format!(
        "sha256:{}",
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(config.as_bytes()))
    );
    let name = format!("{}/loaded/app:1", reg.host());
    let manifest =
        format!(r#"[{{"Config":"c.json","RepoTags":["{name}"],"Layers":["l/layer.tar"]}}]"#);
    let archive = {
        let mut b = tar::Builder::new(Vec::new());
        for (p, data) in [
            ("manifest.json", manifest.as_bytes()),
            ("c.json", config.as_bytes()),
            ("l/layer.tar", &layer[..]),
        ] {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            b.append_data(&mut h, p, data).unwrap();
        }
        let p = env.path("a.tar");
        std::fs::write(&p, b.into_inner().unwrap()).unwrap();
        p
    };
    rb(&env, &["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(rb(&env, &["images", "-q", "--no-trunc"]), format!("{id}\n"));
    let v: serde_json::Value = serde_json::from_str(&rb(&env, &["inspect", &name])).unwrap();
    assert_eq!(v[0]["RepoDigests"], serde_json::json!([]));
    rb(&env, &["push", &name]);
    assert_eq!(remote_manifest(&name)["config"]["digest"], id.as_str());
    let v: serde_json::Value = serde_json::from_str(&rb(&env, &["inspect", &name])).unwrap();
    let rd = v[0]["RepoDigests"][0]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        rd.starts_with(&format!("{}/loaded/app@sha256:", reg.host())),
        "{v}"
    );
    let listed = rb(&env, &["images", "--digests"]);
    assert!(listed.contains(rd.split_once('@').unwrap().1), "{listed}");
}
