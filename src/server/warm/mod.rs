//! Keeping caches warm (`rbuild serve --warm CONFIG`): on a schedule, or on
//! `POST /warm`, the bases are re-resolved at their registries (one manifest
//! `HEAD` each); a changed digest pulls a watched base and rebuilds the
//! projects that use it, so the pipelines after it find a warm cache. Each
//! run is recorded in the server's state directory.

pub mod api;
pub mod build;
pub mod config;
pub mod record;
pub mod source;

use crate::registry::{Reference, RegistryOptions};
use crate::server::Server;
use config::{Project, WarmConfig};
use record::{BaseResult, Built, ProjectResult, Records, State, WarmRun};
use source::Checkout;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Errors setting up warming.
#[derive(Debug, thiserror::Error)]
pub enum WarmError {
    /// The config.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// The state directory.
    #[error("warm state directory {path}: {source}")]
    State {
        /// The directory.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// The warming of one server.
pub struct Warmer {
    config: WarmConfig,
    interval: Duration,
    records: Records,
    /// Held for a whole run: runs never overlap.
    state: tokio::sync::Mutex<State>,
    /// The recorded runs, newest first.
    runs: Mutex<Vec<WarmRun>>,
    /// When the running run started, if one is running.
    running: Mutex<Option<(String, Instant)>>,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Warmer {
    /// Read `config` and the records kept under `state_dir`.
    pub fn open(config: &Path, state_dir: &Path) -> Result<Warmer, WarmError> {
        let config = WarmConfig::load(config)?;
        let interval = config.interval().unwrap_or(Duration::from_secs(900));
        let records = Records::open(state_dir).map_err(|source| WarmError::State {
            path: state_dir.display().to_string(),
            source,
        })?;
        Ok(Warmer {
            config,
            interval,
            state: tokio::sync::Mutex::new(records.state()),
            runs: Mutex::new(records.runs()),
            records,
            running: Mutex::new(None),
        })
    }

    /// The recorded runs, newest first.
    pub fn runs(&self) -> Vec<WarmRun> {
        self.runs.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The trigger and seconds so far of the run in progress.
    pub fn running(&self) -> Option<(String, f64)> {
        let r = self.running.lock().unwrap_or_else(|e| e.into_inner());
        r.as_ref()
            .map(|(t, since)| (t.clone(), since.elapsed().as_secs_f64()))
    }

    /// The schedule's interval.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// The configured projects' names.
    pub fn project_names(&self) -> Vec<String> {
        self.config
            .projects
            .iter()
            .map(|p| p.name.clone())
            .collect()
    }

    /// Run every `interval` (the first one interval after the start: the
    /// state kept on disk tells what changed while the server was down).
    pub fn spawn_schedule(server: Arc<Server>, warm: Arc<Warmer>) {
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(warm.interval).await;
                warm.run(&server, "schedule", false).await;
            }
        });
    }

    /// One warm run (waiting for a run in progress first); `force` builds
    /// every project whether or not anything changed.
    pub async fn run(&self, server: &Arc<Server>, trigger: &str, force: bool) -> WarmRun {
        let mut state = self.state.lock().await;
        *self.running.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((trigger.to_string(), Instant::now()));
        let t0 = Instant::now();
        let started = now_secs();
        let run = self.run_locked(server, &mut state, force).await;
        let id = self.runs().first().map(|r| r.id).unwrap_or(0) + 1;
        let (bases, projects) = run;
        let ok = bases.iter().all(|b| b.error.is_none())
            && projects.iter().all(|p| p.result != "failed");
        let run = WarmRun {
            id,
            trigger: trigger.to_string(),
            started,
            seconds: t0.elapsed().as_secs_f64(),
            result: if ok { "ok" } else { "failed" }.into(),
            bases,
            projects,
        };
        let counter = if ok {
            &server.metrics.warm_ok
        } else {
            &server.metrics.warm_failed
        };
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut runs = self.runs();
        runs.insert(0, run.clone());
        runs.truncate(record::KEEP_RUNS);
        if let Err(e) = self.records.save(&runs, &state) {
            eprintln!("rbuild serve: warning: saving the warm runs: {e}");
        }
        *self.runs.lock().unwrap_or_else(|e| e.into_inner()) = runs;
        *self.running.lock().unwrap_or_else(|e| e.into_inner()) = None;
        eprintln!(
            "rbuild serve: warm run {id} ({trigger}): {} in {:.1}s",
            run.result, run.seconds
        );
        run
    }

    async fn run_locked(
        &self,
        server: &Arc<Server>,
        state: &mut State,
        force: bool,
    ) -> (Vec<BaseResult>, Vec<ProjectResult>) {
        let work = self.records.work_dir();
        let _ = std::fs::create_dir_all(&work);
        // Check out every project first: their Dockerfiles name their bases.
        let mut checkouts: Vec<Result<(Checkout, Vec<String>), String>> = Vec::new();
        for p in &self.config.projects {
            let co = match source::checkout(p, &work).await {
                Ok(co) => source::bases_of(p, &co.dockerfile).map(|b| (co, b)),
                Err(e) => Err(e),
            };
            checkouts.push(co);
        }
        let mut wanted: Vec<String> = self.config.bases.clone();
        for (_, b) in checkouts.iter().flatten() {
            wanted.extend(b.iter().cloned());
        }
        let bases = self.resolve(state, &wanted).await;
        let digests: BTreeMap<String, String> = bases
            .iter()
            .filter_map(|b| Some((key(&b.reference), b.digest.clone()?)))
            .collect();
        let mut projects = Vec::new();
        for (p, co) in self.config.projects.iter().zip(checkouts) {
            let t0 = Instant::now();
            let mut r = match co {
                Err(e) => failed(p, e),
                Ok((co, b)) => {
                    self.project(server, state, p, &co, &b, &digests, force)
                        .await
                }
            };
            r.seconds = t0.elapsed().as_secs_f64();
            projects.push(r);
        }
        (bases, projects)
    }

    /// Re-resolve `wanted` (each once); pull the watched bases that changed.
    async fn resolve(&self, state: &mut State, wanted: &[String]) -> Vec<BaseResult> {
        let opts = RegistryOptions::load();
        let mut out: Vec<BaseResult> = Vec::new();
        for w in wanted {
            if out.iter().any(|b| key(&b.reference) == key(w)) {
                continue;
            }
            let previous = state.bases.get(&key(w)).cloned();
            let digest = match (&opts, Reference::parse(w)) {
                (_, Err(e)) => Err(e.to_string()),
                (Err(e), _) => Err(e.to_string()),
                (Ok(o), _) if o.offline => Err("RBUILD_OFFLINE is set".to_string()),
                (Ok(o), Ok(r)) => match r.digest() {
                    Some(d) => Ok(d.to_string()),
                    None => crate::registry::check::head(&r, o)
                        .await
                        .map(|(_, d)| d.to_string())
                        .ok_or_else(|| format!("{w}: no registry answered with its digest")),
                },
            };
            let mut b = BaseResult {
                reference: w.clone(),
                changed: digest.as_ref().ok() != previous.as_ref() && digest.is_ok(),
                digest: digest.as_ref().ok().cloned(),
                previous,
                error: digest.err(),
            };
            if let Some(d) = &b.digest {
                if b.changed && self.config.bases.contains(w) {
                    b.error = build::pull(w).await.err();
                }
                if b.error.is_none() {
                    state.bases.insert(key(w), d.clone());
                }
            }
            out.push(b);
        }
        out
    }

    /// Decide whether `p` needs a build, and build it.
    #[allow(clippy::too_many_arguments)]
    async fn project(
        &self,
        server: &Arc<Server>,
        state: &mut State,
        p: &Project,
        co: &Checkout,
        bases: &[String],
        digests: &BTreeMap<String, String>,
        force: bool,
    ) -> ProjectResult {
        let now = Built {
            bases: bases
                .iter()
                .filter_map(|b| Some((key(b), digests.get(&key(b))?.clone())))
                .collect(),
            revision: co.revision.clone(),
            fingerprint: p.fingerprint(),
        };
        let mut r = ProjectResult {
            name: p.name.clone(),
            result: "unchanged".into(),
            reason: String::new(),
            seconds: 0.0,
            exit_code: None,
            build: None,
            bases: bases.to_vec(),
            revision: co.revision.clone(),
            steps_cached: 0,
            steps_run: 0,
        };
        let Some(reason) = why_build(state.projects.get(&p.name), &now, force) else {
            return r;
        };
        let id = server.metrics.begin();
        let mut label = format!("warm {}", p.name);
        for t in &p.tags {
            label.push_str(&format!(" -t {t}"));
        }
        server.metrics.describe(id, &label);
        let b = build::build(server, id, p, co).await;
        r.build = Some(id);
        r.exit_code = Some(b.code);
        (r.steps_cached, r.steps_run) = (b.cached, b.run);
        if b.code == 0 {
            r.result = "built".into();
            r.reason = reason;
            state.projects.insert(p.name.clone(), now);
        } else {
            r.result = "failed".into();
            let e = b.error.unwrap_or_else(|| format!("exit code {}", b.code));
            r.reason = source::redact(&e);
        }
        r
    }
}

/// Why a project must be built, or None when nothing changed since `last`.
fn why_build(last: Option<&Built>, now: &Built, force: bool) -> Option<String> {
    if force {
        return Some("forced".into());
    }
    let Some(last) = last else {
        return Some("not built yet".into());
    };
    if last.fingerprint != now.fingerprint {
        return Some("its settings changed".into());
    }
    if last.revision != now.revision {
        return Some(format!(
            "new commit {}",
            now.revision.as_deref().unwrap_or("-")
        ));
    }
    for (b, d) in &now.bases {
        match last.bases.get(b) {
            Some(old) if old == d => {}
            Some(old) => return Some(format!("base {b} changed ({} → {})", short(old), short(d))),
            None => return Some(format!("new base {b}")),
        }
    }
    None
}

/// A digest cut to `sha256:` and 12 hex digits.
fn short(d: &str) -> &str {
    d.get(..19).unwrap_or(d)
}

/// A failed project's record.
fn failed(p: &Project, reason: String) -> ProjectResult {
    ProjectResult {
        name: p.name.clone(),
        result: "failed".into(),
        reason,
        seconds: 0.0,
        exit_code: None,
        build: None,
        bases: Vec::new(),
        revision: None,
        steps_cached: 0,
        steps_run: 0,
    }
}

/// The key a base is remembered by: its normalised reference.
fn key(reference: &str) -> String {
    crate::registry::reference::normalize(reference)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_only_what_changed() {
        let built = |d: &str, rev: Option<&str>| Built {
            bases: [("docker.io/library/a:1".to_string(), d.to_string())].into(),
            revision: rev.map(String::from),
            fingerprint: "f".into(),
        };
        let last = built("sha256:1", Some("c1"));
        assert_eq!(
            why_build(Some(&last), &built("sha256:1", Some("c1")), false),
            None
        );
        assert!(why_build(Some(&last), &built("sha256:1", Some("c1")), true).is_some());
        assert!(why_build(None, &last, false).unwrap().contains("not built"));
        let r = why_build(Some(&last), &built("sha256:2", Some("c1")), false).unwrap();
        assert!(r.contains("changed (sha256:1 → sha256:2)"), "{r}");
        let r = why_build(Some(&last), &built("sha256:1", Some("c2")), false).unwrap();
        assert!(r.contains("c2"), "{r}");
        let mut other = last.clone();
        other.fingerprint = "g".into();
        assert!(
            why_build(Some(&last), &other, false)
                .unwrap()
                .contains("settings")
        );
    }
}
