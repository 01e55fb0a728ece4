//! From a read archive to images in the store: `manifest.json` (every
//! `docker save`: the layer directories of Docker up to 24 and the OCI
//! layout of Docker 25 and later) or an OCI layout's `index.json`. Every
//! layer is unpacked into its snapshot and must decompress to the diff_id
//! its config names; a blob named by digest must have that digest.

use super::ArchiveError;
use super::spool::{Spool, check_digest, compression_of};
use crate::cache::Store;
use crate::digest::Digest;
use crate::image::config::ImageConfig;
use crate::registry::Reference;
use serde::Deserialize;
use std::io::{BufRead, BufReader, Read};

/// One image to import: where its config and layers are in the archive.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// Path of the config.
    pub config: String,
    /// Paths of the layers, bottom first.
    pub layers: Vec<String>,
    /// Names (normalised).
    pub names: Vec<String>,
}

/// An entry of `manifest.json`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

fn normalise_names(names: &[String]) -> Result<Vec<String>, ArchiveError> {
    names
        .iter()
        .map(|n| {
            Reference::parse(n)
                .map(|r| r.to_string())
                .map_err(|e| ArchiveError::Invalid(format!("image name {n:?}: {e}")))
        })
        .collect()
}

/// The images a `docker save` archive holds.
pub fn docker_candidates(spool: &Spool) -> Result<Vec<Candidate>, ArchiveError> {
    let data = spool.read_small("manifest.json")?;
    let entries: Vec<DockerEntry> = serde_json::from_slice(&data)
        .map_err(|e| ArchiveError::Invalid(format!("manifest.json: {e}")))?;
    entries
        .into_iter()
        .map(|e| {
            Ok(Candidate {
                config: e.config,
                layers: e.layers,
                names: normalise_names(&e.repo_tags.unwrap_or_default())?,
            })
        })
        .collect()
}

fn json_of(spool: &Spool, d: &Digest, what: &str) -> Result<serde_json::Value, ArchiveError> {
    let (mut r, _) = spool.blob(d)?;
    let mut data = Vec::new();
    r.read_to_end(&mut data)
        .map_err(|e| ArchiveError::Read(e.to_string()))?;
    serde_json::from_slice(&data).map_err(|e| ArchiveError::Invalid(format!("{what} {d}: {e}")))
}

fn digest_of(v: &serde_json::Value, what: &str) -> Result<Digest, ArchiveError> {
    v["digest"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| ArchiveError::Invalid(format!("{what} without a sha256 digest")))
}

/// The name of an OCI index entry: containerd's full name annotation,
/// else `org.opencontainers.image.ref.name` when it is a whole reference
/// (a bare tag like `latest` names no repository).
fn oci_name(desc: &serde_json::Value) -> Option<String> {
    let a = &desc["annotations"];
    if let Some(n) = a["io.containerd.image.name"].as_str() {
        return Some(n.to_string());
    }
    let r = a["org.opencontainers.image.ref.name"].as_str()?;
    (r.contains('/') || r.contains(':')).then(|| r.to_string())
}

/// A manifest (descending into an index for this machine's platform).
fn platform_manifest(
    spool: &Spool,
    desc: &serde_json::Value,
) -> Result<serde_json::Value, ArchiveError> {
    let mut d = digest_of(desc, "index entry")?;
    for _ in 0..4 {
        let doc = json_of(spool, &d, "manifest")?;
        let Some(list) = doc["manifests"].as_array() else {
            return Ok(doc);
        };
        let host = crate::frontend::platform::Platform::host();
        let pick = list
            .iter()
            .find(|m| {
                m["platform"]["os"].as_str() == Some(&host.os)
                    && m["platform"]["architecture"].as_str() == Some(&host.arch)
            })
            .or_else(|| (list.len() == 1).then(|| &list[0]))
            .ok_or_else(|| {
                ArchiveError::Invalid(format!("index {d} has no manifest for {host}"))
            })?;
        d = digest_of(pick, "index entry")?;
    }
    Err(ArchiveError::Invalid("indexes nested too deeply".into()))
}

