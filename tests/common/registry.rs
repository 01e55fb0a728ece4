//! A real registry for tests: Debian's `docker-registry` (distribution)
//! on 127.0.0.1 with its own config and data directory, filled by skopeo;
//! builds isolated from the machine's Docker and rbuild configs.

use super::{Env, copy_dir, require_file, require_tool, run};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A registry process, killed on drop.
pub struct Registry {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

impl Registry {
    /// Start a registry; with `user`, behind htpasswd basic auth.
    pub fn start(user: Option<(&str, &str)>) -> Registry {
        Self::start_with(user, false)
    }

    /// Start a registry; with `tls`, serving HTTPS with a self-signed
    /// certificate for 127.0.0.1.
    pub fn start_with(user: Option<(&str, &str)>, tls: bool) -> Registry {
        Self::spawn(user, tls, None, false)
    }

    /// Start a registry with this `auth:` section (YAML), logging every
    /// request (see `requests`).
    pub fn start_with_auth(auth_yaml: String) -> Registry {
        Self::spawn(None, false, Some(auth_yaml), true)
    }

    /// Start a registry that logs every request (see `requests`).
    pub fn start_logged() -> Registry {
        Self::spawn(None, false, None, true)
    }

    fn spawn(
        user: Option<(&str, &str)>,
        tls: bool,
        auth_yaml: Option<String>,
        access_log: bool,
    ) -> Registry {
        let bin = require_tool("docker-registry", "docker-registry");
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let mut tls_cfg = String::new();
        if tls {
            let openssl = require_tool("openssl", "openssl");
            let (key, cert) = (dir.path().join("key.pem"), dir.path().join("cert.pem"));
            run(Command::new(openssl)
                .args([
                    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                ])
                .args(["-subj", "/CN=localhost"])
                .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
                .arg("-keyout")
                .arg(&key)
                .arg("-out")
                .arg(&cert));
            tls_cfg = format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            );
        }
        let mut auth = auth_yaml.unwrap_or_default();
        if let Some((u, p)) = user {
            let htpasswd = require_tool("htpasswd", "apache2-utils");
            let line = run(Command::new(htpasswd).args(["-Bbn", u, p]));
            std::fs::write(dir.path().join("htpasswd"), line.trim()).expect("htpasswd");
            auth = format!(
                "auth:\n  htpasswd:\n    realm: test\n    path: {}\n",
                dir.path().join("htpasswd").display()
            );
        }
        let config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: {}\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n{tls_cfg}{auth}",
            !access_log,
            dir.path().join("data").display()
        );
        let cfg = dir.path().join("config.yml");
        std::fs::write(&cfg, config).expect("config");
        // The access log goes to standard output.
        let log = std::fs::File::create(dir.path().join("access.log")).expect("access log");
        let child = Command::new(bin)
            .arg("serve")
            .arg(&cfg)
            .stdout(log)
            .stderr(Stdio::null())
            .spawn()
            .expect("start docker-registry");
        let reg = Registry {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "docker-registry did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        reg
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The requests logged so far (`METHOD PATH STATUS`), with `start_logged`.
    pub fn requests(&self) -> Vec<String> {
        let log = std::fs::read_to_string(self._dir.path().join("access.log")).unwrap_or_default();
        log.lines()
            .filter_map(|l| {
                let mut parts = l.split('"');
                let mut req = parts.nth(1)?.split_whitespace();
                let status = parts.next()?.split_whitespace().next()?;
                Some(format!("{} {} {status}", req.next()?, req.next()?))
            })
            .collect()
    }

    /// Where the registry keeps a blob's bytes (its filesystem driver).
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self._dir
            .path()
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

/// The manifest `skopeo inspect --raw` gets for `image`.
pub fn remote_manifest(image: &str) -> serde_json::Value {
    let raw = run(Command::new(require_tool("skopeo", "skopeo")).args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{image}"),
    ]));
    serde_json::from_str(&raw).expect("manifest")
}

/// Build the busybox base into an OCI layout at `layout` (tag `latest`).
pub fn busybox_layout(env: &Env, layout: &Path) {
    busybox_layout_compressed(env, layout, "gzip")
}

/// The same with layers compressed as `compression`.
pub fn busybox_layout_compressed(env: &Env, layout: &Path, compression: &str) {
    let busybox = require_file("/bin/busybox", "busybox-static");
    let ctx = Path::new(env!("CARGO_MANIFEST_DIR")).join("demo/busybox-base");
    let dir = env.path("busybox-ctx");
    copy_dir(&ctx, &dir);
    std::fs::copy(busybox, dir.join("busybox")).expect("copy busybox");
    env.build_ok(
        &[
            "-o",
            &format!(
                "type=oci-dir,dest={},name=busybox:latest,compression={compression}",
                layout.display()
            ),
        ],
        &dir,
    );
}

/// `skopeo copy` from an OCI layout to the registry.
pub fn push(layout: &Path, tag: &str, dest: &str, creds: Option<&str>, all: bool) {
    push_as(layout, tag, dest, creds, all, &[])
}

/// The same with extra skopeo arguments.
pub fn push_as(
    layout: &Path,
    tag: &str,
    dest: &str,
    creds: Option<&str>,
    all: bool,
    extra: &[&str],
) {
    let skopeo = require_tool("skopeo", "skopeo");
    let mut c = Command::new(skopeo);
    c.args(["copy", "--quiet", "--dest-tls-verify=false"]);
    c.args(extra);
    if all {
        c.arg("--all");
    }
    if let Some(cr) = creds {
        c.args(["--dest-creds", cr]);
    }
    c.arg(format!("oci:{}:{tag}", layout.display()))
        .arg(format!("docker://{dest}"));
    run(&mut c);
}

