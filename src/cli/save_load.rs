//! `rbuild save` (as `docker save`) and `rbuild load` (as `docker load`).

use super::images::open_store;
use anyhow::{Context as _, Result, bail};
use clap::{Args, ValueEnum};
use rbuild::cache::LockMode;
use rbuild::export::{ArchiveFormat, ArchiveImage, archive_image, write_archive};
use rbuild::image::archive::load_archive;
use rbuild::image::local::{Named, by_id, familiar, find, is_dangling_key};
use rbuild::registry::Reference;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Archive formats of `rbuild save`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SaveFormat {
    /// What `docker load` takes (`manifest.json` plus an OCI layout).
    Docker,
    /// An OCI image layout as a tar (`skopeo`, `podman load`, containerd).
    Oci,
}

/// Arguments of `rbuild save`.
#[derive(Args, Debug)]
pub struct SaveArgs {
    /// Write to a file, instead of standard output.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Archive format.
    #[arg(long, value_enum, default_value = "docker")]
    pub format: SaveFormat,
    /// Images: names (a repository without a tag saves all its tags), or IDs.
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

/// Arguments of `rbuild load`.
#[derive(Args, Debug)]
pub struct LoadArgs {
    /// Read from a tar archive file (compressed or not), instead of standard input.
    #[arg(short, long)]
    pub input: Option<PathBuf>,
    /// Suppress the load output.
    #[arg(short, long)]
    pub quiet: bool,
}

/// The images to save and their names: by name, one name; a repository
/// without a tag, all its tags; by ID, none. One image given twice is saved once.
fn selection(
    store: &rbuild::cache::Store,
    args: &[String],
) -> Result<Vec<(rbuild::digest::Digest, Vec<String>)>> {
    let mut out: Vec<(rbuild::digest::Digest, Vec<String>)> = Vec::new();
    let mut add = |id, name: Option<String>| {
        let i = match out.iter().position(|(d, _)| *d == id) {
            Some(i) => i,
            None => {
                out.push((id, Vec::new()));
                out.len() - 1
            }
        };
        if let Some(n) = name
            && !out[i].1.contains(&n)
        {
            out[i].1.push(n);
        }
    };
    for s in args {
        let name_only = Reference::parse_named(s)
            .ok()
            .filter(|r| r.tag().is_none() && r.digest().is_none());
        if let Some(r) = name_only {
            let repo = format!("{}:", r.name());
            let tags: Vec<(String, rbuild::digest::Digest)> = store
                .images()
                .into_iter()
                .filter(|(k, _)| k.starts_with(&repo) && !is_dangling_key(k))
                .map(|(k, e)| (k, e.config))
                .collect();
            if !tags.is_empty() {
                for (k, id) in tags {
                    add(id, Some(k));
                }
                continue;
            }
        }
        let (img, named) = find(store, s).map_err(|e| anyhow::anyhow!("{e}"))?;
        add(
            img.id,
            if let Named::Name(n) = named {
                Some(n)
            } else {
                None
            },
        );
    }
    Ok(out)
}

/// `rbuild save`.
pub fn save(args: SaveArgs) -> Result<ExitCode> {
    if args.output.is_none() && std::io::stdout().is_terminal() {
        bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
    }
    let store = open_store(LockMode::Shared)?;
    let format = match args.format {
        SaveFormat::Docker => ArchiveFormat::Docker,
        SaveFormat::Oci => ArchiveFormat::Oci,
    };
    let mut images: Vec<ArchiveImage> = Vec::new();
    for (id, names) in selection(&store, &args.images)? {
        let img = by_id(&store, &id)?;
        images.push(archive_image(&store, &img, names, format)?);
    }
    match &args.output {
        Some(path) => write_to(&store, &images, format, path)?,
        None => {
            let out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
            write_archive(&store, &images, format, out, Path::new("-"))?.flush()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Write the archive to `path`: a regular file is written beside it and
/// renamed into place when complete; anything else that exists (a device
/// such as /dev/null, a FIFO) is written to directly, never replaced.
fn write_to(
    store: &rbuild::cache::Store,
    images: &[ArchiveImage],
    format: ArchiveFormat,
    path: &Path,
) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let special = std::fs::metadata(path).is_ok_and(|m| !m.is_file());
    if special {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        write_archive(store, images, format, std::io::BufWriter::new(f), path)?;
        return Ok(());
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = tempfile::Builder::new()
        .prefix(".rbuild-save-")
        // As `docker save -o`: 0666 less the umask.
        .permissions(std::fs::Permissions::from_mode(0o666))
        .tempfile_in(dir)
        .with_context(|| format!("creating a file in {}", dir.display()))?;
    let out = std::io::BufWriter::with_capacity(1 << 20, tmp.reopen()?);
    write_archive(store, images, format, out, path)?;
    tmp.persist(path)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// `rbuild load`.
pub fn load(args: LoadArgs) -> Result<ExitCode> {
    let store = open_store(LockMode::Shared)?;
    let loaded = match &args.input {
        Some(p) => {
            let f = std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?;
            load_archive(&store, f).with_context(|| format!("loading {}", p.display()))?
        }
        None => {
            if std::io::stdin().is_terminal() {
                bail!("requested load from stdin, but stdin is empty");
            }
            load_archive(&store, std::io::stdin().lock()).context("loading from standard input")?
        }
    };
    if args.quiet {
        return Ok(ExitCode::SUCCESS);
    }
    for l in loaded {
        for (name, old) in &l.replaced {
            println!(
                "The image {} already exists, renaming the old one with ID {old} to empty string",
                familiar(name)
            );
        }
        if l.names.is_empty() {
            println!("Loaded image ID: {}", l.id);
        }
        for n in &l.names {
            println!("Loaded image: {}", familiar(n));
        }
    }
    Ok(ExitCode::SUCCESS)
}
