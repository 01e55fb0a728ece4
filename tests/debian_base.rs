//! RUN on a realistic base: a minimal Debian made by mmdebstrap from Debian's
//! packages (scripts/test-assets.sh), imported with ADD of its tarball.

mod common;
use common::Env;
use std::path::PathBuf;

fn assets() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-assets");
    assert!(
        dir.join("debian-rootfs.tar").exists(),
        "missing {}/debian-rootfs.tar: run ./scripts/test.sh (it runs scripts/test-assets.sh)",
        dir.display()
    );
    dir
}

#[test]
fn multi_stage_build_with_run_on_a_debian_base() {
    let assets = assets();
    let env = Env::new();
    let base = env.project(
        "debian-base",
        &[(
            "Dockerfile",
            "FROM scratch\nADD debian-rootfs.tar /\nCMD [\"bash\"]\n",
        )],
    );
    std::fs::copy(
        assets.join("debian-rootfs.tar"),
        base.join("debian-rootfs.tar"),
    )
    .unwrap();
    env.build_ok(&["-t", "test/debian:latest"], &base);
    let deb = std::fs::read_dir(&assets)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .expect("hello .deb in test assets");
    let df = r#"FROM test/debian:latest AS builder
COPY hello.deb /tmp/
RUN --mount=type=cache,target=/var/cache/apt,sharing=locked \
    dpkg -i /tmp/hello.deb && rm /tmp/hello.deb
RUN hello --greeting="built on debian" > /greeting.txt

FROM test/debian:latest AS users
RUN useradd --create-home --uid 1234 app
RUN <<EOF
set -e
mkdir -p /srv
echo "$(id -u app)" > /srv/uid
EOF

FROM test/debian:latest
COPY --from=builder /greeting.txt /srv/
COPY --from=users /srv/uid /srv/
COPY --from=users /etc/passwd /etc/passwd
USER app
RUN test "$(whoami)" = app && echo "$HOME" > /tmp/home
"#;
    let ctx = env.project("on-debian", &[("Dockerfile", df)]);
    std::fs::copy(&deb, ctx.join("hello.deb")).unwrap();
    let out = env.path("out");
    env.build_ok(&["-o", &format!("type=local,dest={}", out.display())], &ctx);
    assert_eq!(
        std::fs::read_to_string(out.join("srv/greeting.txt")).unwrap(),
        "built on debian\n"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("srv/uid")).unwrap(),
        "1234\n"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("tmp/home")).unwrap(),
        "/home/app\n"
    );
    assert!(
        !out.join("usr/bin/hello").exists(),
        "the final stage only copied results"
    );
}
