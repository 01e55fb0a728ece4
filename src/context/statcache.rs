//! The context stat cache: (path, size, mtime, ctime, inode) → content digest,
//! so a rebuild re-reads only files whose metadata changed. Stored per context
//! directory as one compact binary file, replaced atomically.

use crate::digest::Digest;
use std::collections::HashMap;
use std::path::Path;

/// What identifies an unchanged file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatKey {
    /// Size in bytes.
    pub size: u64,
    /// mtime, nanoseconds.
    pub mtime_ns: i64,
    /// ctime, nanoseconds.
    pub ctime_ns: i64,
    /// Inode number.
    pub ino: u64,
}

/// The cache of one context directory.
#[derive(Debug, Default)]
pub struct StatCache {
    entries: HashMap<String, (StatKey, Digest)>,
    dirty: bool,
}

const MAGIC: &[u8; 8] = b"RBSTAT01";

impl StatCache {
    /// Load from `file` (missing or unreadable: empty).
    pub fn load(file: &Path) -> StatCache {
        let Ok(data) = std::fs::read(file) else {
            return StatCache::default();
        };
        Self::decode(&data).unwrap_or_default()
    }

    fn decode(data: &[u8]) -> Option<StatCache> {
        let rest = data.strip_prefix(MAGIC)?;
        let mut entries = HashMap::with_capacity(rest.len() / 90);
        let mut p = rest;
        let take = |p: &mut &[u8], n: usize| -> Option<Vec<u8>> {
            if p.len() < n {
                return None;
            }
            let (a, b) = p.split_at(n);
            *p = b;
            Some(a.to_vec())
        };
        while !p.is_empty() {
            let len = u32::from_le_bytes(take(&mut p, 4)?.try_into().ok()?) as usize;
            let name = String::from_utf8(take(&mut p, len)?).ok()?;
            let nums = take(&mut p, 32)?;
            let n =
                |i: usize| u64::from_le_bytes(nums[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
            let key = StatKey {
                size: n(0),
                mtime_ns: n(1) as i64,
                ctime_ns: n(2) as i64,
                ino: n(3),
            };
            let d: [u8; 32] = take(&mut p, 32)?.try_into().ok()?;
            entries.insert(name, (key, Digest(d)));
        }
        Some(StatCache {
            entries,
            dirty: false,
        })
    }

    /// The digest of `path` if its metadata is unchanged.
    pub fn get(&self, path: &str, key: &StatKey) -> Option<Digest> {
        match self.entries.get(path) {
            Some((k, d)) if k == key => Some(*d),
            _ => None,
        }
    }

    /// Remember a digest.
    pub fn put(&mut self, path: String, key: StatKey, digest: Digest) {
        self.entries.insert(path, (key, digest));
        self.dirty = true;
    }

    /// Save if anything changed.
    pub fn save(&self, file: &Path) -> std::io::Result<()> {
        if !self.dirty {
            return Ok(());
        }
        let mut out = Vec::with_capacity(MAGIC.len() + self.entries.len() * 100);
        out.extend_from_slice(MAGIC);
        for (name, (k, d)) in &self.entries {
            out.extend_from_slice(&(name.len() as u32).to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            for n in [k.size, k.mtime_ns as u64, k.ctime_ns as u64, k.ino] {
                out.extend_from_slice(&n.to_le_bytes());
            }
            out.extend_from_slice(&d.0);
        }
        crate::cache::write_file_atomic(file, &out).map_err(std::io::Error::other)
    }
}
