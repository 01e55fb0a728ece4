//! One registry endpoint over the distribution API, through `oci-client`:
//! the client for a scheme, its credentials, and errors turned into
//! messages that name the reference.

use super::RegistryError;
use super::config::Endpoint;
use super::reference::Reference;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Manifest media types rbuild accepts.
pub const ACCEPT: &[&str] = &[
    oci_client::manifest::OCI_IMAGE_INDEX_MEDIA_TYPE,
    oci_client::manifest::IMAGE_MANIFEST_LIST_MEDIA_TYPE,
    oci_client::manifest::OCI_IMAGE_MEDIA_TYPE,
    oci_client::manifest::IMAGE_MANIFEST_MEDIA_TYPE,
];

/// A connection to one endpoint for one repository.
pub struct Remote {
    /// The client (auth tokens cached inside).
    pub client: oci_client::Client,
    /// The reference as the client sees it (mirror host set when mirrored).
    pub oref: oci_client::Reference,
    /// Credentials for the endpoint.
    pub auth: RegistryAuth,
    /// The endpoint's host.
    pub host: String,
    /// The scheme in use.
    pub scheme: &'static str,
    /// The user's reference, for messages.
    pub reference: String,
    /// Whether credentials were configured for the host.
    pub has_credentials: bool,
    /// Pushing (errors say so; blobs go up in one PUT each).
    pushing: bool,
    /// Without credentials: a client that never authenticates, used for
    /// blobs while the registry serves them so (oci-client would ping
    /// `/v2/` before every request of an anonymous client).
    open_client: Option<oci_client::Client>,
    open: AtomicBool,
}

impl Remote {
    /// A client for `ep` speaking `scheme`, for the repository of `r`.
    pub fn new(
        ep: &Endpoint,
        scheme: &'static str,
        r: &Reference,
        auth: RegistryAuth,
    ) -> Result<Remote, RegistryError> {
        Self::with_mode(ep, scheme, r, auth, false)
    }

    /// The same for pushing to `r`: blobs are uploaded in one request each
    /// (a streamed `PUT`, not chunks), and errors say `failed to push`.
    pub fn for_push(
        ep: &Endpoint,
        scheme: &'static str,
        r: &Reference,
        auth: RegistryAuth,
    ) -> Result<Remote, RegistryError> {
        Self::with_mode(ep, scheme, r, auth, true)
    }

    fn with_mode(
        ep: &Endpoint,
        scheme: &'static str,
        r: &Reference,
        auth: RegistryAuth,
        pushing: bool,
    ) -> Result<Remote, RegistryError> {
        // reqwest is built without its own TLS provider: use ring (as ureq).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut extra = Vec::new();
        for ca in &ep.ca {
            let data = std::fs::read(ca).map_err(|e| RegistryError::Config {
                path: ca.clone(),
                reason: format!("CA certificate for {}: {e}", ep.host),
            })?;
            extra.push(Certificate {
                encoding: CertificateEncoding::Pem,
                data,
            });
        }
        let config = || ClientConfig {
            protocol: if scheme == "http" {
                ClientProtocol::Http
            } else {
                ClientProtocol::Https
            },
            accept_invalid_certificates: ep.skip_verify,
            extra_root_certificates: extra.clone(),
            platform_resolver: None,
            connect_timeout: Some(Duration::from_secs(15)),
            read_timeout: Some(Duration::from_secs(120)),
            user_agent: concat!("rbuild/", env!("CARGO_PKG_VERSION")),
            https_proxy: proxy_env("HTTPS_PROXY"),
            http_proxy: proxy_env("HTTP_PROXY"),
            // Loopback registries are never reached through a proxy.
            no_proxy: Some(match proxy_env("NO_PROXY") {
                Some(n) => format!("{n},localhost,127.0.0.1,::1"),
                None => "localhost,127.0.0.1,::1".into(),
            }),
            use_monolithic_push: pushing,
            ..Default::default()
        };
        let make = || {
            oci_client::Client::try_from(config()).map_err(|e| {
                error_for(
                    pushing,
                    r.to_string(),
                    format!("setting up a client for {}: {e}", ep.host),
                )
            })
        };
        let client = make()?;
        let anonymous = matches!(auth, RegistryAuth::Anonymous);
        let open_client = if anonymous && !pushing {
            Some(make()?)
        } else {
            None
        };
        let repo = r.path().to_string();
        let mut oref = match (r.digest(), r.tag()) {
            (Some(d), _) => oci_client::Reference::with_digest(r.domain().into(), repo, d.into()),
            (None, t) => oci_client::Reference::with_tag(
                r.domain().into(),
                repo,
                t.unwrap_or("latest").into(),
            ),
        };
        if ep.mirror || ep.host != r.domain() {
            oref.set_mirror_registry(ep.host.clone());
        }
        Ok(Remote {
            client,
            oref,
            has_credentials: !anonymous,
            open_client,
            open: AtomicBool::new(anonymous && !pushing),
            pushing,
            auth,
            host: ep.host.clone(),
            scheme,
            reference: r.to_string(),
        })
    }

