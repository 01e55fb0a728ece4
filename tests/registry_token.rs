//! A registry behind token auth (distribution's `auth: token`), with a
//! token server in the test: the bearer challenge, the token request with
//! credentials from DOCKER_CONFIG, and the refusal without them.

mod common;

use common::registry::*;
use common::{Env, require_tool, run};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::Command;

fn b64url(data: &[u8]) -> String {
    base64(data)
        .trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_")
}

/// An ES256 signing key (PKCS#8 DER) and its self-signed certificate (PEM
/// and DER), made with openssl.
fn signing_key(dir: &Path) -> (Vec<u8>, Vec<u8>) {
    let openssl = require_tool("openssl", "openssl");
    let key = dir.join("key.pem");
    run(Command::new(&openssl)
        .args([
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
        ])
        .arg(&key));
    run(Command::new(&openssl)
        .args(["pkcs8", "-topk8", "-nocrypt", "-outform", "DER", "-in"])
        .arg(&key)
        .arg("-out")
        .arg(dir.join("key.p8")));
    run(Command::new(&openssl)
        .args([
            "req",
            "-x509",
            "-new",
            "-days",
            "1",
            "-subj",
            "/CN=token-issuer",
        ])
        .arg("-key")
        .arg(&key)
        .arg("-out")
        .arg(dir.join("cert.pem")));
    run(Command::new(&openssl)
        .args(["x509", "-outform", "DER", "-in"])
        .arg(dir.join("cert.pem"))
        .arg("-out")
        .arg(dir.join("cert.der")));
    (
        std::fs::read(dir.join("key.p8")).expect("key"),
        std::fs::read(dir.join("cert.der")).expect("cert"),
    )
}

/// A JWT granting `scopes` (`repository:NAME:ACTIONS`), as distribution
/// verifies it: x5c certificate chain, ES256.
fn token(key: &ring::signature::EcdsaKeyPair, cert: &[u8], scopes: &[String]) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs();
    let access: Vec<serde_json::Value> = scopes
        .iter()
        .filter_map(|s| {
            let mut p = s.splitn(3, ':');
            let (t, n, a) = (p.next()?, p.next()?, p.next()?);
            Some(serde_json::json!({"type": t, "name": n, "actions": a.split(',').collect::<Vec<_>>()}))
        })
        .collect();
    let header = serde_json::json!({"alg": "ES256", "typ": "JWT", "x5c": [base64(cert)]});
    let claims = serde_json::json!({
        "iss": "test-issuer", "sub": "tester", "aud": "test-registry",
        "exp": now + 300, "nbf": now - 10, "iat": now, "jti": format!("{now}"),
        "access": access,
    });
    let input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let sig = key
        .sign(&ring::rand::SystemRandom::new(), input.as_bytes())
        .expect("sign");
    format!("{input}.{}", b64url(sig.as_ref()))
}

