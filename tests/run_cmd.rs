//! `rbuild run` on images rbuild built from the busybox base: output, exit
//! codes, environment, working directory, user, the ENTRYPOINT/CMD table,
//! the writable layer, read-only root, signals and `--init`.

mod common;
use common::Env;
use std::process::Output;
use std::sync::OnceLock;

/// One store with the base image, shared by the tests of this file.
fn shared() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let env = Env::new();
        env.busybox_base("test/busybox:latest");
        env
    })
}

/// Build `df` as `tag` in the shared store.
fn image(tag: &str, df: &str) -> &'static Env {
    let env = shared();
    let ctx = env.project(
        &format!("ctx-{}", tag.replace([':', '/'], "-")),
        &[("Dockerfile", df)],
    );
    env.build_ok(&["-t", tag], &ctx);
    env
}

fn run(env: &Env, args: &[&str]) -> Output {
    env.rbuild()
        .arg("run")
        .args(args)
        .output()
        .expect("rbuild run")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

#[test]
fn runs_the_image_command_and_prints_its_output() {
    let env = image(
        "test/hello:1",
        "FROM test/busybox:latest\nRUN echo 'hello from the image' > /greeting\nCMD [\"cat\", \"/greeting\"]\n",
    );
    let o = run(env, &["--rm", "test/hello:1"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout(&o), "hello from the image\n");
}

#[test]
fn exit_codes_follow_docker() {
    let env = shared();
    let img = "test/busybox:latest";
    let o = run(env, &["--rm", img, "sh", "-c", "exit 3"]);
    assert_eq!(code(&o), 3);
    let o = run(env, &["--rm", img, "true"]);
    assert_eq!(code(&o), 0);
    // Not found: 127; found but not runnable: 126.
    let o = run(env, &["--rm", img, "no-such-command"]);
    assert_eq!(code(&o), 127, "{}", stderr(&o));
    let o = run(env, &["--rm", img, "/etc"]);
    assert_eq!(code(&o), 126, "{}", stderr(&o));
    // rbuild's own errors: 125.
    let o = run(env, &["--rm", "test/no-such-image:1"]);
    assert_eq!(code(&o), 125);
    assert!(stderr(&o).contains("not found"), "{}", stderr(&o));
    let o = run(env, &["--rm", "-w", "relative", img, "true"]);
    assert_eq!(code(&o), 125);
    let o = run(env, &["--rm", "-v", "bad name:/x", img, "true"]);
    assert_eq!(code(&o), 125);
    // A signal's death: 128+N.
    let o = run(env, &["--rm", "--init", img, "sh", "-c", "kill -9 $$"]);
    assert_eq!(code(&o), 137);
}

#[test]
fn env_workdir_user_and_groups_of_the_image_apply_and_flags_override() {
    let env = image(
        "test/cfg:1",
        "FROM test/busybox:latest\nRUN adduser -D app && addgroup -g 2000 extra && addgroup app extra\nENV A=image B=image\nWORKDIR /srv/app\nUSER app\n",
    );
    let script = "echo \"A=$A B=$B C=$C HOME=$HOME\"; pwd; id";
    let o = run(env, &["--rm", "test/cfg:1", "sh", "-c", script]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.starts_with("A=image B=image C= HOME=/home/app\n/srv/app\n"),
        "{out}"
    );
    assert!(
        out.contains("uid=1000(app)") && out.contains("2000(extra)"),
        "{out}"
    );
    let envfile = env.path("envfile");
    std::fs::write(&envfile, "# comment\nB=file\nC=file\n").unwrap();
    let o = run(
        env,
        &[
            "--rm",
            "--env-file",
            envfile.to_str().unwrap(),
            "-e",
            "C=flag",
            "-w",
            "/tmp",
            "-u",
            "root",
            "test/cfg:1",
            "sh",
            "-c",
            script,
        ],
    );
    let out = stdout(&o);
    assert!(
        out.starts_with("A=image B=file C=flag HOME=/root\n/tmp\n"),
        "{out}"
    );
    // Root's supplementary groups come from the image's /etc/group.
    assert!(
        out.contains("uid=0(root) gid=0(root) groups=0(root),10(wheel)"),
        "{out}"
    );
    let o = run(env, &["--rm", "-u", "nobody-here", "test/cfg:1", "true"]);
    assert_eq!(code(&o), 125, "{}", stderr(&o));
}

/// Docker's table, on real images: each cell's Dockerfile, run without
/// arguments. `exec_entry` and `exec_cmd` are scripts printing their
/// arguments, so what ran shows.
#[test]
fn entrypoint_and_cmd_combine_as_in_dockers_table() {
    // FROM scratch with the base's files: no CMD inherited.
    let base = "FROM test/busybox:latest AS files\nFROM scratch\nCOPY --from=files / /\nRUN printf '#!/bin/sh\\necho entry \"$@\"\\n' > /bin/exec_entry && printf '#!/bin/sh\\necho cmd \"$@\"\\n' > /bin/exec_cmd && chmod +x /bin/exec_entry /bin/exec_cmd\n";
    let entries = [
        "",
        "ENTRYPOINT exec_entry p1_entry\n",
        "ENTRYPOINT [\"exec_entry\", \"p1_entry\"]\n",
    ];
    let cmds = [
        "",
        "CMD [\"exec_cmd\", \"p1_cmd\"]\n",
        "CMD exec_cmd p1_cmd\n",
    ];
    let expected = [
        [None, Some("entry p1_entry\n"), Some("entry p1_entry\n")],
        [
            Some("cmd p1_cmd\n"),
            Some("entry p1_entry\n"),
            Some("entry p1_entry exec_cmd p1_cmd\n"),
        ],
        [
            Some("cmd p1_cmd\n"),
            Some("entry p1_entry\n"),
            Some("entry p1_entry /bin/sh -c exec_cmd p1_cmd\n"),
        ],
    ];
    for (r, cmd) in cmds.iter().enumerate() {
        for (c, entry) in entries.iter().enumerate() {
            let tag = format!("test/table:r{r}c{c}");
            let env = image(&tag, &format!("{base}{entry}{cmd}"));
            let o = run(env, &["--rm", "--network", "none", &tag]);
            match expected[r][c] {
                None => {
                    assert_eq!(code(&o), 125, "r{r}c{c}");
                    assert!(
                        stderr(&o).contains("no command specified"),
                        "{}",
                        stderr(&o)
                    );
                }
                Some(want) => {
                    assert_eq!(code(&o), 0, "r{r}c{c}: {}", stderr(&o));
                    assert_eq!(stdout(&o), want, "r{r}c{c}");
                }
            }
        }
    }
    // Arguments replace CMD; --entrypoint replaces ENTRYPOINT and drops CMD.
    let tag = "test/table:r1c2";
    let o = run(shared(), &["--rm", tag, "a", "b"]);
    assert_eq!(stdout(&o), "entry p1_entry a b\n");
    let o = run(shared(), &["--rm", "--entrypoint", "exec_cmd", tag]);
    assert_eq!(stdout(&o), "cmd\n");
    let o = run(
        shared(),
        &["--rm", "--entrypoint", "", tag, "exec_cmd", "x"],
    );
    assert_eq!(stdout(&o), "cmd x\n");
    let o = run(shared(), &["--rm", "--entrypoint", "", tag]);
    assert_eq!(code(&o), 125);
}

#[test]
fn the_writable_layer_is_thrown_away_and_read_only_is_enforced() {
    let env = shared();
    let img = "test/busybox:latest";
    let o = run(
        env,
        &[
            "--rm",
            img,
            "sh",
            "-c",
            "echo x > /made-here && cat /made-here",
        ],
    );
    assert_eq!(stdout(&o), "x\n");
    let o = run(env, &["--rm", img, "ls", "/made-here"]);
    assert_ne!(
        code(&o),
        0,
        "a second container starts from the image again"
    );
    let o = run(
        env,
        &[
            "--rm",
            "--read-only",
            img,
            "sh",
            "-c",
            "touch /x || echo refused",
        ],
    );
    assert!(stdout(&o).contains("refused"), "{}", stdout(&o));
    let o = run(env, &["--rm", "--read-only", "-w", "/new/dir", img, "pwd"]);
    assert_eq!(stdout(&o), "/new/dir\n", "{}", stderr(&o));
    let o = run(
        env,
        &[
            "--rm",
            "--hostname",
            "box",
            "--network",
            "none",
            img,
            "hostname",
        ],
    );
    assert_eq!(stdout(&o), "box\n");
}

#[test]
fn sigterm_reaches_the_process_and_the_stop_timeout_kills() {
    let env = shared();
    let dir = env.path("sig");
    std::fs::create_dir_all(&dir).unwrap();
    let bind = format!("{}:/h", dir.display());
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("rbuild"))
        .env("RBUILD_ROOT", env.root())
        .args(["run", "--rm", "-v", &bind, "test/busybox:latest", "sh", "-c"])
        .arg("trap 'echo got TERM > /h/sig; exit 7' TERM; touch /h/ready; while true; do sleep 0.1; done")
        .spawn()
        .unwrap();
    wait_for(&dir.join("ready"));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let st = child.wait().unwrap();
    assert_eq!(st.code(), Some(7));
    assert_eq!(
        std::fs::read_to_string(dir.join("sig")).unwrap(),
        "got TERM\n"
    );
    // A PID 1 without a handler ignores SIGTERM: killed after the timeout.
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("rbuild"))
        .env("RBUILD_ROOT", env.root())
        .args([
            "run",
            "--rm",
            "--stop-timeout",
            "1",
            "test/busybox:latest",
            "sleep",
            "30",
        ])
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let t0 = std::time::Instant::now();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(child.wait().unwrap().code(), Some(137));
    assert!(t0.elapsed().as_secs() < 5);
}

