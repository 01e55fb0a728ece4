//! `--output type=...,dest=...` parsing (buildx's syntax).

use super::ExportError;
use crate::image::manifest::MediaTypes;
use crate::layer::compress::{Compression, DEFAULT_GZIP_LEVEL};
use std::path::PathBuf;

/// Where an image goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputType {
    /// The local image store (and a registry with `push=true`;
    /// `type=registry` is `type=image,push=true`).
    Image,
    /// An OCI image layout directory.
    OciDir,
    /// An OCI layout as a tar archive.
    OciArchive,
    /// A Docker archive (`docker load`); without `dest=`, streamed into the
    /// Docker engine (`--load`).
    DockerArchive,
    /// The root filesystem into a directory.
    Local,
    /// The root filesystem as a tar archive (BuildKit's `tar` exporter).
    Tar,
}

/// One `--output`.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputSpec {
    /// Kind.
    pub kind: OutputType,
    /// `dest=` (or `-` for stdout with archives).
    pub dest: Option<PathBuf>,
    /// `name=` (image names for the archive's tags).
    pub names: Vec<String>,
    /// `compression=` and `compression-level=`.
    pub compression: Compression,
    /// `oci-mediatypes=` (default: true, false for the docker exporter, as BuildKit).
    pub media_types: MediaTypes,
    /// `push=true` (type=image), or `type=registry`: push to the names' registries.
    pub push: bool,
    /// `registry.insecure=true`: the names' registries may be plain HTTP.
    pub insecure: bool,
}

/// Parse one `--output` value. A bare path means `type=local,dest=PATH`, as buildx.
pub fn parse_output(s: &str) -> Result<OutputSpec, ExportError> {
    let bad = |reason: &str| ExportError::Spec {
        spec: s.to_string(),
        reason: reason.to_string(),
    };
    if !s.contains('=') {
        return Ok(OutputSpec {
            kind: OutputType::Local,
            dest: Some(PathBuf::from(s)),
            names: Vec::new(),
            compression: Compression::default(),
            media_types: MediaTypes::Oci,
            push: false,
            insecure: false,
        });
    }
    let mut kind = None;
    let mut dest = None;
    let mut names = Vec::new();
    let mut comp_name = "gzip".to_string();
    let mut level: Option<i32> = None;
    let mut tar = true;
    let mut oci_types: Option<bool> = None;
    let mut push = false;
    let mut insecure = false;
    let flag = |k: &str, v: &str| match v {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(bad(&format!("{k} must be true or false"))),
    };
    for field in s.split(',') {
        let (k, v) = field
            .split_once('=')
            .ok_or_else(|| bad(&format!("field {field:?} is not key=value")))?;
        match k.trim() {
            "type" => {
                let (t, registry) = parse_type(v).map_err(|r| bad(&r))?;
                kind = Some(t);
                push |= registry;
            }
            "dest" => dest = Some(PathBuf::from(v)),
            "name" => names.extend(v.split(';').filter(|n| !n.is_empty()).map(String::from)),
            "compression" => comp_name = v.to_string(),
            "compression-level" => {
                level = Some(
                    v.parse()
                        .map_err(|_| bad("compression-level must be a number"))?,
                )
            }
            "tar" => tar = v != "false",
            "oci-mediatypes" => {
                oci_types = Some(match v {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => return Err(bad("oci-mediatypes must be true or false")),
                })
            }
            "push" => push = flag(k, v)?,
            "registry.insecure" => insecure = flag(k, v)?,
            "force-compression" => {}
            other => return Err(bad(&format!("unknown field {other:?}"))),
        }
    }
    let mut kind = kind.ok_or_else(|| bad("missing type="))?;
    if push && kind != OutputType::Image {
        return Err(bad("push=true is for type=image (or use type=registry)"));
    }

    if !tar && kind == OutputType::OciArchive {
        kind = OutputType::OciDir;
    }
    let compression = parse_compression(&comp_name, level).map_err(|r| bad(&r))?;
    // `type=docker` without a destination loads into the Docker engine (buildx's `--load`).
    if !matches!(kind, OutputType::Image | OutputType::DockerArchive) && dest.is_none() {
        return Err(bad("missing dest="));
    }
    if kind == OutputType::Local && dest.as_deref() == Some(std::path::Path::new("-")) {
        return Err(bad(
            "the local exporter writes a directory, not standard output (dest=-); \
             give a directory, or an archive type (oci, docker) with dest=-",
        ));
    }
    let oci_types = oci_types.unwrap_or(kind != OutputType::DockerArchive);
    // Docker has no zstd layer type: zstd keeps OCI media types.
    let media_types = if oci_types || matches!(compression, Compression::Zstd { .. }) {
        MediaTypes::Oci
    } else {
        MediaTypes::Docker
    };
    Ok(OutputSpec {
        kind,
        dest,
        names,
        compression,
        media_types,
        push,
        insecure,
    })
}

