//! The Dockerfile frontend: parse, validate, expand and lower to stages.

pub mod error;
pub mod grammar;
pub mod line_parser;
pub mod lines;
pub mod position;
pub mod raw;
pub mod shell;

pub use error::FrontendError;
