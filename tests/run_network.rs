//! RUN's network: by default a namespace of the step's own with outbound
//! access through slirp4netns (the host's loopback and ports stay out of
//! reach); `--network=host` shares the host's. All traffic stays on
//! 127.0.0.1 or inside network namespaces these tests create.

mod common;
use common::{Env, require_tool};
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command as Proc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

fn with_base() -> Env {
    require_tool("slirp4netns", "slirp4netns");
    let env = Env::new();
    env.busybox_base("test/busybox:latest");
    env
}

fn build_to_dir(env: &Env, name: &str, df: &str) -> std::path::PathBuf {
    let ctx = env.project(name, &[("Dockerfile", df)]);
    let out = env.path(&format!("{name}-out"));
    env.build_ok(
        &[
            "--allow",
            "network.host",
            "-o",
            &format!("type=local,dest={}", out.display()),
        ],
        &ctx,
    );
    out
}

fn read(out: &Path, p: &str) -> String {
    std::fs::read_to_string(out.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"))
}

/// A pong server on the host's 127.0.0.1 (random port).
fn pong_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            let _ = s.write_all(b"pong\n");
        }
    });
    port
}

#[test]
fn the_default_network_cannot_reach_the_host_loopback_but_host_network_can() {
    let env = with_base();
    let port = pong_server();
    let probe = |addr: &str| {
        format!(
            "(nc -w 3 {addr} {port} </dev/null | grep -q pong && echo reached || echo isolated)"
        )
    };
    let df = format!(
        "FROM test/busybox:latest\n\
         RUN {} > /lo.txt; {} > /gw.txt; grep -c tap0 /proc/net/dev > /tap.txt; cat /etc/resolv.conf > /resolv.txt\n\
         RUN --network=host {} > /host.txt\n",
        probe("127.0.0.1"),
        probe("10.0.2.2"),
        probe("127.0.0.1"),
    );
    let out = build_to_dir(&env, "net", &df);
    // The step had its own network (tap0 from slirp4netns) ...
    assert_eq!(read(&out, "tap.txt"), "1\n");
    assert!(
        read(&out, "resolv.txt").starts_with("nameserver 10.0.2.3\n"),
        "{}",
        read(&out, "resolv.txt")
    );
    // ... in which neither its own loopback nor slirp's gateway is the host's.
    assert_eq!(read(&out, "lo.txt"), "isolated\n");
    assert_eq!(read(&out, "gw.txt"), "isolated\n");
    assert_eq!(read(&out, "host.txt"), "reached\n");
}

