//! Bad input when pulling: invalid references, unknown tags and
//! repositories, unreachable registries, servers answering HTML, blobs that
//! do not match their digest (nothing is left in the store).

mod common;

use common::registry::*;

#[test]
fn bad_references_and_registries_give_clear_errors() {
    let (_seed, _layout, _reg, host) = busybox_registry();
    let env = isolated();

    let err = build(
        &env,
        &[],
        &format!("FROM {host}/library/busybox:nope\n"),
        false,
    );
    assert!(
        err.contains(&format!("{host}/library/busybox:nope: not found")),
        "{err}"
    );
    let err = build(&env, &[], &format!("FROM {host}/library/absent\n"), false);
    assert!(
        err.contains(&format!("{host}/library/absent:latest: not found")),
        "{err}"
    );

    // A closed port on loopback.
    let closed = free_port();
    let err = build(
        &env,
        &[],
        &format!("FROM 127.0.0.1:{closed}/x/y:1\n"),
        false,
    );
    assert!(
        err.contains(&format!(
            "failed to resolve source metadata for 127.0.0.1:{closed}/x/y:1: cannot reach registry 127.0.0.1:{closed}"
        )),
        "{err}"
    );

    // Docker's grammar and messages.
    let err = build(&env, &[], "FROM Foo\n", false);
    assert!(
        err.contains(
            "failed to parse stage name \"Foo\": invalid reference format: repository name (library/Foo) must be lowercase"
        ),
        "{err}"
    );
    let err = build(&env, &["-t", "a::b"], "FROM scratch\n", false);
    assert!(err.contains("invalid reference format"), "{err}");
}

