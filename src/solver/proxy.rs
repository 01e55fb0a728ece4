//! The predefined proxy build args (`HTTP_PROXY`, `https_proxy`, ...) reach
//! every RUN's environment without an ARG line, as BuildKit's `ProxyEnv`:
//! each given in either case sets both the upper- and lower-case variable.
//! They are not part of cache keys, history or the image config.

/// The proxy variables of the build's `--build-arg`s, in BuildKit's order.
pub fn proxy_env(build_args: &[(String, String)]) -> Vec<(String, String)> {
    let kinds = [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "FTP_PROXY",
        "NO_PROXY",
        "ALL_PROXY",
    ];
    let mut values: [Option<String>; 5] = Default::default();
    // Keys in sorted order, the last one wins (BuildKit sorts the keys).
    let mut sorted: Vec<&(String, String)> = build_args.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    for (k, v) in sorted {
        if let Some(i) = kinds.iter().position(|p| p.eq_ignore_ascii_case(k)) {
            values[i] = Some(v.clone());
        }
    }
    let mut out = Vec::new();
    for (kind, v) in kinds.iter().zip(values) {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            out.push((kind.to_string(), v.clone()));
            out.push((kind.to_ascii_lowercase(), v));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_cases_from_either() {
        let args = vec![
            ("https_proxy".to_string(), "http://p:3128".to_string()),
            ("FOO".to_string(), "x".to_string()),
            ("NO_PROXY".to_string(), "local".to_string()),
        ];
        let env = proxy_env(&args);
        assert_eq!(
            env,
            [
                ("HTTPS_PROXY".to_string(), "http://p:3128".to_string()),
                ("https_proxy".to_string(), "http://p:3128".to_string()),
                ("NO_PROXY".to_string(), "local".to_string()),
                ("no_proxy".to_string(), "local".to_string()),
            ]
        );
        assert!(proxy_env(&[("FOO".into(), "x".into())]).is_empty());
    }
}
