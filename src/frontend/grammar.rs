//! The pest parser generated from `grammar/dockerfile.pest`.

use pest_derive::Parser;

/// Parser for logical Dockerfile lines, directives and shell-like words.
#[derive(Parser)]
#[grammar = "../grammar/dockerfile.pest"]
pub struct DockerfileGrammar;
