//! `rbuild build --server ADDR`: list the context (`.dockerignore`
//! applied), upload only the files the server lacks, run the build there
//! and render its progress here as a local build's.

use super::build::{BuildArgs, progress_mode};
use anyhow::{Context as _, Result, bail};
use rbuild::context::{Context, Kind};
use rbuild::export::OutputType;
use rbuild::layer::compress::Compression;
use rbuild::progress::{Event, Mode, Progress, spawn_renderer};
use rbuild::remote_cache::{CacheMode, CacheTarget, CacheTo};
use rbuild::server::client::Client;
use rbuild::server::receive::{Dest, Receiver};
use rbuild::server::wire::{BuildRequest, FileEntry, Frame, Proof};
use rbuild::solver::steps::SecretSource;
use std::collections::HashMap;
use std::io::Read as _;
use std::process::ExitCode;

/// The flags passed on to the server's build, as `--name=value`; paths
/// are placeholders for the files the server sends back ([`Dest`]).
fn wire_args(a: &BuildArgs) -> Result<(Vec<String>, HashMap<String, Dest>)> {
    let mut slots = HashMap::new();
    let mut v = Vec::new();
    for (i, o) in a.outputs.iter().enumerate() {
        v.push(format!("--output={}", output_arg(o, i, &mut slots)?));
    }
    if a.load {
        // A Docker archive sent back and loaded into this machine's engine.
        let i = a.outputs.len();
        slots.insert(i.to_string(), Dest::Engine);
        v.push(format!("--output=type=docker,dest=@{i}"));
    }
    if let Some(f) = &a.iidfile {
        slots.insert("iid".into(), Dest::File(f.clone()));
        v.push("--iidfile=@iid".into());
    }
    if let Some(f) = &a.metadata_file {
        slots.insert("meta".into(), Dest::File(f.clone()));
        v.push("--metadata-file=@meta".into());
    }
    v.extend(
        a.cache_to
            .iter()
            .map(cache_to_arg)
            .collect::<Result<Vec<_>>>()?,
    );
    for c in &a.cache_from {
        let CacheTarget::Registry(r) = &c.target else {
            bail!(
                "--cache-from {}: a local cache directory is not supported with --server; use a registry cache",
                c.target.describe()
            );
        };
        v.push(format!("--cache-from=type=registry,ref={r}"));
    }
    v.extend(a.tags.iter().map(|t| format!("--tag={t}")));
    v.extend(
        a.build_args
            .iter()
            .map(|(k, x)| format!("--build-arg={k}={x}")),
    );
    v.extend(a.labels.iter().map(|(k, x)| format!("--label={k}={x}")));
    v.extend(
        a.insecure_registries
            .iter()
            .map(|r| format!("--insecure-registry={r}")),
    );
    v.extend(a.allow.iter().map(|r| format!("--allow={r}")));
    v.extend(a.target.iter().map(|t| format!("--target={t}")));
    v.extend(a.platform.iter().map(|p| format!("--platform={p}")));
    for (on, flag) in [
        (a.no_cache, "--no-cache"),
        (a.push, "--push"),
        (a.quiet, "--quiet"),
        (a.explain, "--explain"),
        (a.pull, "--pull"),
    ] {
        if on {
            v.push(flag.to_string());
        }
    }
    Ok((v, slots))
}

/// One `--output` with its destination replaced by the placeholder `@i`.
fn output_arg(o: &str, i: usize, slots: &mut HashMap<String, Dest>) -> Result<String> {
    let spec = rbuild::export::parse_output(o).with_context(|| format!("--output {o}"))?;
    if spec.kind == OutputType::DockerArchive && spec.dest.is_none() {
        // Into this machine's Docker engine.
        slots.insert(i.to_string(), Dest::Engine);
        return Ok(format!("{o},dest=@{i}"));
    }
    let Some(dest) = spec.dest else {
        return Ok(o.to_string());
    };
    let target = match spec.kind {
        _ if dest.as_os_str() == "-" => Dest::Stdout,
        OutputType::Local | OutputType::OciDir => Dest::Dir(dest),
        _ => Dest::File(dest),
    };
    slots.insert(i.to_string(), target);
    if !o.contains('=') {
        return Ok(format!("type=local,dest=@{i}"));
    }
    let fields: Vec<String> = o
        .split(',')
        .map(|f| match f.trim().starts_with("dest=") {
            true => format!("dest=@{i}"),
            false => f.to_string(),
        })
        .collect();
    Ok(fields.join(","))
}

/// A `--cache-to` as the server's flag (registry caches only).
fn cache_to_arg(c: &CacheTo) -> Result<String> {
    let CacheTarget::Registry(r) = &c.target else {
        bail!(
            "--cache-to {}: a local cache directory is not supported with --server; use a registry cache",
            c.target.describe()
        );
    };
    let mode = match c.mode {
        CacheMode::Min => "min",
        CacheMode::Max => "max",
    };
    let compression = match c.compression {
        Compression::Zstd { .. } => "zstd",
        Compression::None => "uncompressed",
        _ => "gzip",
    };
    Ok(format!(
        "--cache-to=type=registry,ref={r},mode={mode},compression={compression},ignore-error={}",
        c.ignore_error
    ))
}

