//! Image references checked with Docker's grammar: the one implementation
//! lives in `crate::registry::reference` (parsing, normalisation, familiar
//! names); this keeps the `-t` check's path.

pub use crate::registry::reference::{ReferenceError, validate};
