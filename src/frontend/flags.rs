//! Builder flags of one instruction (`--from=x`, `--link`), validated the way
//! BuildKit's `BFlags` does: unknown, duplicate and malformed flags are errors.

use super::error::{FrontendError, Result};
use super::raw::RawArg;
use super::suggest::with_suggestion;

/// The type of a flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagKind {
    /// `--x`, `--x=true`, `--x=false`.
    Bool,
    /// `--x=value`, once.
    String,
    /// `--x=value`, any number of times.
    Strings,
}

/// Parsed flag values of one instruction.
#[derive(Debug, Default)]
pub struct Flags {
    values: Vec<(&'static str, Vec<String>)>,
}

impl Flags {
    /// Validate `raw` against the allowed `spec`.
    pub fn parse(raw: &[RawArg], spec: &[(&'static str, FlagKind)]) -> Result<Flags> {
        let mut flags = Flags::default();
        for arg in raw {
            let a = arg.value.as_str();
            if a == "--" {
                break;
            }
            let Some(body) = a.strip_prefix("--") else {
                return Err(FrontendError::new(
                    arg.pos,
                    format!("arg should start with -- : {a}"),
                ));
            };
            let (name, value) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (body, None),
            };
            let Some(&(key, kind)) = spec.iter().find(|(n, _)| *n == name) else {
                let names: Vec<&str> = spec.iter().map(|(n, _)| *n).collect();
                return Err(FrontendError::new(
                    arg.pos,
                    with_suggestion(format!("unknown flag: --{name}"), name, &names),
                ));
            };
            let seen = flags.values.iter().any(|(n, _)| *n == key);
            if seen && kind != FlagKind::Strings {
                return Err(FrontendError::new(
                    arg.pos,
                    format!("duplicate flag specified: --{name}"),
                ));
            }
            let v = match (kind, value) {
                (FlagKind::Bool, Some("")) => {
                    return Err(FrontendError::new(
                        arg.pos,
                        format!("missing a value on flag: --{name}"),
                    ));
                }
                (FlagKind::Bool, None) => "true".to_string(),
                (FlagKind::Bool, Some(v)) => match v.to_ascii_lowercase().as_str() {
                    "true" => "true".into(),
                    "false" => "false".into(),
                    _ => {
                        return Err(FrontendError::new(
                            arg.pos,
                            format!("expecting boolean value for flag --{name}, not: {v}"),
                        ));
                    }
                },
                (_, None) => {
                    return Err(FrontendError::new(
                        arg.pos,
                        format!("missing a value on flag: --{name}"),
                    ));
                }
                (_, Some(v)) => v.to_string(),
            };
            match flags.values.iter_mut().find(|(n, _)| *n == key) {
                Some((_, vs)) => vs.push(v),
                None => flags.values.push((key, vec![v])),
            }
        }
        Ok(flags)
    }

    /// The value of a string flag.
    pub fn string(&self, name: &str) -> Option<String> {
        self.all(name).last().cloned()
    }

    /// Every value of a repeatable flag.
    pub fn all(&self, name: &str) -> &[String] {
        self.values
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_slice())
            .unwrap_or(&[])
    }

    /// A bool flag: `None` when absent.
    pub fn bool(&self, name: &str) -> Option<bool> {
        self.string(name).map(|v| v == "true")
    }

    /// Position of the flag in the instruction's raw flags.
    pub fn position(raw: &[RawArg], name: &str) -> Option<super::position::Pos> {
        raw.iter()
            .find(|a| {
                a.value
                    .strip_prefix("--")
                    .is_some_and(|b| b.split('=').next() == Some(name))
            })
            .map(|a| a.pos)
    }
}
