//! A small subset of Go's text/template for `--format`, enough for the
//! common Docker idioms: `{{.Id}}`, `{{.Config.Env}}`, `{{json .Config}}`,
//! `{{index .Config.Labels "key"}}`, with literal text around them.

use serde_json::Value;

/// Why a template was rejected.
#[derive(Debug, thiserror::Error)]
#[error("template {template:?}: {reason}")]
pub struct TemplateError {
    template: String,
    reason: String,
}

fn field<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    let path = path.strip_prefix('.')?;
    if path.is_empty() {
        return Some(v);
    }
    path.split('.').try_fold(v, |cur, k| match cur {
        Value::Object(m) => Some(m.get(k).unwrap_or(&Value::Null)),
        Value::Null => Some(&Value::Null),
        _ => None,
    })
}

/// Go's default printing of a value (`[a b]`, `map[k:v]`).
fn go_print(v: &Value) -> String {
    match v {
        Value::Null => "<no value>".into(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(a) => format!("[{}]", a.iter().map(go_print).collect::<Vec<_>>().join(" ")),
        Value::Object(m) => format!(
            "map[{}]",
            m.iter()
                .map(|(k, v)| format!("{k}:{}", go_print(v)))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    }
}

fn action(
    v: &Value,
    act: &str,
    bad: &dyn Fn(String) -> TemplateError,
) -> Result<String, TemplateError> {
    let words: Vec<&str> = act.split_whitespace().collect();
    let get = |p: &str| field(v, p).ok_or_else(|| bad(format!("can't evaluate {p}")));
    match words.as_slice() {
        [p] => Ok(go_print(get(p)?)),
        ["json", p] => Ok(serde_json::to_string(get(p)?).expect("serialise")),
        ["index", p, key] => {
            let key = key.trim_matches('"');
            let m = get(p)?;
            Ok(go_print(match m {
                Value::Object(o) => o.get(key).unwrap_or(&Value::Null),
                Value::Array(a) => key
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| a.get(i))
                    .unwrap_or(&Value::Null),
                _ => &Value::Null,
            }))
        }
        _ => Err(bad(format!(
            "unsupported action {{{{{act}}}}} (supported: .Field, json .Field, index .Field \"key\")"
        ))),
    }
}

/// Render `template` over `v`.
pub fn render(template: &str, v: &Value) -> Result<String, TemplateError> {
    let bad = |reason: String| TemplateError {
        template: template.to_string(),
        reason,
    };
    let mut out = String::new();
    let mut rest = template;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        let Some(j) = rest[i..].find("}}") else {
            return Err(bad("unclosed action".into()));
        };
        let act = rest[i + 2..i + j].trim().trim_matches('-').trim();
        out.push_str(&action(v, act, &bad)?);
        rest = &rest[i + j + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_docker_idioms() {
        let v = serde_json::json!({"Id": "sha256:ab", "Config": {"Env": ["A=1", "B=2"], "Labels": {"k": "v"}}});
        assert_eq!(render("{{.Id}}", &v).unwrap(), "sha256:ab");
        assert_eq!(render("env={{.Config.Env}}", &v).unwrap(), "env=[A=1 B=2]");
        assert_eq!(
            render("{{json .Config.Labels}}", &v).unwrap(),
            r#"{"k":"v"}"#
        );
        assert_eq!(render(r#"{{index .Config.Labels "k"}}"#, &v).unwrap(), "v");
        assert!(render("{{range .Config.Env}}", &v).is_err());
        assert!(render("{{.Id", &v).is_err());
    }
}
