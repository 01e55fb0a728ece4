//! `rbuild [build] ...`: build an image from a Dockerfile and a context.

use super::source::parse_build_arg;
use anyhow::{Context as _, Result, bail};
use clap::Args;
use rbuild::build::io::{BuildIo, Sink};
use rbuild::build::{BuildOutcome, Pusher};
use rbuild::cache::Store;
use rbuild::export::{OutputSpec, parse_output};
use rbuild::frontend::diagnostics::render;
use rbuild::frontend::lower::{BaseEnv, BuildOptions, lower};
use rbuild::frontend::parse_dockerfile_linted;
use rbuild::image::resolver::Resolver;
use rbuild::layer::compress::Compression;
use rbuild::progress::Mode;
use rbuild::registry::RegistryOptions;
use rbuild::remote_cache::{CacheFrom, CacheTo};
use rbuild::solver::steps::SecretSource;
use std::path::PathBuf;
use std::sync::Arc;

/// Arguments of `rbuild build`.
#[derive(Args, Debug)]
pub struct BuildArgs {
    /// Name and optionally a tag (`name:tag`); repeatable.
    #[arg(short = 't', long = "tag")]
    pub tags: Vec<String>,
    /// The Dockerfile (default: CONTEXT/Dockerfile; `-` reads standard input).
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    /// Set a build-time variable.
    #[arg(long = "build-arg", value_parser = parse_build_arg)]
    pub build_args: Vec<(String, String)>,
    /// The stage to build.
    #[arg(long)]
    pub target: Option<String>,
    /// Do not use the cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Add a label to the image (`K=V`).
    #[arg(long = "label", value_parser = parse_build_arg)]
    pub labels: Vec<(String, String)>,
    /// Target platforms (`linux/amd64,linux/arm64`; repeatable): each is
    /// built, and several make an image index.
    #[arg(long)]
    pub platform: Vec<String>,
    /// Progress output: auto, tty, plain, rawjson, quiet.
    #[arg(long, default_value = "auto")]
    pub progress: String,
    /// Output destination (`type=oci|oci-archive|docker-archive|local,dest=PATH`,
    /// `type=registry[,name=NAME]`, `type=image,name=NAME[,push=true]`).
    #[arg(short = 'o', long = "output")]
    pub outputs: Vec<String>,
    /// Push the image to the registry of each `-t` name (`-o type=registry`).
    #[arg(long)]
    pub push: bool,
    /// Load the image into the Docker engine of DOCKER_HOST or the default
    /// socket (`-o type=docker`).
    #[arg(long)]
    pub load: bool,
    /// Write the image ID to this file.
    #[arg(long)]
    pub iidfile: Option<PathBuf>,
    /// Write build metadata (digests, names) as JSON to this file.
    #[arg(long = "metadata-file")]
    pub metadata_file: Option<PathBuf>,
    /// Print only the image ID.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// A secret for `RUN --mount=type=secret` (`id=ID,src=FILE` or `id=ID,env=VAR`).
    #[arg(long = "secret", value_parser = parse_secret)]
    pub secrets: Vec<(String, SecretSource)>,
    /// Print, for every step, why it was or was not taken from the cache.
    #[arg(long)]
    pub explain: bool,
    /// Always resolve base images at their registry (else a stored base is used offline).
    #[arg(long)]
    pub pull: bool,
    /// Allow plain HTTP (and unverified HTTPS) for this registry (`HOST[:PORT]`); repeatable.
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    pub insecure_registries: Vec<String>,
    /// Grant an entitlement, as buildx: `network.host` lets `RUN
    /// --network=host` share the host's network.
    #[arg(long = "allow", value_parser = parse_entitlement)]
    pub allow: Vec<String>,
    /// Export the build cache (`type=registry,ref=REG/NAME:TAG[,mode=min|max]
    /// [,compression=gzip|zstd][,ignore-error=true]`, `type=local,dest=DIR`, `type=inline`).
    #[arg(long = "cache-to", value_parser = parse_cache_to)]
    pub cache_to: Vec<CacheTo>,
    /// Import a build cache (`type=registry,ref=...`, `type=local,src=DIR`,
    /// or a reference); repeatable.
    #[arg(long = "cache-from", value_parser = parse_cache_from)]
    pub cache_from: Vec<CacheFrom>,
    /// Build on this `rbuild serve` (`unix:///PATH` or `tcp://HOST:PORT`;
    /// the token from $RBUILD_SERVER_TOKEN).
    #[arg(long)]
    pub server: Option<String>,
    /// The build context directory.
    #[arg(default_value = ".")]
    pub context: PathBuf,
}

