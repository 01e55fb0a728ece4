//! Pulling an image into the store: resolve the reference (mirrors first,
//! then the registry), choose the platform's manifest from an index, fetch
//! the config, then download every layer concurrently while it is unpacked
//! into its snapshot. Every blob is verified against its digest and kept in
//! the store beside its snapshot, so it is downloaded once.

use super::RegistryError;
use super::auth::credentials_for;
use super::config::RegistryOptions;
use super::reference::Reference;
use super::remote::{ACCEPT, Remote, is_transport};
use crate::cache::Store;
use crate::digest::Digest;
use crate::frontend::platform::Platform;
use futures_util::StreamExt;
use serde_json::Value;
use std::io::{self, Read};
use std::sync::Arc;

/// Layers downloaded at once.
const MAX_CONCURRENT_DOWNLOADS: usize = 4;
/// Further attempts at a blob whose download failed.
const DOWNLOAD_RETRIES: u64 = 2;

/// What a pull stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pulled {
    /// The platform manifest's digest (the image's identity in cache keys).
    pub manifest: Digest,
    /// The config digest (the image ID).
    pub config: Digest,
    /// The host it came from (a mirror or the registry).
    pub host: String,
    /// Layers downloaded (those already stored are not).
    pub downloaded: usize,
}

/// Pull `r` for `platform` into `store`. Blocks; runs its own small runtime
/// (call it outside async code, e.g. from a blocking task).
pub fn pull(
    store: &Arc<Store>,
    r: &Reference,
    opts: &RegistryOptions,
    platform: &Platform,
) -> Result<Pulled, RegistryError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| RegistryError::Pull {
            reference: r.to_string(),
            reason: format!("starting the network runtime: {e}"),
        })?;
    rt.block_on(pull_async(store.clone(), r, opts, platform, false))
}

/// Resolve `r` and store its manifest and config only: the layers stay in
/// the registry (BuildKit's lazy refs), recorded as the compressed blobs of
/// their diff_ids, so that a push to the same registry mounts them from
/// `r`'s repository once `r` is named in the store. A build that needs the
/// files pulls them later (`pull`, which downloads only what is missing).
pub fn pull_lazy(
    store: &Arc<Store>,
    r: &Reference,
    opts: &RegistryOptions,
    platform: &Platform,
) -> Result<Pulled, RegistryError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| RegistryError::Pull {
            reference: r.to_string(),
            reason: format!("starting the network runtime: {e}"),
        })?;
    rt.block_on(pull_async(store.clone(), r, opts, platform, true))
}

async fn pull_async(
    store: Arc<Store>,
    r: &Reference,
    opts: &RegistryOptions,
    platform: &Platform,
    lazy: bool,
) -> Result<Pulled, RegistryError> {
    let mut mirror_errors = Vec::new();
    for ep in opts.pull_endpoints(r.domain()) {
        let auth = credentials_for(&ep.host)?;
        let mut resolved = None;
        for (i, scheme) in ep.schemes.iter().enumerate() {
            let remote = Remote::new(&ep, scheme, r, auth.clone())?;
            match resolve(&remote, platform).await {
                Ok(m) => {
                    resolved = Some(Ok((remote, m)));
                    break;
                }
                Err(Failure::Client(e)) if is_transport(&e) && i + 1 < ep.schemes.len() => {}
                Err(Failure::Client(e)) => {
                    resolved = Some(Err(remote.explain(e)));
                    break;
                }
                Err(Failure::Other(e)) => {
                    resolved = Some(Err(e));
                    break;
                }
            }
        }
        match resolved {
            Some(Ok((remote, (bytes, digest, index)))) => {
                let pulled = fetch_image(&store, &remote, &bytes, digest, lazy).await?;
                // Kept so that `--pull` can tell by one HEAD that the tag
                // still names this index (see `check`).
                if let Some(index) = index {
                    store
                        .put_blob(&index)
                        .map_err(|e| remote.error(format!("storing: {e}")))?;
                }
                return Ok(pulled);
            }
            Some(Err(e)) if ep.mirror => mirror_errors.push(e.to_string()),
            Some(Err(e)) => {
                if mirror_errors.is_empty() {
                    return Err(e);
                }
                return Err(RegistryError::Pull {
                    reference: r.to_string(),
                    reason: format!("{e} (mirrors: {})", mirror_errors.join("; ")),
                });
            }
            None => {}
        }
    }
    Err(RegistryError::Pull {
        reference: r.to_string(),
        reason: "no endpoint to pull from".into(),
    })
}

