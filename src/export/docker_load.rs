//! `--load`: stream a Docker archive into a Docker (or Podman) engine, as
//! buildx does, through the engine's `POST /images/load`.
//!
//! The engine is `DOCKER_HOST` (`unix://PATH`, or `tcp://HOST:PORT`
//! without TLS), else `/var/run/docker.sock`, else Podman's socket. The
//! request is one HTTP/1.1 POST with a chunked body, written by hand over
//! the socket: the whole client is a request line, four headers, a chunk
//! writer and a response reader, so an HTTP stack (hyper, a runtime for it,
//! a unix-socket connector) would add far more than it saves.

use super::ExportError;
use super::archive::{ArchiveFormat, ArchiveImage, write_archive};
use crate::cache::Store;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// Where the engine listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A unix socket.
    Unix(PathBuf),
    /// Plain TCP (`tcp://HOST:PORT`).
    Tcp(String),
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Unix(p) => write!(f, "unix://{}", p.display()),
            Endpoint::Tcp(a) => write!(f, "tcp://{a}"),
        }
    }
}

fn engine_err(endpoint: impl ToString, reason: impl ToString) -> ExportError {
    ExportError::Engine {
        endpoint: endpoint.to_string(),
        reason: reason.to_string(),
    }
}

/// The engine to load into: `DOCKER_HOST`, else the default Docker
/// socket, else Podman's (rootless, then root).
pub fn find_engine() -> Result<Endpoint, ExportError> {
    if let Ok(host) = std::env::var("DOCKER_HOST")
        && !host.is_empty()
    {
        if let Some(p) = host.strip_prefix("unix://") {
            return Ok(Endpoint::Unix(PathBuf::from(p)));
        }
        if let Some(a) = host.strip_prefix("tcp://") {
            if std::env::var("DOCKER_TLS_VERIFY").is_ok_and(|v| !v.is_empty()) {
                return Err(engine_err(
                    &host,
                    "TLS (DOCKER_TLS_VERIFY) is not supported by --load",
                ));
            }
            return Ok(Endpoint::Tcp(a.trim_end_matches('/').to_string()));
        }
        return Err(engine_err(
            &host,
            "DOCKER_HOST must be unix://PATH or tcp://HOST:PORT",
        ));
    }
    let mut candidates = vec![PathBuf::from("/var/run/docker.sock")];
    if let Some(x) = std::env::var_os("XDG_RUNTIME_DIR") {
        candidates.push(Path::new(&x).join("podman/podman.sock"));
    }
    candidates.push(PathBuf::from("/run/podman/podman.sock"));
    candidates
        .into_iter()
        .find(|p| p.exists())
        .map(Endpoint::Unix)
        .ok_or_else(|| {
            engine_err(
                "unix:///var/run/docker.sock",
                "no Docker engine socket (and no Podman socket) exists; start the engine or set DOCKER_HOST=unix:///path/to/docker.sock",
            )
        })
}

trait Conn: Read + Write {}
impl<T: Read + Write> Conn for T {}

fn connect(e: &Endpoint) -> Result<Box<dyn Conn>, ExportError> {
    let hint = |err: io::Error| {
        engine_err(
            e,
            format!("cannot connect: {err} (is the engine running? DOCKER_HOST selects another)"),
        )
    };
    Ok(match e {
        Endpoint::Unix(p) => Box::new(std::os::unix::net::UnixStream::connect(p).map_err(hint)?),
        Endpoint::Tcp(a) => Box::new(std::net::TcpStream::connect(a).map_err(hint)?),
    })
}

/// HTTP/1.1 chunked transfer encoding over a writer.
struct Chunked<W: Write>(W);

impl<W: Write> Write for Chunked<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        write!(self.0, "{:x}\r\n", buf.len())?;
        self.0.write_all(buf)?;
        self.0.write_all(b"\r\n")?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// Undo chunked transfer encoding (`None` if malformed).
fn dechunk(mut body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = body.windows(2).position(|w| w == b"\r\n")?;
        let size_field = std::str::from_utf8(&body[..eol]).ok()?;
        let size = usize::from_str_radix(size_field.split(';').next()?.trim(), 16).ok()?;
        body = &body[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(body.get(..size)?);
        body = body.get(size + 2..)?;
    }
}

