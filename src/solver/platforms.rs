//! What the solves of a multi-platform build share: a lock per step key,
//! so that a step whose key matches on two platforms (a COPY of the
//! context onto `FROM scratch`, a stage `FROM --platform=$BUILDPLATFORM`)
//! runs once and the other platform takes it from the cache; and the
//! platform each stage runs for.

use crate::digest::Digest;
use crate::frontend::platform::Platform;
use crate::image::config::ImageConfig;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Locks by step key, shared by the solves of one build.
#[derive(Default)]
pub struct StepLocks {
    slots: Mutex<HashMap<Digest, Arc<Mutex<()>>>>,
    /// Steps run by this build (reused by its other platforms even under
    /// `--no-cache`, as BuildKit merges equal vertices).
    ran: Mutex<std::collections::HashSet<Digest>>,
}

impl StepLocks {
    /// The lock of the step `key` (held while the step is looked up, run
    /// and recorded).
    pub fn slot(&self, key: &Digest) -> Arc<Mutex<()>> {
        match self.slots.lock() {
            Ok(mut m) => m.entry(*key).or_default().clone(),
            Err(_) => Arc::default(),
        }
    }

    /// Note that this build ran (or took) the step `key`.
    pub fn mark(&self, key: &Digest) {
        if let Ok(mut r) = self.ran.lock() {
            r.insert(*key);
        }
    }

    /// Whether another platform of this build has the step `key`.
    pub fn ran(&self, key: &Digest) -> bool {
        self.ran.lock().is_ok_and(|r| r.contains(key))
    }
}

/// One platform's solve in a multi-platform build.
#[derive(Clone)]
pub struct PlatformSolve {
    /// Shared by every platform of the build.
    pub locks: Arc<StepLocks>,
    /// Added to this solve's progress vertex numbers (kept apart from the
    /// other platforms').
    pub vertex_offset: usize,
}

/// The platform stage `value` (`FROM --platform=`, expanded) names, else
/// the build's target platform.
pub fn stage_platform(value: Option<&str>, target: &Platform) -> Result<Platform, String> {
    match value {
        Some(v) => Platform::parse(v).map_err(|e| format!("FROM --platform={v}: {e}")),
        None => Ok(target.clone()),
    }
}

/// Steps never change the platform: a result keeps its parent's `os`,
/// `architecture` and `variant` (a step shared by two platforms was
/// recorded with the first one's).
pub fn keep_platform(config: &mut ImageConfig, parent: &ImageConfig) {
    config.os = parent.os.clone();
    config.architecture = parent.architecture.clone();
    config.variant = parent.variant.clone();
}

/// As BuildKit for an explicit target platform: the image says the
/// target's os and architecture (a final stage `FROM
/// --platform=$BUILDPLATFORM` too), and its variant when the target names
/// one or the architecture changed (else the base's, e.g. `v8`, is kept).
pub fn set_target_platform(config: &mut ImageConfig, target: &Platform) {
    let same = config.os == target.os && config.architecture == target.arch;
    config.os = target.os.clone();
    config.architecture = target.arch.clone();
    if !target.variant.is_empty() || !same {
        config.variant = target.variant.clone();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_platform_keeps_a_base_variant_of_the_same_arch() {
        let arm64 = Platform::parse("linux/arm64").unwrap();
        let mut c = ImageConfig::scratch("linux", "arm64", "v8");
        set_target_platform(&mut c, &arm64);
        assert_eq!(c.variant, "v8");
        let mut c = ImageConfig::scratch("linux", "amd64", "");
        set_target_platform(&mut c, &arm64);
        assert_eq!((c.architecture.as_str(), c.variant.as_str()), ("arm64", ""));
        let arm = Platform::parse("linux/arm/v6").unwrap();
        set_target_platform(&mut c, &arm);
        assert_eq!((c.architecture.as_str(), c.variant.as_str()), ("arm", "v6"));
    }

    #[test]
    fn one_lock_per_key() {
        let l = StepLocks::default();
        let k: Digest = format!("sha256:{}", "a".repeat(64)).parse().unwrap();
        assert!(Arc::ptr_eq(&l.slot(&k), &l.slot(&k)));
    }
}