/// The images an OCI layout archive holds (one per `index.json` entry).
pub fn oci_candidates(spool: &Spool) -> Result<Vec<Candidate>, ArchiveError> {
    let index: serde_json::Value = serde_json::from_slice(&spool.read_small("index.json")?)
        .map_err(|e| ArchiveError::Invalid(format!("index.json: {e}")))?;
    let mut out: Vec<Candidate> = Vec::new();
    let host = crate::frontend::platform::Platform::host();
    let descs: Vec<&serde_json::Value> = index["manifests"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    // Entries for several platforms at the top: this machine's only.
    let for_host = |d: &serde_json::Value| {
        d["platform"].is_null()
            || (d["platform"]["os"].as_str() == Some(&host.os)
                && d["platform"]["architecture"].as_str() == Some(&host.arch))
    };
    let any_for_host = descs
        .iter()
        .any(|d| !d["platform"].is_null() && for_host(d));
    for desc in descs.into_iter().filter(|d| !any_for_host || for_host(d)) {
        let m = platform_manifest(spool, desc)?;
        let path = |d: Digest| format!("blobs/sha256/{}", d.hex());
        let config = path(digest_of(&m["config"], "manifest config")?);
        let layers = m["layers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|l| digest_of(l, "layer").map(path))
            .collect::<Result<Vec<_>, _>>()?;
        let names = normalise_names(&oci_name(desc).into_iter().collect::<Vec<_>>())?;
        // One image under several names is one candidate.
        match out.iter_mut().find(|c| c.config == config) {
            Some(c) => c.names.extend(names),
            None => out.push(Candidate {
                config,
                layers,
                names,
            }),
        }
    }
    Ok(out)
}

/// Import one image: its config as a blob, each layer unpacked (and kept
/// as a blob when compressed). Returns the image ID.
pub fn import(store: &Store, spool: &Spool, c: &Candidate) -> Result<Digest, ArchiveError> {
    let config_bytes = spool.read_small(&c.config)?;
    let id = Digest::of(&config_bytes);
    if let Some(hex) = c.config.strip_prefix("blobs/sha256/") {
        check_digest(
            &c.config,
            &Digest::from_hex(hex).unwrap_or(Digest([0; 32])),
            &id,
        )?;
    }
    let config: ImageConfig = serde_json::from_slice(&config_bytes)
        .map_err(|e| ArchiveError::Invalid(format!("config {}: {e}", c.config)))?;
    if config.rootfs.diff_ids.len() != c.layers.len() {
        return Err(ArchiveError::Invalid(format!(
            "config {} names {} layers, the archive lists {}",
            c.config,
            config.rootfs.diff_ids.len(),
            c.layers.len()
        )));
    }
    for (path, diff_id) in c.layers.iter().zip(&config.rootfs.diff_ids) {
        import_layer(store, spool, path, diff_id)?;
    }
    store.put_blob(&config_bytes)?;
    Ok(id)
}

fn import_layer(
    store: &Store,
    spool: &Spool,
    path: &str,
    diff_id: &Digest,
) -> Result<(), ArchiveError> {
    let kept = store
        .layer_blobs(diff_id)
        .blobs
        .values()
        .any(|(d, _)| store.has_blob(d));
    if store.has_snapshot(diff_id) && kept {
        return Ok(());
    }
    let (r, digest, _) = spool.open(path)?;
    if let Some(hex) = path.strip_prefix("blobs/sha256/") {
        check_digest(
            path,
            &Digest::from_hex(hex).unwrap_or(Digest([0; 32])),
            &digest,
        )?;
    }
    let mut r = BufReader::with_capacity(1 << 20, r);
    let comp = compression_of(
        r.fill_buf()
            .map_err(|e| ArchiveError::Read(e.to_string()))?,
    );
    let media = match comp {
        "gzip" => "tar+gzip",
        "zstd" => "tar+zstd",
        _ => "tar",
    };
    crate::image::source::unpack_reader(store, r, media, diff_id, digest)
        .map_err(|e| ArchiveError::Invalid(format!("layer {path}: {e}")))?;
    // Keep the layer's exact bytes: saving or pushing the image needs this
    // tar (a tar written again from the snapshot would have another
    // diff_id). An uncompressed layer is kept as it is, without a second
    // pass; gzip for a push is made from it then.
    let blob = spool.store_blob(store, path)?;
    store.add_layer_blob(diff_id, comp, blob)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spool_of(files: &[(String, Vec<u8>)]) -> (tempfile::TempDir, Spool) {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            b.append_data(&mut h, name, &data[..]).unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let s = Spool::read(&b.into_inner().unwrap()[..], dir.path()).unwrap();
        (dir, s)
    }

    #[test]
    fn oci_archives_give_this_platforms_image_and_names() {
        let host = crate::frontend::platform::Platform::host();
        let other = if host.arch == "s390x" {
            "arm64"
        } else {
            "s390x"
        };
        let mut files = Vec::new();
        let mut descs = Vec::new();
        for arch in [other, host.arch.as_str()] {
            let config = format!(
                r#"{{"architecture":"{arch}","os":"linux","rootfs":{{"type":"layers","diff_ids":[]}}}}"#
            );
            let cd = Digest::of(config.as_bytes());
            let manifest = format!(
                r#"{{"schemaVersion":2,"config":{{"digest":"{cd}","size":{}}},"layers":[]}}"#,
                config.len()
            );
            let md = Digest::of(manifest.as_bytes());
            files.push((format!("blobs/sha256/{}", cd.hex()), config.into_bytes()));
            files.push((format!("blobs/sha256/{}", md.hex()), manifest.into_bytes()));
            descs.push(serde_json::json!({
                "digest": md, "platform": {"os": "linux", "architecture": arch},
                "annotations": {"io.containerd.image.name": "example.com/multi:1"},
            }));
        }
        let plain = Digest::of(b"x");
        descs.push(serde_json::json!({"digest": plain, "annotations": {"org.opencontainers.image.ref.name": "latest"}}));
        let index = serde_json::json!({"schemaVersion": 2, "manifests": descs});
        files.push(("index.json".into(), serde_json::to_vec(&index).unwrap()));
        let (_dir, spool) = spool_of(&files);
        // The unplatformed entry's manifest is missing: it is still tried.
        assert!(matches!(
            oci_candidates(&spool),
            Err(ArchiveError::Missing(_))
        ));
        files.pop();
        descs.pop();
        let index = serde_json::json!({"schemaVersion": 2, "manifests": descs});
        files.push(("index.json".into(), serde_json::to_vec(&index).unwrap()));
        let (_dir, spool) = spool_of(&files);
        let c = oci_candidates(&spool).unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].names, ["example.com/multi:1"]);
        let cfg = spool.read_small(&c[0].config).unwrap();
        assert!(String::from_utf8_lossy(&cfg).contains(&format!("\"{}\"", host.arch)));
        // A bare tag names no repository.
        assert_eq!(
            oci_name(
                &serde_json::json!({"annotations": {"org.opencontainers.image.ref.name": "v1"}})
            ),
            None
        );
        assert_eq!(
            oci_name(&serde_json::json!({"annotations": {"org.opencontainers.image.ref.name": "reg.example/a:v1"}})).as_deref(),
            Some("reg.example/a:v1")
        );
    }
}
