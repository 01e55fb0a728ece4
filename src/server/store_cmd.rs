//! `rbuild --server ADDR images|du|prune`: the command run by the server
//! on its store (as a child `rbuild`, the same code as a local command),
//! its output sent back as frames.

use super::wire::{Frame, StoreRequest};
use std::process::Stdio;

/// The flags each command accepts (`--name` or `--name=value`); `images`
/// also takes one name pattern. None of them names a path.
fn allowed(command: &str) -> Option<&'static [&'static str]> {
    Some(match command {
        "images" => &[
            "-q",
            "--quiet",
            "--digests",
            "--no-trunc",
            "-a",
            "--all",
            "--filter",
        ],
        "du" => &[],
        "prune" => &["--all", "--keep-storage"],
        _ => return None,
    })
}

/// Check a request; why it is refused.
pub fn check(req: &StoreRequest) -> Result<(), String> {
    let Some(flags) = allowed(&req.command) else {
        return Err(format!(
            "{:?} cannot run through --server (images, du, prune can)",
            req.command
        ));
    };
    let mut positional = 0;
    for a in &req.args {
        if !a.starts_with('-') {
            positional += 1;
            if req.command != "images" || positional > 1 {
                return Err(format!("rbuild {}: unexpected argument {a:?}", req.command));
            }
            continue;
        }
        let name = a.split_once('=').map_or(a.as_str(), |(n, _)| n);
        if !flags.contains(&name) {
            return Err(format!(
                "rbuild {}: flag {name} is not accepted through --server (give values as {name}=VALUE)",
                req.command
            ));
        }
    }
    Ok(())
}

/// Context files `prune` keeps: those written this recently (an upload
/// whose build has not started yet).
const KEEP_RECENT_CONTEXT: std::time::Duration = std::time::Duration::from_secs(600);

/// Run the command; its output as frames, ending with its exit code. A
/// `prune` that succeeds clears the server's context cache too.
pub async fn run(req: StoreRequest, cache: &super::context_sync::ContextCache) -> String {
    if let Err(e) = check(&req) {
        return Frame::Err(format!("error: {e}")).encode() + &Frame::Exit(2).encode();
    }
    let out = tokio::process::Command::new("/proc/self/exe")
        .arg(&req.command)
        .args(&req.args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await;
    let out = match out {
        Ok(o) => o,
        Err(e) => return Frame::Err(format!("error: {e}")).encode() + &Frame::Exit(1).encode(),
    };
    let mut text = String::new();
    for l in String::from_utf8_lossy(&out.stdout).lines() {
        text += &Frame::Out(l.to_string()).encode();
    }
    for l in String::from_utf8_lossy(&out.stderr).lines() {
        text += &Frame::Err(l.to_string()).encode();
    }
    if req.command == "prune" && out.status.success() {
        let (files, bytes) = cache.prune(KEEP_RECENT_CONTEXT);
        let line = format!(
            "removed {files} context files ({}) from the server's context cache",
            super::page::human(bytes)
        );
        text += &Frame::Out(line).encode();
    }
    text + &Frame::Exit(out.status.code().unwrap_or(1)).encode()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(c: &str, args: &[&str]) -> StoreRequest {
        StoreRequest {
            command: c.into(),
            args: args.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn only_store_commands_and_their_flags() {
        assert!(check(&req("images", &["-q", "--filter=dangling=true", "bu*"])).is_ok());
        assert!(check(&req("prune", &["--all", "--keep-storage=1GB"])).is_ok());
        assert!(check(&req("du", &[])).is_ok());
        for (c, a) in [
            ("build", &[][..]),
            ("save", &["-o", "/x"][..]),
            ("images", &["a", "b"][..]),
            ("prune", &["/x"][..]),
            ("images", &["--format=x"][..]),
        ] {
            assert!(check(&req(c, a)).is_err(), "{c} {a:?}");
        }
    }
}
