//! One file of a selection: its metadata, and how to open it again inside
//! the root it was found in.

use super::statcache::StatKey;
use crate::digest::Digest;
use crate::fsroot::Root;
use rustix::fs::Stat;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;

/// Kind of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Regular file.
    File,
    /// Directory.
    Dir,
    /// Symbolic link.
    Symlink,
    /// Device, fifo or socket.
    Other,
}

/// One file of a selection.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Path relative to the selection root ("" for the root itself).
    pub rel: String,
    /// Absolute path on disk.
    pub abs: PathBuf,
    /// Kind.
    pub kind: Kind,
    /// Permission bits (07777).
    pub mode: u32,
    /// Size (files).
    pub size: u64,
    /// mtime in seconds and nanoseconds.
    pub mtime: (i64, i64),
    /// Owner (uid, gid) on disk.
    pub owner: (u32, u32),
    /// What the stat cache compares (files).
    pub stat: Option<StatKey>,
    /// Symlink target.
    pub link: Option<String>,
    /// Content digest (files).
    pub digest: Option<Digest>,
    /// The root `abs` lies in when it is untrusted (the build context): the
    /// file is opened again through it, never by its host path.
    pub root: Option<Arc<Root>>,
}

impl Entry {
    /// Read an entry's metadata.
    pub fn from_path(rel: String, abs: PathBuf) -> std::io::Result<Entry> {
        let m = fs::symlink_metadata(&abs)?;
        let ft = m.file_type();
        use std::os::unix::fs::FileTypeExt;
        // A socket is copied as an empty file with its mode (BuildKit's stub).
        let kind = if ft.is_file() || ft.is_socket() {
            Kind::File
        } else if ft.is_dir() {
            Kind::Dir
        } else if ft.is_symlink() {
            Kind::Symlink
        } else {
            Kind::Other
        };
        let link = if kind == Kind::Symlink {
            Some(fs::read_link(&abs)?.to_string_lossy().into_owned())
        } else {
            None
        };
        Ok(Entry {
            rel,
            abs,
            kind,
            mode: m.mode() & 0o7777,
            size: if kind == Kind::File { m.len() } else { 0 },
            mtime: (m.mtime(), m.mtime_nsec()),
            owner: (m.uid(), m.gid()),
            stat: (kind == Kind::File).then(|| StatKey {
                size: m.len(),
                mtime_ns: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
                ctime_ns: m.ctime() * 1_000_000_000 + m.ctime_nsec(),
                ino: m.ino(),
            }),
            link,
            digest: (kind == Kind::File && m.len() == 0).then(|| Digest::of(b"")),
            root: None,
        })
    }

    /// An entry from `fstatat` metadata of a file below `root`.
    pub fn from_stat(
        rel: String,
        abs: PathBuf,
        st: &Stat,
        link: Option<String>,
        root: &Arc<Root>,
    ) -> Entry {
        let kind = match crate::fsroot::file_type(st) {
            rustix::fs::FileType::RegularFile | rustix::fs::FileType::Socket => Kind::File,
            rustix::fs::FileType::Directory => Kind::Dir,
            rustix::fs::FileType::Symlink => Kind::Symlink,
            _ => Kind::Other,
        };
        let size = st.st_size as u64;
        Entry {
            rel,
            abs,
            kind,
            mode: st.st_mode & 0o7777,
            size: if kind == Kind::File { size } else { 0 },
            mtime: (st.st_mtime, st.st_mtime_nsec as i64),
            owner: (st.st_uid, st.st_gid),
            stat: (kind == Kind::File).then(|| StatKey {
                size,
                mtime_ns: st.st_mtime * 1_000_000_000 + st.st_mtime_nsec as i64,
                ctime_ns: st.st_ctime * 1_000_000_000 + st.st_ctime_nsec as i64,
                ino: st.st_ino,
            }),
            link: if kind == Kind::Symlink { link } else { None },
            // Nothing to read in an empty file (nor in a socket's stub).
            digest: (kind == Kind::File && size == 0).then(|| Digest::of(b"")),
            root: Some(root.clone()),
        }
    }

    /// Open the file for reading: inside its root when it has one (a link
    /// swapped in since it was listed cannot lead out), else by its path
    /// (the store's own, trusted files).
    pub fn open(&self) -> std::io::Result<fs::File> {
        match &self.root {
            Some(root) => {
                let rel = self.abs.strip_prefix(root.path()).map_err(|_| {
                    std::io::Error::other(format!("{} is outside its root", self.abs.display()))
                })?;
                root.open_file(&rel.to_string_lossy())
            }
            None => fs::File::open(&self.abs),
        }
    }
}
