//! A failed RUN, in BuildKit's words: `process "/bin/sh -c X" did not
//! complete successfully: exit code: N`, followed by the last lines of its
//! output.

use crate::exec::ExecError;
use crate::ops::op::OpError;
use crate::quote::go_quote;

/// The error of a RUN whose process `argv` failed with `e`.
/// `log` is the file holding the step's full output; the message names it.
pub fn run_failed(argv: &[String], e: ExecError, log: &std::path::Path) -> OpError {
    match e {
        ExecError::Failed { code, tail } => {
            let mut msg = format!(
                "process {} did not complete successfully: exit code: {code}",
                go_quote(&argv.join(" "))
            );
            if !tail.is_empty() {
                msg.push_str("\nlast lines of output:\n");
                msg.push_str(&tail.join("\n"));
            }
            msg.push_str(&format!("\nfull log: {}", log.display()));
            OpError::RunFailed(msg)
        }
        other => OpError::Exec(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_like_buildkit() {
        let argv = vec![
            "/bin/sh".to_string(),
            "-c".into(),
            "echo \"a\" && exit 3".into(),
        ];
        let e = run_failed(
            &argv,
            ExecError::Failed {
                code: 3,
                tail: vec!["a".into()],
            },
            std::path::Path::new("/store/logs/k.log"),
        );
        assert_eq!(
            e.to_string(),
            "process \"/bin/sh -c echo \\\"a\\\" && exit 3\" did not complete successfully: exit code: 3\nlast lines of output:\na\nfull log: /store/logs/k.log"
        );
    }
}
