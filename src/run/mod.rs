//! `rbuild run`: a stored image run as a container, in the sandbox RUN
//! steps use (namespaces, Docker's capabilities and seccomp profile, masked
//! /proc, no_new_privs), on an overlay of its layers with a writable layer
//! of its own that is thrown away when the container ends. Volumes outlive
//! it. The command is the image's ENTRYPOINT and CMD combined as Docker
//! does ([`entrypoint`]); its exit code becomes rbuild's, with Docker's 125
//! (rbuild could not run it), 126 (the command cannot be invoked) and 127
//! (the command is not found).

pub mod container;
pub mod entrypoint;
pub mod env;
pub mod mount_spec;
pub mod mounts;
pub mod signals;
pub mod tty;
pub mod volumes;

pub use container::{RunError, RunRequest, run};
