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

#[test]
fn setuid_and_setgid_bits_are_kept() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    let ctx = env.project(
        "ctx",
        &[
            ("suid", "s"),
            ("sgid", "g"),
            ("dir/f", "f"),
            (
                "Dockerfile",
                "FROM scratch AS s\nCOPY --chown=12:34 suid sgid /bin/\nCOPY dir /d\n\nFROM scratch\nCOPY --from=s /bin/ /copied/\nCOPY --from=s /d /d\n",
            ),
        ],
    );
    let set = |p: &str, m: u32| {
        std::fs::set_permissions(ctx.join(p), std::fs::Permissions::from_mode(m)).unwrap()
    };
    set("suid", 0o4755);
    set("sgid", 0o2755);
    set("dir", 0o3775);
    let out = build_local(&env, &ctx, "out");
    let mode = |p: &str| std::fs::metadata(out.join(p)).unwrap().mode() & 0o7777;
    assert_eq!(mode("copied/suid"), 0o4755);
    assert_eq!(mode("copied/sgid"), 0o2755);
    assert_eq!(
        mode("d"),
        0o755,
        "a directory COPY creates is made like any parent"
    );
    let m = std::fs::metadata(out.join("copied/suid")).unwrap();
    assert_eq!((m.uid(), m.gid()), (12, 34), "--from keeps the owner");
}

fn mode_of(out: &std::path::Path, p: &str) -> u32 {
    std::fs::symlink_metadata(out.join(p)).unwrap().mode() & 0o7777
}

