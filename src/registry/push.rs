//! Pushing an image from the store to a registry: the layer blobs first
//! (skipped when the registry has them, mounted from another repository of
//! the same registry when a stored image pulled from there has them, else
//! uploaded), then the config, then the manifest last, so the tag never
//! names an image whose blobs are missing.

use super::RegistryError;
use super::auth::credentials_for;
use super::config::{Endpoint, RegistryOptions};
use super::mount::Mounter;
use super::reference::Reference;
use super::remote::{Remote, is_transport};
use crate::cache::Store;
use crate::digest::Digest;
use oci_client::RegistryOperation;
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::io::Read;
use std::sync::Arc;

/// Blobs uploaded at once (Docker's max-concurrent-uploads is 5).
const MAX_CONCURRENT_UPLOADS: usize = 4;
/// Further attempts at a blob whose upload failed.
const UPLOAD_RETRIES: u64 = 2;
/// Bytes per chunk of a streamed upload.
const CHUNK: usize = 1 << 20;

/// What a push did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// The manifest's digest (what the tag now names).
    pub digest: Digest,
    /// The host pushed to.
    pub host: String,
    /// Blobs (layers and config) uploaded.
    pub uploaded: usize,
    /// Blobs mounted from another repository of the registry.
    pub mounted: usize,
    /// Blobs the repository already had.
    pub existing: usize,
}

/// How one blob got to the registry.
enum Sent {
    Uploaded,
    Mounted,
    Existing,
}

/// Push the image whose manifest is the stored blob `manifest` (its config
/// and layers stored too) to `target` (a tag; `latest` when none).
/// Blocks; runs its own small runtime.
pub fn push(
    store: &Arc<Store>,
    manifest: &Digest,
    target: &Reference,
    opts: &RegistryOptions,
) -> Result<Pushed, RegistryError> {
    let err = |reason: String| RegistryError::Push {
        reference: target.to_string(),
        reason,
    };
    if target.digest().is_some() {
        return Err(err(
            "cannot push to a digest reference: give a tag (NAME:TAG)".into(),
        ));
    }
    if opts.offline {
        return Err(err("RBUILD_OFFLINE is set: no registry is contacted".into()));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| err(format!("starting the network runtime: {e}")))?;
    rt.block_on(push_async(store, manifest, target, opts))
}

async fn push_async(
    store: &Arc<Store>,
    manifest: &Digest,
    target: &Reference,
    opts: &RegistryOptions,
) -> Result<Pushed, RegistryError> {
    // No mirrors for pushes: the registry itself.
    let Some(ep) = opts.pull_endpoints(target.domain()).pop() else {
        return Err(RegistryError::Push {
            reference: target.to_string(),
            reason: "no endpoint to push to".into(),
        });
    };
    let auth = credentials_for(&ep.host)?;
    let mut remote = None;
    for (i, scheme) in ep.schemes.iter().enumerate() {
        let r = Remote::for_push(&ep, scheme, target, auth.clone())?;
        // Asks `/v2/` how to authenticate (and for a push token): the
        // first request, so it also chooses the scheme.
        match r
            .client
            .auth(&r.oref, &r.auth, RegistryOperation::Push)
            .await
        {
            Err(e) if is_transport(&e) && i + 1 < ep.schemes.len() => {}
            Err(e) => return Err(r.explain(e)),
            Ok(_) => {
                remote = Some(r);
                break;
            }
        }
    }
    let Some(remote) = remote else {
        return Err(RegistryError::Push {
            reference: target.to_string(),
            reason: format!("no scheme to reach {}", ep.host),
        });
    };
    push_image(store, &remote, &ep, manifest, target).await
}

/// The manifest's media type, config and layer descriptors (digest, size).
fn blobs_of(remote: &Remote, body: &[u8]) -> Result<(String, Vec<(Digest, u64)>), RegistryError> {
    let m: Value = serde_json::from_slice(body)
        .map_err(|e| remote.error(format!("the stored manifest is not JSON: {e}")))?;
    let media = m["mediaType"]
        .as_str()
        .unwrap_or(crate::image::manifest::MANIFEST_MEDIA_TYPE)
        .to_string();
    let descriptor = |v: &Value| -> Result<(Digest, u64), RegistryError> {
        let d = v["digest"].as_str().and_then(|s| s.parse().ok());
        match (d, v["size"].as_u64()) {
            (Some(d), Some(s)) => Ok((d, s)),
            _ => Err(remote.error(format!("manifest descriptor without digest or size: {v}"))),
        }
    };
    let mut blobs = Vec::new();
    for l in m["layers"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
        blobs.push(descriptor(l)?);
    }
    blobs.push(descriptor(&m["config"])?);
    Ok((media, blobs))
}

