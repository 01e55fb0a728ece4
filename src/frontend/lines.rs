//! Physical lines to instructions, the way BuildKit's parser reads a file:
//! parser directives at the top, comments, line continuations (with comment
//! and blank lines inside them), and heredoc bodies after their instruction.

use super::error::{FrontendError, Result};
use super::grammar::{DockerfileGrammar, Rule};
use super::line_parser::{LineInfo, LogicalLine, parse_line, parse_lines};
use super::position::{LineMap, Pos, Span};
use super::raw::{Heredoc, RawNode};
use super::shell::{Lexer, NoEnv, is_go_space};
use pest::Parser;
use serde::Serialize;

/// A parser directive (`# syntax=...`, `# escape=...`, `# check=...`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Directive {
    /// Lower-case name.
    pub name: String,
    /// The value as written, trimmed.
    pub value: String,
    /// The line it is on.
    pub line: usize,
}

/// A non-fatal finding of the line parser.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LineWarning {
    /// Short description.
    pub message: String,
    /// Where.
    pub line: usize,
}

/// Everything the line level yields.
#[derive(Debug, Clone, Default)]
pub struct Lines {
    /// Directives in order.
    pub directives: Vec<Directive>,
    /// The escape token in force.
    pub escape: char,
    /// Instructions in order.
    pub nodes: Vec<RawNode>,
    /// Warnings (empty continuation lines).
    pub warnings: Vec<LineWarning>,
}

const VALID_DIRECTIVES: [&str; 3] = ["syntax", "escape", "check"];

struct DirectiveState {
    done: bool,
    seen: Vec<String>,
}

impl DirectiveState {
    /// BuildKit's `DirectiveParser.ParseLine` on an already left-trimmed line.
    fn parse(&mut self, line: &str, line_no: usize) -> Result<Option<Directive>> {
        if self.done {
            return Ok(None);
        }
        let Some(body) = line.strip_prefix('#') else {
            self.done = true;
            return Ok(None);
        };
        let body = body.trim_start_matches(is_go_space);
        let Ok(mut pairs) = DockerfileGrammar::parse(Rule::directive, body) else {
            self.done = true;
            return Ok(None);
        };
        let mut inner = pairs.next().expect("grammar: directive").into_inner();
        let name = inner
            .next()
            .map(|p| p.as_str())
            .unwrap_or_default()
            .to_ascii_lowercase();
        let value = inner
            .next()
            .map(|p| p.as_str())
            .unwrap_or_default()
            .to_string();
        if !VALID_DIRECTIVES.contains(&name.as_str()) {
            self.done = true;
            return Ok(None);
        }
        if self.seen.contains(&name) {
            return Err(FrontendError::new(
                Pos {
                    line: line_no,
                    col: 1,
                },
                format!("only one {name} parser directive can be used"),
            ));
        }
        self.seen.push(name.clone());
        Ok(Some(Directive {
            name,
            value,
            line: line_no,
        }))
    }
}

fn trim_newline(s: &str) -> &str {
    s.trim_end_matches(['\r', '\n'])
}

fn is_comment(s: &str) -> bool {
    s.trim_start_matches(is_go_space).starts_with('#')
}

/// If `s` ends with the escape token (plus spaces/tabs) not itself escaped,
/// return `s` without them.
fn strip_continuation(s: &str, escape: char) -> Option<&str> {
    let t = s.trim_end_matches([' ', '\t']);
    let body = t.strip_suffix(escape)?;
    match body.chars().last() {
        None => Some(body),
        Some(c) if c == escape => None,
        Some(_) => Some(body),
    }
}