#[test]
fn chmod_octal_applies_to_files_and_created_parents() {
    // BuildKit's testCopyChmod, read from the exported filesystem.
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    let ctx = env.project(
        "ctx",
        &[
            ("foo", "foo-contents"),
            ("bar", "bar-contents"),
            (
                "Dockerfile",
                "FROM scratch\nCOPY --chmod=0644 foo /\nCOPY --chmod=777 bar /baz\nCOPY --chmod=0 foo /foobis\nCOPY --chmod=777 foo /parent/foo\nCOPY --chmod=770 foo /parent/sub/foo\nARG mode\nCOPY --chmod=${mode} foo /footer\n",
            ),
        ],
    );
    std::fs::set_permissions(ctx.join("foo"), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::set_permissions(ctx.join("bar"), std::fs::Permissions::from_mode(0o700)).unwrap();
    let out = env.path("out");
    env.build_ok(
        &[
            "--build-arg",
            "mode=755",
            "-o",
            &format!("type=local,dest={}", out.display()),
        ],
        &ctx,
    );
    for (p, m) in [
        ("foo", 0o644),
        ("baz", 0o777),
        ("foobis", 0),
        ("parent", 0o777),
        ("parent/sub", 0o770),
        ("footer", 0o755),
    ] {
        assert_eq!(mode_of(&out, p), m, "{p}");
    }
}

#[test]
fn chmod_symbolic_edits_each_entrys_mode() {
    // BuildKit's testChmodNonOctal: a file 0666 and a directory 0124.
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    let mut df = String::from("FROM scratch\n");
    for (i, m) in ["go-w", "u=rw,g=r,o=r", "a+X"].iter().enumerate() {
        df.push_str(&format!(
            "COPY --chmod={m} file /f{i}\nCOPY --chmod={m} dirs/ /d{i}/\n"
        ));
    }
    let ctx = env.project(
        "ctx",
        &[("file", "x"), ("dirs/dir/inner", "y"), ("Dockerfile", &df)],
    );
    std::fs::set_permissions(ctx.join("file"), std::fs::Permissions::from_mode(0o666)).unwrap();
    std::fs::set_permissions(ctx.join("dirs/dir"), std::fs::Permissions::from_mode(0o124)).unwrap();
    let out = build_local(&env, &ctx, "out");
    std::fs::set_permissions(ctx.join("dirs/dir"), std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(
        [0, 1, 2].map(|i| mode_of(&out, &format!("f{i}"))),
        [0o644, 0o644, 0o666]
    );
    assert_eq!(
        [0, 1, 2].map(|i| mode_of(&out, &format!("d{i}/dir"))),
        [0o104, 0o644, 0o135]
    );
    assert_eq!(
        mode_of(&out, "d0"),
        0o755,
        "created parents: 0755 under a symbolic mode"
    );
    let bad = env.project(
        "bad",
        &[
            ("foo", "x"),
            ("Dockerfile", "FROM scratch\nCOPY --chmod=64a foo /\n"),
        ],
    );
    let err = env.build_err(&[], &bad);
    assert!(
        err.contains(
            "invalid chmod parameter: '64a'. it should be octal string and between 0 and 07777"
        ),
        "{err}"
    );
    std::fs::write(
        bad.join("Dockerfile"),
        "FROM scratch\nADD --chmod=10000 foo /\n",
    )
    .unwrap();
    let err = env.build_err(&[], &bad);
    assert!(err.contains("invalid chmod parameter: '10000'."), "{err}");
}

#[test]
fn empty_wildcards_sockets_and_links_in_the_image() {
    let env = Env::new();
    let ctx = env.project(
        "ctx",
        &[
            ("foo", "contents0"),
            ("rootfs/bin/tool", "t"),
            (
                "Dockerfile",
                "FROM scratch\nCOPY foo nomatch* /\nCOPY nothing* /empty/\nCOPY . /all/\n",
            ),
        ],
    );
    let sock = std::os::unix::net::UnixListener::bind(ctx.join("socket.sock")).unwrap();
    let out = build_local(&env, &ctx, "out");
    drop(sock);
    assert_eq!(
        std::fs::read_to_string(out.join("foo")).unwrap(),
        "contents0"
    );
    assert!(
        !out.join("empty").exists(),
        "an empty wildcard creates nothing"
    );
    let m = std::fs::symlink_metadata(out.join("all/socket.sock")).unwrap();
    assert!(
        m.is_file() && m.len() == 0,
        "a socket is copied as an empty file"
    );
    // A link of the image inside a copied tree is neither followed nor replaced.
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nCOPY links/ /\nCOPY rootfs/ /\n",
    )
    .unwrap();
    std::fs::create_dir(ctx.join("links")).unwrap();
    std::os::unix::fs::symlink("usr/bin", ctx.join("links/bin")).unwrap();
    std::fs::remove_file(ctx.join("socket.sock")).unwrap();
    let err = env.build_err(&[], &ctx);
    assert!(err.contains("cannot copy to non-directory: /bin"), "{err}");
}

#[test]
fn add_archive_follows_the_images_absolute_links() {
    // BuildKit's testDockerfileAddArchiveThroughAbsoluteSymlink.
    let env = Env::new();
    let ctx = env.project(
        "ctx",
        &[(
            "Dockerfile",
            "FROM scratch\nADD rootfs.tar /\nADD payload.tar /\n",
        )],
    );
    let mut b = tar::Builder::new(Vec::new());
    let dir = |b: &mut tar::Builder<Vec<u8>>, name: &str| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        b.append_data(&mut h, name, &[][..]).unwrap();
    };
    dir(&mut b, "run/");
    dir(&mut b, "var/");
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    h.set_mode(0o777);
    b.append_link(&mut h, "var/run", "/run").unwrap();
    std::fs::write(ctx.join("rootfs.tar"), b.into_inner().unwrap()).unwrap();
    let mut b = tar::Builder::new(Vec::new());
    for d in [
        "var/run/act/",
        "var/run/act/actions/",
        "var/run/act/actions/broad/",
        "var/run/act/actions/broad/.git/",
    ] {
        dir(&mut b, d);
    }
    let head = "var/run/act/actions/broad/.git/HEAD";
    let mut h = tar::Header::new_gnu();
    h.set_size(21);
    h.set_mode(0o644);
    b.append_data(&mut h, head, &b"ref: refs/heads/main\n"[..])
        .unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Link);
    h.set_size(0);
    h.set_mode(0o644);
    b.append_link(&mut h, format!("{head}.link"), head).unwrap();
    std::fs::write(ctx.join("payload.tar"), b.into_inner().unwrap()).unwrap();
    let out = build_local(&env, &ctx, "out");
    let got = out.join("run/act/actions/broad/.git");
    assert_eq!(
        std::fs::read_to_string(got.join("HEAD")).unwrap(),
        "ref: refs/heads/main\n"
    );
    let (a, l) = (
        std::fs::metadata(got.join("HEAD")).unwrap(),
        std::fs::metadata(got.join("HEAD.link")).unwrap(),
    );
    assert_eq!(a.ino(), l.ino(), "the hard link is the same file");
    assert!(
        std::fs::symlink_metadata(out.join("var/run"))
            .unwrap()
            .is_symlink()
    );
}

