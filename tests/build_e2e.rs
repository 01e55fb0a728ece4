//! Builds through the CLI, end to end, checked with real OCI tools.

mod common;
use common::{Env, require_tool, run};
use std::process::Command as Proc;

const MULTI: &str = r#"# syntax=docker/dockerfile:1
FROM scratch AS assets
COPY assets/ /assets/
LABEL stage=assets

FROM scratch AS docs
COPY docs/readme.md /docs/

FROM scratch
COPY --from=assets /assets /srv/assets
COPY --from=docs /docs/readme.md /srv/
COPY --chmod=0755 bin/tool /usr/local/bin/tool
ENV APP=demo VERSION=1.0
WORKDIR /srv
LABEL org.example.kind=test
EXPOSE 8080 53/udp
USER 1000:1000
ENTRYPOINT ["/usr/local/bin/tool"]
CMD ["--help"]
"#;

fn multi_project(env: &Env) -> std::path::PathBuf {
    env.project(
        "multi",
        &[
            ("Dockerfile", MULTI),
            ("assets/a.txt", "alpha\n"),
            ("assets/sub/b.txt", "beta\n"),
            ("docs/readme.md", "# readme\n"),
            ("bin/tool", "#!/bin/sh\necho tool\n"),
            ("ignored.log", "nope"),
            (".dockerignore", "*.log\n"),
        ],
    )
}

