//! What client and server send each other (JSON bodies, and the framed
//! lines of a build's streamed response).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

/// Largest JSON request body (a build request lists every context file).
pub const MAX_JSON: usize = 64 << 20;
/// Largest single context file upload.
pub const MAX_BLOB: usize = 1 << 30;
/// Most files in one context.
pub const MAX_FILES: usize = 1_000_000;
/// Longest streamed log line (longer ones are cut).
pub const MAX_LINE: usize = 16 << 10;

/// `POST /context/missing`: which of these digests the server lacks.
#[derive(Debug, Serialize, Deserialize)]
pub struct MissingRequest {
    /// `sha256:…` digests of context files.
    pub digests: Vec<String>,
}

/// The answer to [`MissingRequest`].
#[derive(Debug, Serialize, Deserialize)]
pub struct MissingResponse {
    /// The digests to upload (`PUT /blobs/DIGEST`).
    pub missing: Vec<String>,
}

/// One context entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileEntry {
    /// Path relative to the context root (`/`-separated, no `..`).
    pub path: String,
    /// `file`, `dir` or `symlink`.
    pub kind: String,
    /// Permission bits.
    pub mode: u32,
    /// mtime (seconds, nanoseconds): COPY keeps it, so images match.
    pub mtime: (i64, i64),
    /// Content digest (files).
    #[serde(default)]
    pub digest: Option<String>,
    /// Link target (symlinks).
    #[serde(default)]
    pub link: Option<String>,
}

/// Proof that a client holds a context file's content, not only its
/// digest: sha256 of a fixed prefix and the content. A build naming a
/// cached file must send it, so knowing another client's digests does not
/// let one read their files back out of the server.
pub struct Proof(sha2::Sha256);

impl Proof {
    /// Start hashing.
    pub fn new() -> Proof {
        use sha2::Digest as _;
        Proof(sha2::Sha256::new_with_prefix(b"rbuild-serve-possession\0"))
    }

    /// Add content.
    pub fn update(&mut self, b: &[u8]) {
        sha2::Digest::update(&mut self.0, b);
    }

    /// The proof, as hex.
    pub fn finish(self) -> String {
        hex::encode(sha2::Digest::finalize(self.0))
    }
}

impl Default for Proof {
    fn default() -> Self {
        Proof::new()
    }
}

/// `POST /build`.
#[derive(Debug, Serialize, Deserialize)]
pub struct BuildRequest {
    /// The context's entries.
    pub files: Vec<FileEntry>,
    /// The Dockerfile's text.
    pub dockerfile: String,
    /// The Dockerfile's name (for the ignore file next to it, and messages).
    pub dockerfile_name: String,
    /// `rbuild build` flags, passed on as given (checked by the server).
    pub args: Vec<String>,
    /// Secrets (id, value): held in memory, never stored.
    pub secrets: Vec<(String, Vec<u8>)>,
    /// A [`Proof`] for each file digest (digest → proof).
    #[serde(default)]
    pub proofs: std::collections::HashMap<String, String>,
}

/// `POST /store`: `rbuild images|du|prune` on the server's store.
#[derive(Debug, Serialize, Deserialize)]
pub struct StoreRequest {
    /// `images`, `du` or `prune`.
    pub command: String,
    /// Its arguments (`--name=value` form).
    pub args: Vec<String>,
}

/// One line of a build's response: a tag character, a space, the text.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A line the build wrote on stderr (progress events as rawjson).
    Err(String),
    /// A line the build wrote on stdout.
    Out(String),
    /// The build waits in the queue at this position (1 = next).
    Queued(usize),
    /// The build ended with this exit code.
    Exit(i32),
    /// A file the build wrote for the client starts: its slot (`0`, `1`…
    /// for `--output`s, `iid`, `meta`) and whether it is a directory
    /// (then sent as a tar archive).
    Start {
        /// Which of the client's destinations.
        slot: String,
        /// A directory, as a tar archive.
        dir: bool,
    },
    /// Bytes of the file being sent (base64 on the wire).
    Bytes(Vec<u8>),
    /// The file being sent is complete.
    End,
    /// Nothing (sent to notice a client that is gone).
    KeepAlive,
}

/// Raw bytes per [`Frame::Bytes`] (its base64 stays under [`MAX_LINE`]).
pub const CHUNK: usize = 12 << 10;

impl Frame {
    /// The frame as one line (with its newline).
    pub fn encode(&self) -> String {
        match self {
            Frame::Err(l) => format!("E {}\n", cut(l)),
            Frame::Out(l) => format!("O {}\n", cut(l)),
            Frame::Queued(n) => format!("Q {n}\n"),
            Frame::Exit(c) => format!("X {c}\n"),
            Frame::Start { slot, dir } => {
                format!("S {} {}\n", if *dir { "dir" } else { "file" }, cut(slot))
            }
            Frame::Bytes(b) => format!("B {}\n", STANDARD.encode(b)),
            Frame::End => "Z .\n".to_string(),
            Frame::KeepAlive => "K\n".to_string(),
        }
    }

    /// Parse a line (without its newline).
    pub fn decode(line: &str) -> Option<Frame> {
        let (tag, rest) = line.split_at_checked(2)?;
        Some(match tag {
            "E " => Frame::Err(rest.to_string()),
            "O " => Frame::Out(rest.to_string()),
            "Q " => Frame::Queued(rest.parse().ok()?),
            "X " => Frame::Exit(rest.parse().ok()?),
            "S " => {
                let (kind, slot) = rest.split_once(' ')?;
                Frame::Start {
                    slot: slot.to_string(),
                    dir: kind == "dir",
                }
            }
            "B " => Frame::Bytes(STANDARD.decode(rest).ok()?),
            "Z " => Frame::End,
            _ => return None,
        })
    }
}

/// A line cut to [`MAX_LINE`] bytes (at a character boundary).
fn cut(l: &str) -> &str {
    if l.len() <= MAX_LINE {
        return l;
    }
    let mut i = MAX_LINE;
    while !l.is_char_boundary(i) {
        i -= 1;
    }
    &l[..i]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        for f in [
            Frame::Err("#1 DONE".into()),
            Frame::Out("sha256:ab".into()),
            Frame::Queued(3),
            Frame::Exit(1),
            Frame::Start {
                slot: "0".into(),
                dir: true,
            },
            Frame::Start {
                slot: "iid".into(),
                dir: false,
            },
            Frame::Bytes(vec![0, 255, b'\n', 7]),
            Frame::Bytes(vec![1; CHUNK]),
            Frame::End,
        ] {
            let l = f.encode();
            assert_eq!(Frame::decode(l.trim_end_matches('\n')), Some(f));
        }
        assert_eq!(Frame::decode("Y 1"), None);
        assert_eq!(Frame::decode("X x"), None);
        assert!(Frame::Bytes(vec![1; CHUNK]).encode().len() <= MAX_LINE + 3);
        assert_eq!(
            Frame::encode(&Frame::Out("é".repeat(MAX_LINE))).len(),
            MAX_LINE + 3
        );
    }
}
