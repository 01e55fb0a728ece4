//! Images: the config document, manifests and where images come from
//! (the local store, OCI layouts).

pub mod archive;
pub mod config;
pub mod history;
pub mod inspect;
pub mod local;
pub mod manifest;
pub mod reference;
pub mod remove;
pub mod resolver;
pub mod source;
pub mod state;

pub use state::ImageState;
