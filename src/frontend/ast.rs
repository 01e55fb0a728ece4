//! The typed Dockerfile AST: one variant per instruction, each with its
//! position and original text. Serialised as the `rbuild parse --json`
//! schema (see docs/ast-schema.md); field names are part of that contract.

use super::lines::Directive;
use super::position::{Pos, Span};
use super::raw::Heredoc;
use serde::Serialize;

/// A parsed Dockerfile.
#[derive(Debug, Clone, Serialize)]
pub struct Dockerfile {
    /// Parser directives (`syntax`, `escape`, `check`).
    pub directives: Vec<Directive>,
    /// The escape token in force.
    pub escape: char,
    /// ARG instructions before the first FROM (global scope).
    pub global_args: Vec<Instruction>,
    /// Build stages in order.
    pub stages: Vec<Stage>,
}

/// One `FROM` and the instructions that follow it.
#[derive(Debug, Clone, Serialize)]
pub struct Stage {
    /// Index in the file, from 0.
    pub index: usize,
    /// The `AS name` (lower-cased), if any.
    pub name: Option<String>,
    /// The name as written (for the casing check).
    pub name_as_written: Option<String>,
    /// The base: an image reference, `scratch`, or an earlier stage's name (unexpanded).
    pub base: String,
    /// `--platform`, unexpanded.
    pub platform: Option<String>,
    /// Where the FROM is.
    pub span: Span,
    /// The FROM line as written.
    pub original: String,
    /// The keyword as written (for the casing check).
    pub keyword: String,
    /// `AS` as written.
    pub as_keyword: Option<String>,
    /// Instructions after FROM.
    pub instructions: Vec<Instruction>,
}

/// An instruction with its place in the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Instruction {
    /// Where it is.
    pub span: Span,
    /// The logical line as written (continuations joined).
    pub original: String,
    /// The keyword as written.
    pub keyword: String,
    /// What it does.
    #[serde(flatten)]
    pub kind: InstructionKind,
}

/// A key/value pair of ENV or LABEL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyValue {
    /// The key, unexpanded.
    pub key: String,
    /// The value, unexpanded (quotes still in place).
    pub value: String,
    /// True for the legacy `ENV key value` form.
    pub legacy: bool,
    /// Where the key is.
    pub pos: Pos,
}

/// One name of an ARG instruction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArgDecl {
    /// The name.
    pub name: String,
    /// The default, unexpanded.
    pub default: Option<String>,
    /// Where the name is.
    pub pos: Pos,
}

/// A command line of RUN, CMD, ENTRYPOINT or HEALTHCHECK CMD.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommandLine {
    /// Exec form: the argv; shell form: one string.
    pub args: Vec<String>,
    /// True for the JSON (exec) form; false means "run through SHELL".
    pub exec_form: bool,
    /// Heredoc files of the command (RUN only).
    pub heredocs: Vec<Heredoc>,
}

/// A heredoc used as a COPY/ADD source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InlineSource {
    /// The heredoc name, used as the file name.
    pub name: String,
    /// The content (leading tabs removed for `<<-`).
    pub content: String,
    /// Whether variables in the content are expanded.
    pub expand: bool,
}

/// Sources and destination of COPY and ADD.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourcesAndDest {
    /// Paths, globs or URLs.
    pub sources: Vec<String>,
    /// Heredoc sources.
    pub inline_sources: Vec<InlineSource>,
    /// The destination.
    pub dest: String,
}

/// Options shared by COPY and ADD.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct CopyOptions {
    /// `--chown=user:group`.
    pub chown: Option<String>,
    /// `--chmod=mode`.
    pub chmod: Option<String>,
    /// `--link`.
    pub link: bool,
    /// `--exclude=pattern` (repeatable).
    pub exclude: Vec<String>,
}

/// COPY.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Copy {
    /// What and where.
    #[serde(flatten)]
    pub paths: SourcesAndDest,
    /// `--from=stage|image|index`.
    pub from: Option<String>,
    /// `--parents`.
    pub parents: bool,
    /// Shared options.
    #[serde(flatten)]
    pub options: CopyOptions,
}

/// ADD.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Add {
    /// What and where.
    #[serde(flatten)]
    pub paths: SourcesAndDest,
    /// `--checksum=sha256:...`.
    pub checksum: Option<String>,
    /// `--keep-git-dir`.
    pub keep_git_dir: Option<bool>,
    /// `--unpack`.
    pub unpack: Option<bool>,
    /// Shared options.
    #[serde(flatten)]
    pub options: CopyOptions,
}

