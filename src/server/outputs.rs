//! What a served build writes for its client. The client names its
//! destinations by placeholders (`--output …,dest=@N`, `--iidfile=@iid`,
//! `--metadata-file=@meta`); the server points them into the build's work
//! directory and, when the build succeeded, streams each back as
//! [`Frame::Start`], [`Frame::Bytes`]…, [`Frame::End`] (a directory as a
//! tar archive). Pushes (`type=registry`, `push=true`) happen here.

use super::wire::{CHUNK, Frame};
use crate::export::{OutputType, parse_output};
use crate::remote_cache::{CacheTarget, parse_cache_from, parse_cache_to};
use std::path::{Path, PathBuf};
use tokio::io::AsyncReadExt as _;
use tokio::sync::mpsc::Sender;

/// Check one flag naming a destination (None: not such a flag).
pub fn check(name: &str, value: &str) -> Option<Result<(), String>> {
    Some(match name {
        "--output" => check_output(value),
        "--iidfile" if value == "@iid" => Ok(()),
        "--metadata-file" if value == "@meta" => Ok(()),
        "--iidfile" | "--metadata-file" => Err(format!("{name}: a path on the server")),
        "--cache-to" | "--cache-from" => {
            let target = if name == "--cache-to" {
                parse_cache_to(value).map(|c| c.target)
            } else {
                parse_cache_from(value).map(|c| c.target)
            };
            match target {
                Ok(CacheTarget::Registry(_) | CacheTarget::Inline) => Ok(()),
                Ok(CacheTarget::Local(_)) => Err(format!(
                    "{name} {value}: a local cache directory would be on the server; \
                     use a registry cache (type=registry) with --server"
                )),
                Err(e) => Err(e.to_string()),
            }
        }
        _ => return None,
    })
}

fn check_output(value: &str) -> Result<(), String> {
    let spec = parse_output(value).map_err(|e| e.to_string())?;
    match spec.dest {
        None if spec.kind == OutputType::DockerArchive => Err(format!(
            "--output {value}: loading into a Docker engine (--load) does not work through --server"
        )),
        None => Ok(()),
        Some(d) if slot_of(&d.to_string_lossy()).is_some() => Ok(()),
        Some(d) => Err(format!(
            "--output {value}: dest={} is a path on the server",
            d.display()
        )),
    }
}

/// `@N` → `N`.
fn slot_of(dest: &str) -> Option<&str> {
    dest.strip_prefix('@')
        .filter(|n| !n.is_empty() && n.len() < 4 && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The flags with placeholders pointed into `work`, and each slot's path.
pub fn rewrite(args: &[String], work: &Path) -> (Vec<String>, Vec<(String, PathBuf)>) {
    let mut slots = Vec::new();
    let mut out = Vec::with_capacity(args.len());
    for a in args {
        if let Some(v) = a.strip_prefix("--output=") {
            let fields: Vec<String> = v
                .split(',')
                .map(|f| match f.strip_prefix("dest=").and_then(slot_of) {
                    Some(n) => {
                        let p = work.join(format!("out-{n}"));
                        slots.push((n.to_string(), p.clone()));
                        format!("dest={}", p.display())
                    }
                    None => f.to_string(),
                })
                .collect();
            out.push(format!("--output={}", fields.join(",")));
        } else if let Some((flag, slot)) =
            [("--iidfile=@iid", "iid"), ("--metadata-file=@meta", "meta")]
                .into_iter()
                .find(|(f, _)| a == f)
        {
            let p = work.join(slot);
            let name = flag.split('=').next().unwrap_or(flag);
            out.push(format!("{name}={}", p.display()));
            slots.push((slot.to_string(), p));
        } else {
            out.push(a.clone());
        }
    }
    (out, slots)
}

/// Why sending back failed.
#[derive(Debug)]
pub enum SendError {
    /// The client is gone.
    Gone,
    /// Reading or archiving the file.
    Io(String),
}

/// Stream every slot's file (or directory, as a tar) to the client.
pub async fn send_back(slots: &[(String, PathBuf)], tx: &Sender<String>) -> Result<(), SendError> {
    for (slot, path) in slots {
        let Ok(meta) = tokio::fs::symlink_metadata(path).await else {
            continue;
        };
        let dir = meta.is_dir();
        let file = if dir {
            let (src, tar) = (path.clone(), path.with_extension("tar"));
            tokio::task::spawn_blocking(move || tar_dir(&src, &tar).map(|()| tar))
                .await
                .map_err(|e| SendError::Io(e.to_string()))?
                .map_err(|e| SendError::Io(format!("archiving {}: {e}", path.display())))?
        } else {
            path.clone()
        };
        send(
            tx,
            Frame::Start {
                slot: slot.clone(),
                dir,
            },
        )
        .await?;
        let mut f = tokio::fs::File::open(&file)
            .await
            .map_err(|e| SendError::Io(format!("{}: {e}", file.display())))?;
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = f
                .read(&mut buf)
                .await
                .map_err(|e| SendError::Io(format!("{}: {e}", file.display())))?;
            if n == 0 {
                break;
            }
            send(tx, Frame::Bytes(buf[..n].to_vec())).await?;
        }
        send(tx, Frame::End).await?;
    }
    Ok(())
}

async fn send(tx: &Sender<String>, f: Frame) -> Result<(), SendError> {
    tx.send(f.encode()).await.map_err(|_| SendError::Gone)
}

/// A directory as a tar archive (symlinks kept as links).
fn tar_dir(src: &Path, dest: &Path) -> std::io::Result<()> {
    let mut b = tar::Builder::new(std::io::BufWriter::new(std::fs::File::create(dest)?));
    b.follow_symlinks(false);
    b.mode(tar::HeaderMode::Complete);
    b.append_dir_all(".", src)?;
    b.into_inner()?
        .into_inner()
        .map_err(|e| e.into_error())?
        .sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_must_be_placeholders() {
        for ok in [
            "type=local,dest=@0",
            "type=oci-dir,dest=@1",
            "type=oci,dest=@2",
            "type=registry,name=r/x",
        ] {
            assert_eq!(check("--output", ok), Some(Ok(())), "{ok}");
        }
        for bad in [
            "type=local,dest=/root",
            "type=oci,dest=@x",
            "type=docker",
            "type=local,dest=@",
        ] {
            assert!(matches!(check("--output", bad), Some(Err(_))), "{bad}");
        }
        assert!(matches!(check("--iidfile", "/etc/x"), Some(Err(_))));
        assert!(matches!(
            check("--cache-to", "type=local,dest=/srv"),
            Some(Err(_))
        ));
        assert_eq!(check("--cache-from", "type=registry,ref=r/c"), Some(Ok(())));
        assert_eq!(check("--tag", "x"), None);
    }

    #[test]
    fn placeholders_point_into_the_work_dir() {
        let args: Vec<String> = ["--output=type=oci,dest=@0", "--iidfile=@iid", "--tag=x"]
            .map(String::from)
            .into();
        let (out, slots) = rewrite(&args, Path::new("/w"));
        assert_eq!(
            out,
            [
                "--output=type=oci,dest=/w/out-0",
                "--iidfile=/w/iid",
                "--tag=x"
            ]
        );
        assert_eq!(
            slots,
            [
                ("0".to_string(), PathBuf::from("/w/out-0")),
                ("iid".to_string(), PathBuf::from("/w/iid"))
            ]
        );
    }
}