enum Failure {
    Client(oci_client::errors::OciDistributionError),
    Other(RegistryError),
}

impl From<oci_client::errors::OciDistributionError> for Failure {
    fn from(e: oci_client::errors::OciDistributionError) -> Self {
        Failure::Client(e)
    }
}

fn parse_json(remote: &Remote, what: &str, bytes: &[u8]) -> Result<Value, RegistryError> {
    serde_json::from_slice(bytes).map_err(|e| {
        let html = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'<');
        remote.error(if html {
            format!("registry {} answered with HTML, not {what}", remote.host)
        } else {
            format!("{what} from {} is not valid JSON: {e}", remote.host)
        })
    })
}

fn is_index(v: &Value) -> bool {
    v["mediaType"]
        .as_str()
        .is_some_and(|t| t.contains("index") || t.contains("manifest.list"))
        || (v.get("manifests").is_some() && v.get("layers").is_none())
}

/// The platform's entry of an index: os and architecture must match; the
/// variant is preferred when it matches.
pub(crate) fn choose(index: &Value, p: &Platform) -> Option<Digest> {
    let entries = index["manifests"].as_array()?;
    // Compared normalised, as containerd's matcher: `arm64/v8` is `arm64`.
    let platform_of = |m: &Value| {
        let s = |k: &str| m["platform"][k].as_str().unwrap_or("").to_string();
        Platform::from_oci(&s("os"), &s("architecture"), &s("variant"))
    };
    let fits: Vec<&Value> = entries
        .iter()
        .filter(|m| {
            let q = platform_of(m);
            q.os == p.os && q.arch == p.arch
        })
        .collect();
    let best = fits
        .iter()
        .find(|m| platform_of(m).variant == p.variant)
        .or_else(|| fits.first())?;
    best["digest"].as_str()?.parse().ok()
}

/// What a reference resolved to: the platform manifest's bytes and
/// digest, and the index it was chosen from.
type Resolved = (Vec<u8>, Digest, Option<Vec<u8>>);

/// The platform manifest's bytes and digest (and the index's bytes).
async fn resolve(remote: &Remote, platform: &Platform) -> Result<Resolved, Failure> {
    let (body, _) = remote
        .client
        .pull_manifest_raw(&remote.oref, &remote.auth, ACCEPT)
        .await?;
    let digest = Digest::of(&body);
    if let Some(want) = remote.oref.digest()
        && want != digest.to_string()
    {
        return Err(Failure::Other(remote.error(format!(
            "manifest from {} is {digest}, not the {want} asked for",
            remote.host
        ))));
    }
    let v = parse_json(remote, "a manifest", &body).map_err(Failure::Other)?;
    if !is_index(&v) {
        return Ok((body.to_vec(), digest, None));
    }
    let Some(pick) = choose(&v, platform) else {
        return Err(Failure::Other(remote.error(format!(
            "no image for platform {platform} in the index {digest}"
        ))));
    };
    let sub = remote.oref.clone_with_digest(pick.to_string());
    let index = body.to_vec();
    let (body, _) = remote
        .client
        .pull_manifest_raw(&sub, &remote.auth, ACCEPT)
        .await?;
    if Digest::of(&body) != pick {
        return Err(Failure::Other(remote.error(format!(
            "manifest {pick} from {} does not match its digest",
            remote.host
        ))));
    }
    Ok((body.to_vec(), pick, Some(index)))
}

