//! `rbuild login`'s check, as Docker's: credentials are tried against the
//! registry before anything is stored. `GET /v2/` tells how it
//! authenticates; a Basic registry gets the request again with the
//! credentials, a token registry a token request (no scope) with them.

use super::RegistryError;
use super::config::RegistryOptions;
use super::docker_config::hostname;
use super::http::{Challenge, Http, TokenError};
use oci_client::secrets::RegistryAuth;
use reqwest::StatusCode;

fn login_err(server: &str, reason: String) -> RegistryError {
    RegistryError::Login {
        server: server.to_string(),
        reason,
    }
}

/// Check `user`/`password` against the registry of the server key
/// `server` (`HOST[:PORT]`, a URL, or Docker Hub's key).
pub fn verify(
    server: &str,
    user: &str,
    password: &str,
    opts: &RegistryOptions,
) -> Result<(), RegistryError> {
    if opts.offline {
        return Err(login_err(
            server,
            "RBUILD_OFFLINE is set: no registry is contacted".into(),
        ));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| login_err(server, format!("starting the network runtime: {e}")))?;
    let auth = RegistryAuth::Basic(user.to_string(), password.to_string());
    rt.block_on(verify_async(server, &auth, opts))
}

async fn verify_async(
    server: &str,
    auth: &RegistryAuth,
    opts: &RegistryOptions,
) -> Result<(), RegistryError> {
    let host = hostname(server);
    let Some(ep) = opts.pull_endpoints(&host).pop() else {
        return Err(login_err(server, "no endpoint".into()));
    };
    let mut last = String::new();
    for scheme in &ep.schemes {
        let http = Http::new(&ep, scheme).map_err(|e| login_err(server, e))?;
        let url = format!("{}/v2/", http.base);
        let (status, challenge) = match http.ping(None).await {
            Ok(r) => r,
            Err(e) => {
                last = format!("cannot reach registry {host} over {scheme}: {e}");
                continue;
            }
        };
        return match (status, challenge) {
            (s, _) if s.is_success() => Ok(()),
            (StatusCode::UNAUTHORIZED, Challenge::Bearer { realm, service }) => {
                match http.token(&realm, service.as_deref(), &[], auth).await {
                    Ok(_) => Ok(()),
                    Err(TokenError::Refused(s, body)) if s == StatusCode::UNAUTHORIZED => {
                        Err(login_err(server, unauthorized(&body, &realm)))
                    }
                    Err(TokenError::Refused(s, body)) => Err(login_err(
                        server,
                        format!("token server {realm} answered {s}: {}", short(&body)),
                    )),
                    Err(TokenError::Transport(e)) => Err(login_err(
                        server,
                        format!("cannot reach token server {realm}: {e}"),
                    )),
                }
            }
            (StatusCode::UNAUTHORIZED, _) => match http.ping(Some(auth)).await {
                Ok((s, _)) if s.is_success() => Ok(()),
                Ok((s, _)) => Err(login_err(
                    server,
                    format!("unauthorized: login attempt to {url} failed with status: {s}"),
                )),
                Err(e) => Err(login_err(server, format!("cannot reach {url}: {e}"))),
            },
            (s, _) => Err(login_err(
                server,
                format!("login attempt to {url} failed with status: {s}"),
            )),
        };
    }
    Err(login_err(server, last))
}

/// Docker's `unauthorized: ...` from a token server's refusal.
fn unauthorized(body: &str, realm: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let msg = v["details"]
        .as_str()
        .or_else(|| v["errors"][0]["message"].as_str())
        .or_else(|| v["message"].as_str())
        .unwrap_or("incorrect username or password");
    format!("unauthorized: {msg} (token server {realm} answered 401 Unauthorized)")
}

fn short(s: &str) -> String {
    s.chars().take(200).collect()
}
