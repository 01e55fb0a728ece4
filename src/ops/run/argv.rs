//! The process a RUN starts: exec form as is; shell form through the
//! stage's SHELL; a lone heredoc is the script (run directly when it has a
//! `#!` line, from a file placed in the step's root).

use crate::image::config::ImageConfig;

/// A RUN's command, lowered by the frontend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunCommand {
    /// `RUN ["prog", "arg"]`.
    Exec(Vec<String>),
    /// A script for the stage's shell (heredoc bodies appended).
    Shell(String),
    /// A lone `#!` heredoc: written to `path` in the root and run directly.
    Script {
        /// Where the file goes (`/.rbuild-heredoc-NAME`).
        path: String,
        /// The script.
        content: String,
    },
}

/// The stage's shell (`SHELL`), `/bin/sh -c` by default.
pub fn shell_of(cfg: &ImageConfig) -> Vec<String> {
    if cfg.config.shell.is_empty() {
        vec!["/bin/sh".into(), "-c".into()]
    } else {
        cfg.config.shell.clone()
    }
}

impl RunCommand {
    /// The argv and, for a script, the file to place (path, content).
    pub fn argv(&self, cfg: &ImageConfig) -> (Vec<String>, Option<(String, String)>) {
        match self {
            RunCommand::Exec(args) => (args.clone(), None),
            RunCommand::Shell(script) => {
                let mut v = shell_of(cfg);
                v.push(script.clone());
                (v, None)
            }
            RunCommand::Script { path, content } => {
                (vec![path.clone()], Some((path.clone(), content.clone())))
            }
        }
    }

    /// The command in the canonical definition.
    pub fn definition(&self) -> serde_json::Value {
        match self {
            RunCommand::Exec(a) => serde_json::json!({ "exec": a }),
            RunCommand::Shell(s) => serde_json::json!({ "shell": s }),
            RunCommand::Script { path, content } => {
                serde_json::json!({ "script": path, "content": content })
            }
        }
    }
}
