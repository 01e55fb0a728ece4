//! The client's side of [`super::outputs`]: the files a served build
//! sends back ([`Frame::Start`], [`Frame::Bytes`]…, [`Frame::End`]) are
//! written where a local build would have written them. A file is renamed
//! into place whole; a directory arrives as a tar archive and is unpacked.

use super::wire::Frame;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Where a slot goes on the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dest {
    /// A file (archives, `--iidfile`, `--metadata-file`).
    File(PathBuf),
    /// A directory (`type=local`, `type=oci-dir`).
    Dir(PathBuf),
    /// Standard output (`dest=-`).
    Stdout,
    /// This machine's Docker engine (`--load`): a Docker archive loaded
    /// into it once received.
    Engine,
}

/// Errors writing what the server sent.
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    /// The server sent a slot we did not ask for, or bytes outside one.
    #[error("the server sent {0}")]
    Unexpected(String),
    /// Loading into the Docker engine failed.
    #[error("--load: {0}")]
    Load(#[from] crate::export::ExportError),
    /// Writing failed.
    #[error("writing {path}: {source}")]
    Io {
        /// Where.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// What is being received.
enum Current {
    Temp(tempfile::NamedTempFile, Dest),
    Stdout,
}

/// Receives the files of one build.
pub struct Receiver {
    slots: HashMap<String, Dest>,
    current: Option<Current>,
    error: Option<ReceiveError>,
    /// Messages for the user (the engine's `Loaded image: …`), printed by
    /// the caller once its progress display is done with stderr.
    notes: Vec<String>,
}

impl Receiver {
    /// A receiver for these slots.
    pub fn new(slots: HashMap<String, Dest>) -> Receiver {
        Receiver {
            slots,
            current: None,
            error: None,
            notes: Vec::new(),
        }
    }

    /// Handle a frame: false when it is not about files.
    pub fn frame(&mut self, f: Frame) -> bool {
        if !matches!(f, Frame::Start { .. } | Frame::Bytes(_) | Frame::End) {
            return false;
        }
        if self.error.is_none()
            && let Err(e) = self.handle(f)
        {
            self.error = Some(e);
            self.current = None;
        }
        true
    }

    /// The messages for the user, or the first error (a file left
    /// half-sent is one).
    pub fn finish(self) -> Result<Vec<String>, ReceiveError> {
        match (self.error, self.current) {
            (Some(e), _) => Err(e),
            (None, Some(_)) => Err(ReceiveError::Unexpected("a file without its end".into())),
            (None, None) => Ok(self.notes),
        }
    }

    fn handle(&mut self, f: Frame) -> Result<(), ReceiveError> {
        match f {
            Frame::Start { slot, .. } => {
                let dest = self
                    .slots
                    .remove(&slot)
                    .ok_or_else(|| ReceiveError::Unexpected(format!("unknown output {slot:?}")))?;
                self.current = Some(match dest {
                    Dest::Stdout => Current::Stdout,
                    Dest::Engine => Current::Temp(
                        tempfile::NamedTempFile::new().map_err(io(Path::new("temp file")))?,
                        dest,
                    ),
                    Dest::File(ref p) | Dest::Dir(ref p) => {
                        let parent = parent_of(p);
                        let t = tempfile::Builder::new()
                            .prefix(".rbuild-recv-")
                            .tempfile_in(parent)
                            .map_err(io(p))?;
                        Current::Temp(t, dest)
                    }
                });
            }
            Frame::Bytes(b) => match self.current.as_mut() {
                Some(Current::Stdout) => std::io::stdout()
                    .write_all(&b)
                    .map_err(io(Path::new("-")))?,
                Some(Current::Temp(t, d)) => t.write_all(&b).map_err(io(dest_path(d)))?,
                None => return Err(ReceiveError::Unexpected("bytes outside a file".into())),
            },
            Frame::End => match self.current.take() {
                Some(Current::Stdout) => std::io::stdout().flush().map_err(io(Path::new("-")))?,
                Some(Current::Temp(t, Dest::Dir(p))) => unpack(t, &p)?,
                Some(Current::Temp(t, Dest::Engine)) => {
                    let f = t.reopen().map_err(io(t.path()))?;
                    let loaded = crate::export::docker_load::load_archive_into_engine(
                        std::io::BufReader::new(f),
                    )?;
                    self.notes.extend(loaded);
                }
                Some(Current::Temp(t, d)) => {
                    let p = dest_path(&d).to_path_buf();
                    t.persist(&p).map_err(|e| io(&p)(e.error))?;
                }
                None => return Err(ReceiveError::Unexpected("an end outside a file".into())),
            },
            _ => {}
        }
        Ok(())
    }
}

fn dest_path(d: &Dest) -> &Path {
    match d {
        Dest::File(p) | Dest::Dir(p) => p,
        Dest::Stdout => Path::new("-"),
        Dest::Engine => Path::new("docker engine"),
    }
}

/// The directory a destination is in (created if missing).
fn parent_of(p: &Path) -> PathBuf {
    let parent = match p.parent() {
        Some(x) if !x.as_os_str().is_empty() => x.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let _ = std::fs::create_dir_all(&parent);
    parent
}

fn io(p: &Path) -> impl FnOnce(std::io::Error) -> ReceiveError + '_ {
    move |source| ReceiveError::Io {
        path: p.to_path_buf(),
        source,
    }
}

/// Unpack a received tar archive into `dir` (created if missing); entries
/// cannot land outside it.
fn unpack(t: tempfile::NamedTempFile, dir: &Path) -> Result<(), ReceiveError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let f = t.reopen().map_err(io(dir))?;
    let mut a = tar::Archive::new(std::io::BufReader::new(f));
    a.set_preserve_permissions(true);
    a.set_preserve_mtime(true);
    a.set_overwrite(true);
    a.unpack(dir).map_err(io(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_land_whole_and_unknown_slots_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let iid = d.path().join("sub/iid");
        let mut r = Receiver::new(HashMap::from([("iid".into(), Dest::File(iid.clone()))]));
        for f in [
            Frame::Start {
                slot: "iid".into(),
                dir: false,
            },
            Frame::Bytes(b"sha256:".to_vec()),
            Frame::Bytes(b"ab".to_vec()),
            Frame::End,
        ] {
            assert!(r.frame(f));
        }
        assert!(!r.frame(Frame::Exit(0)));
        r.finish().unwrap();
        assert_eq!(std::fs::read_to_string(&iid).unwrap(), "sha256:ab");

        let mut r = Receiver::new(HashMap::new());
        r.frame(Frame::Start {
            slot: "0".into(),
            dir: false,
        });
        assert!(r.finish().is_err());
        let mut r = Receiver::new(HashMap::new());
        r.frame(Frame::Bytes(vec![1]));
        assert!(r.finish().is_err());
    }
}
