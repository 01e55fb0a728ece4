//! `rbuild serve`: a build server CI pipelines share (one store, its
//! context cache, a limit on concurrent builds), and the client that
//! `rbuild build --server` uses.
//!
//! HTTP through axum rather than gRPC through tonic: no protoc or code
//! generation, and /metrics and the status page are plain HTTP anyway.

pub mod api;
pub mod assembled;
pub mod build_io;
pub mod client;
pub mod context_sync;
pub mod limits;
pub mod listen;
pub mod metrics;
pub mod outputs;
pub mod page;
pub mod receive;
pub mod runner;
pub mod shared_store;
pub mod store_cmd;
pub mod tls;
pub mod warm;
pub mod wire;

use context_sync::ContextCache;
use listen::{Addr, Listener};
use std::path::Path;
use std::sync::Arc;

/// Errors of the server.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address.
    #[error(transparent)]
    Listen(#[from] listen::ListenError),
    /// The context cache.
    #[error(transparent)]
    Context(#[from] context_sync::SyncError),
    /// The token file.
    #[error("--token-file {path}: {source}")]
    Token {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The warm config or its state.
    #[error(transparent)]
    Warm(#[from] warm::WarmError),
    /// TLS setup.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// Serving failed.
    #[error("serving: {0}")]
    Io(#[from] std::io::Error),
}

/// The state every request shares.
pub struct Server {
    /// Context files by digest.
    pub cache: ContextCache,
    /// Context directories assembled from them, shared by builds.
    pub contexts: Arc<assembled::Assembled>,
    /// Counters and recent builds.
    pub metrics: metrics::Metrics,
    /// Slots for running builds.
    pub slots: Arc<tokio::sync::Semaphore>,
    /// The bearer token clients must send, if any.
    pub token: Option<String>,
    /// The store's root.
    pub root: std::path::PathBuf,
    /// Cache warming (`--warm`).
    pub warm: Option<Arc<warm::Warmer>>,
    /// Sizes and counts accepted.
    pub limits: limits::Limits,
    /// The store the running builds share.
    pub store: shared_store::SharedStore,
    /// Runs one build (its `rbuild build` flags) in this process.
    pub build: BuildFn,
    /// Set on SIGTERM: warm builds stop at their next step (clients'
    /// builds finish).
    pub stopping: crate::solver::cancel::Cancel,
}

/// Runs a build in the calling thread: its `rbuild build` flags (context
/// and Dockerfile paths included) and its io; the exit code. The CLI's
/// build, given by the binary (the library does not parse its flags).
pub type BuildFn = Arc<dyn Fn(Vec<String>, crate::build::io::BuildIo) -> i32 + Send + Sync>;

/// How to serve.
pub struct ServeOptions {
    /// `unix:///PATH` or `tcp://HOST:PORT`.
    pub listen: String,
    /// A file holding the bearer token.
    pub token_file: Option<std::path::PathBuf>,
    /// Builds run at once (more wait in a queue).
    pub max_builds: usize,
    /// Sizes and counts accepted.
    pub limits: limits::Limits,
    /// TLS certificate chain and key (PEM).
    pub tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// The store's root (the context cache lives in `serve/` below it).
    pub root: std::path::PathBuf,
    /// The `--warm` config.
    pub warm: Option<std::path::PathBuf>,
    /// How a build is run.
    pub build: BuildFn,
}

/// Read a token file (its first line).
pub fn read_token(path: &Path) -> Result<String, ServeError> {
    let t = std::fs::read_to_string(path).map_err(|source| ServeError::Token {
        path: path.display().to_string(),
        source,
    })?;
    let t = t.lines().next().unwrap_or("").trim().to_string();
    if t.is_empty() {
        return Err(ServeError::Token {
            path: path.display().to_string(),
            source: std::io::Error::other("the file holds no token"),
        });
    }
    Ok(t)
}

/// Serve until SIGTERM or SIGINT; then stop accepting and let running
/// builds finish (their connections are waited for).
pub async fn serve(opts: ServeOptions) -> Result<(), ServeError> {
    let token = opts.token_file.as_deref().map(read_token).transpose()?;
    let addr = Addr::parse(&opts.listen)?;
    let warm = match &opts.warm {
        Some(c) => Some(Arc::new(warm::Warmer::open(
            c,
            &opts.root.join("serve/warm"),
        )?)),
        None => None,
    };
    let tls = match &opts.tls {
        Some((cert, key)) => Some(tls::server_config(cert, key)?),
        None => None,
    };
    let listener = listen::bind(&opts.listen, &addr, token.is_some(), tls.is_some())?;
    let server = Arc::new(Server {
        cache: ContextCache::open(&opts.root.join("serve"))?,
        contexts: assembled::Assembled::open(&opts.root.join("serve/contexts"))?,
        metrics: metrics::Metrics::default(),
        slots: Arc::new(tokio::sync::Semaphore::new(opts.max_builds.max(1))),
        token,
        root: opts.root.clone(),
        warm: warm.clone(),
        store: shared_store::SharedStore::new(opts.root.clone(), opts.limits.max_runs),
        limits: opts.limits,
        build: opts.build,
        stopping: Default::default(),
    });
    if let Some(w) = warm {
        warm::Warmer::spawn_schedule(server.clone(), w);
    }
    let stopping = server.stopping.clone();
    let app = api::router(server);
    eprintln!("rbuild serve: listening on {}", opts.listen);
    let shutdown = async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        eprintln!("rbuild serve: shutting down (running builds finish, warm builds stop)");
        stopping.cancel();
    };
    match listener {
        Listener::Unix(l, path) => {
            let r = axum::serve(l, app).with_graceful_shutdown(shutdown).await;
            let _ = std::fs::remove_file(path);
            r?;
        }
        Listener::Tcp(l) => match tls {
            Some(config) => {
                let l = tls::TlsListener::new(l, config)?;
                axum::serve(l, app).with_graceful_shutdown(shutdown).await?
            }
            None => axum::serve(l, app).with_graceful_shutdown(shutdown).await?,
        },
    }
    Ok(())
}
