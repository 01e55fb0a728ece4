//! `--pull` on a stored base: one `HEAD` of the tag's manifest (with the
//! accepted media types) tells whether the tag still names what is stored,
//! by its `Docker-Content-Digest`: the stored platform manifest itself, or
//! an index kept in the store whose entry for the platform is that
//! manifest. Only a change (or no answer) needs the full resolve.

use super::RegistryError;
use super::auth::credentials_for;
use super::config::RegistryOptions;
use super::http::{Challenge, Http};
use super::pull::choose;
use super::reference::Reference;
use super::remote::ACCEPT;
use crate::cache::Store;
use crate::digest::Digest;
use crate::frontend::platform::Platform;
use reqwest::StatusCode;

/// Whether `top` (what the reference names: a manifest or an index) leads
/// to the stored platform manifest `stored` without any request.
pub fn leads_to(store: &Store, top: &Digest, stored: &Digest, platform: &Platform) -> bool {
    if top == stored {
        return true;
    }
    let Ok(bytes) = store.read_blob(top) else {
        return false;
    };
    serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| choose(&v, platform))
        .is_some_and(|d| &d == stored)
}

/// Whether the tag `r` still names the stored manifest `stored` at its
/// registry (mirrors first): the host that said so, or `None` when it
/// changed or could not be told (then the caller resolves in full, which
/// reports errors). A digest reference needs no request.
pub fn is_current(
    store: &Store,
    r: &Reference,
    opts: &RegistryOptions,
    platform: &Platform,
    stored: &Digest,
) -> Result<Option<String>, RegistryError> {
    if let Some(d) = r.digest().and_then(|d| d.parse::<Digest>().ok()) {
        return Ok(leads_to(store, &d, stored, platform).then(|| r.domain().to_string()));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| RegistryError::Pull {
            reference: r.to_string(),
            reason: format!("starting the network runtime: {e}"),
        })?;
    let top = rt.block_on(head(r, opts));
    Ok(top.and_then(|(host, top)| leads_to(store, &top, stored, platform).then_some(host)))
}

/// The digest the tag names, from the first endpoint that answers a HEAD.
pub async fn head(r: &Reference, opts: &RegistryOptions) -> Option<(String, Digest)> {
    let tag = r.tag().unwrap_or("latest");
    for ep in opts.pull_endpoints(r.domain()) {
        for scheme in &ep.schemes {
            let Ok(http) = Http::new(&ep, scheme) else {
                continue;
            };
            let (status, digest, challenge) =
                match http.head_manifest(r.path(), tag, ACCEPT, None).await {
                    Ok(a) => a,
                    Err(_) => continue, // another scheme, or the next endpoint
                };
            let digest = match (status, challenge) {
                (StatusCode::OK, _) => digest,
                (StatusCode::UNAUTHORIZED, c @ (Challenge::Basic | Challenge::Bearer { .. })) => {
                    let auth = credentials_for(&ep.host).ok()?;
                    let scope = [format!("repository:{}:pull", r.path())];
                    let a = http.authorization(&c, &scope, &auth).await.ok()?;
                    match http
                        .head_manifest(r.path(), tag, ACCEPT, a.as_deref())
                        .await
                    {
                        Ok((StatusCode::OK, d, _)) => d,
                        _ => None,
                    }
                }
                _ => None,
            };
            match digest.and_then(|d| d.parse().ok()) {
                Some(d) => return Some((ep.host.clone(), d)),
                // This endpoint answered without a digest: resolve in full.
                None if !ep.mirror => return None,
                None => break,
            }
        }
    }
    None
}
