//! COPY and ADD end to end through the CLI: Docker's destination and
//! ownership rules, URL downloads, and reuse of unchanged files.

mod common;
use common::{Env, cached_steps, require_tool, run};
use std::process::Command as Proc;

#[test]
fn copy_follows_dockers_destination_and_ownership_rules() {
    let env = Env::new();
    let base = env.project(
        "base",
        &[
            (
                "Dockerfile",
                "FROM scratch\nCOPY etc/ /etc/\nCOPY srv/ /srv/\n",
            ),
            (
                "etc/passwd",
                "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n",
            ),
            ("etc/group", "root:x:0:\napps:x:1001:\nstaff:x:50:\n"),
            ("srv/.keep", ""),
        ],
    );
    env.build_ok(&["-t", "local/base:1"], &base);
    let df = r#"FROM local/base:1
COPY a.txt /srv
COPY a.txt /newfile
COPY a.txt b.txt /multi/
COPY --chown=app:staff dir/ /owned/
COPY --chown=app a.txt /owned-default-group
COPY --parents dir/sub/c.txt /p/
COPY --exclude=*.tmp dir/ /filtered/
COPY <<EOF /inline.txt
inline ${ARGV:-content}
EOF
ADD archive.tar.gz /unpacked/
USER app
WORKDIR /home/app/work
"#;
    let ctx = env.project(
        "rules",
        &[
            ("Dockerfile", df),
            ("a.txt", "A"),
            ("b.txt", "B"),
            ("dir/sub/c.txt", "C"),
            ("dir/skip.tmp", "T"),
        ],
    );
    // A gzipped tar for ADD.
    let tgz = std::fs::File::create(ctx.join("archive.tar.gz")).unwrap();
    let mut tb = tar::Builder::new(flate2::write::GzEncoder::new(
        tgz,
        flate2::Compression::default(),
    ));
    let mut h = tar::Header::new_gnu();
    h.set_size(4);
    h.set_mode(0o600);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_600_000_000);
    h.set_cksum();
    tb.append_data(&mut h, "inner/file", &b"data"[..]).unwrap();
    tb.into_inner().unwrap().finish().unwrap();
    let layout = env.path("layout");
    env.build_ok(
        &[
            "-o",
            &format!(
                "type=oci-dir,dest={},name=local/rules:latest",
                layout.display()
            ),
        ],
        &ctx,
    );
    let umoci = require_tool("umoci", "umoci");
    let bundle = env.path("bundle");
    run(Proc::new(&umoci)
        .args(["unpack", "--image"])
        .arg(format!("{}:latest", layout.display()))
        .arg(&bundle));
    let r = bundle.join("rootfs");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::read_to_string(r.join("srv/a.txt")).unwrap(),
        "A",
        "existing dir: copied into it"
    );
    assert_eq!(
        std::fs::read_to_string(r.join("newfile")).unwrap(),
        "A",
        "no slash, no dir: a file"
    );
    assert!(r.join("multi/a.txt").exists() && r.join("multi/b.txt").exists());
    let m = std::fs::metadata(r.join("owned/sub/c.txt")).unwrap();
    assert_eq!(
        (m.uid(), m.gid()),
        (1000, 50),
        "--chown names from /etc/passwd and /etc/group"
    );
    let m = std::fs::metadata(r.join("owned-default-group")).unwrap();
    assert_eq!(
        (m.uid(), m.gid()),
        (1000, 1000),
        "user without group: gid = uid"
    );
    assert_eq!(
        std::fs::read_to_string(r.join("p/dir/sub/c.txt")).unwrap(),
        "C",
        "--parents keeps the path"
    );
    assert!(r.join("filtered/sub/c.txt").exists() && !r.join("filtered/skip.tmp").exists());
    assert_eq!(
        std::fs::read_to_string(r.join("inline.txt")).unwrap(),
        "inline content\n"
    );
    assert_eq!(
        std::fs::read_to_string(r.join("unpacked/inner/file")).unwrap(),
        "data",
        "ADD extracts local archives"
    );
    let m = std::fs::metadata(r.join("home/app/work")).unwrap();
    assert_eq!(
        (m.uid(), m.gid()),
        (1000, 1001),
        "WORKDIR is created for USER"
    );
}

