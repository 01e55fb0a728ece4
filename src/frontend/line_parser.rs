//! Parses one logical line with the pest grammar into a [`RawNode`].

use super::error::{FrontendError, Result};
use super::grammar::{DockerfileGrammar, Rule};
use super::position::{LineMap, Pos, Span};
use super::raw::{RawArg, RawNode};
use super::shell::is_go_space;
use pest::Parser;
use pest::iterators::Pair;

/// A logical line with the map back to the file.
pub struct LogicalLine<'a> {
    /// The joined text of this line.
    pub text: &'a str,
    /// Where `text` starts in the text given to the grammar.
    pub base: usize,
    /// Offsets (relative to `text`) to positions.
    pub map: &'a LineMap,
    /// The escape token in force.
    pub escape: char,
}

impl LogicalLine<'_> {
    /// File position of an offset in the grammar's input.
    fn pos(&self, offset: usize) -> Pos {
        self.map.pos(self.text, offset.saturating_sub(self.base))
    }
}

/// What the line scanner knows of a logical line before it is parsed.
pub struct LineInfo {
    /// Byte range of the line in the joined text.
    pub range: std::ops::Range<usize>,
    /// Offsets to positions.
    pub map: LineMap,
    /// Where the instruction is.
    pub span: Span,
    /// Comment lines directly above it.
    pub comments: Vec<String>,
    /// Heredoc bodies that follow it.
    pub heredocs: Vec<super::raw::Heredoc>,
}

/// Parse every logical line of a file in one pass of the grammar. `joined`
/// holds the lines separated by `\n`, as `lines` describes.
pub fn parse_lines(joined: &str, lines: Vec<LineInfo>, escape: char) -> Result<Vec<RawNode>> {
    let rule = if escape == '`' {
        Rule::file_backtick
    } else {
        Rule::file_backslash
    };
    let pairs = match DockerfileGrammar::parse(rule, joined) {
        Ok(p) => p,
        Err(e) => {
            // The grammar accepts every line; report a failure at its line.
            let offset = match e.location {
                pest::error::InputLocation::Pos(p) => p,
                pest::error::InputLocation::Span((p, _)) => p,
            };
            let info = lines
                .iter()
                .find(|l| l.range.end >= offset)
                .or(lines.last());
            let pos = info.map(|l| l.span.start).unwrap_or_default();
            // Never the grammar's rule names: BuildKit's words for a line
            // that starts with no known instruction.
            let word = info
                .map(|l| {
                    joined[l.range.clone()]
                        .split_whitespace()
                        .next()
                        .unwrap_or("")
                })
                .unwrap_or("");
            return Err(FrontendError::new(
                pos,
                format!("unknown instruction: {word}"),
            ));
        }
    };
    let mut nodes = Vec::with_capacity(lines.len());
    for (pair, info) in pairs.filter(|p| p.as_rule() != Rule::EOI).zip(lines) {
        let text = &joined[info.range.clone()];
        let line = LogicalLine {
            text,
            base: info.range.start,
            map: &info.map,
            escape,
        };
        let mut node = convert(&line, pair, info.span)?;
        node.comments = info.comments;
        node.heredocs = info.heredocs;
        node.original = text.to_string();
        nodes.push(node);
    }
    Ok(nodes)
}

/// Parse one logical line into a node (keyword, flags, arguments).
pub fn parse_line(line: &LogicalLine<'_>, span: Span, comments: Vec<String>) -> Result<RawNode> {
    let info = LineInfo {
        range: 0..line.text.len(),
        map: line.map.clone(),
        span,
        comments,
        heredocs: Vec::new(),
    };
    let mut nodes = parse_lines(line.text, vec![info], line.escape)?;
    nodes
        .pop()
        .ok_or_else(|| FrontendError::new(span.start, "empty instruction"))
}

fn convert(line: &LogicalLine<'_>, pair: Pair<'_, Rule>, span: Span) -> Result<RawNode> {
    let family = pair.as_rule();
    let mut inner = pair.into_inner();
    let kw = inner.next().expect("grammar: keyword first");
    let keyword = kw.as_str().to_string();
    let kw_pos = line.pos(kw.as_span().start());
    let mut node = RawNode {
        keyword,
        flags: Vec::new(),
        args: Vec::new(),
        json: false,
        nested: None,
        heredocs: Vec::new(),
        original: String::new(),
        span: Span {
            start: kw_pos,
            end_line: span.end_line,
        },
        comments: Vec::new(),
    };
    for p in inner {
        match p.as_rule() {
            Rule::flags => {
                for f in p.into_inner() {
                    let pos = line.pos(f.as_span().start());
                    let mut value = String::from("--");
                    flag_value(f, &mut value);
                    node.flags.push(RawArg { value, pos });
                }
            }
            Rule::json_args => {
                node.json = true;
                for el in p.into_inner() {
                    let pos = line.pos(el.as_span().start());
                    if el.as_rule() != Rule::json_string {
                        return Err(FrontendError::new(
                            pos,
                            "when using JSON array syntax, arrays must be comprised of strings only",
                        ));
                    }
                    node.args.push(RawArg {
                        value: json_string(el),
                        pos,
                    });
                }
            }
            Rule::raw_args => {
                let value = p.as_str().trim_end_matches(is_go_space);
                if !value.is_empty() {
                    node.args.push(RawArg {
                        value: value.to_string(),
                        pos: line.pos(p.as_span().start()),
                    });
                }
            }
            Rule::shell_words => {
                let words = shell_words(line, p.clone());
                node.args = if family == Rule::kv_line {
                    name_values(line, p.as_str(), p.as_span().start(), words, &node)?
                } else {
                    words
                };
            }
            Rule::plain_words => {
                for w in p.into_inner() {
                    let start = w.as_span().start();
                    // The grammar splits on space and tab; BuildKit also splits on \r, \v and \f.
                    let mut offset = 0;
                    for part in w.as_str().split(['\r', '\x0B', '\x0C']) {
                        if !part.is_empty() {
                            node.args.push(RawArg {
                                value: part.to_string(),
                                pos: line.pos(start + offset),
                            });
                        }
                        offset += part.len() + 1;
                    }
                }
                // Go's TrimSpace also drops trailing Unicode spaces.
                if let Some(last) = node.args.last_mut() {
                    let trimmed = last.value.trim_end_matches(is_go_space).len();
                    last.value.truncate(trimmed);
                    if last.value.is_empty() {
                        node.args.pop();
                    }
                }
            }
            Rule::health_type => node.args.push(RawArg {
                value: p.as_str().to_string(),
                pos: line.pos(p.as_span().start()),
            }),
            Rule::nested => {
                let sub = p.into_inner().next().expect("grammar: nested instruction");
                node.nested = Some(Box::new(convert(line, sub, span)?));
            }
            _ => {}
        }
    }
    Ok(node)
}