/// Build with a step that serves HTTP on 127.0.0.1:`port` for a few seconds
/// (and checks it can reach itself), while this test tries to connect from
/// the host. Returns whether the host ever reached it.
fn host_sees_step_listener(env: &Env, name: &str, network_flag: &str) -> bool {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let df = format!(
        "FROM test/busybox:latest\n\
         RUN {network_flag} mkdir -p /www && echo hello > /www/index.html && httpd -p 127.0.0.1:{port} -h /www && \
         wget -q -O /self.txt http://127.0.0.1:{port}/index.html && sleep 3\n"
    );
    let done = Arc::new(AtomicBool::new(false));
    let reached = Arc::new(AtomicBool::new(false));
    let prober = {
        let (done, reached) = (done.clone(), reached.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                let addr = ("127.0.0.1", port);
                if TcpStream::connect(addr).is_ok() {
                    reached.store(true, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let out = build_to_dir(env, name, &df);
    done.store(true, Ordering::Relaxed);
    prober.join().unwrap();
    // The listener was up: the step reached it from inside.
    assert_eq!(read(&out, "self.txt"), "hello\n");
    reached.load(Ordering::Relaxed)
}

#[test]
fn a_port_bound_by_a_default_network_step_does_not_appear_on_the_host() {
    let env = with_base();
    assert!(
        !host_sees_step_listener(&env, "bind-default", ""),
        "the host reached a port bound inside a default-network step"
    );
    assert!(
        host_sees_step_listener(&env, "bind-host", "--network=host"),
        "a --network=host step's port should be the host's"
    );
}

/// Run `script` with `sh` in a new network namespace (the caller's own
/// processes only), with RBUILD_ROOT, RBUILD (the binary) and WWW (a
/// directory to serve) set.
fn in_test_netns(env: &Env, script: &str) -> std::process::Output {
    let unshare = require_tool("unshare", "util-linux");
    require_tool("ip", "iproute2");
    Proc::new(unshare)
        .args(["--net", "sh", "-c", script])
        .env("RBUILD_ROOT", env.root())
        .env("RBUILD", assert_cmd::cargo::cargo_bin("rbuild"))
        .env("WWW", env.path("www"))
        .env_remove("SOURCE_DATE_EPOCH")
        .output()
        .unwrap()
}

/// Shell that sets up the test namespace: loopback up with 198.51.100.1
/// (TEST-NET-2: nothing real; no dummy interface, which needs a kernel
/// module), and busybox httpd on that address.
const NETNS_SETUP: &str = r#"set -e
ip link set lo up
ip addr add 198.51.100.1/32 dev lo
mkdir -p "$WWW" && echo fetched-ok > "$WWW/file"
busybox httpd -f -p 198.51.100.1:8080 -h "$WWW" >/dev/null 2>&1 &
HTTPD=$!
trap 'kill $HTTPD' EXIT
i=0; until busybox wget -q -O /dev/null http://198.51.100.1:8080/file; do i=$((i+1)); [ $i -lt 100 ] || exit 9; sleep 0.05; done
slirps() { n=0; for p in /proc/[0-9]*; do [ "$(readlink $p/ns/net 2>/dev/null)" = "$(readlink /proc/self/ns/net)" ] && grep -qx slirp4netns $p/comm 2>/dev/null && n=$((n+1)); done; echo $n; }
set +e
"#;

#[test]
fn the_default_network_reaches_outside_through_slirp4netns_and_leaves_no_process() {
    let env = with_base();
    let ctx = env.project(
        "fetch",
        &[(
            "Dockerfile",
            "FROM test/busybox:latest\n\
             RUN wget -q -O /fetched.txt http://198.51.100.1:8080/file && cat /etc/resolv.conf > /resolv.txt\n\
             RUN --network=host wget -q -O /fetched-host.txt http://198.51.100.1:8080/file\n",
        )],
    );
    let out = env.path("fetch-out");
    let script = format!(
        "{NETNS_SETUP}\n\"$RBUILD\" build --progress plain --allow network.host -o type=local,dest={} {} || exit 10\necho slirp4netns-left=$(slirps)\n",
        out.display(),
        ctx.display()
    );
    let res = in_test_netns(&env, &script);
    let stdout = String::from_utf8_lossy(&res.stdout);
    assert!(
        res.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&res.stderr)
    );
    assert_eq!(read(&out, "fetched.txt"), "fetched-ok\n");
    assert_eq!(read(&out, "fetched-host.txt"), "fetched-ok\n");
    assert!(read(&out, "resolv.txt").starts_with("nameserver 10.0.2.3\n"));
    assert!(stdout.contains("slirp4netns-left=0"), "{stdout}");
}

#[test]
fn slirp4netns_exits_when_rbuild_is_killed() {
    let env = with_base();
    let ctx = env.project(
        "killed",
        &[(
            "Dockerfile",
            "FROM test/busybox:latest\nRUN echo started && sleep 60\n",
        )],
    );
    // Start a build in the test namespace, wait until slirp4netns serves its
    // step, kill -9 rbuild, then count slirp4netns processes for 5 s.
    let script = format!(
        "{NETNS_SETUP}\n\"$RBUILD\" build --progress plain --no-cache {} > /dev/null 2>&1 &\nB=$!\n\
         i=0; until [ \"$(slirps)\" = 1 ]; do i=$((i+1)); [ $i -lt 600 ] || exit 11; sleep 0.05; done\n\
         echo running=$(slirps)\nkill -9 $B; wait $B || true\n\
         i=0; until [ \"$(slirps)\" = 0 ]; do i=$((i+1)); [ $i -lt 100 ] || break; sleep 0.05; done\n\
         echo after-kill=$(slirps)\n",
        ctx.display()
    );
    let res = in_test_netns(&env, &script);
    let stdout = String::from_utf8_lossy(&res.stdout);
    assert!(
        res.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&res.stderr)
    );
    assert!(stdout.contains("running=1"), "{stdout}");
    assert!(stdout.contains("after-kill=0"), "{stdout}");
}

#[test]
fn a_missing_slirp4netns_fails_the_step_and_names_the_package_and_alternatives() {
    let env = with_base();
    let ctx = env.project(
        "noslirp",
        &[("Dockerfile", "FROM test/busybox:latest\nRUN echo hi\n")],
    );
    let out = env
        .rbuild()
        .args(["build", "--progress", "plain"])
        .arg(&ctx)
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("slirp4netns")
            && err.contains("--network=none")
            && err.contains("--network=host"),
        "{err}"
    );
    // --network=none needs no slirp4netns.
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM test/busybox:latest\nRUN --network=none echo hi\n",
    )
    .unwrap();
    let st = env
        .rbuild()
        .args(["build", "--progress", "plain"])
        .arg(&ctx)
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
}

