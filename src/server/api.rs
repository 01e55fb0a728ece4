//! The HTTP routes: health, metrics, the status page, context upload and
//! builds; a bearer token checked on every route when one is configured.

use super::Server;
use super::wire::{BuildRequest, MAX_FILES, MissingRequest, MissingResponse};
use axum::Json;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post, put};
use futures_util::StreamExt;
use sha2::Digest as _;
use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

/// The router.
pub fn router(server: Arc<Server>) -> axum::Router {
    let (max_blob, max_request) = (server.limits.max_blob, server.limits.max_request);
    axum::Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .route("/", get(page))
        .route("/context/missing", post(missing))
        .route(
            "/blobs/{digest}",
            put(upload).layer(DefaultBodyLimit::max(max_blob)),
        )
        .route("/build", post(build))
        .route(
            "/warm",
            get(super::warm::api::list).post(super::warm::api::trigger),
        )
        .route("/store", post(store))
        .layer(DefaultBodyLimit::max(max_request))
        .layer(axum::middleware::from_fn_with_state(server.clone(), auth))
        .with_state(server)
}

/// Refuse requests without the token (when the server has one); only
/// `/healthz`, which tells nothing, is open to all. The status page also
/// takes it as `?token=`: a browser cannot send a header when it opens a
/// page, and the page's refresh keeps the query.
async fn auth(State(s): State<Arc<Server>>, req: Request, next: Next) -> Response {
    if let Some(token) = s.token.as_ref().filter(|_| req.uri().path() != "/healthz") {
        let page = req.uri().path() == "/" && req.method() == axum::http::Method::GET;
        let query = page.then(|| super::page::query_token(req.uri())).flatten();
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .or(query.as_deref())
            .unwrap_or("");
        if !same(given.as_bytes(), token.as_bytes()) {
            return (StatusCode::UNAUTHORIZED, "missing or wrong bearer token\n").into_response();
        }
    }
    next.run(req).await
}

/// Compare in time independent of where the inputs differ.
pub(crate) fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn metrics(State(s): State<Arc<Server>>) -> impl IntoResponse {
    s.metrics.measure_store(&s.root).await;
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
}

async fn page(State(s): State<Arc<Server>>) -> impl IntoResponse {
    s.metrics.measure_store(&s.root).await;
    let warm = s.warm.as_ref().map(|w| (w.runs(), w.running()));
    (
        // The page may be opened with `?token=`: never send it on.
        [(header::REFERRER_POLICY, "no-referrer")],
        Html(super::page::render(&s.metrics, warm.as_ref())),
    )
}

fn bad(e: impl std::fmt::Display) -> Response {
    (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response()
}

async fn missing(State(s): State<Arc<Server>>, Json(req): Json<MissingRequest>) -> Response {
    if req.digests.len() > MAX_FILES {
        return bad(format!("more than {MAX_FILES} context files"));
    }
    match s.cache.missing(&req.digests) {
        Ok(missing) => Json(MissingResponse { missing }).into_response(),
        Err(e) => bad(e),
    }
}

/// `PUT /blobs/sha256:HEX`: a context file, kept if it hashes to its name.
async fn upload(State(s): State<Arc<Server>>, Path(digest): Path<String>, body: Body) -> Response {
    let (mut tmp, dest) = match s.cache.upload_target(&digest) {
        Ok(t) => t,
        Err(e) => return bad(e),
    };
    let mut hash = sha2::Sha256::new();
    let mut proof = super::wire::Proof::new();
    let mut stream = body.into_data_stream();
    let mut n = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => return bad(e),
        };
        hash.update(&chunk);
        proof.update(&chunk);
        n += chunk.len() as u64;
        if n > s.limits.max_blob as u64 {
            let msg = format!(
                "{digest}: context file larger than the server's --max-file ({} bytes)\n",
                s.limits.max_blob
            );
            return (StatusCode::PAYLOAD_TOO_LARGE, msg).into_response();
        }
        if let Err(e) = tmp.write_all(&chunk) {
            return (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response();
        }
    }
    match s.cache.commit(tmp, (hash, proof), &digest, &dest) {
        Ok(()) => {
            s.metrics.uploads.fetch_add(1, Relaxed);
            s.metrics.upload_bytes.fetch_add(n, Relaxed);
            StatusCode::CREATED.into_response()
        }
        Err(e) => bad(e),
    }
}

/// `POST /build`: the build's frames, streamed as they come.
async fn build(State(s): State<Arc<Server>>, Json(req): Json<BuildRequest>) -> Response {
    if req.files.len() > MAX_FILES {
        return bad(format!("more than {MAX_FILES} context files"));
    }
    match s
        .cache
        .check_files(&req.files, &req.proofs, s.limits.max_context)
    {
        Ok(()) => {}
        Err(e @ super::context_sync::SyncError::TooBig(_)) => {
            return (StatusCode::PAYLOAD_TOO_LARGE, format!("{e}\n")).into_response();
        }
        Err(e) => return (StatusCode::FORBIDDEN, format!("{e}\n")).into_response(),
    }
    let queued = s.metrics.queued.load(Relaxed) as usize;
    if s.slots.available_permits() == 0 && queued >= s.limits.max_queue {
        let msg =
            format!("server busy: {queued} builds queued (its --max-queue); try again later\n");
        return (StatusCode::SERVICE_UNAVAILABLE, msg).into_response();
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<String>(256);
    tokio::spawn(super::runner::run(s, req, tx));
    let stream = tokio_stream_of(rx);
    Response::builder()
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response())
}

/// `POST /store`: `rbuild images|du|prune` on the server's store.
async fn store(
    State(s): State<Arc<Server>>,
    Json(req): Json<super::wire::StoreRequest>,
) -> Response {
    let text = super::store_cmd::run(req, &s.cache).await;
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response()
}

/// A receiver as a stream of body chunks.
fn tokio_stream_of(
    rx: tokio::sync::mpsc::Receiver<String>,
) -> impl futures_util::Stream<Item = Result<String, std::convert::Infallible>> {
    futures_util::stream::unfold(
        rx,
        |mut rx| async move { rx.recv().await.map(|s| (Ok(s), rx)) },
    )
}
