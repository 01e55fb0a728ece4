//! Cross-repository blob mounts, as Docker makes them: on a token registry
//! the token must cover both the target (`repository:DST:pull,push`) and
//! the source (`repository:SRC:pull`), which oci-client's one-repository
//! tokens do not, so mounts are asked here with such a token (one per
//! source repository, reused for its blobs).

use super::auth::credentials_for;
use super::config::Endpoint;
use super::http::{Challenge, Http};
use oci_client::secrets::RegistryAuth;
use std::collections::HashMap;
use tokio::sync::Mutex;

/// Mounts into one repository of one registry.
pub struct Mounter {
    http: Http,
    challenge: Challenge,
    auth: RegistryAuth,
    target: String,
    /// Source repository → the `Authorization` for both scopes (`None`:
    /// none needed, or the token server refused).
    tokens: Mutex<HashMap<String, Option<Option<String>>>>,
}

impl Mounter {
    /// A mounter into the repository `target` at `ep` over `scheme`: asks
    /// `/v2/` how the registry authenticates. `None` when it cannot be set up
    /// (mounts are then skipped and blobs uploaded).
    pub async fn new(ep: &Endpoint, scheme: &str, target: &str) -> Option<Mounter> {
        let http = Http::new(ep, scheme).ok()?;
        let (_, challenge) = http.ping(None).await.ok()?;
        let auth = credentials_for(&ep.host).ok()?;
        Some(Mounter {
            http,
            challenge,
            auth,
            target: target.to_string(),
            tokens: Mutex::new(HashMap::new()),
        })
    }

    /// The `Authorization` for mounting from `from`, once per source; `Err`
    /// when the token server refused the scopes.
    async fn authorization(&self, from: &str) -> Result<Option<String>, ()> {
        let mut tokens = self.tokens.lock().await;
        if let Some(a) = tokens.get(from) {
            return a.clone().ok_or(());
        }
        let scopes = [
            format!("repository:{}:pull,push", self.target),
            format!("repository:{from}:pull"),
        ];
        let a = self
            .http
            .authorization(&self.challenge, &scopes, &self.auth)
            .await
            .ok();
        tokens.insert(from.to_string(), a.clone());
        a.ok_or(())
    }

    /// Mount `digest` from the repository `from`: true when the registry
    /// did (a refusal means the blob is uploaded instead).
    pub async fn mount(&self, from: &str, digest: &str) -> bool {
        let Ok(authorization) = self.authorization(from).await else {
            return false;
        };
        self.http
            .mount(&self.target, from, digest, authorization.as_deref())
            .await
            .unwrap_or(false)
    }
}
