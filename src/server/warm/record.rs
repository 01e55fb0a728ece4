//! What warm runs did, kept in the server's state directory
//! (`$RBUILD_ROOT/serve/warm/`): `runs.json` (the recent runs, newest
//! first) and `state.json` (what each project was last built from), both
//! replaced atomically so a crash leaves the old or the new file.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Runs kept.
pub const KEEP_RUNS: usize = 100;

/// A base image as a run saw it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BaseResult {
    /// The reference as configured or written in a Dockerfile.
    pub reference: String,
    /// The digest its tag names now (none when it could not be resolved).
    pub digest: Option<String>,
    /// The digest the previous run saw.
    pub previous: Option<String>,
    /// Whether it changed since the previous run.
    pub changed: bool,
    /// Why it could not be resolved, or pulled.
    pub error: Option<String>,
}

/// A project as a run saw it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProjectResult {
    /// The project's name.
    pub name: String,
    /// `built`, `failed` or `unchanged`.
    pub result: String,
    /// Why it was built (or the error that stopped it).
    pub reason: String,
    /// Seconds taken (checkout and build).
    pub seconds: f64,
    /// The build's exit code, when it ran.
    pub exit_code: Option<i32>,
    /// The server's build number (as on the status page and /metrics).
    pub build: Option<u64>,
    /// The bases it uses.
    pub bases: Vec<String>,
    /// The git commit checked out.
    pub revision: Option<String>,
    /// Steps taken from the cache and run (from the build's progress).
    pub steps_cached: usize,
    /// Steps run.
    pub steps_run: usize,
}

/// One warm run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WarmRun {
    /// Its number (1, 2, … across restarts).
    pub id: u64,
    /// `schedule` or `api` (`POST /warm`).
    pub trigger: String,
    /// When it started (seconds since the epoch).
    pub started: u64,
    /// Seconds it took.
    pub seconds: f64,
    /// `ok` when every project built or was unchanged, else `failed`.
    pub result: String,
    /// Its bases.
    pub bases: Vec<BaseResult>,
    /// Its projects.
    pub projects: Vec<ProjectResult>,
}

/// What a project was last built from.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Built {
    /// Base reference → digest.
    pub bases: BTreeMap<String, String>,
    /// Git commit.
    pub revision: Option<String>,
    /// The project settings' fingerprint.
    pub fingerprint: String,
}

/// What the runs remember between each other and across restarts.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    /// Base reference → the digest last seen.
    pub bases: BTreeMap<String, String>,
    /// Project name → what its last successful warm build used.
    pub projects: BTreeMap<String, Built>,
}

/// The state directory.
pub struct Records {
    dir: PathBuf,
}

impl Records {
    /// Use `dir` (created if needed).
    pub fn open(dir: &Path) -> std::io::Result<Records> {
        std::fs::create_dir_all(dir)?;
        Ok(Records {
            dir: dir.to_path_buf(),
        })
    }

    /// The saved runs (none when absent or unreadable: said on stderr).
    pub fn runs(&self) -> Vec<WarmRun> {
        read_json(&self.dir.join("runs.json")).unwrap_or_default()
    }

    /// The saved state.
    pub fn state(&self) -> State {
        read_json(&self.dir.join("state.json")).unwrap_or_default()
    }

    /// Save the runs (the newest [`KEEP_RUNS`]) and the state.
    pub fn save(&self, runs: &[WarmRun], state: &State) -> std::io::Result<()> {
        let runs = &runs[..runs.len().min(KEEP_RUNS)];
        write_json(&self.dir.join("runs.json"), &runs)?;
        write_json(&self.dir.join("state.json"), state)
    }

    /// A directory for clones.
    pub fn work_dir(&self) -> PathBuf {
        self.dir.join("work")
    }
}

fn read_json<T: serde::de::DeserializeOwned>(p: &Path) -> Option<T> {
    let bytes = match std::fs::read(p) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            eprintln!("rbuild serve: warning: reading {}: {e}", p.display());
            return None;
        }
    };
    serde_json::from_slice(&bytes)
        .map_err(|e| {
            eprintln!(
                "rbuild serve: warning: {} is not valid ({e}); starting afresh",
                p.display()
            )
        })
        .ok()
}

fn write_json<T: Serialize + ?Sized>(p: &Path, v: &T) -> std::io::Result<()> {
    let dir = p.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    serde_json::to_writer_pretty(&mut tmp, v).map_err(std::io::Error::other)?;
    tmp.write_all(b"\n")?;
    tmp.as_file().sync_all()?;
    tmp.persist(p).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_and_state_survive_and_bad_files_start_afresh() {
        let d = tempfile::tempdir().unwrap();
        let r = Records::open(d.path()).unwrap();
        assert!(r.runs().is_empty());
        let run = WarmRun {
            id: 1,
            trigger: "api".into(),
            started: 5,
            seconds: 1.5,
            result: "ok".into(),
            bases: vec![],
            projects: vec![],
        };
        let mut st = State::default();
        st.bases.insert("a:1".into(), "sha256:00".into());
        r.save(&vec![run.clone(); KEEP_RUNS + 3], &st).unwrap();
        let r = Records::open(d.path()).unwrap();
        assert_eq!(r.runs().len(), KEEP_RUNS);
        assert_eq!(r.runs()[0], run);
        assert_eq!(r.state().bases["a:1"], "sha256:00");
        std::fs::write(d.path().join("runs.json"), "{nope").unwrap();
        assert!(r.runs().is_empty());
    }
}
