//! Helpers shared by the integration tests: an isolated store per test,
//! project directories, and required external tools.
#![allow(dead_code)]

pub mod dockerd;
pub mod parity;
pub mod registry;
pub mod serve;

use assert_cmd::Command;
use std::path::{Path, PathBuf};

/// A test's own store and scratch space.
pub struct Env {
    /// Scratch directory (deleted at drop).
    pub dir: tempfile::TempDir,
}

impl Env {
    /// A fresh environment.
    pub fn new() -> Env {
        Env {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// The store root.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    /// `rbuild` using this environment's store.
    pub fn rbuild(&self) -> Command {
        let mut c = Command::cargo_bin("rbuild").expect("binary");
        // No registry on the internet is ever contacted by tests.
        c.env("RBUILD_ROOT", self.root())
            .env("RBUILD_OFFLINE", "1")
            .env_remove("SOURCE_DATE_EPOCH");
        c
    }

    /// A path in the scratch directory.
    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// Create a project directory with files (`path`, `content`).
    pub fn project(&self, name: &str, files: &[(&str, &str)]) -> PathBuf {
        let root = self.path(name);
        for (p, c) in files {
            let f = root.join(p);
            std::fs::create_dir_all(f.parent().expect("parent")).expect("mkdir");
            std::fs::write(f, c).expect("write");
        }
        std::fs::create_dir_all(&root).expect("mkdir");
        root
    }

    /// Run a build expecting `success`; returns stderr.
    fn build_expect(&self, args: &[&str], context: &Path, success: bool) -> String {
        let out = self
            .rbuild()
            .args(["build", "--progress", "plain"])
            .args(args)
            .arg(context)
            .output()
            .expect("run");
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(
            out.status.success(),
            success,
            "unexpected build outcome:\n{err}"
        );
        err
    }

    /// Run a build, asserting success; returns stderr.
    pub fn build_ok(&self, args: &[&str], context: &Path) -> String {
        self.build_expect(args, context, true)
    }

    /// Run a build that must fail; returns stderr.
    pub fn build_err(&self, args: &[&str], context: &Path) -> String {
        self.build_expect(args, context, false)
    }

    /// Build the busybox base image (from Debian's busybox-static) as `name`.
    pub fn busybox_base(&self, name: &str) {
        let busybox = require_file("/bin/busybox", "busybox-static");
        let ctx = Path::new(env!("CARGO_MANIFEST_DIR")).join("demo/busybox-base");
        let dir = self.path("busybox-ctx");
        copy_dir(&ctx, &dir);
        std::fs::copy(busybox, dir.join("busybox")).expect("copy busybox");
        self.build_ok(&["-t", name], &dir);
    }
}

/// Copy a directory tree (files, dirs, symlinks).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir").flatten() {
        let ft = e.file_type().expect("type");
        let dest = to.join(e.file_name());
        if ft.is_dir() {
            copy_dir(&e.path(), &dest);
        } else if ft.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(e.path()).expect("link"), dest)
                .expect("symlink");
        } else {
            std::fs::copy(e.path(), dest).expect("copy");
        }
    }
}

/// Fail with a clear message when an external tool is missing.
pub fn require_tool(tool: &str, package: &str) -> PathBuf {
    for dir in ["/usr/bin", "/usr/sbin", "/bin", "/sbin", "/usr/local/bin"] {
        let p = Path::new(dir).join(tool);
        if p.exists() {
            return p;
        }
    }
    panic!(
        "this test needs `{tool}` (Debian package {package}); run ./scripts/test.sh, which installs it"
    );
}

/// Fail clearly when a file is missing.
pub fn require_file(path: &str, package: &str) -> PathBuf {
    let p = PathBuf::from(path);
    assert!(
        p.exists(),
        "this test needs {path} (Debian package {package}); run ./scripts/test.sh, which installs it"
    );
    p
}

/// Run a command, asserting success; returns stdout.
pub fn run(cmd: &mut std::process::Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The names of the steps a plain progress log shows as CACHED, sorted.
pub fn cached_steps(log: &str) -> Vec<String> {
    let mut names = std::collections::HashMap::new();
    let mut cached = Vec::new();
    for line in log.lines() {
        let Some((id, rest)) = line.split_once(' ') else {
            continue;
        };
        if rest.starts_with('[') {
            names.entry(id.to_string()).or_insert(rest.to_string());
        } else if rest == "CACHED" {
            cached.push(id.to_string());
        }
    }
    let mut out: Vec<String> = cached
        .iter()
        .filter_map(|id| names.get(id).cloned())
        .collect();
    out.sort();
    out
}
