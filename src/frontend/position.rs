//! Source positions: where an instruction or argument came from.

use serde::Serialize;

/// A position in the Dockerfile, 1-based line and column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Default)]
pub struct Pos {
    /// Line number, starting at 1.
    pub line: usize,
    /// Column number in characters, starting at 1.
    pub col: usize,
}

/// The extent of an instruction: its first position and its last line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub struct Span {
    /// Where the instruction starts.
    pub start: Pos,
    /// The last line the instruction occupies (continuations, heredocs).
    pub end_line: usize,
}

/// Maps byte offsets in a logical (joined) line back to file positions.
#[derive(Debug, Clone, Default)]
pub struct LineMap {
    /// (offset in logical line, position of that byte in the file), sorted.
    segments: Vec<(usize, Pos, usize)>,
}

impl LineMap {
    /// Record that logical offset `offset` starts a segment copied from
    /// `physical[byte_col..]` on line `line`.
    pub fn push(&mut self, offset: usize, line: usize, physical: &str, byte_col: usize) {
        let col = physical[..byte_col].chars().count() + 1;
        self.segments.push((offset, Pos { line, col }, byte_col));
    }

    /// The file position of logical byte offset `offset` within `logical`.
    pub fn pos(&self, logical: &str, offset: usize) -> Pos {
        let idx = self
            .segments
            .partition_point(|(o, _, _)| *o <= offset)
            .saturating_sub(1);
        match self.segments.get(idx) {
            Some((start, pos, _)) => {
                let end = offset.min(logical.len());
                let start = (*start).min(end);
                let extra = logical
                    .get(start..end)
                    .map(|s| s.chars().count())
                    .unwrap_or(0);
                Pos {
                    line: pos.line,
                    col: pos.col + extra,
                }
            }
            None => Pos { line: 1, col: 1 },
        }
    }
}