/// Read a Dockerfile into directives and raw instructions.
pub fn scan(source: &str) -> Result<Lines> {
    let source = source.strip_prefix('\u{FEFF}').unwrap_or(source);
    let physical: Vec<&str> = source.split_inclusive('\n').collect();
    let mut out = Lines {
        escape: '\\',
        ..Default::default()
    };
    let mut directives = DirectiveState {
        done: false,
        seen: Vec::new(),
    };
    let mut comments: Vec<String> = Vec::new();
    let mut joined = String::with_capacity(source.len());
    let mut infos: Vec<LineInfo> = Vec::new();
    let mut i = 0;
    while i < physical.len() {
        let raw = physical[i];
        let line_no = i + 1;
        i += 1;
        if is_comment(raw) {
            note_comment(raw, &mut comments);
        }
        let trimmed = trim_newline(raw);
        let lead = trimmed.len() - trimmed.trim_start_matches(is_go_space).len();
        let token = &trimmed[lead..];
        if let Some(d) = directives.parse(token, line_no)? {
            comments.pop();
            if d.name == "escape" {
                out.escape = escape_token(&d.value, line_no)?;
            }
            out.directives.push(d);
        }
        let token = if is_comment(token) { "" } else { token };
        let start = Pos {
            line: line_no,
            col: trimmed[..lead].chars().count() + 1,
        };
        let mut map = LineMap::default();
        let mut text = String::new();
        let mut end_of_line = match strip_continuation(token, out.escape) {
            Some(t) => {
                text.push_str(t);
                false
            }
            None => {
                text.push_str(token);
                true
            }
        };
        map.push(0, line_no, trimmed, lead);
        if end_of_line && text.is_empty() {
            continue;
        }
        let mut end_line = line_no;
        let mut empty_continuation = false;
        while !end_of_line && i < physical.len() {
            let raw = physical[i];
            i += 1;
            end_line = i;
            if is_comment(raw) {
                continue;
            }
            let cont = trim_newline(raw);
            if cont.trim_start_matches(is_go_space).is_empty() {
                empty_continuation = true;
                continue;
            }
            map.push(text.len(), end_line, cont, 0);
            match strip_continuation(cont, out.escape) {
                Some(t) => text.push_str(t),
                None => {
                    text.push_str(cont);
                    end_of_line = true;
                }
            }
        }
        if empty_continuation {
            out.warnings.push(LineWarning {
                message: format!("Empty continuation line found in: {text}"),
                line: end_line,
            });
        }
        let span = Span { start, end_line };
        let heredocs = read_heredocs(
            &physical,
            &mut i,
            &mut end_line,
            &text,
            &map,
            span,
            out.escape,
        )?;
        if !infos.is_empty() {
            joined.push('\n');
        }
        let begin = joined.len();
        // A newline cannot occur inside a logical line; keep the separator unique.
        joined.push_str(&text);
        infos.push(LineInfo {
            range: begin..joined.len(),
            map,
            span: Span { start, end_line },
            comments: std::mem::take(&mut comments),
            heredocs,
        });
    }
    if !infos.is_empty() {
        out.nodes = parse_lines(&joined, infos, out.escape)?;
    }
    if out.nodes.is_empty() {
        return Err(FrontendError::new(
            Pos {
                line: physical.len().max(1),
                col: 1,
            },
            "file with no instructions",
        ));
    }
    Ok(out)
}

/// The `# escape=` directive's token.
fn escape_token(value: &str, line_no: usize) -> Result<char> {
    match value {
        "\\" => Ok('\\'),
        "`" => Ok('`'),
        other => Err(FrontendError::new(
            Pos {
                line: line_no,
                col: 1,
            },
            format!("invalid escape token '{other}' does not match ` or \\"),
        )),
    }
}

/// A comment line: kept for the next instruction; an empty one clears them.
fn note_comment(raw: &str, comments: &mut Vec<String>) {
    let text = raw.trim_start_matches(is_go_space)[1..].trim_matches(is_go_space);
    if text.is_empty() {
        comments.clear();
    } else {
        comments.push(text.to_string());
    }
}

