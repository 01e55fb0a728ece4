//! RUN in the sandbox, on the busybox base made from Debian's busybox-static:
//! command forms, environment, failures, isolation and network modes.

mod common;
use common::Env;

fn with_base() -> Env {
    let env = Env::new();
    env.busybox_base("test/busybox:latest");
    env
}

fn build_to_dir(env: &Env, name: &str, df: &str) -> (String, std::path::PathBuf) {
    let ctx = env.project(name, &[("Dockerfile", df)]);
    let out = env.path(&format!("{name}-out"));
    let err = env.build_ok(&["-o", &format!("type=local,dest={}", out.display())], &ctx);
    (err, out)
}

#[test]
fn run_forms_see_env_args_workdir_and_user() {
    let env = with_base();
    let df = r#"FROM test/busybox:latest
ARG GREETING=hi
ENV TARGET=world
WORKDIR /work
RUN echo "$GREETING $TARGET from $(pwd)" > shell.txt
RUN ["/bin/sh", "-c", "echo exec form > /work/exec.txt"]
RUN <<EOF
set -e
echo "heredoc $TARGET" > /work/heredoc.txt
EOF
RUN <<EOF
#!/bin/sh
echo "shebang script" > /work/shebang.txt
EOF
RUN adduser -D app && addgroup app wheel
USER app
RUN id -un > /tmp/who.txt && echo "$HOME" > /tmp/home.txt
"#;
    let (_, out) = build_to_dir(&env, "forms", df);
    let read = |p: &str| std::fs::read_to_string(out.join(p)).unwrap();
    assert_eq!(read("work/shell.txt"), "hi world from /work\n");
    assert_eq!(read("work/exec.txt"), "exec form\n");
    assert_eq!(read("work/heredoc.txt"), "heredoc world\n");
    assert_eq!(read("work/shebang.txt"), "shebang script\n");
    assert_eq!(read("tmp/who.txt"), "app\n");
    assert_eq!(read("tmp/home.txt"), "/home/app\n");
    assert!(
        !out.join("proc").exists() && !out.join("dev").exists(),
        "mount points stay out of layers"
    );
}

#[test]
fn deleted_files_become_whiteouts_and_layers_apply_in_order() {
    let env = with_base();
    let df = "FROM test/busybox:latest\nRUN mkdir -p /d/sub && echo a > /d/a && echo b > /d/sub/b\nRUN rm /d/a && rm -r /d/sub && echo c > /d/c\n";
    let (_, out) = build_to_dir(&env, "wh", df);
    assert!(!out.join("d/a").exists() && !out.join("d/sub").exists());
    assert_eq!(std::fs::read_to_string(out.join("d/c")).unwrap(), "c\n");
}

#[test]
fn a_failing_step_reports_its_exit_code_and_last_lines() {
    let env = with_base();
    let ctx = env.project(
        "fail",
        &[(
            "Dockerfile",
            "FROM test/busybox:latest\nRUN echo first line && echo 'went wrong' >&2 && exit 3\n",
        )],
    );
    let err = env.build_err(&[], &ctx);
    assert!(err.contains("RUN echo first line"), "{err}");
    assert!(
        err.contains("did not complete successfully: exit code: 3"),
        "{err}"
    );
    assert!(err.contains("went wrong"), "{err}");
    // The full log is kept in a file named after the step's cache key, and
    // the error says where.
    let log = err
        .lines()
        .find_map(|l| l.trim().strip_prefix("full log: "))
        .unwrap_or_else(|| panic!("no log file named: {err}"));
    let log = std::path::Path::new(log);
    assert!(
        log.starts_with(env.root().join("logs")),
        "{}",
        log.display()
    );
    let name = log.file_stem().unwrap().to_string_lossy().into_owned();
    assert_eq!(name.len(), 64, "a sha256 key: {name}");
    let text = std::fs::read_to_string(log).unwrap();
    assert!(
        text.contains("first line") && text.contains("went wrong"),
        "{text}"
    );
    // A failed step's log has no record to keep it: prune removes it.
    env.rbuild().arg("prune").assert().success();
    assert!(!log.exists(), "prune leaves {}", log.display());
}

