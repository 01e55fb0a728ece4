//! `rbuild run -it` under a real pseudo-terminal (python3's pty module
//! plays the user's terminal): the container gets a terminal of its own
//! with the caller's window size, follows a resize (SIGWINCH), reads what
//! is typed, and the caller's terminal settings come back afterwards.

mod common;
use common::{Env, require_tool};

/// Drives `sh -c 'stty -g > before; rbuild run -it ...; echo "exit=$?";
/// stty -g > after'` on a pty of 40x120, resizes it to 50x132 once the
/// container says READY, then types `typed-line`.
const DRIVER: &str = r#"
import os, pty, struct, fcntl, termios, time, select, sys
rbuild, root, work = sys.argv[1], sys.argv[2], sys.argv[3]
script = ('stty -g > %s/before; RBUILD_ROOT=%s %s run --rm -it test/busybox:latest sh -c '
          '"tty; stty size; trap \'stty size; echo WINCH\' WINCH; echo READY; until read x; do :; done; echo got:\$x; exit 4"; '
          'echo "exit=$?"; stty -g > %s/after') % (work, root, rbuild, work)
pid, fd = pty.fork()
if pid == 0:
    os.execv("/bin/sh", ["sh", "-c", script])
fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
out = b""
resized = typed = False
deadline = time.time() + 30
while time.time() < deadline:
    r, _, _ = select.select([fd], [], [], 0.1)
    if r:
        try:
            d = os.read(fd, 4096)
        except OSError:
            break
        if not d:
            break
        out += d
    if b"READY" in out and not resized:
        time.sleep(0.2)
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 132, 0, 0))
        resized = True
    if b"WINCH" in out and not typed:
        os.write(fd, b"typed-line\r")
        typed = True
os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors="replace"))
"#;

#[test]
fn it_gives_a_terminal_with_size_resize_input_and_restores_the_callers() {
    let python = require_tool("python3", "python3");
    let env = Env::new();
    env.busybox_base("test/busybox:latest");
    let work = env.path("tty");
    std::fs::create_dir_all(&work).unwrap();
    let out = std::process::Command::new(python)
        .arg("-c")
        .arg(DRIVER)
        .arg(assert_cmd::cargo::cargo_bin("rbuild"))
        .arg(env.root())
        .arg(&work)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    assert!(text.contains("/dev/pts/0\n"), "a terminal: {text}");
    assert!(text.contains("40 120\n"), "the caller's size: {text}");
    assert!(
        text.contains("50 132\nWINCH\n"),
        "a resize reaches it: {text}"
    );
    assert!(
        text.contains("got:typed-line\n"),
        "input reaches it: {text}"
    );
    assert!(text.contains("exit=4\n"), "its exit code: {text}");
    let before = std::fs::read_to_string(work.join("before")).unwrap();
    let after = std::fs::read_to_string(work.join("after")).unwrap();
    assert_eq!(before, after, "the caller's terminal settings are restored");
    // Raw mode was on meanwhile: typed characters were echoed once (by the
    // container's terminal), not twice.
    assert_eq!(text.matches("typed-line").count(), 2, "{text}");
}

#[test]
fn it_without_a_terminal_is_refused_and_t_alone_works() {
    let env = Env::new();
    env.busybox_base("test/busybox:latest");
    let o = env
        .rbuild()
        .args(["run", "--rm", "-it", "test/busybox:latest", "true"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a TTY"));
    let o = env
        .rbuild()
        .args([
            "run",
            "--rm",
            "-t",
            "test/busybox:latest",
            "sh",
            "-c",
            "test -t 0 && test -t 1 && echo tty",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).replace('\r', ""),
        "tty\n"
    );
}

/// Ctrl-C typed on the container's terminal: with `--init` the command is
/// in the terminal's foreground group and dies of SIGINT (130); without,
/// it is PID 1 and, having no handler, ignores it (as under Docker).
const CTRL_C: &str = r#"
import os, pty, sys, time, select
rbuild, root, init = sys.argv[1], sys.argv[2], sys.argv[3] == "init"
args = [rbuild, "run", "--rm", "-it", "--network", "none"] + (["--init"] if init else [])
args += ["test/busybox:latest", "sh", "-c", "echo start; exec sleep 5"]
pid, fd = pty.fork()
if pid == 0:
    os.environ["RBUILD_ROOT"] = root
    os.execv(rbuild, args)
out, sent, t = b"", False, time.time()
while time.time() - t < 20:
    r, _, _ = select.select([fd], [], [], 0.1)
    if r:
        try:
            d = os.read(fd, 4096)
        except OSError:
            break
        if not d:
            break
        out += d
    if b"start" in out and not sent:
        time.sleep(0.3)
        os.write(fd, b"\x03")
        sent = True
_, st = os.waitpid(pid, 0)
print(os.waitstatus_to_exitcode(st), time.time() - t)
"#;

#[test]
fn ctrl_c_on_the_terminal_reaches_the_command() {
    let python = require_tool("python3", "python3");
    let env = Env::new();
    env.busybox_base("test/busybox:latest");
    let result = |mode: &str| {
        let out = std::process::Command::new(&python)
            .arg("-c")
            .arg(CTRL_C)
            .arg(assert_cmd::cargo::cargo_bin("rbuild"))
            .arg(env.root())
            .arg(mode)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut it = text.split_whitespace();
        let code: i32 = it.next().unwrap().parse().unwrap();
        let secs: f64 = it.next().unwrap().parse().unwrap();
        (code, secs)
    };
    let (code, secs) = result("init");
    assert!(
        code == 130 && secs < 4.0,
        "--init: SIGINT ends the command: {code} after {secs}s"
    );
    let (code, secs) = result("no-init");
    assert!(
        code == 0 && secs >= 4.9,
        "PID 1 ignores SIGINT without a handler: {code} after {secs}s"
    );
}
