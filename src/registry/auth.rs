//! Credentials from Docker's `config.json` (`$DOCKER_CONFIG/config.json`,
//! else `~/.docker/config.json`): `auths`, `credsStore` and `credHelpers`,
//! read by the `docker_credential` crate.

use super::RegistryError;
use docker_credential::{CredentialRetrievalError, DockerCredential};
use oci_client::secrets::RegistryAuth;

/// The key Docker Hub's credentials are stored under.
const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// The credentials for `host` (anonymous when none are configured).
pub fn credentials_for(host: &str) -> Result<RegistryAuth, RegistryError> {
    let key = match host {
        "docker.io" | "registry-1.docker.io" | "index.docker.io" => DOCKER_HUB_KEY,
        h => h,
    };
    match docker_credential::get_credential(key) {
        Ok(DockerCredential::UsernamePassword(u, p)) => Ok(RegistryAuth::Basic(u, p)),
        // An identity token is an OAuth refresh token, exchanged by a POST
        // to the token endpoint, which oci-client does not do: go
        // anonymous (public images still work; private ones are denied).
        Ok(DockerCredential::IdentityToken(_)) => Ok(RegistryAuth::Anonymous),
        Err(
            CredentialRetrievalError::NoCredentialConfigured
            | CredentialRetrievalError::ConfigNotFound
            | CredentialRetrievalError::ConfigReadError,
        ) => Ok(RegistryAuth::Anonymous),
        // A helper without an entry for the host (after `logout`, say):
        // anonymous, as Docker.
        Err(CredentialRetrievalError::HelperFailure { stdout, stderr, .. })
            if (stdout.clone() + &stderr).contains("credentials not found") =>
        {
            Ok(RegistryAuth::Anonymous)
        }
        Err(e) => Err(RegistryError::Credentials {
            host: host.to_string(),
            reason: e.to_string(),
        }),
    }
}
