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
    assert!(err.contains("exit code 3"), "{err}");
    assert!(err.contains("went wrong"), "{err}");
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
fn network_none_is_empty_and_default_reaches_the_host() {
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
    let (_, out) = build_to_dir(&env, "net", &df);
    let read = |p: &str| std::fs::read_to_string(out.join(p)).unwrap();
    assert_eq!(read("none.txt"), "isolated\n");
    assert_eq!(read("default.txt"), "reached\n");
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
