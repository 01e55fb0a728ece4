//! rbuild: a Dockerfile image builder.

pub mod build;
pub mod cache;
pub mod context;
pub mod digest;
pub mod exec;
pub mod export;
pub mod frontend;
pub mod fsroot;
pub mod image;
pub mod layer;
pub mod ops;
pub mod progress;
pub mod quote;
pub mod registry;
pub mod remote_cache;
pub mod run;
pub mod server;
pub mod solver;
