//! The frontend's error type: a message with the position it refers to.

use super::position::Pos;

/// A Dockerfile error at a position (parse, validation or expansion).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{}: {message}", pos.line, pos.col)]
pub struct FrontendError {
    /// Where the problem is.
    pub pos: Pos,
    /// What is wrong, in BuildKit's words where it has them.
    pub message: String,
}

impl FrontendError {
    /// An error at `pos`.
    pub fn new(pos: Pos, message: impl Into<String>) -> Self {
        FrontendError {
            pos,
            message: message.into(),
        }
    }
}

/// Result type of the frontend.
pub type Result<T, E = FrontendError> = std::result::Result<T, E>;
