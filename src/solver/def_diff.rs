//! Readable differences between two canonical step definitions, for cache
//! miss explanations: never the internal JSON or Rust debug forms, only the
//! fields that changed (`command: "echo 1" -> "echo 2"`).

use serde_json::Value;

/// A JSON value as a user reads it: strings quoted, lists in brackets.
fn show(v: &Value) -> String {
    match v {
        Value::Null => "(none)".into(),
        Value::String(s) => format!("{s:?}"),
        Value::Array(a) => format!("[{}]", a.iter().map(show).collect::<Vec<_>>().join(", ")),
        Value::Object(_) => "{...}".into(),
        other => other.to_string(),
    }
}

/// Changed leaves of two JSON values, with dotted paths.
fn json_diff(path: &str, old: &Value, new: &Value, out: &mut Vec<String>) {
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                json_diff(
                    &p,
                    a.get(k).unwrap_or(&Value::Null),
                    b.get(k).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        (a, b) if a != b => out.push(format!("{path}: {} -> {}", show(a), show(b))),
        _ => {}
    }
}

/// A Rust debug value (`None`, `Some("x")`, `[]`) as a user reads it.
fn show_debug(v: &str) -> String {
    match v {
        "None" => "(none)".into(),
        v => v
            .strip_prefix("Some(")
            .and_then(|s| s.strip_suffix(')'))
            .unwrap_or(v)
            .to_string(),
    }
}

/// `key=value` tokens (COPY/ADD definitions) when every token has one.
fn tokens(s: &str) -> Option<Vec<(&str, &str)>> {
    s.split(' ')
        .map(|t| t.split_once('='))
        .collect::<Option<Vec<_>>>()
}

/// What changed between two definitions, or `None` when they are plain
/// text that reads well as it is.
pub fn describe(old: &str, new: &str) -> Option<String> {
    if let (Ok(a), Ok(b)) = (
        serde_json::from_str::<Value>(old),
        serde_json::from_str::<Value>(new),
    ) && (a.is_object() || a.is_array())
    {
        // Enum wrappers ({"Run": {...}}) say nothing: start inside them.
        let unwrap = |v: &Value| match v {
            Value::Object(m) if m.len() == 1 => m.values().next().cloned().unwrap_or(Value::Null),
            v => v.clone(),
        };
        let mut out = Vec::new();
        json_diff("", &unwrap(&a), &unwrap(&b), &mut out);
        return Some(if out.is_empty() {
            "the instruction changed".into()
        } else {
            out.join(", ")
        });
    }
    let debugish = |s: &str| s.contains("Some(") || s.contains("None");
    if (debugish(old) || debugish(new))
        && let (Some(a), Some(b)) = (tokens(old), tokens(new))
    {
        let mut out = Vec::new();
        for (k, v) in &b {
            let before = a.iter().find(|(n, _)| n == k).map(|(_, v)| *v);
            if before != Some(*v) {
                out.push(format!(
                    "{k}: {} -> {}",
                    show_debug(before.unwrap_or("None")),
                    show_debug(v)
                ));
            }
        }
        if !out.is_empty() {
            return Some(out.join(", "));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_definitions_become_field_changes() {
        let old = r#"{"Run":{"command":{"args":["echo 1"],"json":false},"network":null}}"#;
        let new = r#"{"Run":{"command":{"args":["echo 2"],"json":false},"network":"none"}}"#;
        let d = describe(old, new).unwrap();
        assert_eq!(
            d,
            r#"command.args: ["echo 1"] -> ["echo 2"], network: (none) -> "none""#
        );
        assert!(!d.contains('{'));
    }

    #[test]
    fn debug_definitions_become_field_changes() {
        let old = "dest=/a chown=None chmod=None link=false";
        let new = "dest=/a chown=None chmod=Some(\"600\") link=false";
        assert_eq!(describe(old, new).unwrap(), "chmod: (none) -> \"600\"");
        assert_eq!(describe("V=1", "V=2"), None);
    }
}