#[test]
fn the_sandbox_isolates_files_pids_hostname_and_privileges() {
    let env = with_base();
    let marker = env.path("host-secret.txt");
    std::fs::write(&marker, "secret").unwrap();
    let df = format!(
        r#"FROM test/busybox:latest
RUN test ! -e {marker} && echo "host file hidden" >> /r
RUN echo "pids: $(ls /proc | grep -c '^[0-9]')" >> /r
RUN echo "hostname: $(hostname)" >> /r
RUN mkdir -p /mnt/x && (mount -t tmpfs none /mnt/x 2>/dev/null && echo "mount allowed" || echo "mount denied") >> /r
RUN v=$(cat /proc/sys/kernel/printk_ratelimit); (echo "$v" > /proc/sys/kernel/printk_ratelimit 2>/dev/null && echo "sysctl allowed" || echo "sysctl denied") >> /r
RUN (reboot -f 2>/dev/null && echo "reboot allowed" || echo "reboot denied") >> /r
RUN (sleep 313 &) ; echo "background started" >> /r
"#,
        marker = marker.display()
    );
    let (_, out) = build_to_dir(&env, "iso", &df);
    let r = std::fs::read_to_string(out.join("r")).unwrap();
    assert!(r.contains("host file hidden"), "{r}");
    let pids: usize = r
        .lines()
        .find_map(|l| l.strip_prefix("pids: "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(pids <= 4, "only the step's own processes are visible: {r}");
    assert!(r.contains("hostname: buildkitsandbox"), "{r}");
    assert!(
        r.contains("mount denied") && r.contains("sysctl denied") && r.contains("reboot denied"),
        "{r}"
    );
    let left = std::process::Command::new("pgrep")
        .args(["-f", "sleep 313"])
        .output()
        .unwrap();
    assert!(
        left.stdout.is_empty(),
        "a background process outlived its step"
    );
}

#[test]
fn network_none_and_default_are_isolated_and_host_reaches_the_host() {
    let env = with_base();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in listener.incoming().take(4) {
            use std::io::Write;
            if let Ok(mut s) = s {
                let _ = s.write_all(b"pong\n");
            }
        }
    });
    let df = format!(
        "FROM test/busybox:latest\nRUN --network=none (nc -w 2 127.0.0.1 {port} </dev/null && echo reached || echo isolated) > /none.txt\nRUN (nc -w 2 127.0.0.1 {port} </dev/null | grep -q pong && echo reached || echo isolated) > /default.txt\nRUN --network=host (nc -w 2 127.0.0.1 {port} </dev/null | grep -q pong && echo reached || echo isolated) > /host.txt\n"
    );
    let ctx = env.project("net", &[("Dockerfile", &df)]);
    // The host's network is an entitlement the caller grants, as in buildx.
    let err = env.build_err(&[], &ctx);
    assert!(err.contains("network.host is not allowed"), "{err}");
    let out = env.path("net-out");
    env.build_ok(
        &[
            "--allow",
            "network.host",
            "-o",
            &format!("type=local,dest={}", out.display()),
        ],
        &ctx,
    );
    let read = |p: &str| std::fs::read_to_string(out.join(p)).unwrap();
    assert_eq!(read("none.txt"), "isolated\n");
    // The default network is a namespace of its own (outbound through
    // slirp4netns): the host's loopback is out of reach (tests/run_network.rs).
    assert_eq!(read("default.txt"), "isolated\n");
    assert_eq!(read("host.txt"), "reached\n");
}

#[test]
fn run_results_are_cached_and_keyed_on_build_args() {
    let env = with_base();
    let ctx = env.project(
        "cache",
        &[(
            "Dockerfile",
            "FROM test/busybox:latest\nARG V=1\nRUN echo $V > /v\n",
        )],
    );
    env.build_ok(&[], &ctx);
    let err = env.build_ok(&[], &ctx);
    assert!(err.contains("0 steps run"), "{err}");
    let err = env.build_ok(&["--build-arg", "V=2"], &ctx);
    assert!(err.contains("cache miss"), "{err}");
}

