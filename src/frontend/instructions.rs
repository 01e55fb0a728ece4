//! Raw nodes to typed instructions: argument counts, flags and forms checked
//! with BuildKit's rules and messages.

use super::ast::*;
use super::duration::parse_duration;
use super::error::{FrontendError, Result};
use super::flags::{FlagKind, Flags};
use super::lines::parse_heredoc_word;
use super::mounts::parse_mount;
use super::raw::{Heredoc, RawNode};
use super::suggest::{search, with_suggestion};

/// A typed instruction or the start of a stage.
pub enum Parsed {
    /// FROM.
    From(Stage),
    /// Anything else.
    Instruction(Instruction),
}

fn err(node: &RawNode, msg: impl Into<String>) -> FrontendError {
    FrontendError::new(node.span.start, msg)
}

fn exactly_one(node: &RawNode, name: &str) -> Result<String> {
    if node.args.len() != 1 {
        return Err(err(node, format!("{name} requires exactly one argument")));
    }
    Ok(node.args[0].value.clone())
}

fn at_least_one(node: &RawNode, name: &str) -> Result<()> {
    if node.args.is_empty() {
        return Err(err(node, format!("{name} requires at least one argument")));
    }
    Ok(())
}

/// Parse a raw node into a typed instruction.
pub fn parse_instruction(node: &RawNode) -> Result<Parsed> {
    let cmd = node.command();
    let kind = match cmd.as_str() {
        "from" => return parse_from(node).map(Parsed::From),
        "env" | "label" => parse_pairs(node, &cmd)?,
        "maintainer" => {
            let name = exactly_one(node, "MAINTAINER")?;
            Flags::parse(&node.flags, &[])?;
            InstructionKind::Maintainer { name }
        }
        "add" => parse_add(node)?,
        "copy" => parse_copy(node)?,
        "onbuild" => parse_onbuild(node)?,
        "workdir" => {
            let path = exactly_one(node, "WORKDIR")?;
            Flags::parse(&node.flags, &[])?;
            InstructionKind::Workdir { path }
        }
        "run" => parse_run(node)?,
        "cmd" => {
            Flags::parse(&node.flags, &[])?;
            InstructionKind::Cmd(command_line(node))
        }
        "entrypoint" => {
            Flags::parse(&node.flags, &[])?;
            InstructionKind::Entrypoint(command_line(node))
        }
        "healthcheck" => parse_healthcheck(node)?,
        "expose" => {
            at_least_one(node, "EXPOSE")?;
            Flags::parse(&node.flags, &[])?;
            let mut ports = node.arg_values();
            ports.sort();
            InstructionKind::Expose { ports }
        }
        "user" => {
            let user = exactly_one(node, "USER")?;
            Flags::parse(&node.flags, &[])?;
            InstructionKind::User { user }
        }
        "volume" => parse_volume(node)?,
        "stopsignal" => InstructionKind::Stopsignal {
            signal: exactly_one(node, "STOPSIGNAL")?,
        },
        "arg" => parse_arg(node)?,
        "shell" => parse_shell(node)?,
        _ => {
            return Err(err(
                node,
                match search(&node.keyword, &INSTRUCTION_NAMES, false) {
                    Some(c) => format!("unknown instruction: {} (did you mean {c}?)", node.keyword),
                    None => format!("unknown instruction: {}", node.keyword),
                },
            ));
        }
    };
    Ok(Parsed::Instruction(Instruction {
        span: node.span,
        original: node.original.clone(),
        keyword: node.keyword.clone(),
        kind,
    }))
}

/// ENV and LABEL: `key value` triples from the line parser.
fn parse_pairs(node: &RawNode, cmd: &str) -> Result<InstructionKind> {
    Flags::parse(&node.flags, &[])?;
    let upper = cmd.to_ascii_uppercase();
    at_least_one(node, &upper)?;
    if !node.args.len().is_multiple_of(3) {
        return Err(err(
            node,
            format!("Bad input to {upper}, too many arguments"),
        ));
    }
    let mut pairs = Vec::new();
    for t in node.args.chunks(3) {
        if t[0].value.is_empty() {
            return Err(FrontendError::new(
                t[0].pos,
                format!("{upper} names can not be blank"),
            ));
        }
        pairs.push(KeyValue {
            key: t[0].value.clone(),
            value: t[1].value.clone(),
            legacy: t[2].value.is_empty(),
            pos: t[0].pos,
        });
    }
    Ok(if cmd == "env" {
        InstructionKind::Env { pairs }
    } else {
        InstructionKind::Label { pairs }
    })
}