fn descriptor_digest(remote: &Remote, v: &Value) -> Result<Digest, RegistryError> {
    v["digest"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| remote.error(format!("descriptor without a sha256 digest: {v}")))
}

/// Layer media types rbuild can unpack: Docker's and OCI's (the deprecated
/// non-distributable ones included), tar, gzip or zstd.
fn supported_layer(media: &str) -> bool {
    let kind = media
        .strip_prefix("application/vnd.docker.image.rootfs.")
        .or_else(|| media.strip_prefix("application/vnd.oci.image.layer."));
    matches!(
        kind,
        Some(
            "diff.tar"
                | "diff.tar.gzip"
                | "diff.tar.zstd"
                | "v1.tar"
                | "v1.tar+gzip"
                | "v1.tar+zstd"
                | "nondistributable.v1.tar"
                | "nondistributable.v1.tar+gzip"
                | "nondistributable.v1.tar+zstd"
        )
    )
}

/// Fetch the config and layers of a manifest into the store.
async fn fetch_image(
    store: &Arc<Store>,
    remote: &Remote,
    manifest: &[u8],
    digest: Digest,
    lazy: bool,
) -> Result<Pulled, RegistryError> {
    let m = parse_json(remote, "a manifest", manifest)?;
    let config = descriptor_digest(remote, &m["config"])?;
    let layers = m["layers"].as_array().cloned().unwrap_or_default();
    for l in &layers {
        let media = l["mediaType"].as_str().unwrap_or("");
        if !supported_layer(media) {
            return Err(remote.error(format!("unsupported layer media type {media:?}")));
        }
    }
    if !store.has_blob(&config) {
        download(store, remote, config, None).await?;
    }
    let store_err = |e: &dyn std::fmt::Display| remote.error(format!("storing: {e}"));
    let cfg: Value = parse_json(
        remote,
        "an image config",
        &store.read_blob(&config).map_err(|e| store_err(&e))?,
    )?;
    let diff_ids: Vec<Digest> = cfg["rootfs"]["diff_ids"]
        .as_array()
        .map(|a| a.iter().filter_map(|d| d.as_str()?.parse().ok()).collect())
        .unwrap_or_default();
    if diff_ids.len() != layers.len() {
        return Err(remote.error(format!(
            "manifest {digest} has {} layers, its config {} diff_ids",
            layers.len(),
            diff_ids.len()
        )));
    }
    // As Docker: a few layers at a time (its max-concurrent-downloads is 3).
    let slots = tokio::sync::Semaphore::new(MAX_CONCURRENT_DOWNLOADS);
    let mut tasks = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (l, diff_id) in layers.iter().zip(diff_ids) {
        let blob = descriptor_digest(remote, l)?;
        let media = l["mediaType"].as_str().unwrap_or("").to_string();
        if store.has_blob(&blob) || !seen.insert(blob) {
            continue; // stored once; unpacked from the store if needed
        }
        if lazy {
            record_remote_layer(store, &diff_id, &media, blob, l["size"].as_u64())
                .map_err(|e| store_err(&e))?;
            continue;
        }
        let unpack = (!store.has_snapshot(&diff_id)).then_some((media, diff_id));
        let slots = &slots;
        tasks.push(async move {
            let _slot = slots
                .acquire()
                .await
                .map_err(|e| remote.error(e.to_string()))?;
            download(store, remote, blob, unpack).await
        });
    }
    let downloaded = tasks.len();
    futures_util::future::try_join_all(tasks).await?;
    store.put_blob(manifest).map_err(|e| store_err(&e))?;
    Ok(Pulled {
        manifest: digest,
        config,
        host: remote.host.clone(),
        downloaded,
    })
}