fn wait_for(p: &std::path::Path) {
    for _ in 0..200 {
        if p.exists() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("{} never appeared", p.display());
}

#[test]
fn init_reaps_orphans_and_passes_signals_on() {
    let env = shared();
    let dir = env.path("init");
    std::fs::create_dir_all(&dir).unwrap();
    let bind = format!("{}:/h", dir.display());
    // An orphan whose new parent (PID 1) is `sleep`, which never waits.
    let script = "(sleep 0.1 &); (sleep 1.5; ps -o stat,comm > /h/ps) & exec sleep 3";
    let zombies = |init: bool| {
        let mut args = vec!["--rm", "-v", &bind];
        if init {
            args.push("--init");
        }
        args.extend(["test/busybox:latest", "sh", "-c", script]);
        let o = run(env, &args);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        let ps = std::fs::read_to_string(dir.join("ps")).unwrap();
        ps.lines().filter(|l| l.starts_with('Z')).count()
    };
    assert_eq!(
        zombies(false),
        1,
        "without --init the orphan stays a zombie"
    );
    assert_eq!(zombies(true), 0, "--init reaps it");
    // With --init the command is not PID 1: SIGTERM's default action ends it.
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("rbuild"))
        .env("RBUILD_ROOT", env.root())
        .args([
            "run",
            "--rm",
            "--init",
            "-v",
            &bind,
            "test/busybox:latest",
            "sh",
            "-c",
        ])
        .arg("touch /h/init-ready; exec sleep 30")
        .spawn()
        .unwrap();
    wait_for(&dir.join("init-ready"));
    std::thread::sleep(std::time::Duration::from_millis(100));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(child.wait().unwrap().code(), Some(143));
}

