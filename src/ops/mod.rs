//! Filesystem operations of build steps (COPY, ADD, WORKDIR) and the
//! helpers they need (user lookup, selection in another stage).

pub mod chmod;
pub mod copy;
pub mod fetch;
pub mod users;
pub mod view_select;
