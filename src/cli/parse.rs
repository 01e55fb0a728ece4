//! `rbuild parse --json`: the AST as JSON (schema: docs/ast-schema.md).

use super::source::read_dockerfile;
use anyhow::Result;
use clap::Args;
use rbuild::frontend::diagnostics::render;
use rbuild::frontend::parse_dockerfile;
use std::path::PathBuf;
use std::process::ExitCode;

/// Version of the JSON schema printed by `rbuild parse --json`.
pub const SCHEMA_VERSION: u32 = 1;

/// Arguments of `rbuild parse`.
#[derive(Args, Debug)]
pub struct ParseArgs {
    /// Print JSON (the only format).
    #[arg(long, required = true)]
    pub json: bool,
    /// The Dockerfile (`-` reads standard input).
    #[arg(short = 'f', long = "file", default_value = "Dockerfile")]
    pub file: PathBuf,
}

/// Print the AST.
pub fn run(args: ParseArgs) -> Result<ExitCode> {
    let src = read_dockerfile(Some(&args.file), std::path::Path::new("."))?;
    match parse_dockerfile(&src.text) {
        Ok((df, linter)) => {
            let doc = serde_json::json!({
                "schema_version": SCHEMA_VERSION,
                "file": src.display,
                "dockerfile": df,
                "warnings": linter.warnings,
            });
            println!("{}", serde_json::to_string_pretty(&doc)?);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprint!(
                "{}",
                render(&src.display, &src.text, e.pos, "error", &e.message)
            );
            Ok(ExitCode::FAILURE)
        }
    }
}