pub use crate::ops::mounts::spec::{Mount, MountType, NetworkMode, Sharing};

/// `RUN --security`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SecurityMode {
    /// The default sandbox.
    Sandbox,
    /// All capabilities (needs an entitlement).
    Insecure,
}

/// RUN.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Run {
    /// The command.
    #[serde(flatten)]
    pub command: CommandLine,
    /// `--mount` values, unexpanded, as written.
    pub mounts_raw: Vec<String>,
    /// `--mount` values parsed without expansion (checked early).
    pub mounts: Vec<Mount>,
    /// `--network`.
    pub network: Option<NetworkMode>,
    /// `--security`.
    pub security: Option<SecurityMode>,
}

/// HEALTHCHECK.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "UPPERCASE")]
pub enum Healthcheck {
    /// Disable any inherited healthcheck.
    None,
    /// Run a command.
    Cmd {
        /// `["CMD", argv...]` or `["CMD-SHELL", "cmd"]`, as in the image config.
        test: Vec<String>,
        /// `--interval` in nanoseconds (0 = inherit default).
        interval_ns: u64,
        /// `--timeout` in nanoseconds.
        timeout_ns: u64,
        /// `--start-period` in nanoseconds.
        start_period_ns: u64,
        /// `--start-interval` in nanoseconds.
        start_interval_ns: u64,
        /// `--retries`.
        retries: u32,
    },
}

/// What an instruction does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "instruction", rename_all = "UPPERCASE")]
pub enum InstructionKind {
    /// ADD.
    Add(Add),
    /// ARG.
    Arg {
        /// The declared names.
        args: Vec<ArgDecl>,
    },
    /// CMD.
    Cmd(CommandLine),
    /// COPY.
    Copy(Copy),
    /// ENTRYPOINT.
    Entrypoint(CommandLine),
    /// ENV.
    Env {
        /// The pairs.
        pairs: Vec<KeyValue>,
    },
    /// EXPOSE.
    Expose {
        /// Ports, as written (`80`, `53/udp`), unexpanded.
        ports: Vec<String>,
    },
    /// HEALTHCHECK.
    Healthcheck {
        /// The configuration.
        health: Healthcheck,
    },
    /// LABEL.
    Label {
        /// The pairs.
        pairs: Vec<KeyValue>,
    },
    /// MAINTAINER (deprecated).
    Maintainer {
        /// The maintainer.
        name: String,
    },
    /// ONBUILD.
    Onbuild {
        /// The trigger text as the image config stores it.
        expression: String,
        /// The parsed trigger.
        trigger: Box<Instruction>,
    },
    /// RUN.
    Run(Run),
    /// SHELL.
    Shell {
        /// The shell argv.
        shell: Vec<String>,
    },
    /// STOPSIGNAL.
    Stopsignal {
        /// The signal.
        signal: String,
    },
    /// USER.
    User {
        /// `user[:group]`.
        user: String,
    },
    /// VOLUME.
    Volume {
        /// Paths.
        paths: Vec<String>,
    },
    /// WORKDIR.
    Workdir {
        /// Path.
        path: String,
    },
}

impl InstructionKind {
    /// The instruction name in upper case.
    pub fn name(&self) -> &'static str {
        match self {
            InstructionKind::Add(_) => "ADD",
            InstructionKind::Arg { .. } => "ARG",
            InstructionKind::Cmd(_) => "CMD",
            InstructionKind::Copy(_) => "COPY",
            InstructionKind::Entrypoint(_) => "ENTRYPOINT",
            InstructionKind::Env { .. } => "ENV",
            InstructionKind::Expose { .. } => "EXPOSE",
            InstructionKind::Healthcheck { .. } => "HEALTHCHECK",
            InstructionKind::Label { .. } => "LABEL",
            InstructionKind::Maintainer { .. } => "MAINTAINER",
            InstructionKind::Onbuild { .. } => "ONBUILD",
            InstructionKind::Run(_) => "RUN",
            InstructionKind::Shell { .. } => "SHELL",
            InstructionKind::Stopsignal { .. } => "STOPSIGNAL",
            InstructionKind::User { .. } => "USER",
            InstructionKind::Volume { .. } => "VOLUME",
            InstructionKind::Workdir { .. } => "WORKDIR",
        }
    }
}

/// Every instruction keyword Docker documents.
pub const INSTRUCTION_NAMES: [&str; 18] = [
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];