/// The heredoc bodies a logical line opens (when its form allows them),
/// read from the physical lines after it; `i` and `end_line` move past them.
fn read_heredocs(
    physical: &[&str],
    i: &mut usize,
    end_line: &mut usize,
    text: &str,
    map: &LineMap,
    span: Span,
    escape: char,
) -> Result<Vec<Heredoc>> {
    let start = span.start;
    let mut heredocs = Vec::new();
    if text.contains("<<") && may_have_heredoc(text) {
        // Whether heredocs apply depends on the parsed form (not JSON).
        let logical = LogicalLine {
            text,
            base: 0,
            map,
            escape,
        };
        let node = parse_line(&logical, span, Vec::new())?;
        if can_contain_heredoc(&node) {
            for mut doc in heredocs_in_line(text, start)? {
                let mut content = String::new();
                let mut terminated = false;
                while *i < physical.len() {
                    let body = physical[*i];
                    *i += 1;
                    *end_line = *i;
                    let mut candidate = trim_newline(body);
                    if doc.chomp {
                        candidate = candidate.trim_start_matches('\t');
                    }
                    if candidate == doc.name {
                        terminated = true;
                        break;
                    }
                    content.push_str(body);
                }
                if !terminated {
                    return Err(FrontendError::new(start, "unterminated heredoc"));
                }
                doc.content = content;
                heredocs.push(doc);
            }
        }
    }
    Ok(heredocs)
}

/// Cheap pre-check on the keyword: only ADD, COPY, RUN (or ONBUILD of them) take heredocs.
fn may_have_heredoc(text: &str) -> bool {
    let kw = text.split([' ', '\t']).next().unwrap_or("");
    ["add", "copy", "run", "onbuild"]
        .iter()
        .any(|k| kw.eq_ignore_ascii_case(k))
}

fn can_contain_heredoc(node: &RawNode) -> bool {
    let target = match (&node.nested, node.command().as_str()) {
        (Some(nested), "onbuild") => nested.as_ref(),
        _ => node,
    };
    matches!(target.command().as_str(), "add" | "copy" | "run") && !target.json
}

/// Find heredoc markers (`<<EOF`, `<<-"EOF"`, `3<<EOF`) in a logical line.
fn heredocs_in_line(line: &str, pos: Pos) -> Result<Vec<Heredoc>> {
    let lexer = Lexer {
        escape: '\\',
        raw_quotes: true,
        raw_escapes: true,
        skip_unset_env: true,
        skip_process_quotes: false,
    };
    let words = lexer.expand_words(line, &NoEnv).unwrap_or_default();
    let mut docs = Vec::new();
    for w in words {
        if let Some(doc) = parse_heredoc_word(&w).map_err(|e| FrontendError::new(pos, e))? {
            docs.push(doc);
        }
    }
    Ok(docs)
}

/// Parse one word as a heredoc marker: `^(\d*)<<(-?)\s*([^<]*)$`.
pub fn parse_heredoc_word(word: &str) -> std::result::Result<Option<Heredoc>, String> {
    let digits = word.len() - word.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let Some(after) = word[digits..].strip_prefix("<<") else {
        return Ok(None);
    };
    let (chomp, after) = match after.strip_prefix('-') {
        Some(a) => (true, a),
        None => (false, after),
    };
    let rest = after.trim_start_matches(['\t', '\n', '\x0C', '\r', ' ']);
    if rest.contains('<') || rest.is_empty() {
        return Ok(None);
    }
    let fd = word[..digits].parse().unwrap_or(0);
    let mut lexer = Lexer::new('\\');
    lexer.skip_unset_env = true;
    let words = lexer
        .expand_words(rest, &NoEnv)
        .map_err(|e| e.to_string())?;
    if words.len() != 1 {
        return Ok(None);
    }
    lexer.raw_quotes = true;
    let raw = lexer
        .expand_words(rest, &NoEnv)
        .map_err(|e| e.to_string())?;
    if raw.len() != words.len() {
        return Err(format!(
            "internal lexing of heredoc produced inconsistent results: {rest}"
        ));
    }
    let quotes = |s: &str| s.chars().filter(|c| *c == '\'' || *c == '"').count();
    Ok(Some(Heredoc {
        name: words[0].clone(),
        fd,
        expand: quotes(&words[0]) == quotes(&raw[0]),
        chomp,
        content: String::new(),
    }))
}