/// Push an image, or an index: each of its manifests (by digest, with
/// their blobs) first, then the index under the tag.
async fn push_image(
    store: &Arc<Store>,
    remote: &Remote,
    ep: &Endpoint,
    manifest: &Digest,
    target: &Reference,
) -> Result<Pushed, RegistryError> {
    let store_err = |e: &dyn std::fmt::Display| remote.error(format!("reading the store: {e}"));
    let body = store.read_blob(manifest).map_err(|e| store_err(&e))?;
    let v: Value = serde_json::from_slice(&body)
        .map_err(|e| remote.error(format!("the stored manifest is not JSON: {e}")))?;
    let Some(children) = v["manifests"].as_array() else {
        return push_manifest(store, remote, ep, manifest, target, &remote.oref).await;
    };
    let mut total = Pushed {
        digest: *manifest,
        host: remote.host.clone(),
        uploaded: 0,
        mounted: 0,
        existing: 0,
    };
    for c in children {
        let Some(d) = c["digest"].as_str().and_then(|s| s.parse::<Digest>().ok()) else {
            return Err(remote.error(format!("index entry without a digest: {c}")));
        };
        let by_digest = oci_client::Reference::with_digest(
            remote.oref.registry().to_string(),
            remote.oref.repository().to_string(),
            d.to_string(),
        );
        let p = push_manifest(store, remote, ep, &d, target, &by_digest).await?;
        total.uploaded += p.uploaded;
        total.mounted += p.mounted;
        total.existing += p.existing;
    }
    let media = v["mediaType"]
        .as_str()
        .unwrap_or(crate::export::multi::INDEX_MEDIA_TYPE);
    let content_type = media
        .parse()
        .map_err(|_| remote.error(format!("invalid index media type {media:?}")))?;
    remote
        .client
        .push_manifest_raw(&remote.oref, body, content_type)
        .await
        .map_err(|e| remote.explain(e))?;
    Ok(total)
}

/// Push one image manifest (its layers, config, then itself) as `oref`
/// (the tag, or its digest for an index's entry).
async fn push_manifest(
    store: &Arc<Store>,
    remote: &Remote,
    ep: &Endpoint,
    manifest: &Digest,
    target: &Reference,
    oref: &oci_client::Reference,
) -> Result<Pushed, RegistryError> {
    let store_err = |e: &dyn std::fmt::Display| remote.error(format!("reading the store: {e}"));
    let body = store.read_blob(manifest).map_err(|e| store_err(&e))?;
    let (media, mut blobs) = blobs_of(remote, &body)?;
    let sources = mount_sources(store, target);
    // A blob not stored (a layer of a lazily pulled base) can still be
    // mounted from a repository of the registry that has it.
    for (d, _) in &blobs {
        if !store.has_blob(d) && !sources.contains_key(d) {
            return Err(remote.error(format!("blob {d} of manifest {manifest} is not stored")));
        }
    }
    let config = blobs.pop().expect("the config descriptor");
    let mounter = if sources.is_empty() {
        None
    } else {
        Mounter::new(ep, remote.scheme, target.path()).await
    };
    let mounter = mounter.as_ref();
    // Layers (each once) concurrently, then the config, then the manifest.
    let mut seen = HashSet::new();
    blobs.retain(|(d, _)| seen.insert(*d));
    let slots = tokio::sync::Semaphore::new(MAX_CONCURRENT_UPLOADS);
    let tasks = blobs.iter().map(|&(d, size)| {
        let (slots, sources) = (&slots, &sources);
        async move {
            let _slot = slots
                .acquire()
                .await
                .map_err(|e| remote.error(e.to_string()))?;
            send_blob(store, remote, d, size, sources.get(&d), mounter).await
        }
    });
    let mut sent = futures_util::future::try_join_all(tasks).await?;
    if !seen.contains(&config.0) {
        let from = sources.get(&config.0);
        sent.push(send_blob(store, remote, config.0, config.1, from, mounter).await?);
    }
    let content_type = media
        .parse()
        .map_err(|_| remote.error(format!("invalid manifest media type {media:?}")))?;
    remote
        .client
        .push_manifest_raw(oref, body, content_type)
        .await
        .map_err(|e| remote.explain(e))?;
    let count = |f: fn(&Sent) -> bool| sent.iter().filter(|s| f(s)).count();
    Ok(Pushed {
        digest: *manifest,
        host: remote.host.clone(),
        uploaded: count(|s| matches!(s, Sent::Uploaded)),
        mounted: count(|s| matches!(s, Sent::Mounted)),
        existing: count(|s| matches!(s, Sent::Existing)),
    })
}