/// ADD and its flags.
fn parse_add(node: &RawNode) -> Result<InstructionKind> {
    if node.args.len() < 2 {
        return Err(err(node, no_destination("ADD")));
    }
    let f = Flags::parse(
        &node.flags,
        &[
            ("chown", FlagKind::String),
            ("chmod", FlagKind::String),
            ("link", FlagKind::Bool),
            ("keep-git-dir", FlagKind::Bool),
            ("checksum", FlagKind::String),
            ("unpack", FlagKind::Bool),
            ("exclude", FlagKind::Strings),
        ],
    )?;
    Ok(InstructionKind::Add(Add {
        paths: sources_and_dest(node, "ADD")?,
        checksum: f.string("checksum"),
        keep_git_dir: f.bool("keep-git-dir"),
        unpack: f.bool("unpack"),
        options: copy_options(&f),
    }))
}

/// COPY and its flags.
fn parse_copy(node: &RawNode) -> Result<InstructionKind> {
    if node.args.len() < 2 {
        return Err(err(node, no_destination("COPY")));
    }
    let f = Flags::parse(
        &node.flags,
        &[
            ("chown", FlagKind::String),
            ("from", FlagKind::String),
            ("chmod", FlagKind::String),
            ("link", FlagKind::Bool),
            ("exclude", FlagKind::Strings),
            ("parents", FlagKind::Bool),
        ],
    )?;
    Ok(InstructionKind::Copy(Copy {
        paths: sources_and_dest(node, "COPY")?,
        from: f.string("from"),
        parents: f.bool("parents").unwrap_or(false),
        options: copy_options(&f),
    }))
}

/// VOLUME paths (none empty).
fn parse_volume(node: &RawNode) -> Result<InstructionKind> {
    at_least_one(node, "VOLUME")?;
    Flags::parse(&node.flags, &[])?;
    let mut paths = Vec::new();
    for a in &node.args {
        let v = a.value.trim();
        if v.is_empty() {
            return Err(FrontendError::new(
                a.pos,
                "VOLUME specified can not be an empty string",
            ));
        }
        paths.push(v.to_string());
    }
    Ok(InstructionKind::Volume { paths })
}

/// ARG names with optional defaults.
fn parse_arg(node: &RawNode) -> Result<InstructionKind> {
    at_least_one(node, "ARG")?;
    Flags::parse(&node.flags, &[])?;
    let mut args = Vec::new();
    for a in &node.args {
        let (name, default) = match a.value.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (a.value.clone(), None),
        };
        if name.is_empty() {
            return Err(FrontendError::new(a.pos, "ARG names can not be blank"));
        }
        args.push(ArgDecl {
            name,
            default,
            pos: a.pos,
        });
    }
    Ok(InstructionKind::Arg { args })
}

/// SHELL, JSON form only.
fn parse_shell(node: &RawNode) -> Result<InstructionKind> {
    Flags::parse(&node.flags, &[])?;
    if node.args.is_empty() {
        return Err(err(node, "SHELL requires at least one argument"));
    }
    if !node.json {
        return Err(err(
            node,
            format!(
                "SHELL requires the arguments to be in JSON form: {}",
                node.original.trim()
            ),
        ));
    }
    Ok(InstructionKind::Shell {
        shell: node.arg_values(),
    })
}

fn no_destination(cmd: &str) -> String {
    format!(
        "{cmd} requires at least two arguments, but only one was provided. Destination could not be determined"
    )
}

fn copy_options(f: &Flags) -> CopyOptions {
    CopyOptions {
        chown: f.string("chown"),
        chmod: f.string("chmod"),
        link: f.bool("link").unwrap_or(false),
        exclude: f.all("exclude").to_vec(),
    }
}

/// Strip leading tabs from every line (the body of a `<<-` heredoc).
pub fn chomp_heredoc(content: &str) -> String {
    content
        .split_inclusive('\n')
        .map(|l| l.trim_start_matches('\t'))
        .collect()
}