/// The secrets' values, read here (they travel in the request only).
fn secret_values(a: &BuildArgs) -> Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    for (id, src) in &a.secrets {
        let value = match src {
            SecretSource::File(p) => std::fs::read(p)
                .with_context(|| format!("--secret id={id}: reading {}", p.display()))?,
            SecretSource::Env(v) => std::env::var_os(v)
                .map(|x| x.into_encoded_bytes())
                .with_context(|| format!("--secret id={id}: ${v} is not set"))?,
            SecretSource::Memory(v) => v.0.to_vec(),
        };
        if value.len() > 500 * 1024 {
            bail!("--secret id={id}: secret {id} too big. max size 500KB");
        }
        out.push((id.clone(), value));
    }
    Ok(out)
}

/// The context's entries as sent.
fn file_entries(entries: &[rbuild::context::Entry]) -> Vec<FileEntry> {
    entries
        .iter()
        .map(|e| FileEntry {
            path: e.rel.clone(),
            kind: match e.kind {
                Kind::Dir => "dir",
                Kind::Symlink => "symlink",
                _ => "file",
            }
            .into(),
            mode: e.mode,
            mtime: e.mtime,
            digest: e.digest.map(|d| d.to_string()),
            link: e.link.clone(),
        })
        .collect()
}

/// Upload the files the server lacks; every file's content is read, and
/// hashed into its proof of possession. How many were uploaded.
async fn sync_context(
    client: &Client,
    by_digest: &HashMap<String, &rbuild::context::Entry>,
    proofs: &mut HashMap<String, String>,
) -> Result<usize> {
    let missing: std::collections::HashSet<String> = client
        .missing(by_digest.keys().cloned().collect())
        .await?
        .into_iter()
        .collect();
    for (d, e) in by_digest {
        let mut content = Vec::new();
        e.open()
            .and_then(|mut f| f.read_to_end(&mut content))
            .with_context(|| format!("reading {}", e.abs.display()))?;
        let mut proof = Proof::new();
        proof.update(&content);
        proofs.insert(d.clone(), proof.finish());
        if missing.contains(d) {
            client.upload(d, content.into()).await?;
        }
    }
    Ok(missing.len())
}

/// Run `args` on the server at `addr`.
pub fn run(args: &BuildArgs, addr: &str) -> Result<ExitCode> {
    let mode = progress_mode(&args.progress, args.quiet)?;
    let (wire, slots) = wire_args(args)?;
    let mut receiver = Receiver::new(slots);
    let secrets = secret_values(args)?;
    let prepared = super::context_source::prepare(&args.context, args.file.as_deref())?;
    let ctx = Context::open(&prepared.dir, &prepared.dockerfile_path, None)?;
    let mut entries = ctx.walk("")?;
    entries.retain(|e| e.kind != Kind::Other);
    ctx.digest(&mut entries)?;
    let token = std::env::var("RBUILD_SERVER_TOKEN").ok();
    let client = Client::new(addr, token)?;
    let files = file_entries(&entries);
    let by_digest: HashMap<String, &rbuild::context::Entry> = entries
        .iter()
        .filter_map(|e| e.digest.map(|d| (d.to_string(), e)))
        .collect();
    let mut req = BuildRequest {
        files,
        dockerfile: prepared.dockerfile.text.clone(),
        dockerfile_name: prepared
            .dockerfile_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "Dockerfile".into()),
        args: wire,
        secrets,
        proofs: HashMap::new(),
    };
    // One thread: a build's client waits on the network, and starts fast.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // The renderer holds stderr while it runs: it starts with the first
    // event; other lines are printed before it, or kept for after it.
    let mut view: Option<(Progress, std::thread::JoinHandle<()>)> = None;
    let mut later: Vec<String> = Vec::new();
    let result = runtime.block_on(async {
        let missing = sync_context(&client, &by_digest, &mut req.proofs).await?;
        if mode != Mode::Quiet {
            eprintln!(
                "context: {} of {} files uploaded to {addr}",
                missing,
                by_digest.len()
            );
        }
        let line = |view: &Option<_>, later: &mut Vec<String>, l: String| match view {
            Some(_) => later.push(l),
            None => eprintln!("{l}"),
        };
        let code = client
            .build(&req, |f| match f {
                f @ (Frame::Start { .. } | Frame::Bytes(_) | Frame::End) => {
                    receiver.frame(f);
                }
                Frame::Err(l) => match serde_json::from_str::<Event>(&l) {
                    Ok(e) => {
                        let (p, _) = view.get_or_insert_with(|| {
                            let (p, rx) = Progress::channel();
                            (p, spawn_renderer(rx, mode))
                        });
                        p.send(e);
                    }
                    Err(_) => line(&view, &mut later, l),
                },
                Frame::Out(l) => println!("{l}"),
                Frame::Queued(n) => {
                    line(&view, &mut later, format!("queued at {addr}: position {n}"))
                }
                Frame::Exit(_) | Frame::KeepAlive => {}
            })
            .await?;
        anyhow::Ok(code)
    });
    if let Some((p, r)) = view {
        drop(p);
        let _ = r.join();
    }
    for l in later {
        eprintln!("{l}");
    }
    let code = result?;
    for note in receiver.finish()? {
        eprintln!("{note}");
    }
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}