#[test]
fn interactive_stdin_reaches_the_command_and_is_empty_without_i() {
    let env = shared();
    let o = env
        .rbuild()
        .args([
            "run",
            "--rm",
            "-i",
            "test/busybox:latest",
            "sh",
            "-c",
            "tr a-z A-Z",
        ])
        .write_stdin("piped in\n")
        .output()
        .unwrap();
    assert_eq!(stdout(&o), "PIPED IN\n");
    let o = env
        .rbuild()
        .args(["run", "--rm", "test/busybox:latest", "cat"])
        .write_stdin("not passed\n")
        .output()
        .unwrap();
    assert_eq!((code(&o), stdout(&o).as_str()), (0, ""));
}

#[test]
fn sigterm_becomes_the_images_stopsignal() {
    let env = image(
        "test/stopsig:1",
        "FROM test/busybox:latest\nSTOPSIGNAL SIGUSR1\n",
    );
    let dir = env.path("stopsig");
    std::fs::create_dir_all(&dir).unwrap();
    let bind = format!("{}:/h", dir.display());
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("rbuild"))
        .env("RBUILD_ROOT", env.root())
        .args(["run", "--rm", "-v", &bind, "test/stopsig:1", "sh", "-c"])
        .arg("trap 'echo USR1 > /h/sig; exit 0' USR1; trap 'echo TERM > /h/sig; exit 1' TERM; touch /h/ready; while true; do sleep 0.1; done")
        .spawn()
        .unwrap();
    wait_for(&dir.join("ready"));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(child.wait().unwrap().code(), Some(0));
    assert_eq!(std::fs::read_to_string(dir.join("sig")).unwrap(), "USR1\n");
}

#[test]
fn a_name_is_taken_while_its_container_runs() {
    let env = shared();
    let dir = env.path("names");
    std::fs::create_dir_all(&dir).unwrap();
    let bind = format!("{}:/h", dir.display());
    let mut first = std::process::Command::new(assert_cmd::cargo::cargo_bin("rbuild"))
        .env("RBUILD_ROOT", env.root())
        .args([
            "run",
            "--rm",
            "--init",
            "--name",
            "web",
            "-v",
            &bind,
            "test/busybox:latest",
        ])
        .args(["sh", "-c", "touch /h/ready; sleep 30"])
        .spawn()
        .unwrap();
    wait_for(&dir.join("ready"));
    let o = run(
        env,
        &["--rm", "--name", "web", "test/busybox:latest", "true"],
    );
    assert_eq!(code(&o), 125);
    assert!(stderr(&o).contains("already in use"), "{}", stderr(&o));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(first.id() as i32, libc::SIGTERM) };
    first.wait().unwrap();
    let o = run(
        env,
        &["--rm", "--name", "web", "test/busybox:latest", "true"],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}

#[test]
fn the_container_is_confined_as_a_run_step_is() {
    let env = shared();
    let o = run(
        env,
        &[
            "--rm",
            "--network",
            "none",
            "test/busybox:latest",
            "sh",
            "-c",
            "grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status; cat /proc/kcore >/dev/null 2>&1 || echo kcore-masked; touch /sys/x 2>/dev/null || echo sys-ro; ls /dev | tr '\\n' ' '",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        stdout(&o).replace('\t', " "),
        // Docker's default capabilities, no_new_privs, its seccomp profile.
        "CapEff: 00000000a80425fb\nNoNewPrivs: 1\nSeccomp: 2\nkcore-masked\nsys-ro\nfd full null ptmx pts random shm stderr stdin stdout tty urandom zero "
    );
}