/// A DNS server for the test namespace: answers every A query with
/// 198.51.100.1 (no other records).
const DNS_SERVER: &str = r#"import socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("198.51.100.1", 53))
while True:
    q, addr = s.recvfrom(512)
    tid = struct.unpack(">H", q[:2])[0]
    i = 12
    while q[i] != 0:
        i += q[i] + 1
    question = q[12:i + 5]
    if struct.unpack(">H", q[i + 1:i + 3])[0] == 1:
        ans = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + socket.inet_aton("198.51.100.1")
        s.sendto(struct.pack(">HHHHHH", tid, 0x8180, 1, 1, 0, 0) + question + ans, addr)
    else:
        s.sendto(struct.pack(">HHHHHH", tid, 0x8180, 1, 0, 0, 0) + question, addr)
"#;

#[test]
fn names_resolve_through_slirp4netns_dns_forwarder() {
    let env = with_base();
    let python = require_tool("python3", "python3");
    std::fs::write(env.path("dns.py"), DNS_SERVER).unwrap();
    // The host side's resolver, seen by slirp4netns: our server only.
    std::fs::write(env.path("resolv.conf"), "nameserver 198.51.100.1\n").unwrap();
    let ctx = env.project(
        "dns",
        &[(
            "Dockerfile",
            "FROM test/busybox:latest\n\
             RUN cp /etc/resolv.conf /resolv.txt && wget -q -O /fetched.txt http://files.build.example:8080/file\n",
        )],
    );
    let out = env.path("dns-out");
    // A mount namespace too, to give the test namespace its own resolv.conf.
    let script = format!(
        "mount --bind {resolv} /etc/resolv.conf || exit 12\n{NETNS_SETUP}\n\
         {python} {dns} & DNS=$!\ntrap 'kill $HTTPD $DNS' EXIT\n\
         i=0; until nslookup files.build.example 198.51.100.1 >/dev/null 2>&1; do i=$((i+1)); [ $i -lt 100 ] || exit 13; sleep 0.05; done\n\
         \"$RBUILD\" build --progress plain -o type=local,dest={out} {ctx} || exit 10\n",
        resolv = env.path("resolv.conf").display(),
        python = python.display(),
        dns = env.path("dns.py").display(),
        out = out.display(),
        ctx = ctx.display(),
    )
    .replace("nslookup", "busybox nslookup");
    let unshare = require_tool("unshare", "util-linux");
    let res = Proc::new(unshare)
        .args(["--net", "--mount", "sh", "-c", &script])
        .env("RBUILD_ROOT", env.root())
        .env("RBUILD", assert_cmd::cargo::cargo_bin("rbuild"))
        .env("WWW", env.path("www"))
        .env_remove("SOURCE_DATE_EPOCH")
        .output()
        .unwrap();
    assert!(
        res.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&res.stdout),
        String::from_utf8_lossy(&res.stderr)
    );
    // Resolved by slirp4netns's forwarder (10.0.2.3), which asked our server.
    assert_eq!(read(&out, "resolv.txt"), "nameserver 10.0.2.3\n");
    assert_eq!(read(&out, "fetched.txt"), "fetched-ok\n");
}