fn flag_value(pair: Pair<'_, Rule>, out: &mut String) {
    for p in pair.into_inner() {
        match p.as_rule() {
            Rule::flag_text | Rule::flag_dq_text | Rule::flag_sq_text | Rule::flag_char => {
                out.push_str(p.as_str())
            }
            _ => flag_value(p, out),
        }
    }
}

/// Decode a JSON string literal (Go's rules: lone surrogates become U+FFFD).
fn json_string(pair: Pair<'_, Rule>) -> String {
    let mut out = String::new();
    let mut pending_high: Option<u32> = None;
    for p in pair.into_inner() {
        let s = p.as_str();
        let code = if p.as_rule() == Rule::json_escape && s.as_bytes()[1] == b'u' {
            u32::from_str_radix(&s[2..6], 16).ok()
        } else {
            None
        };
        if let Some(high) = pending_high.take() {
            match code {
                Some(low @ 0xDC00..=0xDFFF) => {
                    let c = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00);
                    out.push(char::from_u32(c).unwrap_or('\u{FFFD}'));
                    continue;
                }
                _ => out.push('\u{FFFD}'),
            }
        }
        match p.as_rule() {
            Rule::json_text => out.push_str(s),
            _ => match code {
                Some(c @ 0xD800..=0xDBFF) => pending_high = Some(c),
                Some(c) => out.push(char::from_u32(c).unwrap_or('\u{FFFD}')),
                None => out.push(match s.as_bytes()[1] {
                    b'b' => '\x08',
                    b'f' => '\x0C',
                    b'n' => '\n',
                    b'r' => '\r',
                    b't' => '\t',
                    other => other as char,
                }),
            },
        }
    }
    if pending_high.is_some() {
        out.push('\u{FFFD}');
    }
    out
}

/// The words of ARG/ENV/LABEL arguments, quotes and escapes kept.
fn shell_words(line: &LogicalLine<'_>, pair: Pair<'_, Rule>) -> Vec<RawArg> {
    let mut words = Vec::new();
    for w in pair
        .into_inner()
        .filter(|p| p.as_rule() == Rule::shell_word)
    {
        let mut value = w.as_str();
        if w.clone()
            .into_inner()
            .any(|p| p.as_rule() == Rule::sw_dangling)
        {
            value = &value[..value.len() - line.escape.len_utf8()];
        }
        words.push(RawArg {
            value: value.to_string(),
            pos: line.pos(w.as_span().start()),
        });
    }
    words
}

/// ENV and LABEL: `k v` (old form) or `k=v ...`, as (key, value, separator) triples.
fn name_values(
    line: &LogicalLine<'_>,
    rest: &str,
    base: usize,
    words: Vec<RawArg>,
    node: &RawNode,
) -> Result<Vec<RawArg>> {
    let Some(first) = words.first() else {
        return Ok(Vec::new());
    };
    let upper = node.keyword.to_ascii_uppercase();
    let mut out = Vec::new();
    if !first.value.contains('=') {
        // Old form: the key, then everything after the first run of whitespace.
        let split = rest
            .char_indices()
            .find(|(_, c)| matches!(c, ' ' | '\t' | '\x0B' | '\x0C' | '\r'));
        let Some((i, _)) = split else {
            return Err(FrontendError::new(
                first.pos,
                format!("{upper} must have two arguments"),
            ));
        };
        let value_start = rest[i..]
            .char_indices()
            .find(|(_, c)| !matches!(c, ' ' | '\t' | '\x0B' | '\x0C' | '\r'))
            .map(|(j, _)| i + j)
            .unwrap_or(rest.len());
        out.push(RawArg {
            value: rest[..i].to_string(),
            pos: first.pos,
        });
        out.push(RawArg {
            value: rest[value_start..].to_string(),
            pos: line.pos(base + value_start),
        });
        out.push(RawArg {
            value: String::new(),
            pos: first.pos,
        });
        return Ok(out);
    }
    for w in words {
        let Some((k, v)) = w.value.split_once('=') else {
            return Err(FrontendError::new(
                w.pos,
                format!(
                    "Syntax error - can't find = in {}. Must be of the form: name=value",
                    super::raw::go_quote(&w.value)
                ),
            ));
        };
        let value_pos = Pos {
            line: w.pos.line,
            col: w.pos.col + k.chars().count() + 1,
        };
        out.push(RawArg {
            value: k.to_string(),
            pos: w.pos,
        });
        out.push(RawArg {
            value: v.to_string(),
            pos: value_pos,
        });
        out.push(RawArg {
            value: "=".into(),
            pos: w.pos,
        });
    }
    Ok(out)
}
