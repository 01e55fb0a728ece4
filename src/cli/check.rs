//! `rbuild check`: parse, validate and lower a Dockerfile; print warnings.

use super::source::{parse_build_arg, read_dockerfile};
use anyhow::Result;
use clap::Args;
use rbuild::frontend::diagnostics::render;
use rbuild::frontend::lower::{BuildOptions, UnknownImages, lower};
use rbuild::frontend::platform::Platform;
use rbuild::frontend::{FrontendError, parse_dockerfile_linted};
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `rbuild check`.
#[derive(Args, Debug)]
pub struct CheckArgs {
    /// The Dockerfile (default: CONTEXT/Dockerfile; `-` reads standard input).
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    /// Set a build-time variable (`K=V`, or `K` to take it from the environment).
    #[arg(long = "build-arg", value_parser = parse_build_arg)]
    pub build_args: Vec<(String, String)>,
    /// The stage to build.
    #[arg(long)]
    pub target: Option<String>,
    /// The target platform (`linux/amd64`).
    #[arg(long, value_parser = Platform::parse)]
    pub platform: Option<Platform>,
    /// The build context.
    #[arg(default_value = ".")]
    pub context: PathBuf,
}

/// Run the check; exit 0 when valid, 1 on errors (or warnings with `# check=error=true`).
pub fn run(args: CheckArgs) -> Result<ExitCode> {
    let src = read_dockerfile(args.file.as_deref(), &args.context)?;
    let fail = |e: FrontendError| {
        eprint!(
            "{}",
            render(&src.display, &src.text, e.pos, "error", &e.message)
        );
        Ok(ExitCode::FAILURE)
    };
    let checks = args
        .build_args
        .iter()
        .rev()
        .find(|(k, _)| k == "BUILDKIT_DOCKERFILE_CHECK")
        .map(|(_, v)| v.as_str());
    // The warnings found before an error are shown with it (as BuildKit).
    let warn = |linter: &rbuild::frontend::lint::Linter| {
        super::source::print_lint_warnings(&src, linter, &rbuild::build::io::Sink::stderr())
    };
    let (parsed, mut linter) = parse_dockerfile_linted(&src.text, checks);
    let df = match parsed {
        Ok(v) => v,
        Err(e) => {
            warn(&linter);
            return fail(e);
        }
    };
    let mut opts = BuildOptions {
        build_args: args.build_args,
        target: args.target,
        ..Default::default()
    };
    if let Some(p) = args.platform {
        opts.target_platform = p;
    }
    opts.ignore = super::source::local_ignore(&args.context, src.path.as_deref());
    let plan = match lower(&df, &opts, &UnknownImages, &mut linter) {
        Ok(p) => p,
        Err(e) => {
            warn(&linter);
            return fail(e);
        }
    };
    warn(&linter);
    if !plan.unused_build_args.is_empty() {
        eprintln!(
            "[Warning] One or more build-args [{}] were not consumed",
            plan.unused_build_args.join(" ")
        );
    }
    let stages = plan.order.len();
    println!(
        "{}: OK ({} stage{} to build, {} warning{})",
        src.display,
        stages,
        if stages == 1 { "" } else { "s" },
        linter.warnings.len(),
        if linter.warnings.len() == 1 { "" } else { "s" }
    );
    if let Some(v) = linter.violation() {
        eprintln!("error: {v}");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