    /// Open a blob's stream: through the never-authenticating client while
    /// the registry accepts that, else (after its first refusal, e.g. a
    /// registry that wants a token) through the authenticating one.
    pub async fn blob_stream(
        &self,
        digest: &str,
    ) -> Result<oci_client::client::SizedStream, RegistryError> {
        if let Some(open) = &self.open_client
            && self.open.load(Ordering::Relaxed)
        {
            match open.pull_blob_stream(&self.oref, digest).await {
                Err(e) if is_refusal(&e) => self.open.store(false, Ordering::Relaxed),
                r => return r.map_err(|e| self.explain(e)),
            }
        }
        self.client
            .pull_blob_stream(&self.oref, digest)
            .await
            .map_err(|e| self.explain(e))
    }

    /// An error about this reference.
    pub fn error(&self, reason: impl Into<String>) -> RegistryError {
        error_for(self.pushing, self.reference.clone(), reason.into())
    }

    /// Turn a client error into a message a user can act on.
    pub fn explain(&self, e: OciDistributionError) -> RegistryError {
        use OciDistributionError as E;
        let denied = |code: &str| {
            let creds = if self.has_credentials {
                format!("the credentials for {} were refused", self.host)
            } else {
                format!(
                    "no credentials for {} in {}",
                    self.host,
                    docker_config_path()
                )
            };
            if self.pushing {
                format!("push access denied, authorization required: {code} ({creds})")
            } else {
                format!(
                    "pull access denied, repository does not exist or may require authorization: {code} ({creds})"
                )
            }
        };
        // 403: known but not allowed (Docker's `denied: ...`).
        let forbidden = |msg: &str| {
            let who = if self.has_credentials {
                format!("with the credentials for {}", self.host)
            } else {
                format!(
                    "without credentials (none for {} in {})",
                    self.host,
                    docker_config_path()
                )
            };
            format!(
                "denied: {msg} (registry {} answered 403 Forbidden {who})",
                self.host
            )
        };
        const DENIED: &str = "requested access to the resource is denied";
        let reason = match &e {
            // A status turned into an error by the client (a HEAD, say).
            E::RequestError(re) if re.status().is_some() => {
                let code = re.status().map(|c| c.as_u16()).unwrap_or_default();
                match code {
                    401 => denied("401 Unauthorized"),
                    403 => forbidden(DENIED),
                    _ => format!("registry {} answered HTTP {code}", self.host),
                }
            }
            E::RequestError(re) => format!(
                "cannot reach registry {} over {}: {}",
                self.host,
                self.scheme,
                chain(re)
            ),
            E::UnauthorizedError { .. } => denied("401 Unauthorized"),
            E::AuthenticationFailure(m) => denied(&format!("token request failed: {m}")),
            E::RegistryError { envelope, .. } => {
                let codes: Vec<String> = envelope
                    .errors
                    .iter()
                    .map(|x| format!("{:?}", x.code))
                    .collect();
                let text = envelope.to_string();
                let message = envelope
                    .errors
                    .first()
                    .map(|x| x.message.clone())
                    .filter(|m| !m.is_empty())
                    .unwrap_or_else(|| DENIED.to_string());
                if codes.iter().any(|c| c.contains("Unknown")) && !self.pushing {
                    format!("{}: not found", self.reference)
                } else if codes.iter().any(|c| c.contains("Denied")) {
                    forbidden(&message)
                } else if codes.iter().any(|c| c.contains("Unauthorized")) {
                    denied(&text)
                } else {
                    format!("registry {} refused: {text}", self.host)
                }
            }
            E::ServerError { code, message, .. } => match code {
                404 => format!("{}: not found", self.reference),
                401 => denied("401 Unauthorized"),
                403 => forbidden(DENIED),
                _ if message.trim_start().starts_with('<') => format!(
                    "registry {} answered HTTP {code} with HTML, not the distribution API",
                    self.host
                ),
                _ => format!(
                    "registry {} answered HTTP {code}: {}",
                    self.host,
                    message.chars().take(200).collect::<String>()
                ),
            },
            E::DigestError(d) => {
                format!("content from {} does not match its digest: {d}", self.host)
            }
            E::VersionedParsingError(m) | E::ManifestParsingError(m) => format!(
                "registry {} answered with something that is not a manifest: {m}",
                self.host
            ),
            other => format!("registry {}: {other}", self.host),
        };
        self.error(reason)
    }
}

/// A pull or push error about `reference`.
fn error_for(pushing: bool, reference: String, reason: String) -> RegistryError {
    if pushing {
        RegistryError::Push { reference, reason }
    } else {
        RegistryError::Pull { reference, reason }
    }
}

/// A proxy variable as Docker reads it (upper or lower case).
fn proxy_env(name: &str) -> Option<String> {
    [name.to_string(), name.to_lowercase()]
        .iter()
        .find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
}

/// Whether the registry refused an unauthenticated request.
fn is_refusal(e: &OciDistributionError) -> bool {
    use OciDistributionError as E;
    matches!(
        e,
        E::UnauthorizedError { .. }
            | E::RegistryError { .. }
            | E::ServerError {
                code: 401 | 403,
                ..
            }
    )
}

/// Whether an error means the endpoint could not be reached (so another
/// scheme or mirror may be tried).
pub fn is_transport(e: &OciDistributionError) -> bool {
    matches!(e, OciDistributionError::RequestError(_))
}

/// `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`, for messages.
fn docker_config_path() -> String {
    match std::env::var_os("DOCKER_CONFIG") {
        Some(d) => format!("{}/config.json", d.to_string_lossy()),
        None => "~/.docker/config.json".into(),
    }
}

/// An error and its causes, `: `-separated.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}