/// Record `blob` (not downloaded) as `diff_id` compressed as `media` says,
/// unless a stored blob already is.
fn record_remote_layer(
    store: &Store,
    diff_id: &Digest,
    media: &str,
    blob: Digest,
    size: Option<u64>,
) -> Result<(), crate::cache::StoreError> {
    let comp = if media.ends_with("zstd") {
        "zstd"
    } else if media.ends_with("gzip") {
        "gzip"
    } else {
        "uncompressed"
    };
    let known = store.layer_blobs(diff_id);
    if known
        .blobs
        .get(comp)
        .is_some_and(|(d, _)| store.has_blob(d))
    {
        return Ok(());
    }
    store.add_layer_blob(diff_id, comp, (blob, size.unwrap_or(0)))?;
    super::lazy::record(store, diff_id, &blob)
}

/// Download one blob into the store, verified; with `unpack`, unpack it into
/// its snapshot while it streams in.
pub(super) async fn download(
    store: &Arc<Store>,
    remote: &Remote,
    blob: Digest,
    unpack: Option<(String, Digest)>,
) -> Result<(), RegistryError> {
    // A dropped connection or a bad transfer is tried again, from the
    // start (as Docker retries layer downloads); nothing partial is kept.
    let mut attempt = 0u64;
    loop {
        let unpack_now = unpack.clone().filter(|(_, d)| !store.has_snapshot(d));
        match download_once(store, remote, blob, unpack_now).await {
            Err(_) if attempt < DOWNLOAD_RETRIES => {
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(200 * attempt)).await;
            }
            r => return r,
        }
    }
}

async fn download_once(
    store: &Arc<Store>,
    remote: &Remote,
    blob: Digest,
    unpack: Option<(String, Digest)>,
) -> Result<(), RegistryError> {
    let d = blob.to_string();
    let mut stream = remote.blob_stream(d.as_str()).await?;
    // Two consumers of the same chunks, on their own threads: the blob
    // writer (hash, file) and the unpacker (decompress, hash, files).
    let (tx, rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(32);
    let st = store.clone();
    let writer = tokio::task::spawn_blocking(move || store_blob(&st, ChannelReader::new(rx), blob));
    let mut unpacker = None;
    let mut utx = None;
    if let Some((media, diff_id)) = unpack {
        let (t, r) = tokio::sync::mpsc::channel::<bytes::Bytes>(32);
        let st = store.clone();
        utx = Some(t);
        unpacker = Some(tokio::task::spawn_blocking(move || {
            crate::image::source::unpack_reader(&st, ChannelReader::new(r), &media, &diff_id, blob)
                .map(|_| ())
                .map_err(|e| e.to_string())
        }));
    }
    let mut failed = None;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(c) => {
                // An unpacker that stopped has failed; its error is
                // reported below, after the digest check.
                if let Some(t) = &utx
                    && t.send(c.clone()).await.is_err()
                {
                    utx = None;
                }
                if tx.send(c).await.is_err() {
                    break; // the writer failed; its error is reported below
                }
            }
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    drop((tx, utx));
    let join = |e: tokio::task::JoinError| remote.error(format!("importing blob {blob}: {e}"));
    let stored = writer.await.map_err(join)?;
    let unpacked = match unpacker {
        Some(u) => u.await.map_err(join)?,
        None => Ok(()),
    };
    if let Some(e) = failed {
        return Err(remote.error(format!("downloading blob {blob} from {}: {e}", remote.host)));
    }
    stored
        .and(unpacked)
        .map_err(|e| remote.error(format!("blob {blob}: {e}")))
}

/// Bytes from the download task, as a `Read`.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<bytes::Bytes>,
    cur: bytes::Bytes,
}

