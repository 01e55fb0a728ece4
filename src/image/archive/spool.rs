//! Reading an image archive (a tar, compressed or not) once, front to back,
//! into a table of its files. Archive paths are only keys of that table:
//! nothing is created at a path the archive names, so no entry can reach
//! outside it. Small files stay in memory; larger ones go to numbered files
//! in a private temporary directory, hashed as they are written. Symlinks
//! and hard links between entries (old `docker save` links duplicate
//! layers) are followed inside the table.

use super::ArchiveError;
use crate::digest::{Digest, HashingWriter};
use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

/// Files up to this size are kept in memory (manifests, configs).
const IN_MEMORY: u64 = 1 << 20;
/// At most this much is kept in memory in all.
const MEMORY_BUDGET: u64 = 64 << 20;

/// A file of the archive.
#[derive(Debug, Clone)]
pub enum Spooled {
    /// Content in memory.
    Mem(Vec<u8>),
    /// Content in a spool file.
    File {
        /// Where.
        path: PathBuf,
        /// sha256 of the content.
        digest: Digest,
        /// Bytes.
        size: u64,
    },
    /// A link to another entry (normalised archive path).
    Link(String),
}

/// The files of an archive by normalised path.
#[derive(Debug)]
pub struct Spool {
    files: HashMap<String, Spooled>,
}

/// Normalise an archive path lexically: no leading `/` or `./`, `.` and
/// empty components dropped, `..` removing the previous component. A path
/// that climbs above the archive's root is refused (`None`).
pub fn clean(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    Some(parts.join("/"))
}

/// Wrap `r` in the decompressor its first bytes call for (gzip, zstd,
/// bzip2, xz), or read it as it is.
pub fn decompress<'a, R: Read + 'a>(r: R) -> io::Result<Box<dyn Read + 'a>> {
    let mut r = BufReader::with_capacity(1 << 20, r);
    let h = r.fill_buf()?;
    Ok(if h.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(r))
    } else if h.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::with_buffer(r)?)
    } else if h.starts_with(b"BZh") {
        Box::new(bzip2::read::MultiBzDecoder::new(r))
    } else if h.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Box::new(liblzma::read::XzDecoder::new_multi_decoder(r))
    } else {
        Box::new(r)
    })
}

/// What compression a layer's first bytes show (`gzip`, `zstd`, or
/// `uncompressed`), as the store's layer index names it.
pub fn compression_of(head: &[u8]) -> &'static str {
    if head.starts_with(&[0x1f, 0x8b]) {
        "gzip"
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        "zstd"
    } else {
        "uncompressed"
    }
}

impl Spool {
    /// Read the whole archive from `input` (decompressing it first if it is
    /// compressed), spooling large files into `tmp`.
    pub fn read(input: impl Read, tmp: &Path) -> Result<Spool, ArchiveError> {
        let bad = |e: io::Error| ArchiveError::Read(e.to_string());
        let mut tar = tar::Archive::new(decompress(input).map_err(bad)?);
        let mut files = HashMap::new();
        let mut in_memory = 0u64;
        for (n, entry) in tar.entries().map_err(bad)?.enumerate() {
            let mut entry = entry.map_err(bad)?;
            let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let name = clean(&raw).ok_or_else(|| ArchiveError::Path(raw.clone()))?;
            let kind = entry.header().entry_type();
            let link_target = |entry: &tar::Entry<_>| -> Result<String, ArchiveError> {
                let t = entry
                    .link_name_bytes()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                Ok(t)
            };
            let value = if kind.is_symlink() {
                let t = link_target(&entry)?;
                // Relative to the link's directory; absolute from the root.
                let base = if t.starts_with('/') {
                    String::new()
                } else {
                    name.rsplit_once('/')
                        .map(|(d, _)| d.to_string())
                        .unwrap_or_default()
                };
                Spooled::Link(clean(&format!("{base}/{t}")).ok_or(ArchiveError::Path(t))?)
            } else if kind.is_hard_link() {
                let t = link_target(&entry)?;
                Spooled::Link(clean(&t).ok_or(ArchiveError::Path(t))?)
            } else if kind.is_file() || kind == tar::EntryType::Continuous {
                let size = entry.size();
                if size <= IN_MEMORY && in_memory + size <= MEMORY_BUDGET {
                    in_memory += size;
                    let mut data = Vec::with_capacity(size as usize);
                    entry.read_to_end(&mut data).map_err(bad)?;
                    Spooled::Mem(data)
                } else {
                    let path = tmp.join(n.to_string());
                    let f = std::fs::File::create(&path).map_err(bad)?;
                    let mut w = HashingWriter::new(io::BufWriter::with_capacity(1 << 20, f));
                    io::copy(&mut entry, &mut w).map_err(bad)?;
                    let (mut buf, digest, size) = w.finish();
                    buf.flush().map_err(bad)?;
                    Spooled::File { path, digest, size }
                }
            } else {
                continue; // directories, devices: nothing an image needs
            };
            files.insert(name, value);
        }
        Ok(Spool { files })
    }

    /// Whether the archive has a file at `path`.
    pub fn has(&self, path: &str) -> bool {
        self.resolve(path).is_ok()
    }

