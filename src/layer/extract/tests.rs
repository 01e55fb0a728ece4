use super::*;

fn header(kind: tar::EntryType, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_000_000);
    h.set_size(0);
    h
}

/// An archive of (path, kind, link target or content) entries; paths are
/// written raw so that hostile names (`..`) can be tested.
fn archive(entries: &[(&str, tar::EntryType, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, kind, extra) in entries {
        let mut h = header(
            *kind,
            if *kind == tar::EntryType::Directory {
                0o755
            } else {
                0o644
            },
        );
        let name = &mut h.as_old_mut().name;
        name[..path.len()].copy_from_slice(path.as_bytes());
        let data: &[u8] = match kind {
            tar::EntryType::Regular => extra.as_bytes(),
            _ => {
                if !extra.is_empty() {
                    h.set_link_name(extra).unwrap();
                }
                b""
            }
        };
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap()
}

fn setup() -> (tempfile::TempDir, std::path::PathBuf, Root) {
    let t = tempfile::tempdir().unwrap();
    let host = t.path().join("host");
    std::fs::create_dir(&host).unwrap();
    std::fs::write(host.join("secret"), "host").unwrap();
    let dest = t.path().join("dest");
    std::fs::create_dir(&dest).unwrap();
    let root = Root::open(&dest).unwrap();
    (t, host, root)
}

fn opts() -> ExtractOptions {
    ExtractOptions {
        layer: false,
        preserve_owner: false,
        owner: None,
        mknod: false,
    }
}

#[test]
fn entries_through_symlinks_land_inside() {
    use tar::EntryType as T;
    let (_t, host, root) = setup();
    let h = host.to_string_lossy().into_owned();
    let tar = archive(&[
        ("abs", T::Symlink, &h),
        ("abs/x", T::Regular, "via abs"),
        ("rel", T::Symlink, "../../../host"),
        ("rel/y", T::Regular, "via rel"),
        ("chain", T::Symlink, "abs"),
        ("chain/sub/z", T::Regular, "via chain"),
        ("secret", T::Symlink, &format!("{h}/secret")),
        ("secret", T::Regular, "replaced the link, not its target"),
        ("hard", T::Link, &format!("{h}/secret")),
    ]);
    let r = extract(&tar[..], &root, opts());
    assert!(r.is_err(), "a hard link to a missing in-root file fails");
    let dest = root.path();
    let inside = dest.join(host.strip_prefix("/").unwrap());
    assert_eq!(
        std::fs::read_to_string(inside.join("x")).unwrap(),
        "via abs"
    );
    assert_eq!(
        std::fs::read_to_string(dest.join("host/y")).unwrap(),
        "via rel"
    );
    assert_eq!(
        std::fs::read_to_string(inside.join("sub/z")).unwrap(),
        "via chain"
    );
    assert_eq!(
        std::fs::read_to_string(dest.join("secret")).unwrap(),
        "replaced the link, not its target"
    );
    assert_eq!(
        std::fs::read_to_string(host.join("secret")).unwrap(),
        "host"
    );
    assert_eq!(
        std::fs::read_dir(&host).unwrap().count(),
        1,
        "nothing written on the host"
    );
}

#[test]
fn dot_dot_above_the_root_is_refused() {
    use tar::EntryType as T;
    let (_t, host, root) = setup();
    let tar = archive(&[("a/../../host/evil", T::Regular, "x")]);
    assert!(matches!(
        extract(&tar[..], &root, opts()),
        Err(LayerError::Escape(_))
    ));
    assert!(!host.join("evil").exists());
    let tar = archive(&[("a/../b", T::Regular, "ok")]);
    extract(&tar[..], &root, opts()).unwrap();
    assert_eq!(
        std::fs::read_to_string(root.path().join("b")).unwrap(),
        "ok"
    );
}

#[test]
fn layer_whiteouts_under_a_symlink_stay_inside() {
    use tar::EntryType as T;
    let (_t, host, root) = setup();
    let h = host.to_string_lossy().into_owned();
    let tar = archive(&[
        ("d", T::Symlink, &h),
        ("d/.wh.secret", T::Regular, ""),
        ("d/.wh..wh..opq", T::Regular, ""),
        ("f", T::Regular, "file"),
    ]);
    let o = ExtractOptions {
        layer: true,
        mknod: rustix::process::geteuid().is_root(),
        preserve_owner: false,
        owner: None,
    };
    extract(&tar[..], &root, o).unwrap();
    assert_eq!(
        std::fs::read_to_string(host.join("secret")).unwrap(),
        "host"
    );
    assert_eq!(
        std::fs::read_to_string(root.path().join("f")).unwrap(),
        "file"
    );
}

#[test]
fn modes_owners_and_times_are_applied() {
    use std::os::unix::fs::MetadataExt;
    use tar::EntryType as T;
    let (_t, _host, root) = setup();
    let mut tar = archive(&[("dir", T::Directory, ""), ("dir/f", T::Regular, "x")]);
    // setuid bit on the file: patch its header mode and checksum.
    let off = 512; // the second header (a directory has no data blocks)
    let mut h = tar::Header::from_byte_slice(&tar[off..off + 512]).clone();
    h.set_mode(0o4755);
    h.set_cksum();
    tar[off..off + 512].copy_from_slice(h.as_bytes());
    let o = ExtractOptions {
        owner: Some((1234, 5678)),
        ..opts()
    };
    extract(&tar[..], &root, o).unwrap();
    let m = std::fs::metadata(root.path().join("dir/f")).unwrap();
    assert_eq!(m.mode() & 0o7777, 0o4755);
    assert_eq!((m.uid(), m.gid()), (1234, 5678));
    assert_eq!(m.mtime(), 1_000_000);
    let d = std::fs::metadata(root.path().join("dir")).unwrap();
    assert_eq!(
        (d.mode() & 0o7777, d.uid(), d.mtime()),
        (0o755, 1234, 1_000_000)
    );
}
