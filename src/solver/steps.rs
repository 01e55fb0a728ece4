//! Former home of the per-instruction code, now in [`crate::ops`]; these
//! names stay for callers of the library.

pub use crate::ops::mounts::SecretSource;
pub use crate::ops::op::view_of;
pub use crate::ops::run::DEFAULT_HOSTNAME;
