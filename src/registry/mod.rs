//! Registries: Docker's reference grammar, per-registry settings (mirrors,
//! plain HTTP), credentials from Docker's config.json, and pulling images
//! into the store and pushing images from it over the distribution API
//! (through `oci-client`).

pub mod auth;
pub mod blobs;
pub mod check;
pub mod config;
pub mod docker_config;
mod http;
pub mod lazy;
pub mod login;
mod mount;
pub mod pull;
pub mod push;
pub mod reference;
mod remote;

pub use config::RegistryOptions;
pub use pull::{Pulled, pull, pull_lazy};
pub use push::{Pushed, push};
pub use reference::{Reference, ReferenceError};

/// Errors talking to a registry.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RegistryError {
    /// The registry config file is unreadable or invalid.
    #[error("registry config {path}: {reason}")]
    Config {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Reading credentials failed (a credential helper, a malformed entry).
    #[error("credentials for {host}: {reason}")]
    Credentials {
        /// The registry host.
        host: String,
        /// What failed.
        reason: String,
    },
    /// Resolving or fetching an image failed.
    #[error("failed to resolve source metadata for {reference}: {reason}")]
    Pull {
        /// The normalised reference.
        reference: String,
        /// What went wrong.
        reason: String,
    },
    /// Logging in failed (the registry refused the credentials, or could
    /// not be reached).
    #[error("login to {server} failed: {reason}")]
    Login {
        /// The server as given.
        server: String,
        /// What went wrong.
        reason: String,
    },
    /// Pushing an image failed.
    #[error("failed to push {reference}: {reason}")]
    Push {
        /// The normalised reference pushed to.
        reference: String,
        /// What went wrong.
        reason: String,
    },
}
