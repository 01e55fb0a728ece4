//! Downloading chosen blobs of a repository into the store (each verified
//! against its digest), without its manifest: the layers of a build cache
//! that a step taken from it needs.

use super::RegistryError;
use super::auth::credentials_for;
use super::config::RegistryOptions;
use super::reference::Reference;
use super::remote::{Remote, is_transport};
use crate::cache::Store;
use crate::digest::Digest;
use oci_client::RegistryOperation;
use std::sync::Arc;

/// Download `blobs` of `r`'s repository that the store lacks. Blocks; runs
/// its own small runtime.
pub fn download_blobs(
    store: &Arc<Store>,
    r: &Reference,
    opts: &RegistryOptions,
    blobs: &[Digest],
) -> Result<usize, RegistryError> {
    let missing: Vec<Digest> = blobs
        .iter()
        .filter(|d| !store.has_blob(d))
        .copied()
        .collect();
    if missing.is_empty() {
        return Ok(0);
    }
    let err = |reason: String| RegistryError::Pull {
        reference: r.to_string(),
        reason,
    };
    if opts.offline {
        return Err(err("RBUILD_OFFLINE is set: no registry is contacted".into()));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| err(format!("starting the network runtime: {e}")))?;
    rt.block_on(async {
        let Some(ep) = opts.pull_endpoints(r.domain()).pop() else {
            return Err(err("no endpoint to pull from".into()));
        };
        let auth = credentials_for(&ep.host)?;
        for (i, scheme) in ep.schemes.iter().enumerate() {
            let remote = Remote::new(&ep, scheme, r, auth.clone())?;
            match remote
                .client
                .auth(&remote.oref, &remote.auth, RegistryOperation::Pull)
                .await
            {
                Err(e) if is_transport(&e) && i + 1 < ep.schemes.len() => continue,
                Err(e) => return Err(remote.explain(e)),
                Ok(_) => {}
            }
            for d in &missing {
                super::pull::download(store, &remote, *d, None).await?;
            }
            return Ok(missing.len());
        }
        Err(err(format!("no scheme to reach {}", ep.host)))
    })
}