fn parse_cache_to(s: &str) -> Result<CacheTo, String> {
    rbuild::remote_cache::parse_cache_to(s).map_err(|e| e.to_string())
}

fn parse_cache_from(s: &str) -> Result<CacheFrom, String> {
    rbuild::remote_cache::parse_cache_from(s).map_err(|e| e.to_string())
}

/// Parse `--allow ENTITLEMENT` (buildx's names).
fn parse_entitlement(s: &str) -> Result<String, String> {
    match s {
        "network.host" => Ok(s.to_string()),
        "security.insecure" => Err(
            "security.insecure is not supported by rbuild (RUN --security=insecure is refused)"
                .into(),
        ),
        _ => Err(format!(
            "invalid entitlement {s:?} (known: network.host, security.insecure)"
        )),
    }
}

/// Parse `--secret id=ID,src=FILE|env=VAR` (docker's syntax; `source=` and
/// `type=file|env` accepted too).
fn parse_secret(s: &str) -> Result<(String, SecretSource), String> {
    let (mut id, mut src, mut envv, mut kind) = (None, None, None, None);
    for f in s.split(',') {
        match f.split_once('=') {
            Some(("id", v)) => id = Some(v.to_string()),
            Some(("src" | "source", v)) => src = Some(v.to_string()),
            Some(("env", v)) => envv = Some(v.to_string()),
            Some(("type", v)) => kind = Some(v.to_string()),
            _ => {
                return Err(format!(
                    "invalid --secret field {f:?} (expected id=, src=, env=, type=)"
                ));
            }
        }
    }
    let id = id.ok_or("--secret needs id=")?;
    let source = match (src, envv, kind.as_deref()) {
        (Some(p), _, Some("env")) => SecretSource::Env(p),
        (Some(p), _, _) => SecretSource::File(PathBuf::from(p)),
        (None, Some(v), _) => SecretSource::Env(v),
        // As buildx: the variable named by the id if set, else the file.
        (None, None, _) if std::env::var_os(&id).is_some() => SecretSource::Env(id.clone()),
        (None, None, _) => SecretSource::File(PathBuf::from(&id)),
    };
    Ok((id, source))
}

/// Secret files must exist before the build starts (as buildx's secret
/// store checks them), and be at most 500 KB.
fn check_secrets(secrets: &[(String, SecretSource)]) -> Result<()> {
    for (id, src) in secrets {
        if let SecretSource::File(p) = src {
            let meta = std::fs::metadata(p)
                .with_context(|| format!("--secret id={id}: failed to stat {}", p.display()))?;
            if meta.len() > 500 * 1024 {
                bail!("--secret id={id}: secret {id} too big. max size 500KB");
            }
        }
    }
    Ok(())
}

/// Base image environments, from the store, OCI layouts and registries;
/// with `lazy`, from a base's config alone (its layers may stay remote).
struct StoreImages<'a> {
    resolver: &'a Resolver,
    lazy: bool,
}

impl StoreImages<'_> {
    fn config(&self, image: &str) -> Option<rbuild::image::config::ImageConfig> {
        let loaded = match self.lazy {
            true => self.resolver.load_lazy(image),
            false => self.resolver.load(image),
        };
        loaded.ok().map(|i| i.state.config)
    }
}

impl BaseEnv for StoreImages<'_> {
    fn env(&self, image: &str) -> Option<Vec<(String, String)>> {
        self.config(image).map(|mut c| {
            c.ensure_path();
            c.env_pairs()
        })
    }
    fn onbuild(&self, image: &str) -> Vec<String> {
        self.config(image)
            .map(|c| c.config.on_build)
            .unwrap_or_default()
    }
}

