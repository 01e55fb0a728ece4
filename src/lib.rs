//! rbuild: a Dockerfile image builder.

pub mod cache;
pub mod context;
pub mod digest;
pub mod frontend;
pub mod layer;