/// BuildKit's testCopyRelativeParents and testCopyParentsMissingDirectory:
/// each (COPY sources, paths that must exist, paths that must not).
const PARENTS_CASES: &[(&str, &[&str], &[&str])] = &[
    ("/test/a/b/./c/d", &["c/d/e/", "c/d/foo"], &["a", "e"]),
    (
        "/test/a/b/c/d/.",
        &["test/a/b/c/d/e/", "test/a/b/c/d/foo"],
        &[],
    ),
    (
        "./test/a/b/c/d",
        &["test/a/b/c/d/e/", "test/a/b/c/d/foo"],
        &[],
    ),
    ("/test/a/./b/./c", &["b/c/d/e/", "b/c/d/foo"], &[]),
    ("/test/a/./*/c", &["b/c/d/e/", "b2/c/d/e/bar"], &[]),
    (
        "/test/a/b*/./c/**/e",
        &["c/d/e/", "c/d/e/bay", "c/d/e/bar"],
        &[],
    ),
    (
        "/test/a/b/c*/./d/**/baz /test/a/b*/./c/**/bar",
        &["d/e/baz", "d/e2/baz", "c/d/e/bar"],
        &["d/e/bay"],
    ),
    ("/test/a/b3*/c", &[""], &["a"]),
    ("/test/a/b/./c3*", &[""], &["a", "c"]),
];

#[test]
fn copy_parents_keeps_the_path_below_the_pivot() {
    let env = Env::new();
    let mut files: Vec<(&str, &str)> = [
        "a/b/c/d/foo",
        "a/b/c/d/e/bay",
        "a/b2/c/d/e/bar",
        "a/b/c2/d/e/baz",
        "a/b/c2/d/e2/baz",
    ]
    .iter()
    .map(|f| (*f, "x"))
    .collect();
    let mut df = String::new();
    for (i, (src, _, _)) in PARENTS_CASES.iter().enumerate() {
        df.push_str(&format!(
            "FROM scratch AS t{i}\nCOPY --from=base --parents {src} /out/\n"
        ));
    }
    let df = format!("FROM scratch AS base\nCOPY tree/ /test/\n{df}");
    files.push(("Dockerfile", &df));
    let files: Vec<(String, &str)> = files
        .iter()
        .map(|(p, c)| {
            let p = if *p == "Dockerfile" {
                p.to_string()
            } else {
                format!("tree/{p}")
            };
            (p, *c)
        })
        .collect();
    let files: Vec<(&str, &str)> = files.iter().map(|(p, c)| (p.as_str(), *c)).collect();
    let ctx = env.project("ctx", &files);
    std::fs::create_dir_all(ctx.join("tree/a/b/c/d/e")).unwrap();
    for (i, (src, present, absent)) in PARENTS_CASES.iter().enumerate() {
        let out = env.path(&format!("out{i}"));
        env.build_ok(
            &[
                "--target",
                &format!("t{i}"),
                "-o",
                &format!("type=local,dest={}", out.display()),
            ],
            &ctx,
        );
        for p in *present {
            let at = out.join("out").join(p.trim_end_matches('/'));
            let m = std::fs::symlink_metadata(&at).unwrap_or_else(|_| panic!("{src}: {p} missing"));
            assert_eq!(m.is_dir(), p.is_empty() || p.ends_with('/'), "{src}: {p}");
        }
        for p in *absent {
            assert!(
                !out.join("out").join(p).exists(),
                "{src}: {p} must not exist"
            );
        }
    }
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch AS base\nCOPY tree/ /test/\nFROM scratch\nCOPY --from=base --parents /test/nonexistent-file /out/\n",
    )
    .unwrap();
    let err = env.build_err(&[], &ctx);
    assert!(
        err.contains("\"/test/nonexistent-file\": not found"),
        "{err}"
    );
}

#[test]
fn copy_parents_from_the_context() {
    // BuildKit's testCopyParents.
    let env = Env::new();
    let ctx = env.project(
        "ctx",
        &[
            ("foo1/foo2/bar", "testing"),
            ("foo1/foo2/baz", "testing2"),
            (
                "Dockerfile",
                "FROM scratch\nCOPY --parents foo1/foo2/bar /\nWORKDIR /test\nCOPY --parents foo1/foo2/ba* .\n",
            ),
        ],
    );
    let out = build_local(&env, &ctx, "out");
    let read = |p: &str| std::fs::read_to_string(out.join(p)).unwrap();
    assert_eq!(read("foo1/foo2/bar"), "testing");
    assert_eq!(read("test/foo1/foo2/bar"), "testing");
    assert_eq!(read("test/foo1/foo2/baz"), "testing2");
}