/// The exporter a `type=` names, and whether it pushes (`registry`).
fn parse_type(v: &str) -> Result<(OutputType, bool), String> {
    Ok(match v {
        "oci" | "oci-archive" => (OutputType::OciArchive, false),
        "oci-dir" | "oci-layout" => (OutputType::OciDir, false),
        "docker" | "docker-archive" => (OutputType::DockerArchive, false),
        "local" => (OutputType::Local, false),
        "tar" => (OutputType::Tar, false),
        "image" => (OutputType::Image, false),
        "registry" => (OutputType::Image, true),
        other => {
            return Err(format!(
                "unknown type {other:?} (expected oci, oci-dir, oci-archive, docker, docker-archive, local, tar, image, registry)"
            ));
        }
    })
}

/// `compression=` and `compression-level=` as one layer compression.
fn parse_compression(name: &str, level: Option<i32>) -> Result<Compression, String> {
    Ok(match name {
        "gzip" => Compression::Gzip {
            level: level
                .map(|l| l.clamp(1, 9) as u32)
                .unwrap_or(DEFAULT_GZIP_LEVEL),
        },
        "zstd" => Compression::Zstd {
            level: level.unwrap_or(3).clamp(1, 19),
        },
        "uncompressed" => Compression::None,
        other => {
            return Err(format!(
                "unknown compression {other:?} (gzip, zstd, uncompressed)"
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_buildx_style_outputs() {
        let o = parse_output("type=oci,dest=out.tar,compression=zstd").unwrap();
        assert_eq!(o.kind, OutputType::OciArchive);
        assert!(matches!(o.compression, Compression::Zstd { .. }));
        assert_eq!(parse_output("./dir").unwrap().kind, OutputType::Local);
        assert_eq!(
            parse_output("type=oci,dest=d,tar=false").unwrap().kind,
            OutputType::OciDir
        );
        assert!(parse_output("type=bogus,dest=x").is_err());
        assert!(parse_output("type=oci").is_err());
        let load = parse_output("type=docker").unwrap();
        assert_eq!((load.kind, load.dest), (OutputType::DockerArchive, None));
        assert!(
            parse_output("type=local,dest=-")
                .unwrap_err()
                .to_string()
                .contains("not standard output")
        );
        assert!(parse_output("type=oci,dest=-").is_ok());
        let types = |s: &str| parse_output(s).unwrap().media_types;
        assert_eq!(types("type=oci,dest=x"), MediaTypes::Oci);
        assert_eq!(
            types("type=oci,dest=x,oci-mediatypes=false"),
            MediaTypes::Docker
        );
        assert_eq!(types("type=docker,dest=x"), MediaTypes::Docker);
        assert_eq!(
            types("type=docker,dest=x,oci-mediatypes=true"),
            MediaTypes::Oci
        );
        assert!(parse_output("type=oci,dest=x,compression=lz4").is_err());
        let r = parse_output("type=registry,name=127.0.0.1:5000/a:1").unwrap();
        assert!(r.push && r.kind == OutputType::Image && !r.insecure);
        assert_eq!(r.names, ["127.0.0.1:5000/a:1"]);
        let r =
            parse_output("type=image,name=h/a:1;h/b:2,push=true,registry.insecure=true").unwrap();
        assert!(r.push && r.insecure && r.names.len() == 2);
        assert!(!parse_output("type=image,name=a").unwrap().push);
        assert!(parse_output("type=registry").unwrap().names.is_empty());
        assert!(parse_output("type=oci,dest=x,push=true").is_err());
        assert!(parse_output("type=image,name=a,push=maybe").is_err());
    }
}
