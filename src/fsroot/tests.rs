use super::*;
use std::os::unix::fs::symlink;

/// A root with `etc/passwd` inside, and a host directory beside it holding
/// `secret`: every escape attempt must land inside the root or fail.
fn setup() -> (tempfile::TempDir, Root, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let host = t.path().join("host");
    std::fs::create_dir(&host).unwrap();
    std::fs::write(host.join("secret"), "host").unwrap();
    let root = t.path().join("root");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/passwd"), "inside").unwrap();
    let r = Root::open(&root).unwrap();
    (t, r, host)
}

fn read(r: &Root, rel: &str) -> io::Result<String> {
    let mut s = String::new();
    io::Read::read_to_string(&mut r.open_file(rel)?, &mut s)?;
    Ok(s)
}

#[test]
fn absolute_and_relative_links_are_rerooted() {
    let (_t, r, host) = setup();
    let root = r.path().to_path_buf();
    symlink("/etc", root.join("abs")).unwrap();
    symlink("../../../../etc", root.join("rel")).unwrap();
    symlink(host.join("secret"), root.join("hostfile")).unwrap();
    symlink("abs", root.join("chain")).unwrap();
    assert_eq!(read(&r, "abs/passwd").unwrap(), "inside");
    assert_eq!(read(&r, "/rel/passwd").unwrap(), "inside");
    assert_eq!(read(&r, "chain/passwd").unwrap(), "inside");
    assert_eq!(read(&r, "../../etc/passwd").unwrap(), "inside");
    assert!(
        read(&r, "hostfile").is_err(),
        "a link to a host file stays inside"
    );
    assert_eq!(r.resolve("chain/passwd", true).unwrap(), "etc/passwd");
    assert_eq!(r.resolve("rel/missing/x", true).unwrap(), "etc/missing/x");
    assert_eq!(r.resolve("abs", false).unwrap(), "abs");
    assert_eq!(r.resolve("/", true).unwrap(), "");
}

#[test]
fn the_walk_fallback_resolves_like_the_kernel() {
    let (_t, r, host) = setup();
    let root = r.path().to_path_buf();
    symlink("/etc", root.join("abs")).unwrap();
    symlink(host.join("secret"), root.join("hostfile")).unwrap();
    let via_walk = |rel: &str| {
        r.open_by_walk(rel, OFlags::RDONLY | OFlags::CLOEXEC, true)
            .map(|fd| {
                let mut s = String::new();
                io::Read::read_to_string(&mut File::from(fd), &mut s).unwrap();
                s
            })
    };
    assert_eq!(via_walk("abs/passwd").unwrap(), "inside");
    assert_eq!(via_walk("abs/../abs/./passwd").unwrap(), "inside");
    assert!(via_walk("hostfile").is_err());
}

#[test]
fn mkdir_all_and_create_stay_inside() {
    let (t, r, host) = setup();
    let root = r.path().to_path_buf();
    symlink(&host, root.join("hostdir")).unwrap();
    symlink(host.join("secret"), root.join("hostfile")).unwrap();
    r.mkdir_all("/hostdir/a/b", 0o755).unwrap();
    assert!(
        root.join(host.strip_prefix("/").unwrap())
            .join("a/b")
            .is_dir()
    );
    assert!(!host.join("a").exists(), "nothing created on the host");
    std::io::Write::write_all(&mut r.create_file("hostfile", 0o644).unwrap(), b"x").unwrap();
    assert_eq!(
        std::fs::read_to_string(host.join("secret")).unwrap(),
        "host"
    );
    r.ensure_file("/hostdir/f").unwrap();
    assert!(!host.join("f").exists());
    assert!(
        r.mkdir_all("etc/passwd/x", 0o755).is_err(),
        "a file on the way"
    );
    drop(t);
}

#[test]
fn loops_fail_instead_of_spinning() {
    let (_t, r, _host) = setup();
    symlink("b", r.path().join("a")).unwrap();
    symlink("a", r.path().join("b")).unwrap();
    assert!(r.resolve("a/x", true).is_err());
    assert!(r.open_file("a").is_err());
}