/// When every output is a push of gzip layers: the registries pushed to
/// (bases there may stay lazy). None otherwise.
pub(super) fn push_only_hosts(args: &BuildArgs, outputs: &[OutputSpec]) -> Option<Vec<String>> {
    let gzip = |o: &OutputSpec| matches!(o.compression, Compression::Gzip { .. });
    if outputs.is_empty() || !outputs.iter().all(|o| o.push && gzip(o)) {
        return None;
    }
    let mut hosts = Vec::new();
    for o in outputs {
        let names = if o.names.is_empty() {
            &args.tags
        } else {
            &o.names
        };
        for t in super::push::targets(names).ok()? {
            hosts.push(t.domain().to_string());
        }
    }
    Some(hosts)
}

pub(super) fn progress_mode(s: &str, quiet: bool) -> Result<Mode> {
    if quiet {
        return Ok(Mode::Quiet);
    }
    Ok(match s {
        "auto" => Mode::Auto,
        "tty" => Mode::Tty,
        "plain" => Mode::Plain,
        "rawjson" => Mode::RawJson,
        "quiet" => Mode::Quiet,
        other => bail!("invalid --progress {other:?} (auto, tty, plain, rawjson, quiet)"),
    })
}

/// SOURCE_DATE_EPOCH from `--build-arg` (as BuildKit's frontend takes it),
/// else from the environment (as buildx passes it on).
pub(super) fn source_date_epoch(build_args: &[(String, String)]) -> Result<Option<u64>> {
    let (v, from) = match build_args
        .iter()
        .rev()
        .find(|(k, _)| k == "SOURCE_DATE_EPOCH")
    {
        Some((_, v)) => (v.clone(), "--build-arg SOURCE_DATE_EPOCH"),
        None => (
            std::env::var("SOURCE_DATE_EPOCH").unwrap_or_default(),
            "SOURCE_DATE_EPOCH",
        ),
    };
    if v.is_empty() {
        return Ok(None);
    }
    v.parse::<u64>()
        .map(Some)
        .with_context(|| format!("{from}={v}: must be a number of seconds"))
}

/// Print the build checks' findings (not in quiet mode).
pub(super) fn print_warnings(
    src: &super::source::DockerfileSource,
    linter: &rbuild::frontend::lint::Linter,
    mode: Mode,
    err: &Sink,
) {
    if mode != Mode::Quiet {
        super::source::print_lint_warnings(src, linter, err);
    }
}

/// After a solve: the build checks' findings and the build args nothing
/// used, then the result; None (the error printed) when the build failed
/// or was cancelled (then nothing is stored or exported).
pub(super) fn settle<T, E: std::fmt::Display>(
    solved: Result<T, E>,
    (src, linter): (
        &super::source::DockerfileSource,
        &rbuild::frontend::lint::Linter,
    ),
    unused_args: &[String],
    (mode, io): (Mode, &BuildIo),
) -> Option<T> {
    print_warnings(src, linter, mode, &io.err);
    if !unused_args.is_empty() && mode != Mode::Quiet {
        io.err.line(format_args!(
            "[Warning] One or more build-args [{}] were not consumed",
            unused_args.join(" ")
        ));
    }
    match solved {
        Ok(_) if io.cancel.is_cancelled() => {
            io.err.line("error: the build was cancelled");
            None
        }
        Ok(r) => Some(r),
        Err(e) => {
            io.err.line(format_args!("error: {e}"));
            None
        }
    }
}

/// Push through the registry client, printing what is pushed to `err`
/// (None: quiet).
pub(super) struct RegistryPusher {
    pub(super) registry: RegistryOptions,
    pub(super) err: Option<Sink>,
}

impl Pusher for RegistryPusher {
    fn push(
        &self,
        store: &Arc<Store>,
        manifest: &rbuild::digest::Digest,
        names: &[String],
        insecure: bool,
    ) -> Result<(), String> {
        let mut registry = self.registry.clone();
        let mut run = || -> Result<()> {
            for t in super::push::targets(names)? {
                if insecure {
                    registry.insecure.push(t.domain().to_string());
                }
                super::push::push_one(store, manifest, &t, &registry, self.err.as_ref())?;
            }
            Ok(())
        };
        run().map_err(|e| format!("{e:#}"))
    }
}