#[test]
fn cache_mounts_persist_across_builds_and_stay_out_of_layers() {
    let env = with_base();
    let df = "FROM test/busybox:latest\nARG N=1\nRUN --mount=type=cache,target=/cache,id=c1 echo run$N >> /cache/log && cat /cache/log > /seen\n";
    let ctx = env.project("cache-mount", &[("Dockerfile", df)]);
    let out1 = env.path("cm1");
    env.build_ok(
        &["-o", &format!("type=local,dest={}", out1.display())],
        &ctx,
    );
    let out2 = env.path("cm2");
    env.build_ok(
        &[
            "--build-arg",
            "N=2",
            "-o",
            &format!("type=local,dest={}", out2.display()),
        ],
        &ctx,
    );
    assert_eq!(
        std::fs::read_to_string(out2.join("seen")).unwrap(),
        "run1\nrun2\n",
        "the cache persisted"
    );
    assert!(
        !out2.join("cache/log").exists(),
        "cache contents never land in a layer"
    );
    assert!(!out2.join("cache").exists(), "nor does the mount point");
}

#[test]
fn bind_tmpfs_and_secret_mounts() {
    let env = with_base();
    let secret = env.path("token.txt");
    std::fs::write(&secret, "s3cr3t-value").unwrap();
    let sum = rbuild::digest::Digest::of(b"s3cr3t-value").hex();
    let df = r#"FROM test/busybox:latest AS tool
RUN mkdir -p /opt && echo "from stage" > /opt/tool.txt
FROM test/busybox:latest
RUN --mount=type=bind,source=data,target=/src cat /src/input.txt > /copied.txt && (touch /src/x 2>/dev/null && echo writable || echo readonly) > /bind-mode.txt
RUN --mount=type=bind,from=tool,source=/opt,target=/t cat /t/tool.txt > /from-stage.txt
RUN --mount=type=bind,source=data,target=/src,rw touch /src/x && echo ok > /rw.txt
RUN --mount=type=tmpfs,target=/scratch echo tmp > /scratch/f && (mount | grep -q ' /scratch ' && echo tmpfs) > /tmpfs.txt
RUN --mount=type=secret,id=token test "$(sha256sum /run/secrets/token | cut -d' ' -f1)" = "SUM" && echo secret-file-ok > /secret.txt
RUN --mount=type=secret,id=token,env=TOKEN test "$(printf %s "$TOKEN" | sha256sum | cut -d' ' -f1)" = "SUM" && echo secret-env-ok > /secret-env.txt
"#
    .replace("SUM", &sum);
    let ctx = env.project(
        "mounts",
        &[("Dockerfile", &df), ("data/input.txt", "bound\n")],
    );
    let out = env.path("mounts-out");
    let layout = env.path("mounts-layout");
    let err = env.build_ok(
        &[
            "--secret",
            &format!("id=token,src={}", secret.display()),
            "-o",
            &format!("type=local,dest={}", out.display()),
            "-o",
            &format!("type=oci-dir,dest={}", layout.display()),
        ],
        &ctx,
    );
    let read = |p: &str| std::fs::read_to_string(out.join(p)).unwrap();
    assert_eq!(read("copied.txt"), "bound\n");
    assert_eq!(read("bind-mode.txt"), "readonly\n");
    assert_eq!(read("from-stage.txt"), "from stage\n");
    assert_eq!(read("rw.txt"), "ok\n");
    assert!(
        !ctx.join("data/x").exists(),
        "writes to a rw bind are discarded"
    );
    assert_eq!(read("tmpfs.txt"), "tmpfs\n");
    assert_eq!(read("secret.txt"), "secret-file-ok\n");
    assert_eq!(read("secret-env.txt"), "secret-env-ok\n");
    assert!(
        !out.join("run/secrets").exists()
            && !out.join("scratch").exists()
            && !out.join("src").exists()
    );
    // The secret appears nowhere: not in the logs, the layers, the config or the store.
    assert!(!err.contains("s3cr3t-value"));
    let mut hay = Vec::new();
    for dir in [layout.clone(), env.root()] {
        let mut stack = vec![dir];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                let p = e.path();
                if e.file_type().unwrap().is_dir() {
                    stack.push(p);
                } else if e.file_type().unwrap().is_file() {
                    let data = std::fs::read(&p).unwrap();
                    let plain = if data.starts_with(&[0x1f, 0x8b]) {
                        let mut v = Vec::new();
                        let _ = std::io::Read::read_to_end(
                            &mut flate2::read::MultiGzDecoder::new(&data[..]),
                            &mut v,
                        );
                        v
                    } else {
                        data
                    };
                    hay.push((p, plain));
                }
            }
        }
    }
    for (p, data) in hay {
        assert!(
            !data.windows(12).any(|w| w == b"s3cr3t-value"),
            "secret leaked into {}",
            p.display()
        );
    }
    // A required secret that is missing fails the build.
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM test/busybox:latest\nRUN --mount=type=secret,id=nope,required true\n",
    )
    .unwrap();
    let err = env.build_err(&[], &ctx);
    assert!(err.contains("secret nope: not found"), "{err}");
}