/// The engine's answer: the `stream` messages, or its error.
fn parse_response(e: &Endpoint, raw: &[u8]) -> Result<Vec<String>, ExportError> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| engine_err(e, "malformed HTTP response"))?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let mut body = raw[split + 4..].to_vec();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| engine_err(e, "malformed HTTP status line"))?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    if chunked {
        body = dechunk(&body).ok_or_else(|| engine_err(e, "malformed chunked response"))?;
    }
    let mut messages = Vec::new();
    for v in serde_json::Deserializer::from_slice(&body).into_iter::<serde_json::Value>() {
        let Ok(v) = v else { break };
        if let Some(err) = v["error"]
            .as_str()
            .or(v["message"].as_str().filter(|_| status >= 400))
        {
            return Err(engine_err(
                e,
                format!("the engine refused the image: {err}"),
            ));
        }
        if let Some(s) = v["stream"].as_str() {
            messages.extend(
                s.lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(str::to_string),
            );
        }
    }
    if status >= 400 {
        let text = String::from_utf8_lossy(&body).trim().to_string();
        return Err(engine_err(e, format!("HTTP {status}: {text}")));
    }
    Ok(messages)
}

/// Stream the images as a Docker archive into the engine; returns its
/// messages (`Loaded image: NAME`).
pub fn load_into_engine(
    store: &Store,
    images: &[ArchiveImage],
) -> Result<Vec<String>, ExportError> {
    send_to_engine(|body| {
        write_archive(
            store,
            images,
            ArchiveFormat::Docker,
            body,
            Path::new("docker engine"),
        )
    })
}

/// Stream a Docker archive already written (one a build server sent back
/// for `--load`) into the engine; returns its messages.
pub fn load_archive_into_engine(mut archive: impl Read) -> Result<Vec<String>, ExportError> {
    send_to_engine(|mut body| {
        io::copy(&mut archive, &mut body).map_err(|err| engine_err("docker engine", err))?;
        Ok(body)
    })
}

type Body<'a> = BufWriter<Chunked<&'a mut Box<dyn Conn>>>;

/// POST /images/load with the body `write` makes.
fn send_to_engine(
    write: impl FnOnce(Body<'_>) -> Result<Body<'_>, ExportError>,
) -> Result<Vec<String>, ExportError> {
    let endpoint = find_engine()?;
    let mut conn = connect(&endpoint)?;
    let request = "POST /images/load?quiet=1 HTTP/1.1\r\nHost: docker\r\nUser-Agent: rbuild\r\n\
                   Content-Type: application/x-tar\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    let sent = (|| -> Result<(), ExportError> {
        conn.write_all(request.as_bytes())
            .map_err(|err| engine_err(&endpoint, err))?;
        let body = BufWriter::with_capacity(1 << 20, Chunked(&mut conn));
        let mut body = write(body)?;
        body.flush().map_err(|err| engine_err(&endpoint, err))?;
        drop(body);
        conn.write_all(b"0\r\n\r\n")
            .map_err(|err| engine_err(&endpoint, err))
    })();
    // The engine may answer (an error) before taking the whole body.
    let mut raw = Vec::new();
    let read = conn.read_to_end(&mut raw);
    if !raw.is_empty() {
        let messages = parse_response(&endpoint, &raw)?;
        sent?;
        return Ok(messages);
    }
    sent?;
    read.map_err(|err| engine_err(&endpoint, err))?;
    Err(engine_err(
        &endpoint,
        "the engine closed the connection without answering",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_round_trip() {
        let mut w = Chunked(Vec::new());
        w.write_all(b"hello ").unwrap();
        w.write_all(b"world").unwrap();
        let mut raw = w.0;
        raw.extend_from_slice(b"0\r\n\r\n");
        assert_eq!(dechunk(&raw).unwrap(), b"hello world");
        assert!(dechunk(b"zz\r\n").is_none());
    }

    #[test]
    fn responses_give_messages_or_the_engines_error() {
        let e = Endpoint::Unix("/x.sock".into());
        let msg = r#"{"stream":"Loaded image: busybox:latest\n"}"#;
        let ok = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{msg}\r\n0\r\n\r\n",
            msg.len()
        );
        assert_eq!(
            parse_response(&e, ok.as_bytes()).unwrap(),
            ["Loaded image: busybox:latest"]
        );
        let bad = b"HTTP/1.1 200 OK\r\n\r\n{\"errorDetail\":{\"message\":\"unexpected EOF\"},\"error\":\"unexpected EOF\"}";
        let err = parse_response(&e, bad).unwrap_err().to_string();
        assert!(
            err.contains("unexpected EOF") && err.contains("unix:///x.sock"),
            "{err}"
        );
        let refused = b"HTTP/1.1 500 Internal Server Error\r\n\r\n{\"message\":\"no space\"}";
        assert!(
            parse_response(&e, refused)
                .unwrap_err()
                .to_string()
                .contains("no space")
        );
    }
}
