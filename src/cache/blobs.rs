//! Blobs by digest, written atomically; the layer index (diff_id to its
//! compressed blobs).

use super::{Result, Store, StoreError, io_err, sync_dir};
use crate::digest::{Digest, HashingWriter};
use serde::{Deserialize, Serialize};
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::PathBuf;

/// A blob being written: hashed as it goes, renamed into place on commit.
pub struct BlobWriter {
    tmp: tempfile::NamedTempFile,
    inner: HashingWriter<BufWriter<File>>,
    dir: PathBuf,
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl BlobWriter {
    /// fsync and move into place; returns the digest and size.
    pub fn commit(self) -> Result<(Digest, u64)> {
        self.commit_if(|_| true)
    }

    /// Move into place only if the content has the digest `expected`
    /// (else the temporary file is removed); returns the actual digest.
    pub fn commit_expecting(self, expected: &Digest) -> Result<(Digest, u64)> {
        self.commit_if(|d| d == expected)
    }

    fn commit_if(self, keep: impl FnOnce(&Digest) -> bool) -> Result<(Digest, u64)> {
        let (buf, digest, size) = self.inner.finish();
        if !keep(&digest) {
            return Ok((digest, size)); // dropped with the temporary file
        }
        let file = buf.into_inner().map_err(|e| StoreError::Io {
            what: "flushing blob",
            path: self.tmp.path().to_path_buf(),
            source: e.into_error(),
        })?;
        file.sync_all()
            .map_err(io_err("syncing", self.tmp.path()))?;
        let dest = self.dir.join(digest.hex());
        if !dest.exists() {
            self.tmp.persist(&dest).map_err(|e| StoreError::Io {
                what: "storing blob",
                path: dest.clone(),
                source: e.error,
            })?;
            sync_dir(&self.dir);
        }
        Ok((digest, size))
    }
}

/// Compressed forms of one layer, by compression name (`gzip`, `zstd`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LayerBlobs {
    /// compression → (blob digest, size).
    pub blobs: std::collections::BTreeMap<String, (Digest, u64)>,
}

impl Store {
    /// Path of a blob.
    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(d.hex())
    }

    /// Whether a blob is present.
    pub fn has_blob(&self, d: &Digest) -> bool {
        self.blob_path(d).is_file()
    }

    /// Start writing a blob.
    pub fn blob_writer(&self) -> Result<BlobWriter> {
        let dir = self.root.join("blobs/sha256");
        let tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(&dir)
            .map_err(io_err("creating temp blob in", &dir))?;
        let file = tmp.reopen().map_err(io_err("opening", tmp.path()))?;
        Ok(BlobWriter {
            tmp,
            inner: HashingWriter::new(BufWriter::with_capacity(1 << 20, file)),
            dir,
        })
    }

    /// Store bytes as a blob.
    pub fn put_blob(&self, data: &[u8]) -> Result<(Digest, u64)> {
        let d = Digest::of(data);
        if self.has_blob(&d) {
            return Ok((d, data.len() as u64));
        }
        let mut w = self.blob_writer()?;
        w.write_all(data)
            .map_err(io_err("writing blob", &self.blob_path(&d)))?;
        w.commit()
    }

    /// Move a finished file (in the store's filesystem, e.g. its `tmp/`)
    /// into place as the blob `d`, whose digest the caller computed while
    /// writing it. Kept as is when the blob is already stored.
    pub fn adopt_blob(&self, file: &std::path::Path, d: &Digest) -> Result<()> {
        let dest = self.blob_path(d);
        if dest.is_file() {
            return Ok(());
        }
        File::open(file)
            .and_then(|f| f.sync_all())
            .map_err(io_err("syncing", file))?;
        fs::rename(file, &dest).map_err(io_err("storing blob", &dest))?;
        sync_dir(&self.root.join("blobs/sha256"));
        Ok(())
    }

    /// Read a whole blob, verifying its digest.
    pub fn read_blob(&self, d: &Digest) -> Result<Vec<u8>> {
        let p = self.blob_path(d);
        let data = fs::read(&p).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                StoreError::NotFound(format!("blob {d} not in the store"))
            }
            _ => io_err("reading", &p)(e),
        })?;
        if Digest::of(&data) != *d {
            return Err(StoreError::Corrupt {
                path: p,
                reason: "content does not match its digest".into(),
            });
        }
        Ok(data)
    }

    /// Compressed blobs known for a layer.
    pub fn layer_blobs(&self, diff_id: &Digest) -> LayerBlobs {
        let p = self
            .root
            .join("layers")
            .join(format!("{}.json", diff_id.hex()));
        fs::read(&p)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Record that `blob` is `diff_id` compressed with `compression`.
    pub fn add_layer_blob(
        &self,
        diff_id: &Digest,
        compression: &str,
        blob: (Digest, u64),
    ) -> Result<()> {
        let mut lb = self.layer_blobs(diff_id);
        lb.blobs.insert(compression.to_string(), blob);
        let p = self
            .root
            .join("layers")
            .join(format!("{}.json", diff_id.hex()));
        write_atomic(&p, &serde_json::to_vec(&lb).expect("serialise layer index"))
    }
}

/// Write a small file atomically (temp, fsync, rename, fsync dir).
pub fn write_atomic(path: &std::path::Path, data: &[u8]) -> Result<()> {
    let dir = path.parent().expect("path has a parent");
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(io_err("creating temp file in", dir))?;
    tmp.write_all(data).map_err(io_err("writing", tmp.path()))?;
    tmp.as_file()
        .sync_all()
        .map_err(io_err("syncing", tmp.path()))?;
    tmp.persist(path).map_err(|e| StoreError::Io {
        what: "replacing",
        path: path.to_path_buf(),
        source: e.error,
    })?;
    sync_dir(dir);
    Ok(())
}
