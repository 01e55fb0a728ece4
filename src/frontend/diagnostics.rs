//! Human-readable rendering of errors and warnings: `FILE:LINE:COL: message`,
//! then the offending line and a caret under the column. (Hand-written: the
//! output format is fixed by our CLI contract and is a dozen lines, where
//! codespan/miette impose their own layout.)

use super::position::Pos;
use std::fmt::Write;

/// Render a message at `pos` in `source` (named `file`), with a severity prefix.
pub fn render(file: &str, source: &str, pos: Pos, severity: &str, message: &str) -> String {
    let mut out = String::new();
    let _ = write!(out, "{file}:{}:{}: ", pos.line, pos.col);
    if !severity.is_empty() {
        let _ = write!(out, "{severity}: ");
    }
    out.push_str(message);
    out.push('\n');
    let source = source.strip_prefix('\u{FEFF}').unwrap_or(source);
    if let Some(line) = source.split('\n').nth(pos.line.saturating_sub(1)) {
        let line = line.trim_end_matches('\r');
        let number = pos.line.to_string();
        let _ = writeln!(out, " {number} | {}", line.replace('\t', " "));
        let pad: String = line
            .chars()
            .take(pos.col.saturating_sub(1))
            .map(|_| ' ')
            .collect();
        let _ = writeln!(out, " {} | {pad}^", " ".repeat(number.len()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_location_line_and_caret() {
        let src = "FROM scratch\n  FORM x\n";
        let out = render(
            "Dockerfile",
            src,
            Pos { line: 2, col: 3 },
            "error",
            "unknown instruction: FORM",
        );
        assert_eq!(
            out,
            "Dockerfile:2:3: error: unknown instruction: FORM\n 2 |   FORM x\n   |   ^\n"
        );
    }
}