fn sources_and_dest(node: &RawNode, cmd: &str) -> Result<SourcesAndDest> {
    let (srcs, dest) = node.args.split_at(node.args.len() - 1);
    let dest = &dest[0];
    if parse_heredoc_word(&dest.value).ok().flatten().is_some() {
        return Err(FrontendError::new(
            dest.pos,
            format!("{cmd} cannot accept a heredoc as a destination"),
        ));
    }
    let mut sources = Vec::new();
    let mut inline_sources = Vec::new();
    for s in srcs {
        match parse_heredoc_word(&s.value).ok().flatten() {
            Some(h) => {
                let doc = node.heredocs.iter().find(|d| d.name == h.name);
                let mut content = doc.map(|d| d.content.clone()).unwrap_or_default();
                if h.chomp {
                    content = chomp_heredoc(&content);
                }
                inline_sources.push(InlineSource {
                    name: h.name,
                    content,
                    expand: h.expand,
                });
            }
            None => sources.push(s.value.clone()),
        }
    }
    Ok(SourcesAndDest {
        sources,
        inline_sources,
        dest: dest.value.clone(),
    })
}

fn command_line(node: &RawNode) -> CommandLine {
    CommandLine {
        args: node.arg_values(),
        exec_form: node.json,
        heredocs: node.heredocs.clone(),
    }
}

fn parse_run(node: &RawNode) -> Result<InstructionKind> {
    let f = Flags::parse(
        &node.flags,
        &[
            ("mount", FlagKind::Strings),
            ("network", FlagKind::String),
            ("security", FlagKind::String),
            ("device", FlagKind::Strings),
        ],
    )?;
    let mut mounts = Vec::new();
    for raw in f.all("mount") {
        let pos = super::flags::Flags::position(&node.flags, "mount").unwrap_or(node.span.start);
        if !raw.contains('$') {
            mounts.push(parse_mount(raw).map_err(|e| FrontendError::new(pos, e))?);
        } else if let Some(from) = raw
            .split(',')
            .find_map(|kv| kv.strip_prefix("from="))
            .filter(|v| v.find('$').is_some_and(|i| i != v.len() - 1))
        {
            let _ = from;
            return Err(FrontendError::new(
                pos,
                "'from' doesn't support variable expansion, define alias stage instead",
            ));
        }
    }
    let network = match f.string("network") {
        None => None,
        Some(v) => Some(match v.as_str() {
            "default" => NetworkMode::Default,
            "none" => NetworkMode::None,
            "host" => NetworkMode::Host,
            _ => {
                let pos = Flags::position(&node.flags, "network").unwrap_or(node.span.start);
                return Err(FrontendError::new(
                    pos,
                    with_suggestion(
                        format!("unsupported network mode \"{v}\""),
                        &v,
                        &["default", "none", "host"],
                    ),
                ));
            }
        }),
    };
    let security = match f.string("security") {
        None => None,
        Some(v) => Some(match v.as_str() {
            "sandbox" => SecurityMode::Sandbox,
            "insecure" => SecurityMode::Insecure,
            _ => {
                let pos = Flags::position(&node.flags, "security").unwrap_or(node.span.start);
                return Err(FrontendError::new(
                    pos,
                    format!("unsupported security mode \"{v}\" (expected sandbox or insecure)"),
                ));
            }
        }),
    };
    Ok(InstructionKind::Run(Run {
        command: command_line(node),
        mounts_raw: f.all("mount").to_vec(),
        mounts,
        network,
        security,
    }))
}

fn parse_interval(f: &Flags, name: &str) -> std::result::Result<u64, String> {
    let Some(v) = f.string(name) else {
        return Ok(0);
    };
    if v.is_empty() {
        return Ok(0);
    }
    let d = parse_duration(&v)?;
    if d != 0 && d < 1_000_000 {
        return Err(format!("Interval \"{name}\" cannot be less than 1ms"));
    }
    Ok(d)
}

