//! Exporters: the local image store, OCI image layouts and archives, Docker
//! archives (what `docker load` takes) and plain directories.

mod archive;
pub mod docker_load;
mod local;
pub mod multi;
mod oci;
mod save;
mod spec;
mod tar_rootfs;

pub use archive::{
    ArchiveFormat, ArchiveImage, write_archive, write_docker_archive, write_oci_archive,
};
pub use local::export_rootfs;
pub use oci::write_oci_layout;
pub use save::archive_image;
pub use spec::{OutputSpec, OutputType, parse_output};
pub use tar_rootfs::export_rootfs_tar;

/// Errors of exporting.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Filesystem failure.
    #[error("{what} {path}: {source}")]
    Io {
        /// What.
        what: &'static str,
        /// Where.
        path: std::path::PathBuf,
        /// Error.
        source: std::io::Error,
    },
    /// Bad `--output`.
    #[error("invalid --output {spec:?}: {reason}")]
    Spec {
        /// As given.
        spec: String,
        /// What is wrong.
        reason: String,
    },
    /// Store failure.
    #[error(transparent)]
    Store(#[from] crate::cache::StoreError),
    /// Layer failure.
    #[error(transparent)]
    Layer(#[from] crate::layer::LayerError),
    /// A stored image could not be read.
    #[error(transparent)]
    Image(#[from] crate::image::source::ImageError),
    /// An exporter that holds one image was given several platforms'.
    #[error(
        "{exporter} exporter does not currently support exporting manifest lists (build one --platform, or use type=oci, type=image or type=registry)"
    )]
    NoIndex {
        /// `docker`, `docker-archive`.
        exporter: &'static str,
    },
    /// The Docker engine (`--load`) is unreachable or refused the image.
    #[error("docker engine at {endpoint}: {reason}")]
    Engine {
        /// The socket or address.
        endpoint: String,
        /// What went wrong.
        reason: String,
    },
}

pub(crate) fn io_err<'a>(
    what: &'static str,
    p: &'a std::path::Path,
) -> impl FnOnce(std::io::Error) -> ExportError + 'a {
    move |source| ExportError::Io {
        what,
        path: p.to_path_buf(),
        source,
    }
}
