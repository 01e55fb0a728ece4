//! `docker image inspect`'s JSON for a stored image: the keys and their
//! order as current Docker prints them for its own image store.

use super::config::{RunConfig, rfc3339};
use super::local::{LocalImage, image_size};
use crate::cache::Store;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Value, json};

/// A JSON object that keeps its keys in insertion order (serde_json's own
/// map sorts them, and Docker's order is part of the shape users read).
#[derive(Debug, Clone, Default)]
pub struct Ordered(Vec<(String, Node)>);

/// A value in an [`Ordered`] tree.
#[derive(Debug, Clone)]
pub enum Node {
    /// Any JSON value.
    Plain(Value),
    /// An ordered object.
    Object(Ordered),
}

impl Ordered {
    fn put(&mut self, k: &str, v: Value) {
        self.0.push((k.to_string(), Node::Plain(v)));
    }
    fn put_obj(&mut self, k: &str, v: Ordered) {
        self.0.push((k.to_string(), Node::Object(v)));
    }
    /// As a plain JSON value (keys then sorted).
    pub fn to_value(&self) -> Value {
        Value::Object(
            self.0
                .iter()
                .map(|(k, v)| (k.clone(), v.to_value()))
                .collect(),
        )
    }
}

impl Node {
    /// As a plain JSON value.
    pub fn to_value(&self) -> Value {
        match self {
            Node::Plain(v) => v.clone(),
            Node::Object(o) => o.to_value(),
        }
    }
}

impl Serialize for Ordered {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl Serialize for Node {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Node::Plain(v) => v.serialize(s),
            Node::Object(o) => o.serialize(s),
        }
    }
}

fn list_or_null(v: &[String]) -> Value {
    if v.is_empty() { Value::Null } else { json!(v) }
}

/// The `Config` object as Docker shows it (container-only fields empty,
/// optional ones left out when unset).
pub fn docker_config(c: &RunConfig, raw: &Value) -> Ordered {
    let mut m = Ordered::default();
    let mut put = |k: &str, v: Value| m.put(k, v);
    put("Hostname", json!(""));
    put("Domainname", json!(""));
    put("User", json!(c.user));
    put("AttachStdin", json!(false));
    put("AttachStdout", json!(false));
    put("AttachStderr", json!(false));
    if !c.exposed_ports.is_empty() {
        put("ExposedPorts", json!(c.exposed_ports));
    }
    put("Tty", json!(false));
    put("OpenStdin", json!(false));
    put("StdinOnce", json!(false));
    put("Env", list_or_null(&c.env));
    put("Cmd", c.cmd.as_deref().map_or(Value::Null, |v| json!(v)));
    if let Some(h) = &c.healthcheck {
        put("Healthcheck", json!(h));
    }
    if raw["config"]["ArgsEscaped"] == json!(true) {
        put("ArgsEscaped", json!(true));
    }
    put("Image", json!(""));
    put(
        "Volumes",
        if c.volumes.is_empty() {
            Value::Null
        } else {
            json!(c.volumes)
        },
    );
    put("WorkingDir", json!(c.working_dir));
    put(
        "Entrypoint",
        c.entrypoint.as_deref().map_or(Value::Null, |v| json!(v)),
    );
    put("OnBuild", list_or_null(&c.on_build));
    put(
        "Labels",
        if c.labels.is_empty() {
            Value::Null
        } else {
            json!(c.labels)
        },
    );
    if !c.stop_signal.is_empty() {
        put("StopSignal", json!(c.stop_signal));
    }
    if !c.shell.is_empty() {
        put("Shell", json!(c.shell));
    }
    m
}

/// One element of `docker image inspect`'s array.
pub fn inspect(store: &Store, img: &LocalImage) -> Ordered {
    let cfg = &img.config;
    let raw = &img.raw_config;
    // Docker shows the config's top-level comment; BuildKit's images carry
    // theirs in the last history entry.
    let comment = raw["comment"]
        .as_str()
        .map(str::to_string)
        .or_else(|| cfg.history.last().map(|h| h.comment.clone()))
        .unwrap_or_default();
    let lower: Vec<String> = cfg
        .rootfs
        .diff_ids
        .iter()
        .rev()
        .map(|d| store.snapshot_path(d).display().to_string())
        .collect();
    let mut m = Ordered::default();
    m.put("Id", json!(img.id.to_string()));
    m.put("RepoTags", json!(img.repo_tags()));
    m.put("RepoDigests", json!(img.repo_digests()));
    m.put("Parent", json!(""));
    m.put("Comment", json!(comment));
    m.put(
        "Created",
        json!(cfg.created.clone().unwrap_or_else(|| rfc3339(0))),
    );
    m.put("DockerVersion", json!(""));
    m.put("Author", json!(cfg.author));
    m.put_obj("Config", docker_config(&cfg.config, raw));
    m.put("Architecture", json!(cfg.architecture));
    if !cfg.variant.is_empty() {
        m.put("Variant", json!(cfg.variant));
    }
    m.put("Os", json!(cfg.os));
    m.put("Size", json!(image_size(store, img)));
    m.put(
        "GraphDriver",
        json!({
            "Data": if lower.is_empty() { Value::Null } else { json!({"LowerDir": lower.join(":")}) },
            "Name": "overlay",
        }),
    );
    let mut rootfs = Ordered::default();
    rootfs.put("Type", json!("layers"));
    rootfs.put("Layers", json!(cfg.rootfs.diff_ids));
    m.put_obj("RootFS", rootfs);
    m.put(
        "Metadata",
        json!({"LastTagTime": img.last_tag_time().map_or_else(
            || "0001-01-01T00:00:00Z".to_string(),
            rfc3339
        )}),
    );
    m
}

/// Pretty JSON as Docker prints it (four-space indent).
pub fn to_docker_json(v: &impl Serialize) -> String {
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    v.serialize(&mut ser).expect("serialise JSON");
    String::from_utf8(out).expect("JSON is UTF-8")
}
