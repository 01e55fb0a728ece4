//! The named parts of a cache key: an op adds its definition and the
//! digests of its inputs; the solver hashes them and keeps them in the
//! cache record so a later miss can say what changed.

use crate::digest::{Digest, KeyHasher};

/// The prefix of the record components that explain a miss but are not
/// part of the key (COPY's file lists).
pub const EXPLAIN_ONLY: &str = "files:";

/// The components of a record that its key was computed from.
pub fn key_parts_of(components: &[(String, String)]) -> KeyParts {
    KeyParts {
        parts: components
            .iter()
            .filter(|(n, _)| !n.starts_with(EXPLAIN_ONLY))
            .cloned()
            .collect(),
    }
}

/// The named parts of a key, in a fixed order.
#[derive(Debug, Clone, Default)]
pub struct KeyParts {
    /// (name, value) pairs.
    pub parts: Vec<(String, String)>,
}

impl KeyParts {
    /// Start with the parent key and the op kind.
    pub fn new(parent: &Digest, kind: &str) -> Self {
        let mut k = KeyParts::default();
        k.add("parent", parent.to_string());
        k.add("op", kind);
        k
    }

    /// Add a component.
    pub fn add(&mut self, name: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.parts.push((name.into(), value.into()));
        self
    }

    /// The key.
    pub fn key(&self) -> Digest {
        let mut h = KeyHasher::new();
        h.part("rbuild-cache-v2");
        for (n, v) in &self.parts {
            h.part(n).part(v);
        }
        h.finish()
    }
}
