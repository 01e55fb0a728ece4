//! The command a container runs: the image's ENTRYPOINT and CMD combined
//! with `--entrypoint` and the arguments, exactly as Docker does (moby's
//! `merge` in daemon/commit.go and `mergeAndVerifyConfig` in
//! daemon/create.go). Shell forms were turned into `/bin/sh -c "..."` by the
//! build; here every form is a list.

/// `--entrypoint` as given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntrypointFlag {
    /// Not given: the image's ENTRYPOINT.
    Image,
    /// `--entrypoint ""`: no entrypoint.
    Empty,
    /// `--entrypoint CMD`: that one executable (no arguments: they come
    /// after the image name).
    Command(String),
}

/// Errors combining the command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// Neither an entrypoint nor a command (Docker's wording).
    #[error("no command specified")]
    NoCommand,
}

/// The argv of the container.
///
/// Docker's rules: arguments after the image replace CMD; `--entrypoint`
/// replaces ENTRYPOINT and drops the image's CMD (even `--entrypoint ""`);
/// the result is ENTRYPOINT followed by CMD.
pub fn combine(
    image_entrypoint: Option<&[String]>,
    image_cmd: Option<&[String]>,
    flag: &EntrypointFlag,
    args: &[String],
) -> Result<Vec<String>, CommandError> {
    let entrypoint: Vec<String> = match flag {
        EntrypointFlag::Image => image_entrypoint.map(<[String]>::to_vec).unwrap_or_default(),
        EntrypointFlag::Empty => Vec::new(),
        EntrypointFlag::Command(c) => vec![c.clone()],
    };
    let cmd: Vec<String> = if !args.is_empty() {
        args.to_vec()
    } else if *flag == EntrypointFlag::Image {
        image_cmd.map(<[String]>::to_vec).unwrap_or_default()
    } else {
        Vec::new()
    };
    let mut argv = entrypoint;
    argv.extend(cmd);
    if argv.is_empty() {
        return Err(CommandError::NoCommand);
    }
    Ok(argv)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An instruction as written in a Dockerfile.
    #[derive(Clone, Copy)]
    enum Form {
        Absent,
        Shell(&'static str),
        Exec(&'static [&'static str]),
    }

    /// What the build stores in the config for it.
    fn stored(f: Form) -> Option<Vec<String>> {
        match f {
            Form::Absent => None,
            Form::Shell(s) => Some(vec!["/bin/sh".into(), "-c".into(), s.into()]),
            Form::Exec(v) => Some(v.iter().map(|s| s.to_string()).collect()),
        }
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// Docker's documented table ("Understand how CMD and ENTRYPOINT
    /// interact"): every row and column. The shell-form ENTRYPOINT column
    /// reads `/bin/sh -c exec_entry p1_entry`: the CMD words do follow, as
    /// the shell's `$0 $1`, which a `-c` script ignores.
    #[test]
    fn docker_table() {
        use Form::*;
        let entries = [
            Absent,
            Shell("exec_entry p1_entry"),
            Exec(&["exec_entry", "p1_entry"]),
        ];
        let cmds = [
            Absent,
            Exec(&["exec_cmd", "p1_cmd"]),
            Shell("exec_cmd p1_cmd"),
        ];
        let expected: [[Option<&[&str]>; 3]; 3] = [
            // No CMD
            [
                None,
                Some(&["/bin/sh", "-c", "exec_entry p1_entry"]),
                Some(&["exec_entry", "p1_entry"]),
            ],
            // CMD ["exec_cmd", "p1_cmd"]
            [
                Some(&["exec_cmd", "p1_cmd"]),
                Some(&["/bin/sh", "-c", "exec_entry p1_entry", "exec_cmd", "p1_cmd"]),
                Some(&["exec_entry", "p1_entry", "exec_cmd", "p1_cmd"]),
            ],
            // CMD exec_cmd p1_cmd
            [
                Some(&["/bin/sh", "-c", "exec_cmd p1_cmd"]),
                Some(&[
                    "/bin/sh",
                    "-c",
                    "exec_entry p1_entry",
                    "/bin/sh",
                    "-c",
                    "exec_cmd p1_cmd",
                ]),
                Some(&["exec_entry", "p1_entry", "/bin/sh", "-c", "exec_cmd p1_cmd"]),
            ],
        ];
        for (r, cmd) in cmds.iter().enumerate() {
            for (c, entry) in entries.iter().enumerate() {
                let got = combine(
                    stored(*entry).as_deref(),
                    stored(*cmd).as_deref(),
                    &EntrypointFlag::Image,
                    &[],
                );
                match expected[r][c] {
                    None => assert_eq!(got, Err(CommandError::NoCommand), "row {r} col {c}"),
                    Some(want) => assert_eq!(got, Ok(strings(want)), "row {r} col {c}"),
                }
            }
        }
    }

    #[test]
    fn arguments_replace_cmd_and_keep_entrypoint() {
        let ep = strings(&["/bin/echo", "ep"]);
        let cmd = strings(&["default"]);
        let args = strings(&["a", "b"]);
        assert_eq!(
            combine(Some(&ep), Some(&cmd), &EntrypointFlag::Image, &args).unwrap(),
            strings(&["/bin/echo", "ep", "a", "b"])
        );
        assert_eq!(
            combine(None, Some(&cmd), &EntrypointFlag::Image, &args).unwrap(),
            strings(&["a", "b"])
        );
    }

    #[test]
    fn entrypoint_flag_replaces_entrypoint_and_clears_cmd() {
        let ep = strings(&["/bin/echo", "ep"]);
        let cmd = strings(&["default"]);
        let flag = EntrypointFlag::Command("/bin/ls".into());
        assert_eq!(
            combine(Some(&ep), Some(&cmd), &flag, &[]).unwrap(),
            strings(&["/bin/ls"])
        );
        assert_eq!(
            combine(Some(&ep), Some(&cmd), &flag, &strings(&["-l"])).unwrap(),
            strings(&["/bin/ls", "-l"])
        );
    }

    #[test]
    fn empty_entrypoint_flag() {
        let ep = strings(&["/bin/echo", "ep"]);
        let cmd = strings(&["default"]);
        // `--entrypoint ""` drops the image's CMD too: nothing to run.
        assert_eq!(
            combine(Some(&ep), Some(&cmd), &EntrypointFlag::Empty, &[]),
            Err(CommandError::NoCommand)
        );
        assert_eq!(
            combine(
                Some(&ep),
                Some(&cmd),
                &EntrypointFlag::Empty,
                &strings(&["id"])
            )
            .unwrap(),
            strings(&["id"])
        );
    }

    #[test]
    fn empty_image_entrypoint_runs_cmd() {
        // `ENTRYPOINT []` is stored as no entrypoint.
        let cmd = strings(&["echo", "hi"]);
        assert_eq!(
            combine(Some(&[]), Some(&cmd), &EntrypointFlag::Image, &[]).unwrap(),
            cmd
        );
    }
}