fn layer_count(layout: &std::path::Path) -> usize {
    let blob = |d: &str| {
        std::fs::read(
            layout
                .join("blobs/sha256")
                .join(d.trim_start_matches("sha256:")),
        )
        .unwrap()
    };
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&blob(index["manifests"][0]["digest"].as_str().unwrap())).unwrap();
    manifest["layers"].as_array().unwrap().len()
}

#[test]
fn steps_that_change_nothing_add_empty_layers_and_repeat_safely() {
    // BuildKit: testExportedHistory (a RUN that changes nothing is a layer,
    // not an empty_layer history entry).
    let env = with_base();
    let base_layout = env.path("base-layout");
    let ctx0 = env.project("base-only", &[("Dockerfile", "FROM test/busybox:latest\n")]);
    env.build_ok(
        &[
            "-o",
            &format!("type=oci-dir,dest={}", base_layout.display()),
        ],
        &ctx0,
    );
    let ctx = env.project("noop-runs", &[("Dockerfile", "FROM test/busybox:latest\nRUN true\nRUN true\nRUN cat /etc/hosts >/dev/null\nRUN true\n")]);
    let layout = env.path("noop-layout");
    env.build_ok(
        &["-o", &format!("type=oci-dir,dest={}", layout.display())],
        &ctx,
    );
    assert_eq!(
        layer_count(&layout),
        layer_count(&base_layout) + 4,
        "each RUN adds a layer, empty ones too"
    );
    // The image with its repeated empty layer runs.
    env.build_ok(&["-t", "test/noop-runs"], &ctx);
    let out = env
        .rbuild()
        .args(["run", "--rm", "test/noop-runs", "cat", "/etc/passwd"])
        .output()
        .expect("run");
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn the_copy_snapshotter_gives_the_same_results_when_overlay_is_unavailable() {
    let env = with_base();
    let df = "FROM test/busybox:latest\nRUN mkdir -p /d/sub && echo a > /d/a && echo b > /d/sub/b && ln -s a /d/link\nRUN rm /d/a && rm -r /d/sub && echo c > /d/c && chmod 600 /d/c\nRUN <<EOF\n#!/bin/sh\necho script > /d/script.txt\nEOF\n";
    let ctx = env.project("copysnap", &[("Dockerfile", df)]);
    let outs: Vec<std::path::PathBuf> = ["overlay", "copy"]
        .iter()
        .map(|mode| {
            let out = env.path(&format!("out-{mode}"));
            let o = env
                .rbuild()
                .env("RBUILD_SNAPSHOTTER", mode)
                .args(["build", "--no-cache", "--progress", "plain", "-o"])
                .arg(format!("type=local,dest={}", out.display()))
                .arg(&ctx)
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(o.status.success(), "{err}");
            assert_eq!(
                err.contains("using the copy snapshotter"),
                *mode == "copy",
                "{err}"
            );
            out
        })
        .collect();
    for out in &outs {
        assert!(
            !out.join("d/a").exists() && !out.join("d/sub").exists(),
            "{}",
            out.display()
        );
        assert_eq!(std::fs::read_to_string(out.join("d/c")).unwrap(), "c\n");
        assert_eq!(
            std::fs::read_to_string(out.join("d/script.txt")).unwrap(),
            "script\n"
        );
        assert_eq!(
            std::fs::read_link(out.join("d/link"))
                .unwrap()
                .to_string_lossy(),
            "a"
        );
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(out.join("d/c"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
        assert!(!out.join("proc").exists() && !out.join("dev").exists());
    }
}