#[test]
fn a_corrupt_or_truncated_blob_is_refused_and_leaves_nothing_then_a_retry_works() {
    let (_seed, _layout, reg, host) = busybox_registry();
    let m = remote_manifest(&format!("{host}/library/busybox:latest"));
    let layer = m["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .max_by_key(|l| l["size"].as_u64())
        .expect("a layer");
    let digest = layer["digest"].as_str().expect("digest").to_string();
    let file = reg.blob_file(&digest);
    let good = std::fs::read(&file).expect("registry blob");
    let mut flipped = good.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0xff;
    let truncated = good[..good.len() / 2].to_vec();

    let env = isolated();
    let df = format!("FROM {host}/library/busybox\nRUN echo ok > /ok\n");
    for bad in [flipped, truncated] {
        std::fs::write(&file, &bad).expect("corrupt");
        let err = build(&env, &[], &df, false);
        assert!(
            err.contains(&format!(
                "failed to resolve source metadata for {host}/library/busybox:latest"
            )) && err.contains(&digest)
                && err.contains("digest"),
            "{err}"
        );
        let hex = digest.trim_start_matches("sha256:");
        assert!(!env.root().join("blobs/sha256").join(hex).exists());
        let stray: Vec<_> = std::fs::read_dir(env.root().join("tmp"))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(stray.is_empty(), "left in tmp: {stray:?}");
        let images =
            std::fs::read_to_string(env.root().join("images/index.json")).unwrap_or_default();
        assert!(!images.contains("busybox"), "{images}");
    }

    // The registry is repaired: the next try pulls cleanly.
    std::fs::write(&file, &good).expect("repair");
    build_local(&env, &df, &env.path("out"), &[]);
    assert_eq!(read(env.path("out/ok")), "ok\n");
}

/// A server on loopback that answers every request with an HTML page.
fn html_server() -> u16 {
    use std::io::{Read as _, Write as _};
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let body = "<html><body>Welcome to nginx!</body></html>";
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

#[test]
fn a_server_answering_html_is_named_as_such() {
    let port = html_server();
    let env = isolated();
    let err = build(&env, &[], &format!("FROM 127.0.0.1:{port}/x/y:1\n"), false);
    assert!(
        err.contains(&format!(
            "failed to resolve source metadata for 127.0.0.1:{port}/x/y:1: registry 127.0.0.1:{port} answered with HTML"
        )),
        "{err}"
    );
}

/// A plain-HTTP proxy on loopback in front of `upstream` that cuts the
/// first response for a path ending in `cut` in the middle of its body.
/// Returns its port and how many times that path was requested.
fn cutting_proxy(
    upstream: u16,
    cut: String,
) -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::Ordering;
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = hits.clone();
    let port = proxy(upstream, move |first| {
        let target = first.starts_with("GET ")
            && first
                .split_whitespace()
                .nth(1)
                .is_some_and(|p| p.ends_with(&cut));
        match target && counter.fetch_add(1, Ordering::SeqCst) == 0 {
            true => Proxied::ForwardCut(first.to_string()),
            false => Proxied::Forward(first.to_string()),
        }
    });
    (port, hits)
}

#[test]
fn an_interrupted_layer_download_is_retried_from_the_start() {
    let (_seed, _layout, _reg, host) = busybox_registry();
    let m = remote_manifest(&format!("{host}/library/busybox:latest"));
    let layer = m["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .max_by_key(|l| l["size"].as_u64())
        .expect("a layer");
    let digest = layer["digest"].as_str().expect("digest").to_string();
    let upstream: u16 = host.rsplit(':').next().unwrap().parse().unwrap();
    let (port, hits) = cutting_proxy(upstream, digest.clone());

    let env = isolated();
    let df = format!("FROM 127.0.0.1:{port}/library/busybox\nRUN echo ok > /ok\n");
    build_local(&env, &df, &env.path("out"), &[]);
    assert_eq!(read(env.path("out/ok")), "ok\n");
    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "the cut layer is fetched again, once"
    );
}

/// A plain-HTTP proxy on loopback in front of `upstream` that answers 403
/// Forbidden (a distribution `DENIED` error) to requests whose path
/// contains `deny` and whose method is `method`, and passes the rest on.
fn forbidding_proxy(upstream: u16, method: &'static str, deny: String) -> u16 {
    proxy(upstream, move |first| {
        let mut parts = first.split_whitespace();
        let (m, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        if m == method && path.contains(&deny) {
            let body = r#"{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}"#;
            return Proxied::Answer(format!(
                "HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            ));
        }
        Proxied::Forward(first.to_string())
    })
}

#[test]
fn a_403_for_a_manifest_a_blob_or_an_upload_names_the_reference_and_says_denied() {
    let (_seed, _layout, _reg, host) = busybox_registry();
    let upstream: u16 = host.rsplit(':').next().unwrap().parse().unwrap();
    let m = remote_manifest(&format!("{host}/library/busybox:latest"));
    let layer = m["layers"][0]["digest"]
        .as_str()
        .expect("digest")
        .to_string();
    let env = isolated();
    let df = |port: u16| format!("FROM 127.0.0.1:{port}/library/busybox\nRUN echo ok > /ok\n");

    // The manifest.
    let port = forbidding_proxy(upstream, "GET", "/manifests/".into());
    let err = build(&env, &[], &df(port), false);
    assert!(
        err.contains(&format!(
            "failed to resolve source metadata for 127.0.0.1:{port}/library/busybox:latest: denied: requested access to the resource is denied"
        )) && err.contains("403 Forbidden"),
        "{err}"
    );

    // A layer: nothing of it stays in the store.
    let port = forbidding_proxy(upstream, "GET", layer.clone());
    let err = build(&env, &[], &df(port), false);
    assert!(
        err.contains(&format!(
            "failed to resolve source metadata for 127.0.0.1:{port}/library/busybox:latest: denied: requested access to the resource is denied"
        )) && err.contains("403 Forbidden"),
        "{err}"
    );
    let hex = layer.trim_start_matches("sha256:");
    assert!(!env.root().join("blobs/sha256").join(hex).exists());

    // An upload.
    let port = forbidding_proxy(upstream, "POST", "/blobs/uploads/".into());
    let app = format!("127.0.0.1:{port}/team/app:1");
    let err = build(&env, &["-t", &app, "--push"], &df(upstream), false);
    assert!(
        err.contains(&format!(
            "failed to push {app}: denied: requested access to the resource is denied"
        )) && err.contains("403 Forbidden"),
        "{err}"
    );
}