/// Blob → repositories of the target's registry that have it: the
/// layers and configs of stored images pulled from there (for
/// cross-repository mounts).
fn mount_sources(store: &Store, target: &Reference) -> BTreeMap<Digest, Vec<String>> {
    let mut out: BTreeMap<Digest, Vec<String>> = BTreeMap::new();
    for (name, entry) in store.images() {
        let Ok(r) = Reference::parse(&name) else {
            continue;
        };
        let Some(m) = entry.manifest else { continue };
        // The target's own repository is kept too: a blob not stored may
        // already be there (an image's inline cache taken by a build that
        // pushes to the same repository), which the HEAD check finds.
        if r.domain() != target.domain() {
            continue;
        }
        let Some(v) = store
            .read_blob(&m)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        else {
            continue;
        };
        let layers = v["layers"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        for l in layers.iter().chain([&v["config"]]) {
            if let Some(d) = l["digest"].as_str().and_then(|s| s.parse().ok()) {
                let repos = out.entry(d).or_default();
                if !repos.iter().any(|x| x == r.path()) {
                    repos.push(r.path().to_string());
                }
            }
        }
    }
    out
}

/// Get one blob into the repository: nothing when it is there, a mount
/// when another repository has it, else an upload.
async fn send_blob(
    store: &Arc<Store>,
    remote: &Remote,
    d: Digest,
    size: u64,
    sources: Option<&Vec<String>>,
    mounter: Option<&Mounter>,
) -> Result<Sent, RegistryError> {
    let digest = d.to_string();
    if remote
        .client
        .blob_exists(&remote.oref, &digest)
        .await
        .map_err(|e| remote.explain(e))?
    {
        return Ok(Sent::Existing);
    }
    if let Some(m) = mounter {
        for repo in sources.into_iter().flatten() {
            // A refused mount falls back to uploading.
            if m.mount(repo, &digest).await {
                return Ok(Sent::Mounted);
            }
        }
    }
    if !store.has_blob(&d) {
        let from = sources.map(|s| s.join(", ")).unwrap_or_default();
        return Err(remote.error(format!(
            "blob {d} was not downloaded (a base layer left in the registry) and {} did not mount it from {from}",
            remote.host
        )));
    }
    // A dropped connection or a server error is tried again with a new
    // upload (as Docker retries layer uploads); a refusal is not.
    let mut attempt = 0u64;
    loop {
        let stream = blob_stream(store, &d).map_err(|e| remote.error(e))?;
        match remote
            .client
            .push_blob_stream(&remote.oref, stream, &digest, Some(size))
            .await
        {
            Ok(_) => return Ok(Sent::Uploaded),
            Err(e) if attempt < UPLOAD_RETRIES && worth_retrying(&e) => {
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(200 * attempt)).await;
            }
            Err(e) => return Err(remote.explain(e)),
        }
    }
}

/// Whether an upload failed in a way another attempt may not: the
/// connection broke, or the server failed (5xx).
fn worth_retrying(e: &oci_client::errors::OciDistributionError) -> bool {
    use oci_client::errors::OciDistributionError as E;
    match e {
        E::RequestError(re) => re.status().is_none_or(|s| s.is_server_error()),
        E::ServerError { code, .. } => *code >= 500,
        _ => false,
    }
}

type Chunk = Result<bytes::Bytes, oci_client::errors::OciDistributionError>;

/// A stored blob as a stream of chunks, read by a blocking task.
fn blob_stream(
    store: &Store,
    d: &Digest,
) -> Result<impl futures_util::Stream<Item = Chunk> + Send + 'static, String> {
    let path = store.blob_path(d);
    let mut f =
        std::fs::File::open(&path).map_err(|e| format!("opening blob {}: {e}", path.display()))?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Chunk>(4);
    tokio::task::spawn_blocking(move || {
        loop {
            let mut buf = vec![0u8; CHUNK];
            let item = match f.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    buf.truncate(n);
                    Ok(bytes::Bytes::from(buf))
                }
                Err(e) => Err(oci_client::errors::OciDistributionError::GenericError(
                    Some(format!("reading blob {}: {e}", path.display())),
                )),
            };
            let stop = item.is_err();
            if tx.blocking_send(item).is_err() || stop {
                return;
            }
        }
    });
    Ok(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|c| (c, rx))
    }))
}