/// A one-shot HTTP server on 127.0.0.1 serving fixed bodies by path.
fn http_server(files: Vec<(&'static str, Vec<u8>)>) -> (String, std::thread::JoinHandle<usize>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    listener.set_nonblocking(false).unwrap();
    let h = std::thread::spawn(move || {
        let mut served = 0;
        listener.set_nonblocking(true).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while std::time::Instant::now() < deadline {
            let Ok((mut s, _)) = listener.accept() else {
                std::thread::sleep(std::time::Duration::from_millis(20));
                if served >= 100 {
                    break;
                }
                continue;
            };
            s.set_nonblocking(false).unwrap();
            let mut line = String::new();
            BufReader::new(&s).read_line(&mut line).unwrap();
            let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
            if path == "/quit" {
                break;
            }
            match files.iter().find(|(p, _)| *p == path) {
                Some((_, body)) => {
                    let _ = write!(
                        s,
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nLast-Modified: Tue, 14 Nov 2023 22:13:20 GMT\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = s.write_all(body);
                }
                None => {
                    let _ = write!(
                        s,
                        "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    );
                }
            }
            served += 1;
        }
        served
    });
    (addr, h)
}

#[test]
fn add_downloads_urls_and_verifies_checksums() {
    let env = Env::new();
    let body = b"remote content\n".to_vec();
    let sum = format!("sha256:{}", rbuild::digest::Digest::of(&body).hex());
    let (addr, server) = http_server(vec![("/files/tool.txt", body.clone())]);
    let df = format!(
        "FROM scratch\nADD {addr}/files/tool.txt /dl/\nADD --checksum={sum} {addr}/files/tool.txt /checked.txt\n"
    );
    let ctx = env.project("url", &[("Dockerfile", &df)]);
    let out = env.path("out");
    env.build_ok(&["-o", &format!("type=local,dest={}", out.display())], &ctx);
    assert_eq!(std::fs::read(out.join("dl/tool.txt")).unwrap(), body);
    assert_eq!(std::fs::read(out.join("checked.txt")).unwrap(), body);
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let m = std::fs::metadata(out.join("checked.txt")).unwrap();
    assert_eq!(
        m.permissions().mode() & 0o777,
        0o600,
        "remote files get mode 600"
    );
    assert_eq!(m.mtime(), 1_700_000_000, "mtime from Last-Modified");
    // A wrong checksum fails the build.
    let bad = format!(
        "FROM scratch\nADD --checksum=sha256:{} {addr}/files/tool.txt /x\n",
        "0".repeat(64)
    );
    std::fs::write(ctx.join("Dockerfile"), bad).unwrap();
    let err = env.build_err(&[], &ctx);
    assert!(err.contains("digest mismatch"), "{err}");
    // A missing URL fails clearly.
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM scratch\nADD {addr}/nope /x\n"),
    )
    .unwrap();
    let err = env.build_err(&[], &ctx);
    assert!(err.contains("404"), "{err}");
    let _ = ureq_quit(&addr);
    assert!(server.join().unwrap() >= 3);
}

fn ureq_quit(addr: &str) -> std::io::Result<()> {
    use std::io::Write;
    let host = addr.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(host)?;
    s.write_all(b"GET /quit HTTP/1.1\r\n\r\n")
}

#[test]
fn unchanged_files_are_reused_from_the_previous_layer_without_touching_it() {
    let env = Env::new();
    let mut files: Vec<(String, String)> = vec![(
        "Dockerfile".into(),
        "FROM scratch\nCOPY files/ /files/\n".into(),
    )];
    for i in 0..50 {
        files.push((format!("files/f{i}.txt"), format!("content {i}\n")));
    }
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let ctx = env.project("reuse", &refs);
    let digest_of = |name: &str| {
        let layout = env.path(name);
        env.build_ok(
            &[
                "-o",
                &format!("type=oci-dir,dest={},name=r:1", layout.display()),
            ],
            &ctx,
        );
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
        index["manifests"][0]["digest"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let v1 = digest_of("v1");
    std::fs::write(ctx.join("files/f7.txt"), "changed\n").unwrap();
    let out = env.path("v2-root");
    env.build_ok(&["-o", &format!("type=local,dest={}", out.display())], &ctx);
    assert_eq!(
        std::fs::read_to_string(out.join("files/f7.txt")).unwrap(),
        "changed\n"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("files/f8.txt")).unwrap(),
        "content 8\n"
    );
    // Back to the first content: the first layer comes from the cache and
    // still hashes to what it did (exporting re-reads it and checks).
    std::fs::write(ctx.join("files/f7.txt"), "content 7\n").unwrap();
    let filetime = filetime::FileTime::from_last_modification_time(
        &std::fs::metadata(ctx.join("files/f6.txt")).unwrap(),
    );
    filetime::set_file_mtime(ctx.join("files/f7.txt"), filetime).unwrap();
    assert_eq!(digest_of("v1-again"), v1);
    let again = env.path("v1-again-root");
    env.build_ok(
        &["-o", &format!("type=local,dest={}", again.display())],
        &ctx,
    );
    for i in 0..50 {
        assert_eq!(
            std::fs::read_to_string(again.join(format!("files/f{i}.txt"))).unwrap(),
            format!("content {i}\n")
        );
    }
    // And the second build's layer shares the unchanged files' inodes.
    use std::os::unix::fs::MetadataExt;
    let snaps = env.root().join("snapshots");
    let linked = std::fs::read_dir(&snaps)
        .unwrap()
        .flatten()
        .filter_map(|d| std::fs::metadata(d.path().join("files/f8.txt")).ok())
        .any(|m| m.nlink() > 1);
    assert!(
        linked,
        "unchanged files are hard links to the previous layer"
    );
}

#[test]
fn copy_from_sources_are_hashed_once_per_snapshot() {
    let env = Env::new();
    let ctx = env.project(
        "memo",
        &[
            (
                "Dockerfile",
                "FROM scratch AS a\nCOPY f /f\nFROM scratch\nCOPY --from=a /f /g\n",
            ),
            ("f", "original"),
        ],
    );
    env.build_ok(&[], &ctx);
    // The digest of the stage's file is remembered by its snapshot path.
    let memo = std::fs::read_to_string(env.root().join("checksums.json")).unwrap();
    let snap = std::fs::read_dir(env.root().join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().path().join("f"))
        .find(|p| p.exists())
        .expect("the snapshot holding f");
    assert!(memo.contains(&snap.display().to_string()), "{memo}");
    // Change the snapshot behind rbuild's back, same size and time: a build
    // that re-read the file would get another key; the remembered digest
    // gives the same one, so the step comes from the cache.
    let mtime = std::fs::metadata(&snap).unwrap().modified().unwrap();
    std::fs::write(&snap, "ORIGINAL").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&snap)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let err = env.build_ok(&[], &ctx);
    assert_eq!(
        cached_steps(&err),
        ["[a 1/1] COPY f /f", "[stage-1 1/1] COPY --from=a /f /g"],
        "{err}"
    );
}
