//! `GET /warm` (the recorded runs as JSON, newest first) and `POST /warm`
//! (a run now; `?force=1` builds every project): behind the server's token
//! like every route.

use crate::server::Server;
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

fn not_configured() -> Response {
    (StatusCode::NOT_FOUND, "this server has no --warm config\n").into_response()
}

/// `GET /warm`.
pub async fn list(State(s): State<Arc<Server>>) -> Response {
    let Some(w) = s.warm.as_ref() else {
        return not_configured();
    };
    Json(serde_json::json!({
        "interval_seconds": w.interval().as_secs(),
        "projects": w.project_names(),
        "running": w.running().map(|(trigger, seconds)| serde_json::json!({
            "trigger": trigger,
            "seconds": seconds,
        })),
        "runs": w.runs(),
    }))
    .into_response()
}

/// `POST /warm[?force=1]`: the run's record once it has finished.
pub async fn trigger(State(s): State<Arc<Server>>, uri: Uri) -> Response {
    let Some(w) = s.warm.clone() else {
        return not_configured();
    };
    let force = uri
        .query()
        .unwrap_or("")
        .split('&')
        .any(|kv| matches!(kv, "force" | "force=1" | "force=true"));
    // The run goes on if the client goes away.
    let server = s.clone();
    let run = tokio::spawn(async move { w.run(&server, "api", force).await }).await;
    match run {
        Ok(run) => Json(run).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}
