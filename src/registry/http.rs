//! The few distribution-API requests rbuild makes itself, beside
//! `oci-client`: the `/v2/` ping and its auth challenge (for `login`), a
//! token for several repository scopes at once (for cross-repository
//! mounts), a manifest `HEAD` by tag (for `--pull` on a stored base) and a
//! blob mount. Same TLS, proxy and timeout settings as the client's.

use super::config::Endpoint;
use oci_client::secrets::RegistryAuth;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, WWW_AUTHENTICATE};
use std::time::Duration;

/// How a registry wants requests authenticated (its `WWW-Authenticate`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// No challenge: requests need no credentials.
    None,
    /// `Basic realm=...`: credentials in every request.
    Basic,
    /// `Bearer realm=...,service=...`: a token from `realm`.
    Bearer {
        /// The token endpoint.
        realm: String,
        /// The `service` parameter of token requests.
        service: Option<String>,
    },
}

impl Challenge {
    /// The challenge of a response's headers.
    pub fn of(headers: &HeaderMap) -> Challenge {
        let Some(v) = headers.get(WWW_AUTHENTICATE).and_then(|v| v.to_str().ok()) else {
            return Challenge::None;
        };
        let (scheme, params) = v.trim().split_once(' ').unwrap_or((v.trim(), ""));
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Challenge::Basic;
        }
        let param = |name: &str| -> Option<String> {
            params_of(params)
                .into_iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
        };
        match param("realm") {
            Some(realm) => Challenge::Bearer {
                realm,
                service: param("service"),
            },
            None => Challenge::Basic,
        }
    }
}

/// `key="value", key=value` pairs of a challenge.
fn params_of(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    while let Some((k, after)) = rest.split_once('=') {
        let key = k.trim().trim_start_matches(',').trim().to_string();
        let after = after.trim_start();
        let (value, tail) = match after.strip_prefix('"') {
            Some(q) => match q.find('"') {
                Some(end) => (&q[..end], &q[end + 1..]),
                None => (q, ""),
            },
            None => after.split_once(',').unwrap_or((after, "")),
        };
        out.push((key, value.to_string()));
        rest = tail.trim_start().trim_start_matches(',');
    }
    out
}

/// Why a token request failed.
#[derive(Debug)]
pub enum TokenError {
    /// The token server could not be reached.
    Transport(reqwest::Error),
    /// It answered with this status and body.
    Refused(StatusCode, String),
}

/// Requests to one registry endpoint over one scheme.
pub struct Http {
    client: reqwest::Client,
    /// `scheme://host`.
    pub base: String,
}