#[test]
fn multi_stage_copy_build_exports_every_format_accepted_by_real_tools() {
    let skopeo = require_tool("skopeo", "skopeo");
    let umoci = require_tool("umoci", "umoci");
    let env = Env::new();
    let ctx = multi_project(&env);
    let (oci_dir, oci_tar, docker_tar, rootfs) = (
        env.path("oci"),
        env.path("img.oci.tar"),
        env.path("img.docker.tar"),
        env.path("rootfs"),
    );
    env.build_ok(
        &[
            "-t",
            "example.com/multi:1.0",
            "-o",
            &format!("type=oci-dir,dest={}", oci_dir.display()),
            "-o",
            &format!("type=oci,dest={}", oci_tar.display()),
            "-o",
            &format!("type=docker,dest={}", docker_tar.display()),
            "-o",
            &format!("type=local,dest={}", rootfs.display()),
        ],
        &ctx,
    );
    // skopeo reads all three image formats and sees the config we wrote.
    for src in [
        format!("oci:{}:1.0", oci_dir.display()),
        format!("oci-archive:{}", oci_tar.display()),
        format!("docker-archive:{}", docker_tar.display()),
    ] {
        let out = run(Proc::new(&skopeo).args(["inspect", "--config", &src]));
        let cfg: serde_json::Value = serde_json::from_str(&out).expect("config json");
        let c = &cfg["config"];
        assert_eq!(
            c["Entrypoint"],
            serde_json::json!(["/usr/local/bin/tool"]),
            "{src}"
        );
        assert_eq!(c["Cmd"], serde_json::json!(["--help"]));
        assert_eq!(c["WorkingDir"], "/srv");
        assert_eq!(c["User"], "1000:1000");
        assert_eq!(c["Labels"]["org.example.kind"], "test");
        assert!(
            c["ExposedPorts"].get("8080/tcp").is_some()
                && c["ExposedPorts"].get("53/udp").is_some()
        );
        assert!(c["Env"].as_array().unwrap().iter().any(|e| e == "APP=demo"));
        // Layers: 3 COPY (WORKDIR /srv exists already: no layer); every
        // config-only step is an empty_layer history entry.
        assert_eq!(cfg["rootfs"]["diff_ids"].as_array().unwrap().len(), 3);
        let hist = cfg["history"].as_array().unwrap();
        let with_layer = hist
            .iter()
            .filter(|h| h.get("empty_layer").is_none())
            .count();
        assert_eq!(with_layer, 3, "history: {hist:?}");
    }
    // umoci unpacks the layout into the expected filesystem.
    let bundle = env.path("bundle");
    run(Proc::new(&umoci)
        .args(["unpack", "--rootless", "--image"])
        .arg(format!("{}:1.0", oci_dir.display()))
        .arg(&bundle));
    let fs_root = bundle.join("rootfs");
    for root in [&fs_root, &rootfs] {
        assert_eq!(
            std::fs::read_to_string(root.join("srv/assets/sub/b.txt")).unwrap(),
            "beta\n"
        );
        assert_eq!(
            std::fs::read_to_string(root.join("srv/readme.md")).unwrap(),
            "# readme\n"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(root.join("usr/local/bin/tool"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
        assert!(!root.join("srv/assets/ignored.log").exists());
    }
}

#[test]
fn rebuild_is_fully_cached_and_gives_the_same_image() {
    let env = Env::new();
    let ctx = multi_project(&env);
    let (id1, id2) = (env.path("id1"), env.path("id2"));
    env.build_ok(&["--iidfile", id1.to_str().unwrap()], &ctx);
    let out = env
        .rbuild()
        .args([
            "build",
            "--progress",
            "rawjson",
            "--iidfile",
            id2.to_str().unwrap(),
        ])
        .arg(&ctx)
        .output()
        .unwrap();
    assert!(out.status.success());
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let fin = events
        .iter()
        .find(|e| e["event"] == "finished")
        .expect("finished event");
    assert_eq!(
        fin["executed"], 0,
        "everything should come from the cache: {events:?}"
    );
    assert!(fin["cached"].as_u64().unwrap() >= 10);
    assert_eq!(
        std::fs::read_to_string(id1).unwrap(),
        std::fs::read_to_string(id2).unwrap()
    );
}

#[test]
fn a_changed_file_rebuilds_only_what_depends_on_it_and_says_why() {
    let env = Env::new();
    let ctx = multi_project(&env);
    env.build_ok(&[], &ctx);
    std::fs::write(ctx.join("docs/readme.md"), "# changed\n").unwrap();
    let err = env.build_ok(&[], &ctx);
    assert!(
        err.contains("cache miss: files:docs/readme.md: docs/readme.md changed"),
        "{err}"
    );
    // Exactly what does not depend on docs/ comes from the cache: the
    // assets stage and the final stage's copy from it.
    assert_eq!(
        cached_steps(&err),
        [
            "[assets 2/3] COPY assets/ /assets/",
            "[assets 3/3] LABEL stage=assets",
            "[stage-2 2/11] COPY --from=assets /assets /srv/assets",
        ],
        "{err}"
    );
    let line = err.lines().find(|l| l.starts_with("built in")).unwrap();
    assert!(line.contains("cached"), "{line}");
}

/// The names of the steps a plain progress log shows as CACHED, sorted.
fn cached_steps(log: &str) -> Vec<String> {
    let mut names = std::collections::HashMap::new();
    let mut cached = Vec::new();
    for line in log.lines() {
        let Some((id, rest)) = line.split_once(' ') else {
            continue;
        };
        if rest.starts_with('[') {
            names.entry(id.to_string()).or_insert(rest.to_string());
        } else if rest == "CACHED" {
            cached.push(id.to_string());
        }
    }
    let mut out: Vec<String> = cached
        .iter()
        .filter_map(|id| names.get(id).cloned())
        .collect();
    out.sort();
    out
}

#[test]
fn explain_prints_reasons_for_every_step() {
    let env = Env::new();
    let ctx = env.project(
        "e",
        &[
            (
                "Dockerfile",
                "FROM scratch\nCOPY g /g\nARG V=1\nENV V=$V\nCOPY f /f\n",
            ),
            ("f", "x"),
            ("g", "y"),
        ],
    );
    // A first build: with --explain, every step says it was never built.
    let first = env.build_ok(&["--explain"], &ctx);
    assert_eq!(
        first
            .matches("cache miss: no earlier build of this step")
            .count(),
        4,
        "{first}"
    );
    let err = env.build_ok(&["--explain", "--build-arg", "V=2"], &ctx);
    assert!(err.contains("cache miss: def: \"V=1\" -> \"V=2\""), "{err}");
    // The unchanged step says why it was taken from the cache...
    assert!(err.contains("#2 cache hit: key sha256:"), "{err}");
    assert_eq!(cached_steps(&err), ["[stage-0 2/5] COPY g /g"], "{err}");
    // ...which only --explain prints.
    let plain = env.build_ok(&["--build-arg", "V=2"], &ctx);
    assert!(!plain.contains("cache hit"), "{plain}");
    assert!(!plain.contains("no earlier build"), "{plain}");
}

#[test]
fn source_date_epoch_builds_are_reproducible_from_clean_stores() {
    let a = Env::new();
    let b = Env::new();
    let ctx = multi_project(&a);
    let meta = |env: &Env, name: &str| {
        let f = env.path(name);
        let out = env
            .rbuild()
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .args(["build", "-q", "--metadata-file", f.to_str().unwrap()])
            .arg(&ctx)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap();
        v["containerimage.digest"].as_str().unwrap().to_string()
    };
    let d1 = meta(&a, "m1");
    // Touch every file: mtimes change, the image must not.
    for f in [
        "assets/a.txt",
        "assets/sub/b.txt",
        "docs/readme.md",
        "bin/tool",
    ] {
        let p = ctx.join(f);
        let content = std::fs::read(&p).unwrap();
        std::fs::write(&p, content).unwrap();
    }
    let d2 = meta(&b, "m2");
    assert_eq!(d1, d2);
}

#[test]
fn bad_input_fails_clearly_and_leaves_the_store_unchanged() {
    let env = Env::new();
    let ctx = env.project(
        "bad",
        &[
            ("Dockerfile", "FROM scratch\nCOPY ok /ok\n"),
            ("ok", "fine"),
        ],
    );
    std::os::unix::fs::symlink("../../../../etc/passwd", ctx.join("leak")).unwrap();
    env.build_ok(&[], &ctx);
    let records = || std::fs::read_dir(env.root().join("cache")).unwrap().count();
    let before = records();
    let cases = [
        (
            "FROM scratch\nCOPY ../outside /x\n",
            "path escapes the build context",
        ),
        // A link is followed inside the context, where its target is missing.
        ("FROM scratch\nCOPY leak /x\n", "\"/leak\": not found"),
        ("FROM scratch\nCOPY missing /x\n", "\"/missing\": not found"),
        ("FROM scratch\nCOPY --from=nostage /x /x\n", "not found"),
        (
            "FROM scratch\nCOPY ok ok /notadir\n",
            "destination must be a directory",
        ),
    ];
    for (df, msg) in cases {
        std::fs::write(ctx.join("Dockerfile"), df).unwrap();
        let err = env.build_err(&[], &ctx);
        assert!(err.contains(msg), "{df:?}: expected {msg:?} in\n{err}");
    }
    let err = env.build_err(&["-o", "type=nope,dest=x"], &ctx);
    assert!(err.contains("invalid --output"), "{err}");
    assert_eq!(
        records(),
        before,
        "failed builds must not add cache records"
    );
}

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

#[test]
fn from_oci_layout_and_local_names_and_onbuild_triggers() {
    let env = Env::new();
    let base = env.project(
        "base",
        &[("Dockerfile", "FROM scratch\nCOPY base.txt /\nONBUILD COPY trigger.txt /from-trigger.txt\nENV BASEVAR=b\n"), ("base.txt", "base")],
    );
    let layout = env.path("base-layout");
    env.build_ok(
        &[
            "-t",
            "local/onbuild:1",
            "-o",
            &format!(
                "type=oci-dir,dest={},name=local/onbuild:1",
                layout.display()
            ),
        ],
        &base,
    );
    for from in [
        format!("oci-layout://{}:1", layout.display()),
        "local/onbuild:1".to_string(),
    ] {
        let df = format!("FROM {from}\nWORKDIR /w-$BASEVAR\n");
        let ctx = env.project(
            &format!("child-{}", from.len()),
            &[("Dockerfile", &df), ("trigger.txt", "T")],
        );
        let out = env.path(&format!("out-{}", from.len()));
        env.build_ok(&["-o", &format!("type=local,dest={}", out.display())], &ctx);
        assert_eq!(
            std::fs::read_to_string(out.join("base.txt")).unwrap(),
            "base"
        );
        assert_eq!(
            std::fs::read_to_string(out.join("from-trigger.txt")).unwrap(),
            "T",
            "ONBUILD ran"
        );
        assert!(
            out.join("w-b").is_dir(),
            "base image ENV expands in the child"
        );
    }
}

#[test]
fn prune_and_du() {
    let env = Env::new();
    let ctx = multi_project(&env);
    env.build_ok(&["-t", "keep:1"], &ctx);
    let du = env.rbuild().arg("du").output().unwrap();
    assert!(String::from_utf8_lossy(&du.stdout).contains("cache records:"));
    env.rbuild().args(["prune", "--all"]).assert().success();
    let du = String::from_utf8_lossy(&env.rbuild().arg("du").output().unwrap().stdout).into_owned();
    assert!(du.contains("cache records:      0"), "{du}");
    // The named image still works as a base after prune.
    let child = env.project(
        "child",
        &[("Dockerfile", "FROM keep:1\nCOPY x /x\n"), ("x", "x")],
    );
    env.build_ok(&[], &child);
    env.rbuild()
        .args(["prune", "--keep-storage", "nonsense"])
        .assert()
        .failure();
}

#[test]
fn concurrent_builds_share_one_store_safely() {
    let env = Env::new();
    let ctx = multi_project(&env);
    let children: Vec<_> = (0..4)
        .map(|_| {
            std::process::Command::new(assert_cmd::cargo::cargo_bin("rbuild"))
                .env("RBUILD_ROOT", env.root())
                .args(["build", "-q"])
                .arg(&ctx)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let ids: Vec<String> = children
        .into_iter()
        .map(|c| {
            let o = c.wait_with_output().unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            String::from_utf8_lossy(&o.stdout).trim().to_string()
        })
        .collect();
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "{ids:?}");
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
        ["[a 2/2] COPY f /f", "[stage-1 2/2] COPY --from=a /f /g"],
        "{err}"
    );
}