impl ChannelReader {
    fn new(rx: tokio::sync::mpsc::Receiver<bytes::Bytes>) -> ChannelReader {
        ChannelReader {
            rx,
            cur: bytes::Bytes::new(),
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(c) => self.cur = c,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        self.cur = self.cur.slice(n..);
        Ok(n)
    }
}

/// Store a blob from `r`; it must have the digest `blob` (nothing is kept
/// otherwise).
fn store_blob(store: &Store, mut r: ChannelReader, blob: Digest) -> Result<(), String> {
    let mut w = store.blob_writer().map_err(|e| e.to_string())?;
    io::copy(&mut r, &mut w).map_err(|e| e.to_string())?;
    let (got, _) = w.commit_expecting(&blob).map_err(|e| e.to_string())?;
    if got != blob {
        return Err(format!("content does not match its digest (got {got})"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_media_types() {
        for ok in [
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
            "application/vnd.docker.image.rootfs.diff.tar",
            "application/vnd.oci.image.layer.v1.tar",
            "application/vnd.oci.image.layer.v1.tar+gzip",
            "application/vnd.oci.image.layer.v1.tar+zstd",
            "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        ] {
            assert!(supported_layer(ok), "{ok}");
        }
        for bad in [
            "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
            "application/vnd.oci.image.layer.v1.tar+lz4",
            "application/vnd.cncf.helm.chart.content.v1.tar+gzip",
        ] {
            assert!(!supported_layer(bad), "{bad}");
        }
    }

    #[test]
    fn index_entry_for_the_platform() {
        let idx: Value = serde_json::from_str(&format!(
            r#"{{"manifests":[
              {{"digest":"sha256:{a}","platform":{{"os":"unknown","architecture":"unknown"}}}},
              {{"digest":"sha256:{b}","platform":{{"os":"linux","architecture":"arm","variant":"v6"}}}},
              {{"digest":"sha256:{c}","platform":{{"os":"linux","architecture":"arm","variant":"v7"}}}},
              {{"digest":"sha256:{d}","platform":{{"os":"linux","architecture":"amd64"}}}}]}}"#,
            a = "a".repeat(64),
            b = "b".repeat(64),
            c = "c".repeat(64),
            d = "d".repeat(64)
        ))
        .unwrap();
        let p = |arch: &str, variant: &str| Platform {
            os: "linux".into(),
            arch: arch.into(),
            variant: variant.into(),
        };
        let hex = |d: Option<Digest>| d.map(|d| d.hex()[..1].to_string());
        assert_eq!(hex(choose(&idx, &p("amd64", ""))), Some("d".into()));
        assert_eq!(hex(choose(&idx, &p("arm", "v7"))), Some("c".into()));
        assert_eq!(hex(choose(&idx, &p("arm", "v5"))), Some("b".into()));
        assert_eq!(choose(&idx, &p("s390x", "")), None);
        assert!(is_index(&idx));
    }

    #[test]
    fn index_entries_are_compared_normalised() {
        let idx: Value = serde_json::from_str(&format!(
            r#"{{"manifests":[
              {{"digest":"sha256:{a}","platform":{{"os":"linux","architecture":"arm"}}}},
              {{"digest":"sha256:{b}","platform":{{"os":"linux","architecture":"arm64","variant":"v8"}}}},
              {{"digest":"sha256:{c}","platform":{{"os":"linux","architecture":"x86_64"}}}}]}}"#,
            a = "a".repeat(64),
            b = "b".repeat(64),
            c = "c".repeat(64),
        ))
        .unwrap();
        let hex = |s: &str| {
            let p = Platform::parse(s).unwrap();
            choose(&idx, &p).map(|d| d.hex()[..1].to_string())
        };
        // `arm64/v8` is `linux/arm64`; `arm` alone is `arm/v7`; `x86_64` is `amd64`.
        assert_eq!(hex("linux/arm64").as_deref(), Some("b"));
        assert_eq!(hex("linux/arm/v7").as_deref(), Some("a"));
        assert_eq!(hex("linux/amd64").as_deref(), Some("c"));
    }
}
