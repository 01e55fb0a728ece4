//! Images: the config document, manifests and where images come from
//! (the local store, OCI layouts).

pub mod config;
pub mod manifest;
pub mod reference;
pub mod resolver;
pub mod source;
pub mod state;

pub use state::ImageState;