    /// The entry at `path`, links followed (at most 40, as Linux).
    fn resolve(&self, path: &str) -> Result<&Spooled, ArchiveError> {
        let mut p = clean(path).ok_or_else(|| ArchiveError::Path(path.to_string()))?;
        for _ in 0..40 {
            match self.files.get(&p) {
                Some(Spooled::Link(t)) => p = t.clone(),
                Some(f) => return Ok(f),
                None => return Err(ArchiveError::Missing(path.to_string())),
            }
        }
        Err(ArchiveError::Path(format!("{path} (too many links)")))
    }

    /// Open the file at `path`; its digest and size.
    pub fn open(&self, path: &str) -> Result<(Box<dyn Read + '_>, Digest, u64), ArchiveError> {
        Ok(match self.resolve(path)? {
            Spooled::Mem(d) => (Box::new(&d[..]), Digest::of(d), d.len() as u64),
            Spooled::File {
                path: p,
                digest,
                size,
            } => {
                let f = std::fs::File::open(p).map_err(|e| ArchiveError::Read(e.to_string()))?;
                (
                    Box::new(BufReader::with_capacity(1 << 20, f)),
                    *digest,
                    *size,
                )
            }
            Spooled::Link(_) => unreachable!("links are resolved"),
        })
    }

    /// Store the file at `path` as a blob (moved, not copied, when it was
    /// spooled to disk); its digest and size.
    pub fn store_blob(
        &self,
        store: &crate::cache::Store,
        path: &str,
    ) -> Result<(Digest, u64), ArchiveError> {
        match self.resolve(path)? {
            Spooled::Mem(d) => Ok(store.put_blob(d)?),
            Spooled::File {
                path: p,
                digest,
                size,
            } => {
                if !store.has_blob(digest) {
                    store.adopt_blob(p, digest)?;
                }
                Ok((*digest, *size))
            }
            Spooled::Link(_) => unreachable!("links are resolved"),
        }
    }

    /// The whole file at `path` (for JSON documents: at most 16 MiB).
    pub fn read_small(&self, path: &str) -> Result<Vec<u8>, ArchiveError> {
        let (r, _, size) = self.open(path)?;
        if size > 16 << 20 {
            return Err(ArchiveError::Invalid(format!(
                "{path} is too large ({size} bytes)"
            )));
        }
        let mut data = Vec::new();
        r.take(16 << 20)
            .read_to_end(&mut data)
            .map_err(|e| ArchiveError::Read(e.to_string()))?;
        Ok(data)
    }

    /// Open a blob by digest (`blobs/sha256/<hex>`), checking the content
    /// has that digest.
    pub fn blob(&self, d: &Digest) -> Result<(Box<dyn Read + '_>, u64), ArchiveError> {
        let path = format!("blobs/sha256/{}", d.hex());
        let (r, got, size) = self.open(&path)?;
        check_digest(&path, d, &got)?;
        Ok((r, size))
    }
}

/// A file named by its digest must have it.
pub fn check_digest(path: &str, want: &Digest, got: &Digest) -> Result<(), ArchiveError> {
    if want != got {
        return Err(ArchiveError::Invalid(format!(
            "{path}: content has digest {got}, expected {want}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_the_archive() {
        assert_eq!(clean("./a/b/../c").as_deref(), Some("a/c"));
        assert_eq!(clean("/blobs//sha256/x").as_deref(), Some("blobs/sha256/x"));
        assert_eq!(clean("a/../../etc/passwd"), None);
        assert_eq!(clean("../x"), None);
    }

    fn tar_of(entries: &[(&str, tar::EntryType, &[u8], Option<&str>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, kind, data, link) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            if let Some(l) = link {
                h.set_link_name(l).unwrap();
            }
            b.append_data(&mut h, name, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn links_resolve_inside_the_table_and_escapes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let t = tar_of(&[
            ("a/layer.tar", tar::EntryType::Regular, b"data", None),
            (
                "b/layer.tar",
                tar::EntryType::Symlink,
                b"",
                Some("../a/layer.tar"),
            ),
            ("c", tar::EntryType::Link, b"", Some("a/layer.tar")),
            ("d", tar::EntryType::Symlink, b"", Some("/a/layer.tar")),
        ]);
        let s = Spool::read(&t[..], dir.path()).unwrap();
        for p in ["b/layer.tar", "c", "d"] {
            let (mut r, d, _) = s.open(p).unwrap();
            let mut v = Vec::new();
            r.read_to_end(&mut v).unwrap();
            assert_eq!((v.as_slice(), d), (&b"data"[..], Digest::of(b"data")));
        }
        assert!(s.open("missing").is_err());
        let t = tar_of(&[("x", tar::EntryType::Symlink, b"", Some("../../etc/passwd"))]);
        assert!(matches!(
            Spool::read(&t[..], dir.path()),
            Err(ArchiveError::Path(_))
        ));
        // Nothing was created outside the spool directory.
        assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
    }

    #[test]
    fn compressed_archives_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let t = tar_of(&[("m.json", tar::EntryType::Regular, b"[]", None)]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&t).unwrap();
        let s = Spool::read(&gz.finish().unwrap()[..], dir.path()).unwrap();
        assert_eq!(s.read_small("m.json").unwrap(), b"[]");
    }
}
