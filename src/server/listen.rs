//! Server addresses (`unix:///PATH`, `tcp://HOST:PORT`): parsing, the
//! rules they carry (a token over TCP, TLS off loopback), binding; a
//! client's `https://HOST:PORT`.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

/// Errors of addresses and listening.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// Not `unix://` or `tcp://`.
    #[error("invalid address {0:?} (expected unix:///PATH or tcp://HOST:PORT)")]
    Invalid(String),
    /// TCP without `--token-file`.
    #[error("--listen {0}: TCP needs --token-file (clients send it as a bearer token)")]
    NoToken(String),
    /// A non-loopback TCP address without TLS.
    #[error(
        "--listen {0}: a non-loopback address needs TLS (--tls-cert and --tls-key) as well as --token-file"
    )]
    NotLoopback(String),
    /// TLS flags that do not fit the address.
    #[error("--listen {0}: {1}")]
    Tls(String, &'static str),
    /// Binding failed.
    #[error("--listen {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
}

/// A parsed address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addr {
    /// A unix socket path.
    Unix(PathBuf),
    /// A TCP address.
    Tcp(SocketAddr),
    /// `https://HOST:PORT` (clients only): TLS over TCP, HOST its name.
    Https(String, u16),
}

impl Addr {
    /// Parse `unix:///PATH`, `tcp://HOST:PORT` (HOST an IP or `localhost`)
    /// or `https://HOST:PORT` (HOST a name or IP).
    pub fn parse(s: &str) -> Result<Addr, ListenError> {
        let bad = || ListenError::Invalid(s.to_string());
        if let Some(hp) = s.strip_prefix("https://") {
            let hp = hp.trim_end_matches('/');
            let (host, port) = hp.rsplit_once(':').ok_or_else(bad)?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let port = port.parse().map_err(|_| bad())?;
            if host.is_empty() || host.contains('/') {
                return Err(bad());
            }
            return Ok(Addr::Https(host.to_string(), port));
        }
        if let Some(p) = s.strip_prefix("unix://") {
            if !p.starts_with('/') {
                return Err(bad());
            }
            return Ok(Addr::Unix(PathBuf::from(p)));
        }
        let hp = s.strip_prefix("tcp://").ok_or_else(bad)?;
        let hp = hp.trim_end_matches('/');
        let hp = match hp.strip_prefix("localhost:") {
            Some(port) => format!("127.0.0.1:{port}"),
            None => hp.to_string(),
        };
        hp.parse().map(Addr::Tcp).map_err(|_| bad())
    }
}

/// A bound listener.
pub enum Listener {
    /// On a unix socket.
    Unix(tokio::net::UnixListener, PathBuf),
    /// On TCP.
    Tcp(tokio::net::TcpListener),
}

/// Bind `addr` (call inside a runtime). A unix socket is made mode 0600
/// (replacing a stale socket file); TCP needs a token, and TLS unless on
/// loopback.
pub fn bind(text: &str, addr: &Addr, has_token: bool, tls: bool) -> Result<Listener, ListenError> {
    let err = |source| ListenError::Bind {
        addr: text.to_string(),
        source,
    };
    match addr {
        Addr::Https(..) => Err(ListenError::Tls(
            text.to_string(),
            "listen on tcp://HOST:PORT with --tls-cert and --tls-key",
        )),
        Addr::Unix(_) if tls => Err(ListenError::Tls(
            text.to_string(),
            "TLS is for tcp:// addresses (a unix socket is guarded by its mode)",
        )),
        Addr::Unix(p) => {
            if let Ok(m) = std::fs::symlink_metadata(p) {
                use std::os::unix::fs::FileTypeExt;
                if m.file_type().is_socket() {
                    std::fs::remove_file(p).map_err(err)?;
                }
            }
            // Made under a umask that leaves no window with wider modes.
            let old = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o177));
            let l = tokio::net::UnixListener::bind(p);
            rustix::process::umask(old);
            let l = l.map_err(err)?;
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
            Ok(Listener::Unix(l, p.clone()))
        }
        Addr::Tcp(a) => {
            if !has_token {
                return Err(ListenError::NoToken(text.to_string()));
            }
            if !a.ip().is_loopback() && !tls {
                return Err(ListenError::NotLoopback(text.to_string()));
            }
            let l = std::net::TcpListener::bind(a).map_err(err)?;
            l.set_nonblocking(true).map_err(err)?;
            Ok(Listener::Tcp(
                tokio::net::TcpListener::from_std(l).map_err(err)?,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_addresses() {
        assert_eq!(
            Addr::parse("unix:///run/rbuild.sock").unwrap(),
            Addr::Unix("/run/rbuild.sock".into())
        );
        assert_eq!(
            Addr::parse("tcp://127.0.0.1:9000").unwrap(),
            Addr::Tcp("127.0.0.1:9000".parse().unwrap())
        );
        assert_eq!(
            Addr::parse("tcp://localhost:9").unwrap(),
            Addr::Tcp("127.0.0.1:9".parse().unwrap())
        );
        assert_eq!(
            Addr::parse("https://build.example:8443/").unwrap(),
            Addr::Https("build.example".into(), 8443)
        );
        assert_eq!(
            Addr::parse("https://[::1]:1").unwrap(),
            Addr::Https("::1".into(), 1)
        );
        for bad in [
            "unix://rel",
            "http://x:1",
            "tcp://host",
            "tcp://[::1]",
            "https://x",
            "https://:1",
        ] {
            assert!(Addr::parse(bad).is_err(), "{bad}");
        }
    }
}
