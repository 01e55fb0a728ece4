//! The untyped instruction list (BuildKit's "line parser" level) and its dump.

use super::position::{Pos, Span};
use serde::Serialize;
use std::fmt::Write;

/// A heredoc attached to an instruction (`<<EOF` ... `EOF`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Heredoc {
    /// The terminator word, quotes removed.
    pub name: String,
    /// File descriptor prefix (`3<<EOF`), 0 when absent.
    pub fd: u32,
    /// Whether variables in the body are expanded (delimiter not quoted).
    pub expand: bool,
    /// `<<-`: leading tabs are stripped from the body.
    pub chomp: bool,
    /// The body, each line ending in a newline.
    pub content: String,
}

/// One argument with the position where it starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RawArg {
    /// The argument text (JSON escapes decoded; quotes kept otherwise).
    pub value: String,
    /// Where it starts in the file.
    pub pos: Pos,
}

/// One instruction as split by the line parser, before validation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RawNode {
    /// The keyword as written (`from`, `FROM`, `Run`).
    pub keyword: String,
    /// Builder flags (`--from=x`), quotes and escapes processed.
    pub flags: Vec<RawArg>,
    /// Arguments; ENV and LABEL give (key, value, separator) triples.
    pub args: Vec<RawArg>,
    /// True when the arguments came from a JSON array.
    pub json: bool,
    /// ONBUILD's trigger instruction.
    pub nested: Option<Box<RawNode>>,
    /// Heredoc bodies, in the order they appear.
    pub heredocs: Vec<Heredoc>,
    /// The logical line (continuations joined).
    pub original: String,
    /// Where the instruction is.
    pub span: Span,
    /// Comment lines directly above the instruction.
    pub comments: Vec<String>,
}

impl RawNode {
    /// The keyword in lower case.
    pub fn command(&self) -> String {
        self.keyword.to_ascii_lowercase()
    }

    /// The argument values.
    pub fn arg_values(&self) -> Vec<String> {
        self.args.iter().map(|a| a.value.clone()).collect()
    }

    /// BuildKit's `Node.Dump()` for this instruction, without parentheses.
    pub fn dump(&self) -> String {
        let mut s = self.keyword.to_lowercase();
        if !self.flags.is_empty() {
            s.push_str(" [");
            for (i, f) in self.flags.iter().enumerate() {
                if i > 0 {
                    s.push(' ');
                }
                s.push_str(&go_quote(&f.value));
            }
            s.push(']');
        }
        if let Some(nested) = &self.nested {
            let _ = write!(s, " ({})", nested.dump());
        }
        for a in &self.args {
            s.push(' ');
            s.push_str(&go_quote(&a.value));
        }
        s
    }
}

/// Dump a list of nodes exactly as BuildKit's parser test files expect.
pub fn dump_all(nodes: &[RawNode]) -> String {
    let mut out = String::new();
    for n in nodes {
        out.push('(');
        out.push_str(&n.dump());
        out.push_str(")\n");
    }
    out
}

pub use crate::quote::go_quote;

#[cfg(test)]
mod tests {
    use super::go_quote;

    #[test]
    fn quotes_like_go() {
        assert_eq!(go_quote("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(go_quote("\0\u{7f}"), r#""\x00\x7f""#);
        assert_eq!(go_quote("♥ 한국어"), "\"♥ 한국어\"");
        assert_eq!(go_quote("\u{a0}"), r#""\u00a0""#);
    }
}
