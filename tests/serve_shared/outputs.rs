//! What a build through the server writes on the client's disk, and its
//! exit code and error, are those of a local build.

use crate::common::Env;
use crate::harness::{Serve, build};
use std::path::Path;

/// Every file under `dir` (relative path, content; directories and links
/// named with their kind), sorted.
fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let p = e.path();
            let rel = p.strip_prefix(dir).unwrap().display().to_string();
            let ft = e.file_type().unwrap();
            if ft.is_symlink() {
                let t = std::fs::read_link(&p).unwrap();
                out.push((format!("{rel} ->"), t.display().to_string().into_bytes()));
            } else if ft.is_dir() {
                out.push((format!("{rel}/"), Vec::new()));
                stack.push(p);
            } else {
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// Flags writing every kind of output under `dir`.
fn output_flags(dir: &Path) -> Vec<String> {
    let p = |n: &str| dir.join(n).display().to_string();
    vec![
        "--build-arg=SOURCE_DATE_EPOCH=1700000000".into(),
        "-o".into(),
        format!("type=local,dest={}", p("rootfs")),
        "-o".into(),
        format!("type=oci,dest={}", p("img.oci.tar")),
        "-o".into(),
        format!("type=docker,dest={}", p("img.docker.tar"),),
        "-o".into(),
        format!("type=oci-dir,dest={}", p("layout")),
        format!("--iidfile={}", p("iid")),
        format!("--metadata-file={}", p("meta.json")),
    ]
}

#[test]
fn outputs_iidfile_and_metadata_land_on_the_client_as_a_local_builds() {
    let client = Env::new();
    client.busybox_base("bb");
    let server_env = Env::new();
    // The same base in both stores.
    let saved = client.path("bb.tar");
    client
        .rbuild()
        .args(["save", "-o", saved.to_str().unwrap(), "bb"])
        .assert()
        .success();
    server_env
        .rbuild()
        .args(["load", "-i", saved.to_str().unwrap()])
        .assert()
        .success();
    let sock = server_env.path("s.sock");
    let addr = format!("unix://{}", sock.display());
    let _server = Serve::start(&server_env, &addr, &[]);
    let ctx = client.project(
        "p",
        &[
            (
                "Dockerfile",
                "FROM bb\nCOPY a.txt /a.txt\nRUN mkdir -p /d && echo made > /d/f && ln -s /a.txt /d/link\n",
            ),
            ("a.txt", "hello\n"),
        ],
    );
    let (local, remote) = (client.path("local"), client.path("remote"));
    for (dir, server) in [(&local, None), (&remote, Some(addr.as_str()))] {
        let flags = output_flags(dir);
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let (ok, err, _) = build(&client, server, &flags, &ctx);
        assert!(ok, "{err}");
    }
    // The server's store has the image; nothing was built in the client's.
    for name in ["iid", "img.oci.tar", "img.docker.tar"] {
        assert_eq!(
            std::fs::read(local.join(name)).unwrap(),
            std::fs::read(remote.join(name)).unwrap(),
            "{name}"
        );
    }
    for name in ["rootfs", "layout"] {
        let (l, r) = (tree(&local.join(name)), tree(&remote.join(name)));
        assert!(l.len() > 3, "{name}: {l:?}");
        assert_eq!(l, r, "{name}");
    }
    let rootfs = remote.join("rootfs");
    assert_eq!(
        std::fs::read_to_string(rootfs.join("d/f")).unwrap(),
        "made\n"
    );
    assert_eq!(
        std::fs::read_link(rootfs.join("d/link")).unwrap(),
        Path::new("/a.txt")
    );
    let meta = |d: &Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(d.join("meta.json")).unwrap()).unwrap()
    };
    assert_eq!(meta(&local), meta(&remote));
    assert!(meta(&remote)["containerimage.digest"].is_string());
}

