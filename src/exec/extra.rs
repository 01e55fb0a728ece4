//! The step's own mounts: /etc/hosts and /etc/resolv.conf, and `RUN
//! --mount`s. All are `nosuid,nodev`; read-only ones are read-only on every
//! mount below them too.

use super::mounts::{self, NODEV, NOSUID, RDONLY};
use super::rootfs::Rootfs;
use super::spec::ExtraMount;
use std::os::fd::AsFd;
use std::path::Path;

/// Bind a host file read-only on `rel` inside the root.
pub fn bind_file(root: &Rootfs, src: &Path, rel: &str) {
    let source = mounts::open_host(src);
    let target = root.file(rel);
    mounts::bind(
        source.as_fd(),
        target.as_fd(),
        RDONLY | NOSUID | NODEV,
        &|| format!("/{rel}"),
    );
}

/// Mount one `RUN --mount`.
pub fn extra_mount(root: &Rootfs, m: &ExtraMount, empty: &Path) {
    match m {
        ExtraMount::Bind {
            source,
            beneath,
            target,
            readonly,
        } => {
            let src = match beneath {
                None => mounts::open_host(source),
                Some(sub) => crate::fsroot::Root::open(source)
                    .and_then(|r| r.open_dir_beneath(sub))
                    .unwrap_or_else(|e| {
                        eprintln!("rbuild sandbox: cache mount source={sub}: {e}");
                        std::process::exit(125);
                    }),
            };
            let is_dir = rustix::fs::fstat(&src)
                .is_ok_and(|st| crate::fsroot::file_type(&st) == rustix::fs::FileType::Directory);
            let t = if is_dir {
                root.dir(target)
            } else {
                root.file(target)
            };
            let ro = if *readonly { RDONLY } else { 0 };
            mounts::bind(src.as_fd(), t.as_fd(), ro | NOSUID | NODEV, &|| {
                target.clone()
            });
        }
        ExtraMount::Layers {
            lowerdirs,
            mountpoint,
            subpath,
            target,
            writable,
        } => {
            let mut lowers: Vec<String> = lowerdirs
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect();
            lowers.push(empty.to_string_lossy().into_owned());
            let mut opts = format!("lowerdir={}", lowers.join(":"));
            let mut flags = libc::MS_NOSUID | libc::MS_NODEV;
            match writable {
                Some(dir) => {
                    for d in ["upper", "work"] {
                        let _ = std::fs::create_dir_all(dir.join(d));
                    }
                    opts.push_str(&format!(
                        ",upperdir={},workdir={}",
                        dir.join("upper").display(),
                        dir.join("work").display()
                    ));
                }
                None => flags |= libc::MS_RDONLY,
            }
            mounts::mount("overlay", mountpoint, "overlay", flags, &opts);
            let stage = Rootfs::new(mountpoint);
            let src = stage.open(subpath);
            let t = if stage_is_dir(&src) {
                root.dir(target)
            } else {
                root.file(target)
            };
            let ro = if writable.is_some() { 0 } else { RDONLY };
            mounts::bind(src.as_fd(), t.as_fd(), ro | NOSUID | NODEV, &|| {
                target.clone()
            });
        }
        ExtraMount::Tmpfs { target, size } => {
            let t = root.dir(target);
            let size = size.to_string();
            let mut opts = vec![("mode", "1777")];
            if size != "0" {
                opts.push(("size", size.as_str()));
            }
            mounts::mount_new("tmpfs", &opts, NOSUID | NODEV, t.as_fd(), &|| {
                target.clone()
            });
        }
    }
}

fn stage_is_dir(fd: &std::os::fd::OwnedFd) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: fstat into a zeroed struct on a valid fd.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd and buffer.
    unsafe {
        libc::fstat(fd.as_raw_fd(), &mut st) == 0 && st.st_mode & libc::S_IFMT == libc::S_IFDIR
    }
}
