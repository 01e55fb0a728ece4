//! rbuild: a Dockerfile image builder.

pub mod frontend;
