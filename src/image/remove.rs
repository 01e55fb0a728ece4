//! `docker rmi`: remove a name, and the image with its last name. By ID,
//! an image that several names use is refused unless forced. The image's
//! blobs and snapshots are reclaimed later by `rbuild prune` (nothing
//! reaches them any more).

use super::local::{LocalError, LocalImage, Named, familiar, find, is_dangling_key};
use crate::cache::Store;
use crate::digest::Digest;
use crate::registry::Reference;

/// What removing did, in Docker's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removed {
    /// A name (or `repo@digest`) is gone.
    Untagged(String),
    /// The image is gone.
    Deleted(Digest),
}

/// Errors of `rmi`.
#[derive(Debug, thiserror::Error)]
pub enum RemoveError {
    /// Lookup failed (`No such image: X`).
    #[error(transparent)]
    Lookup(#[from] LocalError),
    /// Docker's refusal to delete an image several names use.
    #[error("conflict: unable to delete {id} (must be forced) - {reason}")]
    Conflict {
        /// The short image ID.
        id: String,
        /// Why.
        reason: &'static str,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::cache::StoreError),
}

/// Docker's `isSingleReference`: at most one tag, all names in one repository.
fn single_reference(img: &LocalImage) -> bool {
    let repos: std::collections::BTreeSet<String> = img
        .names
        .iter()
        .filter_map(|(n, _)| Reference::parse(n).ok().map(|r| r.name()))
        .collect();
    img.names.len() <= 1 && repos.len() <= 1
}

/// Remove `s` (a name, `repo@digest` or an image ID) as `docker rmi [-f]`.
pub fn remove(store: &Store, s: &str, force: bool) -> Result<Vec<Removed>, RemoveError> {
    let (img, named) = find(store, s)?;
    let mut out = Vec::new();
    let targets: Vec<String> = match &named {
        Named::Name(key) => vec![key.clone()],
        Named::Digest(keys) => keys.clone(),
        Named::Id => {
            if !force && !single_reference(&img) {
                return Err(RemoveError::Conflict {
                    id: img.id.hex()[..12].to_string(),
                    reason: "image is referenced in multiple repositories",
                });
            }
            img.names.iter().map(|(n, _)| n.clone()).collect()
        }
    };
    let removed = store.untag(&targets)?;
    if let Named::Digest(_) = named {
        out.push(Removed::Untagged(s.to_string()));
    }
    for (name, _) in &removed {
        if !matches!(named, Named::Digest(_)) {
            out.push(Removed::Untagged(familiar(name)));
        }
    }
    let left = store
        .images()
        .into_iter()
        .filter(|(k, e)| e.config == img.id && !is_dangling_key(k))
        .count();
    if left == 0 {
        // Its pulled digests go with it, as Docker reports them.
        if !matches!(named, Named::Digest(_)) {
            for d in img.repo_digests() {
                out.push(Removed::Untagged(d));
            }
        }
        store.untag(&[img.id.to_string()])?;
        out.push(Removed::Deleted(img.id));
    }
    Ok(out)
}
