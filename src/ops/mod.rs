//! Build operations. [`op::Op`] is the one interface the solver sees; one
//! module per op family gives its canonical definition and key inputs and
//! executes it on its parent state: [`copy`] (COPY/ADD), [`run`] (RUN),
//! [`mounts`] (RUN's mounts and secrets), [`workdir`], [`config`]
//! (config-only instructions). Helpers: user lookup, downloads, `--chmod`,
//! selection in another stage's files.

pub mod chmod;
pub mod config;
pub mod copy;
pub mod fetch;
pub mod key;
pub mod mounts;
pub mod op;
pub mod run;
pub mod users;
pub mod view_select;
pub mod workdir;

pub use op::{CacheMap, ExecCtx, Op, OpEnv, OpError, Source, StageResult};
