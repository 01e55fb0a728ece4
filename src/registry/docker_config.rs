//! Writing credentials the way `docker login` and `docker logout` do:
//! `auths` entries of `$DOCKER_CONFIG/config.json` (else
//! `~/.docker/config.json`) holding base64 `user:pass`, or a credential
//! helper (`credHelpers[server]`, else `credsStore`) run as
//! `docker-credential-NAME store|erase`. The file keeps its other keys, is
//! replaced atomically and is readable by its owner only.

use super::RegistryError;
use serde_json::{Map, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The key Docker Hub's credentials are stored under.
pub const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// The key `docker login SERVER` stores under: Docker Hub's for no server
/// or `docker.io`, else the server as given.
pub fn server_key(server: Option<&str>) -> String {
    match server {
        None | Some("") | Some("docker.io") => DOCKER_HUB_KEY.into(),
        Some(s) => s.to_string(),
    }
}

/// The host a server key names (`https://host/v1/` → `host`), as Docker
/// converts keys to hostnames.
pub fn hostname(key: &str) -> String {
    let rest = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = rest.split('/').next().unwrap_or(rest);
    match host {
        "index.docker.io" | "docker.io" => "registry-1.docker.io".into(),
        h => h.to_string(),
    }
}

/// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
pub fn path() -> PathBuf {
    match std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d).join("config.json"),
        None => {
            let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
            PathBuf::from(home).join(".docker/config.json")
        }
    }
}

fn config_err(path: &Path, reason: impl Into<String>) -> RegistryError {
    RegistryError::Config {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// The config file's JSON object (empty when the file does not exist).
pub fn read(path: &Path) -> Result<Map<String, Value>, RegistryError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Map::new()),
        Err(e) => return Err(config_err(path, e.to_string())),
    };
    if text.trim().is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_str(&text) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(config_err(path, "not a JSON object")),
        Err(e) => Err(config_err(path, e.to_string())),
    }
}

/// Replace the file with `config` (tab-indented as Docker writes it):
/// written to a temporary file in the same directory with mode 0600,
/// then renamed over it.
pub fn write(path: &Path, config: &Map<String, Value>) -> Result<(), RegistryError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| config_err(path, format!("creating {}: {e}", dir.display())))?;
    let mut body = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"\t");
    let mut ser = serde_json::Serializer::with_formatter(&mut body, fmt);
    serde::Serialize::serialize(config, &mut ser).map_err(|e| config_err(path, e.to_string()))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".config.json.")
        .permissions(std::fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)
        .map_err(|e| config_err(path, format!("creating a file in {}: {e}", dir.display())))?;
    tmp.write_all(&body)
        .and_then(|_| tmp.as_file().sync_all())
        .map_err(|e| config_err(path, e.to_string()))?;
    tmp.persist(path)
        .map_err(|e| config_err(path, e.error.to_string()))?;
    Ok(())
}

/// The credential helper for `key`: `credHelpers` by hostname, else
/// `credsStore`.
pub fn helper_for(config: &Map<String, Value>, key: &str) -> Option<String> {
    let host = hostname(key);
    let by_host = config.get("credHelpers").and_then(|h| {
        h.as_object()?
            .iter()
            .find(|(k, _)| k.as_str() == key || hostname(k) == host)
            .and_then(|(_, v)| v.as_str())
    });
    by_host
        .or_else(|| config.get("credsStore").and_then(Value::as_str))
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// Run `docker-credential-HELPER ACTION` with `input` on its stdin.
fn run_helper(helper: &str, action: &str, input: &[u8], key: &str) -> Result<(), RegistryError> {
    let bin = format!("docker-credential-{helper}");
    let fail = |reason: String| RegistryError::Credentials {
        host: key.to_string(),
        reason: format!("{bin} {action}: {reason}"),
    };
    let mut child = Command::new(&bin)
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(e.to_string()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input).map_err(|e| fail(e.to_string()))?;
    }
    let out = child.wait_with_output().map_err(|e| fail(e.to_string()))?;
    if out.status.success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    Err(fail(if text.is_empty() { err } else { text }))
}

/// Store `user`/`password` for `key` as `docker login` does.
pub fn store(key: &str, user: &str, password: &str) -> Result<PathBuf, RegistryError> {
    let path = path();
    let mut config = read(&path)?;
    let entry = match helper_for(&config, key) {
        Some(helper) => {
            let input = serde_json::json!({"ServerURL": key, "Username": user, "Secret": password});
            run_helper(&helper, "store", input.to_string().as_bytes(), key)?;
            // Docker keeps an empty entry so the server is listed.
            Value::Object(Map::new())
        }
        None => serde_json::json!({
            "auth": super::http::base64(format!("{user}:{password}").as_bytes())
        }),
    };
    let auths = config
        .entry("auths")
        .or_insert_with(|| Value::Object(Map::new()));
    if !auths.is_object() {
        *auths = Value::Object(Map::new());
    }
    if let Some(a) = auths.as_object_mut() {
        a.insert(key.to_string(), entry);
    }
    write(&path, &config)?;
    Ok(path)
}

/// Remove the credentials for `key` (and its other spellings, as `docker
/// logout` does). False when there were none.
pub fn erase(key: &str) -> Result<bool, RegistryError> {
    let path = path();
    let mut config = read(&path)?;
    let host = hostname(key);
    let mut found = false;
    if let Some(auths) = config.get_mut("auths").and_then(Value::as_object_mut) {
        let keys: Vec<String> = auths
            .keys()
            .filter(|k| k.as_str() == key || (key != DOCKER_HUB_KEY && hostname(k) == host))
            .cloned()
            .collect();
        for k in keys {
            auths.remove(&k);
            found = true;
        }
    }
    if let Some(helper) = helper_for(&config, key) {
        // A helper without the entry fails; that is "not logged in".
        found |= run_helper(&helper, "erase", key.as_bytes(), key).is_ok();
    }
    if found {
        write(&path, &config)?;
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_hostnames() {
        assert_eq!(server_key(None), DOCKER_HUB_KEY);
        assert_eq!(server_key(Some("docker.io")), DOCKER_HUB_KEY);
        assert_eq!(server_key(Some("localhost:5000")), "localhost:5000");
        assert_eq!(hostname(DOCKER_HUB_KEY), "registry-1.docker.io");
        assert_eq!(hostname("http://127.0.0.1:5000/v2/"), "127.0.0.1:5000");
        let c: Map<String, Value> = serde_json::from_str(
            r#"{"credsStore":"desktop","credHelpers":{"https://gcr.io":"gcloud"}}"#,
        )
        .unwrap();
        assert_eq!(helper_for(&c, "gcr.io").as_deref(), Some("gcloud"));
        assert_eq!(helper_for(&c, "quay.io").as_deref(), Some("desktop"));
    }

    #[test]
    fn writes_atomically_with_mode_0600_and_keeps_other_keys() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub/config.json");
        let mut m = Map::new();
        m.insert("psFormat".into(), "table".into());
        write(&p, &m).unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let back = read(&p).unwrap();
        assert_eq!(back["psFormat"], "table");
        assert_eq!(std::fs::read_dir(p.parent().unwrap()).unwrap().count(), 1);
    }
}
