//! COPY and ADD details that real Dockerfiles rely on, as BuildKit does them.

mod common;
use common::Env;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

fn tar_of(files: &[(&str, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_000_000);
        b.append_data(&mut h, name, data.as_bytes()).unwrap();
    }
    b.into_inner().unwrap()
}

fn build_local(env: &Env, ctx: &std::path::Path, name: &str) -> PathBuf {
    let out = env.path(name);
    env.build_ok(&["-o", &format!("type=local,dest={}", out.display())], ctx);
    out
}

#[test]
fn add_unpacks_each_archive_unless_told_not_to() {
    let env = Env::new();
    let ctx = env.project(
        "ctx",
        &[(
            "Dockerfile",
            "FROM scratch\nADD *.tar /all/\nADD --unpack=false one.tar /kept/\nADD --chown=1234:5678 two.tar /owned/sub/\n",
        )],
    );
    std::fs::write(ctx.join("one.tar"), tar_of(&[("dir/a", "A")])).unwrap();
    std::fs::write(ctx.join("two.tar"), tar_of(&[("b", "B")])).unwrap();
    let out = build_local(&env, &ctx, "out");
    let read = |p: &str| std::fs::read_to_string(out.join(p)).unwrap();
    assert_eq!(read("all/dir/a"), "A");
    assert_eq!(read("all/b"), "B");
    assert!(
        out.join("kept/one.tar").is_file(),
        "--unpack=false keeps the archive"
    );
    assert!(!out.join("kept/dir").exists());
    for p in ["owned/sub/b", "owned/sub", "owned"] {
        let m = std::fs::symlink_metadata(out.join(p)).unwrap();
        assert_eq!((m.uid(), m.gid()), (1234, 5678), "{p}");
    }
}
