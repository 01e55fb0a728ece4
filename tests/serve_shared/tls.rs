//! `rbuild serve` over TLS: a self-signed certificate for 127.0.0.1,
//! clients on `https://` trusting it through `$RBUILD_SERVER_CA`.

use crate::common::registry::free_port;
use crate::common::{Env, require_tool};
use crate::harness::text;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A self-signed certificate for IP 127.0.0.1: (cert, key) paths. Not a
/// CA certificate (openssl's default): rustls refuses a CA as a server's.
fn self_signed(env: &Env) -> (String, String) {
    let openssl = require_tool("openssl", "openssl");
    let (cert, key) = (env.path("cert.pem"), env.path("key.pem"));
    let out = Command::new(openssl)
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args([
            "-subj",
            "/CN=rbuild-test",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert.display().to_string(), key.display().to_string())
}

#[test]
fn tls_with_a_token_serves_builds_and_off_loopback_tls_is_required() {
    let env = Env::new();
    env.busybox_base("bb");
    let (cert, key) = self_signed(&env);
    let token = env.path("token");
    std::fs::write(&token, "t0ken\n").unwrap();
    let token = token.display().to_string();

    // Not loopback: refused without TLS, with a clear error.
    let out = env
        .rbuild()
        .args([
            "serve",
            "--listen",
            "tcp://0.0.0.0:1",
            "--token-file",
            &token,
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("needs TLS (--tls-cert"),
        "{err}"
    );

    // Not loopback with TLS and a token: serves (reached here on 127.0.0.1).
    let port = free_port();
    let server = Command::new(assert_cmd::cargo::cargo_bin("rbuild"))
        .args(["serve", "--listen", &format!("tcp://0.0.0.0:{port}")])
        .args([
            "--token-file",
            &token,
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
        ])
        .env("RBUILD_ROOT", env.root())
        .env("RBUILD_OFFLINE", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _server = Killed(server);
    let addr = format!("https://127.0.0.1:{port}");
    let client = |ca: Option<&str>, addr: &str| {
        let mut c = env.rbuild();
        c.env("RBUILD_SERVER_TOKEN", "t0ken")
            .arg("--server")
            .arg(addr);
        match ca {
            Some(ca) => c.env("RBUILD_SERVER_CA", ca),
            None => c.env_remove("RBUILD_SERVER_CA"),
        };
        c
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !client(Some(&cert), &addr)
        .arg("du")
        .output()
        .unwrap()
        .status
        .success()
    {
        assert!(Instant::now() < deadline, "the TLS server did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let ctx = env.project("p", &[("Dockerfile", "FROM bb\nRUN echo over-tls\n")]);
    let (ok, err, _) = text(
        client(Some(&cert), &addr)
            .args(["build", "--progress", "plain"])
            .arg(&ctx)
            .output()
            .unwrap(),
    );
    assert!(ok && err.contains("over-tls"), "{err}");
    // A client not trusting the certificate, or speaking plain HTTP, fails.
    let (ok, err, _) = text(client(None, &addr).arg("du").output().unwrap());
    assert!(!ok && err.to_lowercase().contains("certificate"), "{err}");
    let plain = format!("tcp://127.0.0.1:{port}");
    let (ok, _, _) = text(client(Some(&cert), &plain).arg("du").output().unwrap());
    assert!(!ok, "plain HTTP to a TLS server");
}

/// A child killed when dropped (also when the test fails).
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