/// A test environment isolated from the machine's Docker and rbuild configs.
pub fn isolated() -> Env {
    let env = Env::new();
    std::fs::create_dir_all(env.path("docker-config")).expect("mkdir");
    std::fs::write(env.path("registries.toml"), "").expect("config");
    env
}

pub fn build(env: &Env, args: &[&str], dockerfile: &str, success: bool) -> String {
    let ctx = env.project("ctx", &[("Dockerfile", dockerfile)]);
    let out = env
        .rbuild()
        .env_remove("RBUILD_OFFLINE")
        .env("DOCKER_CONFIG", env.path("docker-config"))
        .env("RBUILD_CONFIG", env.path("registries.toml"))
        .args(["build", "--progress", "plain"])
        .args(args)
        .arg(&ctx)
        .output()
        .expect("run rbuild");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.success(), success, "build outcome:\n{err}");
    err
}

/// Build and export the result's files to `out`.
pub fn build_local(env: &Env, dockerfile: &str, out: &Path, extra: &[&str]) -> String {
    let dest = format!("type=local,dest={}", out.display());
    let mut args = vec!["-o", dest.as_str()];
    args.extend_from_slice(extra);
    build(env, &args, dockerfile, true)
}

pub fn read(p: PathBuf) -> String {
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Standard base64 with padding (config.json's `auth`).
pub fn base64(data: &[u8]) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Write `$DOCKER_CONFIG/config.json` of `env` with `auth` (`user:pass`) for `host`.
pub fn docker_login(env: &Env, host: &str, auth: &str) {
    std::fs::write(
        env.path("docker-config/config.json"),
        format!(
            "{{\"auths\":{{\"{host}\":{{\"auth\":\"{}\"}}}}}}",
            base64(auth.as_bytes())
        ),
    )
    .expect("config.json")
}

/// A registry on 127.0.0.1 holding the busybox base as
/// `HOST/library/busybox:latest`: the seed environment (kept alive), the
/// OCI layout it was pushed from, the registry and its `host:port`.
pub fn busybox_registry() -> (Env, PathBuf, Registry, String) {
    let seed = Env::new();
    let layout = seed.path("layout");
    busybox_layout(&seed, &layout);
    let reg = Registry::start(None);
    let host = reg.host();
    push(
        &layout,
        "latest",
        &format!("{host}/library/busybox:latest"),
        None,
        false,
    );
    (seed, layout, reg, host)
}

/// What a [`proxy`] does with a request, given its request line.
pub enum Proxied {
    /// Send this request line on, and the answer back.
    Forward(String),
    /// Send it on, and only the first half of the answer's body back.
    ForwardCut(String),
    /// Drop the request unanswered once its body has arrived.
    Drop,
    /// Answer with this raw HTTP response instead.
    Answer(String),
}

/// A plain-HTTP proxy on loopback in front of the registry on `upstream`
/// (one request per connection): `decide` gets each request line and says
/// what to do with it. Returns the proxy's port.
pub fn proxy(upstream: u16, decide: impl Fn(&str) -> Proxied + Send + 'static) -> u16 {
    use std::io::{Read as _, Write as _};
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for mut c in l.incoming().flatten() {
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                match c.read(&mut byte) {
                    Ok(1) if !(head.is_empty() && byte[0] == 0x16) => head.push(byte[0]),
                    _ => break, // closed, or a TLS hello: not for this proxy
                }
            }
            if !head.ends_with(b"\r\n\r\n") {
                continue;
            }
            let text = String::from_utf8_lossy(&head).into_owned();
            let length: usize = text
                .split("\r\n")
                .filter_map(|h| h.split_once(':'))
                .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.trim().parse().ok())
                .unwrap_or(0);
            let mut body = vec![0u8; length];
            if c.read_exact(&mut body).is_err() {
                continue;
            }
            let (first, cut) = match decide(text.lines().next().unwrap_or("")) {
                Proxied::Forward(l) => (l, false),
                Proxied::ForwardCut(l) => (l, true),
                Proxied::Drop => continue,
                Proxied::Answer(a) => {
                    let _ = c.write_all(a.as_bytes());
                    continue;
                }
            };
            let mut req = format!("{first}\r\n");
            req.extend(
                text.split("\r\n")
                    .skip(1)
                    .filter(|h| !h.to_ascii_lowercase().starts_with("connection:") && !h.is_empty())
                    .map(|h| format!("{h}\r\n")),
            );
            req.push_str("Connection: close\r\n\r\n");
            let Ok(mut up) = std::net::TcpStream::connect(("127.0.0.1", upstream)) else {
                continue;
            };
            let _ = up.write_all(req.as_bytes());
            let _ = up.write_all(&body);
            let mut resp = Vec::new();
            let _ = up.read_to_end(&mut resp);
            let keep = match cut {
                true => {
                    let body = resp
                        .windows(4)
                        .position(|w| w == b"\r\n\r\n")
                        .map(|i| i + 4)
                        .unwrap_or(resp.len());
                    body + (resp.len() - body) / 2
                }
                false => resp.len(),
            };
            let _ = c.write_all(&resp[..keep]);
        }
    });
    port
}
