//! `rbuild save`: the blobs of a stored image for an archive. A pulled
//! image goes as it was pulled (its manifest and compressed blobs); a loaded
//! one with the layer blobs its archive had; a built one gets its layers
//! compressed with gzip once (the blobs stay in the store for the next save
//! or push).

use super::ExportError;
use super::archive::{ArchiveFormat, ArchiveImage};
use crate::cache::Store;
use crate::image::local::LocalImage;
use crate::image::manifest::{MediaTypes, read_written, write_image_reusing_blobs};
use crate::layer::compress::Compression;

/// A stored image, with `names` (normalised), ready for an archive.
pub fn archive_image(
    store: &Store,
    img: &LocalImage,
    names: Vec<String>,
    format: ArchiveFormat,
) -> Result<ArchiveImage, ExportError> {
    let pulled = img
        .names
        .iter()
        .filter_map(|(_, e)| e.manifest)
        .find_map(|m| read_written(store, &m).filter(|w| w.config == img.id));
    let image = match pulled {
        Some(w) => w,
        None => {
            // Layers whose snapshots are missing come back from a known blob.
            crate::image::source::load_local(store, &img.id)?;
            let types = match format {
                ArchiveFormat::Docker => MediaTypes::Docker,
                ArchiveFormat::Oci => MediaTypes::Oci,
            };
            write_image_reusing_blobs(store, &img.id, Compression::default(), types)?
        }
    };
    Ok(ArchiveImage { image, names })
}
