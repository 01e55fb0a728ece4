//! Layer compression. gzip is written as independent members of 1 MiB input
//! chunks compressed in parallel (a multi-member gzip stream, which every gzip
//! reader — Go's, zlib's, containerd's — reads as one), so export scales with
//! cores instead of being bound by one deflate stream. zstd uses the
//! library's own worker threads. The uncompressed stream is hashed on the way
//! (the layer's diff_id).

use crate::digest::Digest;
use flate2::Compression as Level;
use flate2::write::GzEncoder;
use rayon::prelude::*;
use sha2::{Digest as _, Sha256};
use std::io::{self, Write};

/// A layer compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// gzip (the default, what every runtime accepts).
    Gzip {
        /// 1 (fastest) to 9 (smallest).
        level: u32,
    },
    /// zstd.
    Zstd {
        /// 1 to 19.
        level: i32,
    },
    /// No compression.
    None,
}

impl Default for Compression {
    fn default() -> Self {
        Compression::Gzip {
            level: DEFAULT_GZIP_LEVEL,
        }
    }
}

/// Default gzip level: 3 keeps most of level 6's ratio at about twice its speed.
pub const DEFAULT_GZIP_LEVEL: u32 = 3;

impl Compression {
    /// The name used in the layer index and `--output compression=`.
    pub fn name(&self) -> &'static str {
        match self {
            Compression::Gzip { .. } => "gzip",
            Compression::Zstd { .. } => "zstd",
            Compression::None => "uncompressed",
        }
    }

    /// The OCI media type of a layer compressed this way.
    pub fn media_type(&self) -> &'static str {
        match self {
            Compression::Gzip { .. } => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Zstd { .. } => "application/vnd.oci.image.layer.v1.tar+zstd",
            Compression::None => "application/vnd.oci.image.layer.v1.tar",
        }
    }

    /// The Docker media type (for docker archives).
    pub fn docker_media_type(&self) -> &'static str {
        match self {
            Compression::Gzip { .. } => "application/vnd.docker.image.rootfs.diff.tar.gzip",
            Compression::Zstd { .. } => "application/vnd.oci.image.layer.v1.tar+zstd",
            Compression::None => "application/vnd.docker.image.rootfs.diff.tar",
        }
    }
}

const CHUNK: usize = 1 << 20;

/// A writer that takes the uncompressed layer stream, hashes it, compresses
/// it and writes the result to `out`.
pub struct LayerCompressor<W: Write> {
    out: Option<W>,
    diff: Sha256,
    size: u64,
    mode: Mode<W>,
}

enum Mode<W: Write> {
    Gzip {
        level: u32,
        pending: Vec<Vec<u8>>,
        cur: Vec<u8>,
        batch: usize,
    },
    Zstd(Box<zstd::stream::write::Encoder<'static, W>>),
    Plain,
}

impl<W: Write> LayerCompressor<W> {
    /// Compress into `out`.
    pub fn new(out: W, c: Compression) -> io::Result<Self> {
        let threads = rayon::current_num_threads().max(1);
        let (out, mode) = match c {
            Compression::Gzip { level } => (
                Some(out),
                Mode::Gzip {
                    level,
                    pending: Vec::new(),
                    cur: Vec::with_capacity(CHUNK),
                    batch: threads * 2,
                },
            ),
            Compression::Zstd { level } => {
                let mut enc = zstd::stream::write::Encoder::new(out, level)?;
                enc.multithread(threads as u32)?;
                (None, Mode::Zstd(Box::new(enc)))
            }
            Compression::None => (Some(out), Mode::Plain),
        };
        Ok(LayerCompressor {
            out,
            diff: Sha256::new(),
            size: 0,
            mode,
        })
    }

    fn flush_gzip(&mut self, all: bool) -> io::Result<()> {
        let Mode::Gzip {
            level,
            pending,
            cur,
            batch,
        } = &mut self.mode
        else {
            return Ok(());
        };
        if all && !cur.is_empty() {
            pending.push(std::mem::take(cur));
        }
        if pending.is_empty() || (!all && pending.len() < *batch) {
            return Ok(());
        }
        let lvl = *level;
        let compressed: Vec<io::Result<Vec<u8>>> = pending
            .par_iter()
            .map(|chunk| {
                let mut e = GzEncoder::new(Vec::with_capacity(chunk.len() / 2), Level::new(lvl));
                e.write_all(chunk)?;
                e.finish()
            })
            .collect();
        pending.clear();
        let out = self.out.as_mut().expect("gzip output");
        for c in compressed {
            out.write_all(&c?)?;
        }
        Ok(())
    }

    /// Finish: the output writer, the diff_id and the uncompressed size.
    pub fn finish(mut self) -> io::Result<(W, Digest, u64)> {
        self.flush_gzip(true)?;
        let diff = Digest(self.diff.finalize().into());
        let out = match self.mode {
            Mode::Zstd(enc) => enc.finish()?,
            _ => self.out.take().expect("output"),
        };
        Ok((out, diff, self.size))
    }
}

impl<W: Write> Write for LayerCompressor<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.diff.update(buf);
        self.size += buf.len() as u64;
        match &mut self.mode {
            Mode::Gzip { cur, pending, .. } => {
                let mut rest = buf;
                while !rest.is_empty() {
                    let take = (CHUNK - cur.len()).min(rest.len());
                    cur.extend_from_slice(&rest[..take]);
                    rest = &rest[take..];
                    if cur.len() == CHUNK {
                        pending.push(std::mem::replace(cur, Vec::with_capacity(CHUNK)));
                    }
                }
                self.flush_gzip(false)?;
            }
            Mode::Zstd(enc) => enc.write_all(buf)?,
            Mode::Plain => self.out.as_mut().expect("output").write_all(buf)?,
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn multi_member_gzip_roundtrips_and_hashes_the_input() {
        let data: Vec<u8> = (0..3 * CHUNK + 12345).map(|i| (i % 251) as u8).collect();
        let mut c = LayerCompressor::new(Vec::new(), Compression::default()).unwrap();
        c.write_all(&data).unwrap();
        let (gz, diff, size) = c.finish().unwrap();
        assert_eq!(size, data.len() as u64);
        assert_eq!(diff, Digest::of(&data));
        let mut back = Vec::new();
        flate2::read::MultiGzDecoder::new(&gz[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, data);
        // Deterministic.
        let mut c2 = LayerCompressor::new(Vec::new(), Compression::default()).unwrap();
        c2.write_all(&data).unwrap();
        assert_eq!(c2.finish().unwrap().0, gz);
    }

    #[test]
    fn zstd_roundtrips() {
        let data = b"hello zstd layer".repeat(1000);
        let mut c = LayerCompressor::new(Vec::new(), Compression::Zstd { level: 3 }).unwrap();
        c.write_all(&data).unwrap();
        let (z, diff, _) = c.finish().unwrap();
        assert_eq!(diff, Digest::of(&data));
        assert_eq!(zstd::decode_all(&z[..]).unwrap(), data);
    }
}