#[test]
fn a_failing_run_fails_as_locally_and_local_paths_are_refused() {
    let env = Env::new();
    env.busybox_base("bb");
    let sock = env.path("s.sock");
    let addr = format!("unix://{}", sock.display());
    let _server = Serve::start(&env, &addr, &[]);
    let ctx = env.project(
        "bad",
        &[("Dockerfile", "FROM bb\nRUN echo about-to-fail && exit 3\n")],
    );
    let run = |server: Option<&str>| {
        let out = crate::harness::build_cmd(&env, server, &[], &ctx)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code_l, err_l) = run(None);
    let (code_r, err_r) = run(Some(&addr));
    assert_ne!(code_l, Some(0));
    assert_eq!(code_l, code_r, "same exit code:\n{err_l}\n---\n{err_r}");
    let error_line = |e: &str| {
        e.lines()
            .find(|l| l.starts_with("error:"))
            .map(String::from)
    };
    assert!(error_line(&err_l).is_some(), "{err_l}");
    assert_eq!(error_line(&err_l), error_line(&err_r), "same error text");
    assert!(err_r.contains("about-to-fail"), "{err_r}");

    // Cache directories on the client are refused up front, with the flag.
    let ok_ctx = env.project("ok", &[("Dockerfile", "FROM bb\n")]);
    let cache = env.path("cache").display().to_string();
    let (ok, err, _) = build(
        &env,
        Some(&addr),
        &["--cache-to", &format!("type=local,dest={cache}")],
        &ok_ctx,
    );
    assert!(!ok && err.contains("--cache-to"), "{err}");
}

#[test]
fn registry_caches_pass_through_the_server() {
    let reg = crate::common::registry::Registry::start(None);
    let cache = format!("{}/cache/app:1", reg.host());
    let seed = Env::new();
    seed.busybox_base("bb");
    let saved = seed.path("bb.tar");
    seed.rbuild()
        .args(["save", "-o", saved.to_str().unwrap(), "bb"])
        .assert()
        .success();
    let client = Env::new();
    let ctx = client.project(
        "p",
        &[(
            "Dockerfile",
            "FROM bb\nRUN echo RAN-$((1+1)) > /x && echo RAN-$((1+1))\n",
        )],
    );
    // Two servers with their own stores (and the same base): the first
    // exports its cache to the registry, the second builds from it.
    let mut logs = Vec::new();
    for (i, flag) in [
        (
            "a",
            format!("--cache-to=type=registry,ref={cache},mode=max"),
        ),
        ("b", format!("--cache-from=type=registry,ref={cache}")),
    ] {
        let env = crate::common::registry::isolated();
        env.rbuild()
            .args(["load", "-i", saved.to_str().unwrap()])
            .assert()
            .success();
        let addr = format!("unix://{}", env.path(&format!("{i}.sock")).display());
        let (cfg, dc) = (env.path("registries.toml"), env.path("docker-config"));
        let vars = [
            ("RBUILD_OFFLINE", "0"),
            ("RBUILD_CONFIG", cfg.to_str().unwrap()),
            ("DOCKER_CONFIG", dc.to_str().unwrap()),
        ];
        let _server = Serve::start_env(&env, &addr, &[], &vars);
        let (ok, err, _) = build(&client, Some(&addr), &["--explain", &flag], &ctx);
        assert!(ok, "{err}");
        logs.push(err);
    }
    assert!(
        logs[0].contains("RAN-2") && logs[0].contains("exported cache to"),
        "{}",
        logs[0]
    );
    assert!(
        !logs[1].contains("RAN-2") && logs[1].contains(&format!("imported cache {cache}")),
        "the second server took the step from the registry cache:\n{}",
        logs[1]
    );
}

#[test]
fn load_through_the_server_goes_into_the_clients_docker_engine() {
    let d = crate::common::dockerd::Dockerd::start();
    let env = Env::new();
    env.busybox_base("bb");
    let addr = format!("unix://{}", env.path("s.sock").display());
    let _server = Serve::start(&env, &addr, &[]);
    let ctx = env.project(
        "p",
        &[(
            "Dockerfile",
            "FROM bb\nRUN echo loaded-through-serve > /m\nCMD [\"cat\", \"/m\"]\n",
        )],
    );
    let out = crate::harness::build_cmd(&env, Some(&addr), &["--load", "-t", "served:load"], &ctx)
        .env("DOCKER_HOST", d.host())
        .output()
        .unwrap();
    let (ok, err, _) = crate::harness::text(out);
    assert!(ok && err.contains("Loaded image: served:load"), "{err}");
    let run = d
        .docker()
        .args(["run", "--rm", "--network", "none", "served:load"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&run.stdout),
        "loaded-through-serve\n",
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
}