impl Http {
    /// A client for `ep` over `scheme`.
    pub fn new(ep: &Endpoint, scheme: &str) -> Result<Http, String> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut b = reqwest::Client::builder()
            .danger_accept_invalid_certs(ep.skip_verify)
            .connect_timeout(Duration::from_secs(15))
            .read_timeout(Duration::from_secs(120))
            .user_agent(concat!("rbuild/", env!("CARGO_PKG_VERSION")));
        for ca in &ep.ca {
            let pem = std::fs::read(ca).map_err(|e| format!("{}: {e}", ca.display()))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .map_err(|e| format!("{}: {e}", ca.display()))?;
            b = b.add_root_certificate(cert);
        }
        // Loopback registries are never reached through a proxy.
        let no_proxy = reqwest::NoProxy::from_string(&match proxy_env("NO_PROXY") {
            Some(n) => format!("{n},localhost,127.0.0.1,::1"),
            None => "localhost,127.0.0.1,::1".into(),
        });
        b = b.no_proxy();
        for (var, https) in [("HTTPS_PROXY", true), ("HTTP_PROXY", false)] {
            if let Some(url) = proxy_env(var) {
                let p = if https {
                    reqwest::Proxy::https(&url)
                } else {
                    reqwest::Proxy::http(&url)
                };
                let p = p.map_err(|e| format!("{var}={url}: {e}"))?;
                b = b.proxy(p.no_proxy(no_proxy.clone()));
            }
        }
        let client = b.build().map_err(|e| e.to_string())?;
        Ok(Http {
            client,
            base: format!("{scheme}://{}", ep.host),
        })
    }

    /// `GET /v2/`, with `auth` when given (Basic): its status and challenge.
    pub async fn ping(
        &self,
        auth: Option<&RegistryAuth>,
    ) -> Result<(StatusCode, Challenge), reqwest::Error> {
        let mut req = self.client.get(format!("{}/v2/", self.base));
        if let Some(RegistryAuth::Basic(u, p)) = auth {
            req = req.basic_auth(u, Some(p));
        }
        let res = req.send().await?;
        Ok((res.status(), Challenge::of(res.headers())))
    }

    /// A bearer token from `realm` for `scopes` (none for a login check),
    /// asked with `auth`'s credentials, as Docker asks for one.
    pub async fn token(
        &self,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
        auth: &RegistryAuth,
    ) -> Result<String, TokenError> {
        let mut query: Vec<(&str, &str)> = Vec::new();
        if let Some(s) = service {
            query.push(("service", s));
        }
        for s in scopes {
            query.push(("scope", s));
        }
        let mut req = self.client.get(realm);
        if let RegistryAuth::Basic(u, p) = auth {
            req = req.basic_auth(u, Some(p));
            query.push(("account", u));
        }
        req = req.query(&query);
        let res = req.send().await.map_err(TokenError::Transport)?;
        let status = res.status();
        let body = res.text().await.map_err(TokenError::Transport)?;
        if !status.is_success() {
            return Err(TokenError::Refused(status, body));
        }
        let v: serde_json::Value = serde_json::from_str(&body)
            .map_err(|e| TokenError::Refused(status, format!("not a token: {e}")))?;
        v["token"]
            .as_str()
            .or_else(|| v["access_token"].as_str())
            .map(str::to_string)
            .ok_or_else(|| TokenError::Refused(status, "no token in the answer".into()))
    }

    /// The `Authorization` header value for `challenge` and `scopes`: the
    /// credentials (Basic), a token (Bearer), or none.
    pub async fn authorization(
        &self,
        challenge: &Challenge,
        scopes: &[String],
        auth: &RegistryAuth,
    ) -> Result<Option<String>, TokenError> {
        Ok(match challenge {
            Challenge::None => None,
            Challenge::Basic => match auth {
                RegistryAuth::Basic(u, p) => Some(basic(u, p)),
                _ => None,
            },
            Challenge::Bearer { realm, service } => Some(format!(
                "Bearer {}",
                self.token(realm, service.as_deref(), scopes, auth).await?
            )),
        })
    }

    /// `HEAD` the manifest `repo:tag` accepting `accept`: the status, the
    /// `Docker-Content-Digest` and the challenge of a refusal.
    pub async fn head_manifest(
        &self,
        repo: &str,
        tag: &str,
        accept: &[&str],
        authorization: Option<&str>,
    ) -> Result<(StatusCode, Option<String>, Challenge), reqwest::Error> {
        let mut req = self
            .client
            .head(format!("{}/v2/{repo}/manifests/{tag}", self.base))
            .header(reqwest::header::ACCEPT, accept.join(", "));
        if let Some(a) = authorization {
            req = req.header(reqwest::header::AUTHORIZATION, a);
        }
        let res = req.send().await?;
        let digest = res
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        Ok((res.status(), digest, Challenge::of(res.headers())))
    }

    /// Ask the registry to mount `digest` from the repository `from` into
    /// `repo`. True when it did (201); a refusal (202 opens an upload
    /// instead, which is cancelled) is false.
    pub async fn mount(
        &self,
        repo: &str,
        from: &str,
        digest: &str,
        authorization: Option<&str>,
    ) -> Result<bool, reqwest::Error> {
        let mut req = self
            .client
            .post(format!("{}/v2/{repo}/blobs/uploads/", self.base))
            .query(&[("mount", digest), ("from", from)])
            .header(reqwest::header::CONTENT_LENGTH, "0");
        if let Some(a) = authorization {
            req = req.header(reqwest::header::AUTHORIZATION, a);
        }
        let res = req.send().await?;
        if res.status() == StatusCode::CREATED {
            return Ok(true);
        }
        if res.status() == StatusCode::ACCEPTED
            && let Some(loc) = res
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
        {
            let url = if loc.starts_with('/') {
                format!("{}{loc}", self.base)
            } else {
                loc.to_string()
            };
            let mut del = self.client.delete(url);
            if let Some(a) = authorization {
                del = del.header(reqwest::header::AUTHORIZATION, a);
            }
            let _ = del.send().await;
        }
        Ok(false)
    }
}

/// `Basic base64(user:pass)`.
pub fn basic(user: &str, pass: &str) -> String {
    format!("Basic {}", base64(format!("{user}:{pass}").as_bytes()))
}

/// Standard base64 with padding (HTTP Basic, config.json's `auth`).
pub fn base64(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// A proxy variable as Docker reads it (upper or lower case).
pub fn proxy_env(name: &str) -> Option<String> {
    [name.to_string(), name.to_lowercase()]
        .iter()
        .find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn challenge(v: &str) -> Challenge {
        let mut h = HeaderMap::new();
        h.insert(WWW_AUTHENTICATE, HeaderValue::from_str(v).unwrap());
        Challenge::of(&h)
    }

    #[test]
    fn parses_challenges() {
        assert_eq!(challenge("Basic realm=\"test\""), Challenge::Basic);
        assert_eq!(
            challenge(
                "Bearer realm=\"http://127.0.0.1:9/token\",service=\"reg\",scope=\"repository:a/b:pull\""
            ),
            Challenge::Bearer {
                realm: "http://127.0.0.1:9/token".into(),
                service: Some("reg".into())
            }
        );
        assert_eq!(
            challenge("bearer realm=https://auth.example/t"),
            Challenge::Bearer {
                realm: "https://auth.example/t".into(),
                service: None
            }
        );
        assert_eq!(Challenge::of(&HeaderMap::new()), Challenge::None);
        assert_eq!(base64(b"u:p"), "dTpw");
    }
}
