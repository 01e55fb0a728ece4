//! `docker history`'s rows for a stored image: the config's history,
//! newest first, each entry that made a layer paired with that layer's size.

use super::local::{LocalImage, layer_size};
use crate::cache::Store;
use crate::digest::Digest;

/// One row of `docker history`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRow {
    /// The image ID on the top row; `None` (`<missing>`) below, as Docker
    /// shows entries whose intermediate images it does not have.
    pub id: Option<Digest>,
    /// RFC 3339 time, if recorded.
    pub created: Option<String>,
    /// The instruction.
    pub created_by: String,
    /// Bytes of the layer the step made (0 for config-only steps).
    pub size: u64,
    /// The comment (`buildkit.dockerfile.v0`).
    pub comment: String,
}

/// The rows, newest first. Entries beyond the history (an image whose
/// config has fewer history entries than layers) get empty rows, so every
/// layer is shown.
pub fn history(store: &Store, img: &LocalImage) -> Vec<HistoryRow> {
    let diff_ids = &img.config.rootfs.diff_ids;
    let mut layers = diff_ids.iter();
    let mut rows: Vec<HistoryRow> = img
        .config
        .history
        .iter()
        .map(|h| {
            let size = if h.empty_layer {
                0
            } else {
                layers.next().map(|d| layer_size(store, d)).unwrap_or(0)
            };
            HistoryRow {
                id: None,
                created: h.created.clone(),
                created_by: h.created_by.clone(),
                size,
                comment: h.comment.clone(),
            }
        })
        .collect();
    for d in layers {
        rows.push(HistoryRow {
            id: None,
            created: None,
            created_by: String::new(),
            size: layer_size(store, d),
            comment: String::new(),
        });
    }
    rows.reverse();
    if let Some(top) = rows.first_mut() {
        top.id = Some(img.id);
    }
    rows
}
