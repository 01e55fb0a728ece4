//! The Dockerfile frontend: parse, validate, expand and lower to stages.

pub mod add_sources;
pub mod ast;
pub mod diagnostics;
pub use crate::context::ignore as dockerignore;
pub mod document;
pub mod duration;
pub mod error;
pub mod flags;
pub mod grammar;
pub mod ignored_sources;
pub mod instructions;
pub mod line_parser;
pub mod lines;
pub mod lint;
pub mod lower;
pub mod mounts;
pub mod onbuild;
pub mod platform;
pub mod position;
pub mod raw;
pub mod shell;
mod stage_refs;
pub mod suggest;
pub mod to_ops;

pub use document::{parse_dockerfile, parse_dockerfile_linted, parse_dockerfile_with_checks};
pub use error::FrontendError;
