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
    /// The joined text.
    pub text: &'a str,
    /// Offsets to positions.
    pub map: &'a LineMap,
    /// The escape token in force.
    pub escape: char,
}

impl LogicalLine<'_> {
    fn pos(&self, offset: usize) -> Pos {
        self.map.pos(self.text, offset)
    }
}

/// Parse a logical line into a node (keyword, flags, arguments).
pub fn parse_line(line: &LogicalLine<'_>, span: Span, comments: Vec<String>) -> Result<RawNode> {
    let rule = if line.escape == '`' {
        Rule::line_backtick
    } else {
        Rule::line_backslash
    };
    let mut pairs = DockerfileGrammar::parse(rule, line.text).map_err(|e| {
        // The grammar accepts every line; a failure here is a bug, reported plainly.
        FrontendError::new(span.start, format!("cannot parse instruction: {e}"))
    })?;
    let pair = pairs
        .next()
        .ok_or_else(|| FrontendError::new(span.start, "empty instruction"))?;
    let mut node = convert(line, pair, span)?;
    node.comments = comments;
    node.original = line.text.to_string();
    Ok(node)
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
                let pos = line.pos(p.as_span().start());
                match family {
                    Rule::kv_line => {
                        node.args = name_values(line, p.as_str(), p.as_span().start(), &node)?
                    }
                    Rule::arg_line => {
                        node.args = shell_words(line, p.as_str(), p.as_span().start())?
                    }
                    _ => node.args.push(RawArg {
                        value: p.as_str().trim_end_matches(is_go_space).to_string(),
                        pos,
                    }),
                }
            }
            Rule::plain_words => {
                for w in p.into_inner() {
                    let start = w.as_span().start();
                    // The grammar splits on space, tab and CR; BuildKit also splits on \v and \f.
                    let mut offset = 0;
                    for part in w.as_str().split(['\x0B', '\x0C']) {
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

/// Split ARG/ENV/LABEL arguments into words, keeping quotes and escapes.
fn shell_words(line: &LogicalLine<'_>, rest: &str, base: usize) -> Result<Vec<RawArg>> {
    let rule = if line.escape == '`' {
        Rule::shell_words_backtick
    } else {
        Rule::shell_words_backslash
    };
    let pairs = DockerfileGrammar::parse(rule, rest)
        .map_err(|e| FrontendError::new(line.pos(base), format!("cannot split words: {e}")))?;
    let mut words = Vec::new();
    for w in pairs.flatten().filter(|p| p.as_rule() == Rule::shell_word) {
        let mut value = w.as_str();
        if w.clone()
            .into_inner()
            .any(|p| p.as_rule() == Rule::sw_dangling)
        {
            value = &value[..value.len() - line.escape.len_utf8()];
        }
        words.push(RawArg {
            value: value.to_string(),
            pos: line.pos(base + w.as_span().start()),
        });
    }
    Ok(words)
}

/// ENV and LABEL: `k v` (old form) or `k=v ...`, as (key, value, separator) triples.
fn name_values(
    line: &LogicalLine<'_>,
    rest: &str,
    base: usize,
    node: &RawNode,
) -> Result<Vec<RawArg>> {
    let words = shell_words(line, rest, base)?;
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