fn parse_healthcheck(node: &RawNode) -> Result<InstructionKind> {
    at_least_one(node, "HEALTHCHECK")?;
    let typ = node.args[0].value.to_ascii_uppercase();
    let rest = &node.args[1..];
    if typ == "NONE" {
        if !rest.is_empty() {
            return Err(err(node, "HEALTHCHECK NONE takes no arguments"));
        }
        return Ok(InstructionKind::Healthcheck {
            health: Healthcheck::None,
        });
    }
    let f = Flags::parse(
        &node.flags,
        &[
            ("interval", FlagKind::String),
            ("timeout", FlagKind::String),
            ("start-period", FlagKind::String),
            ("start-interval", FlagKind::String),
            ("retries", FlagKind::String),
        ],
    )?;
    if typ != "CMD" {
        return Err(err(
            node,
            format!(
                "Unknown type \"{}\" in HEALTHCHECK (try CMD)",
                node.args[0].value
            ),
        ));
    }
    if rest.is_empty() {
        return Err(err(node, "Missing command after HEALTHCHECK CMD"));
    }
    let mut test = vec![if node.json { "CMD" } else { "CMD-SHELL" }.to_string()];
    test.extend(rest.iter().map(|a| a.value.clone()));
    let e = |m: String| err(node, m);
    let retries = match f.string("retries") {
        None => 0,
        Some(v) => {
            let n: i64 = v
                .parse()
                .map_err(|_| e(format!("strconv.ParseInt: parsing \"{v}\": invalid syntax")))?;
            if n < 0 {
                return Err(e(format!("--retries cannot be negative ({n})")));
            }
            n as u32
        }
    };
    Ok(InstructionKind::Healthcheck {
        health: Healthcheck::Cmd {
            test,
            interval_ns: parse_interval(&f, "interval").map_err(e)?,
            timeout_ns: parse_interval(&f, "timeout").map_err(e)?,
            start_period_ns: parse_interval(&f, "start-period").map_err(e)?,
            start_interval_ns: parse_interval(&f, "start-interval").map_err(e)?,
            retries,
        },
    })
}

fn parse_onbuild(node: &RawNode) -> Result<InstructionKind> {
    let Some(nested) = &node.nested else {
        return Err(err(node, "ONBUILD requires at least one argument"));
    };
    Flags::parse(&node.flags, &[])?;
    let trigger = nested.keyword.to_ascii_uppercase();
    match trigger.as_str() {
        "ONBUILD" => {
            return Err(err(
                node,
                "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
            ));
        }
        "MAINTAINER" | "FROM" => {
            return Err(err(
                node,
                format!("{trigger} isn't allowed as an ONBUILD trigger"),
            ));
        }
        _ => {}
    }
    let mut nested = (**nested).clone();
    nested.heredocs = node.heredocs.clone();
    let Parsed::Instruction(trigger_instr) = parse_instruction(&nested)? else {
        return Err(err(node, "FROM isn't allowed as an ONBUILD trigger"));
    };
    let original = node.original.trim_start();
    let mut expression = original
        .get(7..)
        .map(|s| s.trim_start().to_string())
        .unwrap_or_default();
    for h in &node.heredocs {
        expression.push('\n');
        expression.push_str(&h.content);
        expression.push_str(&h.name);
    }
    Ok(InstructionKind::Onbuild {
        expression,
        trigger: Box::new(trigger_instr),
    })
}

fn parse_from(node: &RawNode) -> Result<Stage> {
    let f = Flags::parse(&node.flags, &[("platform", FlagKind::String)]);
    let args = &node.args;
    let (name, name_as_written, as_keyword) = match args.len() {
        3 if args[1].value.eq_ignore_ascii_case("as") => {
            let name = args[2].value.to_ascii_lowercase();
            let valid = name.starts_with(|c: char| c.is_ascii_lowercase())
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c));
            if !valid {
                return Err(FrontendError::new(
                    args[2].pos,
                    format!(
                        "invalid name for build stage: \"{}\", name can't start with a number or contain symbols",
                        args[2].value
                    ),
                ));
            }
            (
                Some(name),
                Some(args[2].value.clone()),
                Some(args[1].value.clone()),
            )
        }
        1 => (None, None, None),
        _ => return Err(err(node, "FROM requires either one or three arguments")),
    };
    let f = f?;
    Ok(Stage {
        index: 0,
        name,
        name_as_written,
        base: args[0].value.clone(),
        platform: f.string("platform"),
        span: node.span,
        original: node.original.trim().to_string(),
        keyword: node.keyword.clone(),
        as_keyword,
        instructions: Vec::new(),
    })
}

/// Heredocs of a RUN, with `<<-` bodies chomped.
pub fn run_heredoc_files(docs: &[Heredoc]) -> Vec<Heredoc> {
    docs.iter()
        .map(|d| {
            let mut d = d.clone();
            if d.chomp {
                d.content = chomp_heredoc(&d.content);
            }
            d
        })
        .collect()
}