/// Serve tokens on loopback to clients that present `user:pass`.
fn token_server(key_der: Vec<u8>, cert: Vec<u8>, user_pass: &'static str) -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let key = ring::signature::EcdsaKeyPair::from_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &key_der,
        &ring::rand::SystemRandom::new(),
    )
    .expect("key");
    let want = format!("Basic {}", base64(user_pass.as_bytes()));
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let mut r = BufReader::new(&s);
            let mut line = String::new();
            if r.read_line(&mut line).is_err() {
                continue;
            }
            let mut authorized = false;
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).is_err() || h.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':')
                    && k.eq_ignore_ascii_case("authorization")
                {
                    authorized = v.trim() == want;
                }
            }
            let query = line
                .split_whitespace()
                .nth(1)
                .and_then(|p| p.split_once('?'))
                .map(|(_, q)| q.to_string())
                .unwrap_or_default();
            let scopes: Vec<String> = query
                .split('&')
                .filter_map(|kv| kv.strip_prefix("scope="))
                .map(|v| {
                    v.replace("%3A", ":")
                        .replace("%2F", "/")
                        .replace("%2C", ",")
                })
                .collect();
            let (status, body) = if authorized {
                let t = token(&key, &cert, &scopes);
                (
                    "200 OK",
                    format!("{{\"token\":\"{t}\",\"expires_in\":300}}"),
                )
            } else {
                (
                    "401 Unauthorized",
                    "{\"details\":\"bad credentials\"}".to_string(),
                )
            };
            let mut w = &s;
            let _ = write!(
                w,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

#[test]
fn token_auth_registry_pulls_with_docker_config_credentials_and_refuses_without() {
    let keys = tempfile::tempdir().expect("tempdir");
    let (key, cert) = signing_key(keys.path());
    let tport = token_server(key, cert, "tester:s3cret");
    let reg = Registry::start_with_auth(format!(
        "auth:\n  token:\n    realm: http://127.0.0.1:{tport}/token\n    service: test-registry\n    issuer: test-issuer\n    rootcertbundle: {}\n",
        keys.path().join("cert.pem").display()
    ));
    let host = reg.host();
    let seed = Env::new();
    let layout = seed.path("layout");
    busybox_layout(&seed, &layout);
    push(
        &layout,
        "latest",
        &format!("{host}/team/busybox:1"),
        Some("tester:s3cret"),
        false,
    );

    let env = isolated();
    let df = format!("FROM {host}/team/busybox:1\nRUN echo token > /t\n");
    let err = build(&env, &[], &df, false);
    assert!(
        err.contains(&format!(
            "failed to resolve source metadata for {host}/team/busybox:1: pull access denied"
        )),
        "{err}"
    );
    // `rbuild login` checks the credentials with the token server first.
    let login = |pass: &str| {
        env.rbuild()
            .env_remove("RBUILD_OFFLINE")
            .env("DOCKER_CONFIG", env.path("docker-config"))
            .env("RBUILD_CONFIG", env.path("registries.toml"))
            .args(["login", &host, "-u", "tester", "--password-stdin"])
            .write_stdin(format!("{pass}\n"))
            .output()
            .expect("run rbuild login")
    };
    let out = login("wrong");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(&format!(
            "login to {host} failed: unauthorized: bad credentials"
        )),
        "{err}"
    );
    assert!(!env.path("docker-config/config.json").exists());
    let out = login("s3cret");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "Login Succeeded"
    );
    build_local(&env, &df, &env.path("out"), &[]);
    assert_eq!(read(env.path("out/t")), "token\n");
    // --pull on the stored base: the HEAD is refused, a pull token is
    // fetched, and the HEAD again says the tag is unchanged.
    let before = reg.requests().len();
    let log = build_local(&env, &df, &env.path("out-pull"), &["--pull"]);
    assert!(log.contains(&format!("(up to date at {host})")), "{log}");
    assert_eq!(
        reg.requests()[before..],
        [
            "HEAD /v2/team/busybox/manifests/1 401",
            "HEAD /v2/team/busybox/manifests/1 200"
        ]
    );

    // Pushing asks for a pull,push token; the base's layers keep their
    // digests and are mounted from the base's repository with a token for
    // both repositories (as Docker asks for one), not uploaded.
    let app = format!("{host}/team/app:1");
    let before = reg.requests().len();
    let log = build(&env, &["-t", &app, "--push"], &df, true);
    assert!(log.contains(&format!("pushed {app}@sha256:")), "{log}");
    let reqs = reg.requests()[before..].to_vec();
    let raw = run(Command::new(require_tool("skopeo", "skopeo")).args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        "--creds",
        "tester:s3cret",
        &format!("docker://{app}"),
    ]));
    let pushed: serde_json::Value = serde_json::from_str(&raw).expect("manifest");
    let base_raw = run(Command::new(require_tool("skopeo", "skopeo")).args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        "--creds",
        "tester:s3cret",
        &format!("docker://{host}/team/busybox:1"),
    ]));
    let base: serde_json::Value = serde_json::from_str(&base_raw).expect("manifest");
    let digests = |m: &serde_json::Value| -> Vec<String> {
        m["layers"]
            .as_array()
            .expect("layers")
            .iter()
            .map(|l| l["digest"].to_string())
            .collect()
    };
    let (p, b) = (digests(&pushed), digests(&base));
    assert_eq!(p.len(), b.len() + 1, "{pushed}");
    assert_eq!(p[..b.len()], b[..]);
    for layer in &b {
        let digest = layer.trim_matches('"');
        assert!(
            reqs.iter()
                .any(|r| r.starts_with("POST /v2/team/app/blobs/uploads/?")
                    && r.contains(&format!("mount={}", digest.replace(':', "%3A")))
                    && r.contains("from=team%2Fbusybox")
                    && r.ends_with(" 201")),
            "{digest} mounted: {reqs:#?}"
        );
    }
    let puts = reqs
        .iter()
        .filter(|r| r.starts_with("PUT /v2/team/app/blobs/"))
        .count();
    assert_eq!(
        puts, 2,
        "only the new layer and the config are uploaded: {reqs:#?}"
    );
    assert!(log.contains(&format!("{} mounted", b.len())), "{log}");
}
