//! Build checks in the spirit of BuildKit's linter: named rules, warnings
//! with positions, and the `# check=skip=...;error=true` directive.

use super::position::Pos;
use serde::Serialize;

/// One finding of a build check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    /// BuildKit's rule name (`JSONArgsRecommended`, `UndefinedVar`, ...).
    pub rule: &'static str,
    /// What is wrong.
    pub message: String,
    /// Where.
    pub pos: Pos,
}

/// How the `check` directive configures the rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckConfig {
    /// Rules to skip; `all` skips every rule.
    pub skip: Vec<String>,
    /// Whether warnings fail the build.
    pub error: bool,
}

impl CheckConfig {
    /// The check configuration of an instruction's comments (`check=...`,
    /// as a directive is written), if one of them is one.
    pub fn from_comments(comments: &[String]) -> Option<CheckConfig> {
        comments.iter().find_map(|c| {
            let (k, v) = c.split_once('=')?;
            if !k.trim().eq_ignore_ascii_case("check") {
                return None;
            }
            let v = v.trim();
            let v = v.split(' ').next().unwrap_or(v);
            CheckConfig::parse(v).ok()
        })
    }

    /// Parse the directive value, e.g. `skip=JSONArgsRecommended,StageNameCasing;error=true`.
    pub fn parse(value: &str) -> Result<CheckConfig, String> {
        let mut cfg = CheckConfig::default();
        for part in value.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("invalid check directive: {part}"))?;
            match k.trim() {
                "skip" => cfg.skip = v.split(',').map(|s| s.trim().to_string()).collect(),
                "error" => {
                    cfg.error = match v.trim() {
                        "true" => true,
                        "false" => false,
                        other => return Err(format!("invalid check error value: {other}")),
                    }
                }
                // Experimental rules (none is implemented) are accepted.
                "experimental" => {}
                other => return Err(format!("invalid check directive key: {other}")),
            }
        }
        Ok(cfg)
    }

    /// Whether findings of `rule` are reported.
    pub fn enabled(&self, rule: &str) -> bool {
        !self
            .skip
            .iter()
            .any(|s| s.eq_ignore_ascii_case(rule) || s == "all")
    }
}

/// Collects findings, dropping skipped rules and duplicates.
#[derive(Debug, Default, Clone)]
pub struct Linter {
    /// The configuration.
    pub config: CheckConfig,
    /// Findings so far.
    pub warnings: Vec<Warning>,
    /// `# check=...` comments right above an instruction (by its first
    /// line): their skips apply to that instruction, as in BuildKit.
    pub local: Vec<(usize, CheckConfig)>,
}

impl Linter {
    /// BuildKit's error when `check=error=true` and a check warned:
    /// `lint violation found for rules: A, B` (rules in order of first finding).
    pub fn violation(&self) -> Option<String> {
        if !self.config.error || self.warnings.is_empty() {
            return None;
        }
        let mut rules: Vec<&str> = Vec::new();
        for w in &self.warnings {
            if !rules.contains(&w.rule) {
                rules.push(w.rule);
            }
        }
        Some(format!(
            "lint violation found for rules: {}",
            rules.join(", ")
        ))
    }

    /// Record a finding.
    pub fn report(&mut self, rule: &'static str, pos: Pos, message: impl Into<String>) {
        if !self.config.enabled(rule) {
            return;
        }
        let skipped_here = self
            .local
            .iter()
            .any(|(line, cfg)| *line == pos.line && !cfg.enabled(rule));
        if skipped_here {
            return;
        }
        let w = Warning {
            rule,
            message: message.into(),
            pos,
        };
        if !self.warnings.contains(&w) {
            self.warnings.push(w);
        }
    }
}

/// Names that suggest a secret is being passed through ARG or ENV.
pub fn looks_like_secret(name: &str) -> bool {
    // BuildKit's rule: a `_`-separated word of the name is a secret word,
    // and none is an allowed one (`public`, `file`, `version`).
    const SECRET: [&str; 10] = [
        "apikey",
        "auth",
        "credential",
        "credentials",
        "key",
        "password",
        "pword",
        "passwd",
        "secret",
        "token",
    ];
    const ALLOWED: [&str; 3] = ["public", "file", "version"];
    let lower = name.to_ascii_lowercase();
    let words: Vec<&str> = lower.split('_').collect();
    words.iter().any(|w| SECRET.contains(w)) && !words.iter().any(|w| ALLOWED.contains(w))
}
