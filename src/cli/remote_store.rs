//! `rbuild --server ADDR images|du|prune`: the command run by the server
//! on its store, its output printed here and its exit code returned.

use super::images::ImagesArgs;
use super::store_cmds::PruneArgs;
use anyhow::Result;
use rbuild::server::client::Client;
use rbuild::server::wire::{Frame, StoreRequest};
use std::process::ExitCode;

/// `images`'s flags as the server's command takes them.
pub fn images_args(a: &ImagesArgs) -> Vec<String> {
    let mut v: Vec<String> = [
        (a.quiet, "--quiet"),
        (a.digests, "--digests"),
        (a.no_trunc, "--no-trunc"),
        (a.all, "--all"),
    ]
    .into_iter()
    .filter(|(on, _)| *on)
    .map(|(_, f)| f.to_string())
    .collect();
    v.extend(a.filters.iter().map(|f| format!("--filter={f}")));
    v.extend(a.filter.iter().cloned());
    v
}

/// `prune`'s flags as the server's command takes them.
pub fn prune_args(a: &PruneArgs) -> Vec<String> {
    let mut v = Vec::new();
    if a.all {
        v.push("--all".to_string());
    }
    v.extend(a.keep_storage.iter().map(|k| format!("--keep-storage={k}")));
    v
}

/// Run `command args` on the server at `addr`.
pub fn run(addr: &str, command: &str, args: Vec<String>) -> Result<ExitCode> {
    let token = std::env::var("RBUILD_SERVER_TOKEN").ok();
    let client = Client::new(addr, token)?;
    let req = StoreRequest {
        command: command.to_string(),
        args,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let code = runtime.block_on(client.store(&req, |f| match f {
        Frame::Out(l) => println!("{l}"),
        Frame::Err(l) => eprintln!("{l}"),
        _ => {}
    }))?;
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}
