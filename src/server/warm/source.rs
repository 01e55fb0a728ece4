//! A project's sources for a warm run (its directory, or a fresh shallow
//! clone by the `git` command) and the base images its Dockerfile uses.

use super::config::Project;
use crate::frontend::lower::{BuildOptions, Source, UnknownImages, lower};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long a clone may take.
const CLONE_TIMEOUT: Duration = Duration::from_secs(600);

/// A project checked out for a build.
pub struct Checkout {
    /// The build context.
    pub context: PathBuf,
    /// The Dockerfile.
    pub dockerfile: PathBuf,
    /// The commit built (git projects).
    pub revision: Option<String>,
    /// The clone, removed at drop.
    _tmp: Option<tempfile::TempDir>,
}

/// Check out `p` (cloning into `work`).
pub async fn checkout(p: &Project, work: &Path) -> Result<Checkout, String> {
    let (root, revision, tmp) = match (&p.dir, &p.git) {
        (Some(d), _) => (d.clone(), None, None),
        (None, Some(url)) => {
            let tmp = tempfile::Builder::new()
                .prefix(&format!("warm-{}-", p.name))
                .tempdir_in(work)
                .map_err(|e| format!("creating a directory in {}: {e}", work.display()))?;
            let dest = tmp.path().join("src");
            let mut clone = vec!["clone", "--quiet", "--depth=1"];
            if let Some(r) = &p.git_ref {
                clone.extend(["--branch", r]);
            }
            git(&clone, &[url.as_str(), &dest.to_string_lossy()], None).await?;
            let rev = git(&["rev-parse", "HEAD"], &[], Some(&dest)).await?;
            (dest, Some(rev.trim().to_string()), Some(tmp))
        }
        (None, None) => return Err("needs dir or git".into()),
    };
    let context = root.join(&p.context);
    let dockerfile = context.join(&p.dockerfile);
    if !dockerfile.is_file() {
        return Err(format!("no Dockerfile at {}", dockerfile.display()));
    }
    Ok(Checkout {
        context,
        dockerfile,
        revision,
        _tmp: tmp,
    })
}

/// Run `git ARGS -- REST` (in `dir`); its output, or its error.
async fn git(args: &[&str], rest: &[&str], dir: Option<&Path>) -> Result<String, String> {
    let mut cmd = tokio::process::Command::new("git");
    if let Some(d) = dir {
        cmd.arg("-C").arg(d);
    }
    cmd.args(args);
    if !rest.is_empty() {
        cmd.arg("--").args(rest);
    }
    cmd.env("GIT_TERMINAL_PROMPT", "0")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let what = format!("git {}", args.join(" "));
    let out = tokio::time::timeout(CLONE_TIMEOUT, cmd.output())
        .await
        .map_err(|_| format!("{what}: timed out"))?
        .map_err(|e| format!("{what}: {e} (is git installed?)"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!("{what}: {}", redact(err.trim())));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Text with the credentials of URLs (`scheme://user:pass@host`) hidden:
/// a warm run's record is shown on the status page and at `GET /warm`.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c.is_whitespace() || matches!(c, '/' | '\'' | '"'))
            .unwrap_or(tail.len());
        match tail[..end].rfind('@') {
            Some(at) => {
                out.push_str("***");
                rest = &tail[at..];
            }
            None => rest = tail,
        }
    }
    out.push_str(rest);
    out
}

/// The base images the project's build uses: its `bases` when listed, else
/// the image references of the stages its target needs (FROM, COPY --from,
/// RUN --mount=from), with ARGs expanded as the build expands them.
pub fn bases_of(p: &Project, dockerfile: &Path) -> Result<Vec<String>, String> {
    if let Some(b) = &p.bases {
        return Ok(b.clone());
    }
    let text = std::fs::read_to_string(dockerfile)
        .map_err(|e| format!("reading {}: {e}", dockerfile.display()))?;
    dockerfile_bases(&text, p).map_err(|e| format!("{}: {e}", dockerfile.display()))
}

/// The image references a Dockerfile's build of `p` reads.
pub fn dockerfile_bases(text: &str, p: &Project) -> Result<Vec<String>, String> {
    let (df, mut linter) = crate::frontend::parse_dockerfile(text).map_err(|e| e.to_string())?;
    let mut opts = BuildOptions {
        build_args: p
            .build_args
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        target: p.target.clone(),
        ..BuildOptions::default()
    };
    if let Some(pl) = &p.platform {
        opts.target_platform = crate::frontend::platform::Platform::parse(pl)?;
    }
    let plan = lower(&df, &opts, &UnknownImages, &mut linter).map_err(|e| e.to_string())?;
    let mut out: Vec<String> = Vec::new();
    let mut add = |s: &Source| {
        if let Source::Image(r) = s
            && !r.starts_with("oci-layout://")
            && !out.contains(r)
        {
            out.push(r.clone());
        }
    };
    for &i in &plan.order {
        let st = &plan.stages[i];
        add(&st.base);
        for step in &st.steps {
            if let Some(s) = &step.copy_from {
                add(s);
            }
            for (_, s) in &step.mounts {
                if let Some(s) = s {
                    add(s);
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(target: Option<&str>, args: &[(&str, &str)]) -> Project {
        let toml = "name = \"p\"\ndir = \"/x\"\n";
        let mut p: Project = toml::from_str(toml).unwrap();
        p.target = target.map(String::from);
        p.build_args = args
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        p
    }

    #[test]
    fn credentials_in_urls_are_hidden() {
        assert_eq!(
            redact("fatal: 'https://u:p@h.example/r.git' not found; see file:///x"),
            "fatal: 'https://***@h.example/r.git' not found; see file:///x"
        );
    }

    #[test]
    fn bases_follow_args_and_target() {
        let df = "ARG BASE=alpine:3.19\nFROM $BASE AS build\nRUN true\n\
                  FROM scratch AS other\nCOPY --from=golang:1.22 /x /x\n\
                  FROM debian:12 AS final\nCOPY --from=build /a /a\n\
                  RUN --mount=from=busybox,target=/b true\n";
        let mut got =
            dockerfile_bases(df, &project(Some("build"), &[("BASE", "alpine:3.20")])).unwrap();
        got.sort();
        assert_eq!(got, vec!["alpine:3.20".to_string()]);
        let mut got = dockerfile_bases(df, &project(Some("other"), &[])).unwrap();
        got.sort();
        assert_eq!(got, vec!["golang:1.22".to_string()]);
        let mut all = dockerfile_bases(df, &project(None, &[])).unwrap();
        all.sort();
        assert_eq!(all, ["alpine:3.19", "busybox", "debian:12"]);
    }
}
