//! The client side: HTTP/1 requests to a server over a unix socket or TCP
//! (hyper on a tokio stream), with the bearer token when one is set.

use super::listen::Addr;
use super::wire::{BuildRequest, Frame, MissingRequest, MissingResponse, StoreRequest};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

/// Errors of talking to a server.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The address.
    #[error("--server: {0}")]
    Addr(#[from] super::listen::ListenError),
    /// Connecting failed.
    #[error("connecting to {addr}: {source}")]
    Connect {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// HTTP trouble.
    #[error("talking to {addr}: {source}")]
    Http {
        /// The address.
        addr: String,
        /// Why.
        source: hyper::Error,
    },
    /// The server said no.
    #[error("server {addr}: {status}: {body}")]
    Status {
        /// The address.
        addr: String,
        /// The status.
        status: StatusCode,
        /// Its message.
        body: String,
    },
    /// A body that is not what was expected.
    #[error("server {addr}: bad answer: {msg}")]
    Bad {
        /// The address.
        addr: String,
        /// What.
        msg: String,
    },
    /// TLS setup.
    #[error(transparent)]
    Tls(#[from] super::tls::TlsError),
    /// The build stream ended without an exit code.
    #[error("server {0}: the build's stream ended early (server gone?)")]
    Truncated(String),
}

/// A server to talk to.
pub struct Client {
    text: String,
    addr: Addr,
    token: Option<String>,
    tls: Option<tokio_rustls::TlsConnector>,
}

impl Client {
    /// A client of `addr` (`unix:///PATH`, `tcp://HOST:PORT`, or
    /// `https://HOST:PORT`, trusting the PEM certificates of the file
    /// `$RBUILD_SERVER_CA`, else the webpki roots).
    pub fn new(addr: &str, token: Option<String>) -> Result<Client, ClientError> {
        let parsed = Addr::parse(addr)?;
        let tls = match parsed {
            Addr::Https(..) => {
                let ca = std::env::var_os("RBUILD_SERVER_CA").map(std::path::PathBuf::from);
                Some(super::tls::connector(ca.as_deref())?)
            }
            _ => None,
        };
        Ok(Client {
            text: addr.to_string(),
            addr: parsed,
            token,
            tls,
        })
    }

    fn http(&self) -> impl FnOnce(hyper::Error) -> ClientError + '_ {
        |source| ClientError::Http {
            addr: self.text.clone(),
            source,
        }
    }

    /// One request on a new connection.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> Result<Response<Incoming>, ClientError> {
        let connect = |source| ClientError::Connect {
            addr: self.text.clone(),
            source,
        };
        let mut sender = match &self.addr {
            Addr::Unix(p) => {
                let s = tokio::net::UnixStream::connect(p).await.map_err(connect)?;
                handshake(TokioIo::new(s)).await.map_err(self.http())?
            }
            Addr::Tcp(a) => {
                let s = tokio::net::TcpStream::connect(a).await.map_err(connect)?;
                handshake(TokioIo::new(s)).await.map_err(self.http())?
            }
            Addr::Https(host, port) => {
                let Some(tls) = &self.tls else {
                    return Err(ClientError::Bad {
                        addr: self.text.clone(),
                        msg: "no TLS configuration".into(),
                    });
                };
                let s = super::tls::connect(tls, host, *port)
                    .await
                    .map_err(connect)?;
                handshake(TokioIo::new(s)).await.map_err(self.http())?
            }
        };
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, "rbuild")
            .header(hyper::header::CONTENT_TYPE, "application/json");
        if let Some(t) = &self.token {
            req = req.header(hyper::header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = req.body(Full::new(body)).map_err(|e| ClientError::Bad {
            addr: self.text.clone(),
            msg: e.to_string(),
        })?;
        let resp = sender.send_request(req).await.map_err(self.http())?;
        if !resp.status().is_success() {
            let status = resp.status();
            let body = resp.into_body().collect().await.map_err(self.http())?;
            return Err(ClientError::Status {
                addr: self.text.clone(),
                status,
                body: String::from_utf8_lossy(&body.to_bytes()).trim().to_string(),
            });
        }
        Ok(resp)
    }

    /// A GET's whole body as text.
    pub async fn get_text(&self, path: &str) -> Result<String, ClientError> {
        let r = self.request(Method::GET, path, Bytes::new()).await?;
        let b = r.into_body().collect().await.map_err(self.http())?;
        Ok(String::from_utf8_lossy(&b.to_bytes()).into_owned())
    }

    /// The digests of `digests` the server lacks.
    pub async fn missing(&self, digests: Vec<String>) -> Result<Vec<String>, ClientError> {
        let body = serde_json::to_vec(&MissingRequest { digests }).unwrap_or_default();
        let r = self
            .request(Method::POST, "/context/missing", body.into())
            .await?;
        let b = r.into_body().collect().await.map_err(self.http())?;
        let m: MissingResponse =
            serde_json::from_slice(&b.to_bytes()).map_err(|e| ClientError::Bad {
                addr: self.text.clone(),
                msg: e.to_string(),
            })?;
        Ok(m.missing)
    }

    /// Upload one context file.
    pub async fn upload(&self, digest: &str, content: Bytes) -> Result<(), ClientError> {
        self.request(Method::PUT, &format!("/blobs/{digest}"), content)
            .await
            .map(|_| ())
    }

    /// Run a build; every frame goes to `on_frame`; the exit code.
    pub async fn build(
        &self,
        req: &BuildRequest,
        on_frame: impl FnMut(Frame),
    ) -> Result<i32, ClientError> {
        let body = serde_json::to_vec(req).unwrap_or_default();
        self.frames("/build", body, on_frame).await
    }

    /// Run `rbuild images|du|prune` on the server's store; as [`Client::build`].
    pub async fn store(
        &self,
        req: &StoreRequest,
        on_frame: impl FnMut(Frame),
    ) -> Result<i32, ClientError> {
        let body = serde_json::to_vec(req).unwrap_or_default();
        self.frames("/store", body, on_frame).await
    }

    /// POST `body` to `path` and read the frames answered.
    async fn frames(
        &self,
        path: &str,
        body: Vec<u8>,
        mut on_frame: impl FnMut(Frame),
    ) -> Result<i32, ClientError> {
        let mut body = self
            .request(Method::POST, path, body.into())
            .await?
            .into_body();
        let mut pending: Vec<u8> = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(self.http())?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            pending.extend_from_slice(&data);
            while let Some(nl) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=nl).collect();
                let line = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
                match Frame::decode(&line) {
                    Some(Frame::Exit(c)) => return Ok(c),
                    Some(f) => on_frame(f),
                    None => {}
                }
            }
        }
        Err(ClientError::Truncated(self.text.clone()))
    }
}

async fn handshake<T>(
    io: TokioIo<T>,
) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>, hyper::Error>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}