/// The outputs asked for (`-o`, `--push`), checked before the build starts.
pub(super) fn outputs_of(args: &BuildArgs) -> Result<Vec<OutputSpec>> {
    for t in &args.tags {
        if let Err(e) = rbuild::registry::reference::validate(t) {
            bail!("invalid argument {t:?} for \"-t, --tag\" flag: {e}");
        }
    }
    let mut outputs: Vec<OutputSpec> = args
        .outputs
        .iter()
        .map(|o| parse_output(o))
        .collect::<Result<_, _>>()?;
    if args.push {
        outputs.push(parse_output("type=registry")?);
    }
    if args.load {
        outputs.push(parse_output("type=docker")?);
    }
    for o in outputs.iter().filter(|o| o.push) {
        if o.names.is_empty() && args.tags.is_empty() {
            bail!("tag is needed when pushing to registry (-t REGISTRY/NAME:TAG)");
        }
        super::push::targets(&o.names)?;
    }
    check_secrets(&args.secrets)?;
    Ok(outputs)
}

/// Parse and lower the Dockerfile; diagnostics are printed and give None.
pub(super) fn plan_of(
    args: &BuildArgs,
    src: &super::source::DockerfileSource,
    opts: &BuildOptions,
    images: &Resolver,
    lazy: bool,
    (mode, err): (Mode, &Sink),
) -> Option<(
    rbuild::frontend::lower::BuildPlan,
    rbuild::frontend::lint::Linter,
)> {
    let checks = args
        .build_args
        .iter()
        .rev()
        .find(|(k, _)| k == "BUILDKIT_DOCKERFILE_CHECK")
        .map(|(_, v)| v.as_str());
    let show = |pos, msg: &str| err.text(&render(&src.display, &src.text, pos, "error", msg));
    let opts = &BuildOptions {
        ignore: super::source::local_ignore(&args.context, src.path.as_deref()),
        ..opts.clone()
    };
    // The warnings found before an error are shown with it (as BuildKit).
    let (parsed, mut linter) = parse_dockerfile_linted(&src.text, checks);
    let df = match parsed {
        Ok(v) => v,
        Err(e) => {
            print_warnings(src, &linter, mode, err);
            show(e.pos, &e.message);
            return None;
        }
    };
    let bases = StoreImages {
        resolver: images,
        lazy,
    };
    let plan = match lower(&df, opts, &bases, &mut linter) {
        Ok(p) => p,
        Err(e) => {
            print_warnings(src, &linter, mode, err);
            show(e.pos, &e.message);
            return None;
        }
    };
    if let Err((pos, msg)) = super::platforms::check_stages(&plan) {
        show(pos, &msg);
        return None;
    }
    if let Some(v) = linter.violation() {
        print_warnings(src, &linter, mode, err);
        err.line(format_args!("error: {v}"));
        return None;
    }
    Some((plan, linter))
}

/// `--iidfile`, `--metadata-file`, and the image ID and names printed.
pub(super) fn report(args: &BuildArgs, outcome: &BuildOutcome, io: &BuildIo) -> Result<()> {
    let image_id = outcome.image_id.to_string();
    if let Some(f) = &args.iidfile {
        std::fs::write(f, &image_id).with_context(|| format!("writing {}", f.display()))?;
    }
    if let (Some(f), Some(image)) = (&args.metadata_file, &outcome.metadata) {
        let meta = serde_json::json!({
            "containerimage.digest": image.manifest,
            "containerimage.config.digest": image.config,
            "image.name": outcome.names.join(","),
        });
        std::fs::write(f, serde_json::to_vec_pretty(&meta)?)
            .with_context(|| format!("writing {}", f.display()))?;
    }
    if args.quiet {
        io.out.line(&image_id);
    } else {
        io.err.line(format_args!("image {image_id}"));
        for n in &outcome.names {
            io.err.line(format_args!("tagged {n}"));
        }
    }
    Ok(())
}
