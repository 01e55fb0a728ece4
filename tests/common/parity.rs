//! Helpers of the BuildKit parity tests.

use super::Env;

/// A store with the busybox base as `test/busybox:latest`.
pub fn with_base() -> Env {
    let env = Env::new();
    env.busybox_base("test/busybox:latest");
    env
}

/// Build `df` (plus `files`) to a local directory; returns stderr and the dir.
pub fn build_to_dir(
    env: &Env,
    name: &str,
    df: &str,
    files: &[(&str, &str)],
) -> (String, std::path::PathBuf) {
    let mut all = vec![("Dockerfile", df)];
    all.extend_from_slice(files);
    let ctx = env.project(name, &all);
    let out = env.path(&format!("{name}-out"));
    let err = env.build_ok(&["-o", &format!("type=local,dest={}", out.display())], &ctx);
    (err, out)
}

/// The stderr of a build of `df` that must fail.
pub fn build_fails(env: &Env, name: &str, df: &str) -> String {
    let ctx = env.project(name, &[("Dockerfile", df)]);
    env.build_err(&[], &ctx)
}
