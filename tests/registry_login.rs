//! `rbuild login` and `rbuild logout` against a real registry on 127.0.0.1
//! (htpasswd basic auth): credentials are checked before they are stored,
//! stored as `docker login` stores them (config.json `auths`, or a
//! credential helper), used by pulls and pushes, and removed by logout.

mod common;

use common::Env;
use common::registry::*;
use std::os::unix::fs::PermissionsExt;

/// Run `rbuild ARGS` with `stdin`; (success, stdout, stderr).
fn rbuild_in(env: &Env, args: &[&str], stdin: &str, path: Option<&str>) -> (bool, String, String) {
    let mut c = env.rbuild();
    c.env_remove("RBUILD_OFFLINE")
        .env("DOCKER_CONFIG", env.path("docker-config"))
        .env("RBUILD_CONFIG", env.path("registries.toml"))
        .env("RBTEST_STORE", env.path("helper-store"))
        .args(args)
        .write_stdin(stdin.as_bytes().to_vec());
    if let Some(p) = path {
        c.env("PATH", p);
    }
    let out = c.output().expect("run rbuild");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn config_json(env: &Env) -> serde_json::Value {
    serde_json::from_str(&read(env.path("docker-config/config.json"))).expect("config.json")
}

/// A registry behind htpasswd auth holding busybox as `HOST/library/busybox`.
fn auth_registry() -> (Env, Registry, String) {
    let seed = Env::new();
    let layout = seed.path("layout");
    busybox_layout(&seed, &layout);
    let reg = Registry::start(Some(("tester", "s3cret")));
    let host = reg.host();
    push(
        &layout,
        "latest",
        &format!("{host}/library/busybox:latest"),
        Some("tester:s3cret"),
        false,
    );
    (seed, reg, host)
}

#[test]
fn login_checks_stores_and_logout_removes_credentials_in_config_json() {
    let (_seed, _reg, host) = auth_registry();
    let env = isolated();
    let image = format!("{host}/library/busybox");

    // A wrong password: refused by the registry, nothing written.
    let (ok, out, err) = rbuild_in(
        &env,
        &["login", &host, "-u", "tester", "-p", "nope"],
        "",
        None,
    );
    assert!(!ok, "{out}{err}");
    assert!(
        err.contains(&format!("login to {host} failed: unauthorized"))
            && err.contains("401 Unauthorized"),
        "{err}"
    );
    assert!(!env.path("docker-config/config.json").exists());
    let (ok, _, err) = rbuild_in(&env, &["login", &host, "--password-stdin"], "x\n", None);
    assert!(
        !ok && err.contains("Must provide --username with --password-stdin"),
        "{err}"
    );

    // Other keys of the file are kept.
    std::fs::write(
        env.path("docker-config/config.json"),
        "{\"psFormat\": \"table {{.ID}}\"}",
    )
    .expect("config.json");
    let (ok, out, err) = rbuild_in(
        &env,
        &["login", &host, "-u", "tester", "--password-stdin"],
        "s3cret\n",
        None,
    );
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "Login Succeeded");
    let cfg = config_json(&env);
    assert_eq!(
        cfg["auths"][&host]["auth"],
        base64(b"tester:s3cret"),
        "{cfg}"
    );
    assert_eq!(cfg["psFormat"], "table {{.ID}}");
    let mode = std::fs::metadata(env.path("docker-config/config.json"))
        .expect("stat")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // Pull and push use the stored credentials.
    let (ok, out, err) = rbuild_in(&env, &["pull", &image], "", None);
    assert!(ok && out.contains("Digest: sha256:"), "{out}{err}");
    let app = format!("{host}/team/app:1");
    let log = build(
        &env,
        &["-t", &app, "--push"],
        &format!("FROM {image}\nRUN echo in > /in\n"),
        true,
    );
    assert!(log.contains(&format!("pushed {app}@sha256:")), "{log}");

    // Logout removes them: the next pull is refused by the registry.
    let (ok, out, _) = rbuild_in(&env, &["logout", &host], "", None);
    assert!(ok);
    assert_eq!(out.trim(), format!("Removing login credentials for {host}"));
    let cfg = config_json(&env);
    assert!(cfg["auths"].get(&host).is_none(), "{cfg}");
    assert_eq!(cfg["psFormat"], "table {{.ID}}");
    let (ok, _, err) = rbuild_in(&env, &["pull", &image], "", None);
    assert!(!ok);
    assert!(
        err.contains(&format!(
            "failed to resolve source metadata for {host}/library/busybox:latest: pull access denied"
        )) && err.contains("401"),
        "{err}"
    );
    let (ok, out, _) = rbuild_in(&env, &["logout", &host], "", None);
    assert!(ok);
    assert_eq!(out.trim(), format!("Not logged in to {host}"));
}

/// A credential helper in shell keeping one entry in `$RBTEST_STORE`.
const HELPER: &str = r#"#!/bin/sh
F="$RBTEST_STORE"
case "$1" in
store) cat > "$F" ;;
get) read -r s || true
     if [ -f "$F" ] && grep -q "\"ServerURL\":\"$s\"" "$F"; then
       sed 's/"ServerURL":"[^"]*",//' "$F"
     else
       echo "credentials not found in native keychain"; exit 1
     fi ;;
erase) read -r s || true
       if [ -f "$F" ]; then rm -f "$F"; else echo "credentials not found in native keychain"; exit 1; fi ;;
*) exit 1 ;;
esac
"#;

#[test]
fn login_with_a_creds_store_goes_through_the_credential_helper() {
    let (_seed, _reg, host) = auth_registry();
    let env = isolated();
    let bin = env.path("bin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    let helper = bin.join("docker-credential-rbtest");
    std::fs::write(&helper, HELPER).expect("helper");
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    std::fs::write(
        env.path("docker-config/config.json"),
        "{\"credsStore\": \"rbtest\"}",
    )
    .expect("config.json");
    let image = format!("{host}/library/busybox");

    let (ok, _, err) = rbuild_in(
        &env,
        &["login", &host, "-u", "tester", "-p", "bad"],
        "",
        Some(&path),
    );
    assert!(!ok && err.contains("unauthorized"), "{err}");
    assert!(!env.path("helper-store").exists());

    let (ok, out, err) = rbuild_in(
        &env,
        &["login", &host, "-u", "tester", "-p", "s3cret"],
        "",
        Some(&path),
    );
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "Login Succeeded");
    assert!(!err.contains("stored unencrypted"), "{err}");
    let stored = read(env.path("helper-store"));
    assert!(
        stored.contains("\"Secret\":\"s3cret\"") && stored.contains("\"Username\":\"tester\""),
        "{stored}"
    );
    let cfg = config_json(&env);
    assert_eq!(cfg["auths"][&host], serde_json::json!({}), "{cfg}");
    assert_eq!(cfg["credsStore"], "rbtest");

    let (ok, out, err) = rbuild_in(&env, &["pull", &image], "", Some(&path));
    assert!(ok && out.contains("Digest: sha256:"), "{out}{err}");

    let (ok, out, _) = rbuild_in(&env, &["logout", &host], "", Some(&path));
    assert!(ok);
    assert_eq!(out.trim(), format!("Removing login credentials for {host}"));
    assert!(!env.path("helper-store").exists());
    let (ok, _, err) = rbuild_in(&env, &["pull", &image], "", Some(&path));
    assert!(!ok && err.contains("pull access denied"), "{err}");
}
