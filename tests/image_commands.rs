//! The local image commands as Docker's: `rbuild images`, `inspect`,
//! `history` and `rmi` over images rbuild built (columns, JSON keys,
//! conflicts, messages and exit codes), and that `rmi` then `prune` frees
//! the image's space.

mod common;
use common::{Env, require_file};

/// An image of three layers (busybox, its links, a 3-byte file) named `bb:1`.
fn small_image(env: &Env) -> String {
    let busybox = require_file("/bin/busybox", "busybox-static");
    let ctx = env.project(
        "ctx",
        &[(
            "Dockerfile",
            "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\nRUN echo hi > /hello\nLABEL org.example.k=v\nEXPOSE 80\nENV GREETING=hello\nWORKDIR /srv\nVOLUME /data\nSTOPSIGNAL SIGINT\nUSER 65534\nENTRYPOINT [\"/bin/sh\", \"-c\"]\nCMD [\"cat /hello\"]\n",
        )],
    );
    std::fs::copy(busybox, ctx.join("busybox")).unwrap();
    let out = env
        .rbuild()
        .args(["build", "-q", "-t", "bb:1"])
        .arg(&ctx)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn stdout(env: &Env, args: &[&str]) -> String {
    let out = env.rbuild().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "rbuild {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn busybox_bytes() -> u64 {
    std::fs::metadata("/bin/busybox").unwrap().len()
}

#[test]
fn images_lists_names_ids_and_sizes_like_docker() {
    let env = Env::new();
    let id = small_image(&env);
    let short = &id["sha256:".len()..][..12];
    stdout(&env, &["tag", "bb:1", "bb:2"]);
    stdout(&env, &["tag", "bb:1", "localhost:5000/other/bb"]);
    let out = stdout(&env, &["images"]);
    let lines: Vec<&str> = out.lines().collect();
    // Columns padded as Docker's tabwriter (the CREATED width depends on
    // how long ago that was).
    assert!(
        lines[0].starts_with("REPOSITORY                TAG       IMAGE ID       CREATED   ")
            && lines[0].ends_with("   SIZE"),
        "{out}"
    );
    // Size as docker counts it: the regular files' bytes (busybox + "hi\n").
    let size = format!("{:.2}MB", (busybox_bytes() + 3) as f64 / 1e6);
    for (repo, tag) in [
        ("bb", "1"),
        ("bb", "2"),
        ("localhost:5000/other/bb", "latest"),
    ] {
        let row = lines
            .iter()
            .find(|l| l.split_whitespace().take(2).eq([repo, tag]))
            .unwrap_or_else(|| panic!("no row {repo} {tag} in\n{out}"));
        assert!(row.contains(short), "{row}");
        assert!(row.ends_with(&size), "{row} (want {size})");
        assert!(
            row.contains("seconds ago") || row.contains("second ago"),
            "{row}"
        );
    }
    // -q: one ID per row, as Docker's CLI prints it.
    assert_eq!(
        stdout(&env, &["images", "-q"]),
        format!("{short}\n").repeat(3)
    );
    // A REPOSITORY[:TAG] argument and a glob.
    let out = stdout(&env, &["images", "--digests", "bb:2"]);
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(out.lines().next().unwrap().contains("DIGEST"));
    assert!(out.lines().nth(1).unwrap().contains("<none>"));
    assert_eq!(stdout(&env, &["images", "-q", "bb"]).lines().count(), 2);
    assert_eq!(stdout(&env, &["images", "-q", "b*"]).lines().count(), 2);
    assert_eq!(stdout(&env, &["images", "-q", "nothing"]), "");
    // --filter: label, dangling, reference (ORed with the argument).
    let count = |args: &[&str]| stdout(&env, args).lines().count();
    assert_eq!(count(&["images", "-q", "-f", "label=org.example.k=v"]), 3);
    assert_eq!(count(&["images", "-q", "-f", "label=org.example.k"]), 3);
    assert_eq!(count(&["images", "-q", "-f", "label=org.example.k=w"]), 0);
    assert_eq!(count(&["images", "-q", "-f", "dangling=true"]), 0);
    assert_eq!(count(&["images", "-q", "-f", "dangling=false"]), 3);
    assert_eq!(
        count(&["images", "-q", "-f", "reference=localhost:5000/*/*", "bb:1"]),
        2
    );
    let out = env
        .rbuild()
        .args(["images", "-f", "bogus=1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid filter 'bogus'"));
    assert_eq!(
        stdout(&env, &["images", "-q", "--no-trunc", "bb:1"]),
        format!("{id}\n")
    );
}

#[test]
fn inspect_prints_docker_shaped_json_and_errors_for_missing_images() {
    let env = Env::new();
    let id = small_image(&env);
    let out = stdout(&env, &["inspect", "bb:1"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let i = &v[0];
    assert_eq!(i["Id"], id.as_str());
    assert_eq!(i["RepoTags"], serde_json::json!(["bb:1"]));
    assert_eq!(i["RepoDigests"], serde_json::json!([]));
    assert_eq!(i["Os"], "linux");
    assert!(i["Architecture"].is_string() && i["Created"].is_string());
    assert_eq!(i["Size"], busybox_bytes() + 3);
    assert_eq!(i["RootFS"]["Type"], "layers");
    // COPY, two RUNs and WORKDIR (which makes the directory).
    assert_eq!(i["RootFS"]["Layers"].as_array().unwrap().len(), 4);
    let c = &i["Config"];
    assert_eq!(c["Labels"]["org.example.k"], "v");
    assert_eq!(c["ExposedPorts"], serde_json::json!({"80/tcp": {}}));
    assert!(
        c["Env"]
            .as_array()
            .unwrap()
            .contains(&"GREETING=hello".into())
    );
    assert_eq!(c["WorkingDir"], "/srv");
    assert_eq!(c["User"], "65534");
    assert_eq!(c["Volumes"], serde_json::json!({"/data": {}}));
    assert_eq!(c["StopSignal"], "SIGINT");
    assert_eq!(c["Entrypoint"], serde_json::json!(["/bin/sh", "-c"]));
    assert_eq!(c["Cmd"], serde_json::json!(["cat /hello"]));
    // Docker's key order, four-space indent.
    let keys = [
        "\"Id\"",
        "\"RepoTags\"",
        "\"Created\"",
        "\"Config\"",
        "\"Os\"",
        "\"RootFS\"",
    ];
    let pos: Vec<usize> = keys.iter().map(|k| out.find(k).unwrap()).collect();
    assert!(pos.windows(2).all(|w| w[0] < w[1]), "{out}");
    assert!(out.contains("\n        \"Id\": "), "{out}");
    // By short ID and full ID; a template.
    let short = &id["sha256:".len()..][..12];
    let by_id = stdout(
        &env,
        &[
            "inspect",
            "--format",
            "{{.Id}} {{index .Config.Labels \"org.example.k\"}}",
            short,
        ],
    );
    assert_eq!(by_id, format!("{id} v\n"));
    // Missing: `[]` and Docker's message, exit 1; found ones still printed.
    let out = env.rbuild().args(["inspect", "nosuch"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "[]\n");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "Error: No such image: nosuch\n"
    );
    let out = env
        .rbuild()
        .args(["inspect", "bb:1", "nosuch"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1);
}

#[test]
fn history_shows_steps_newest_first_with_layer_sizes() {
    let env = Env::new();
    let id = small_image(&env);
    let out = stdout(&env, &["history", "bb:1"]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("IMAGE          CREATED ") && lines[0].ends_with("SIZE      COMMENT"),
        "{out}"
    );
    assert!(lines[1].starts_with(&id["sha256:".len()..][..12]), "{out}");
    assert!(lines[1].contains("CMD [\"cat /hello\"]"), "{out}");
    assert!(
        lines[2..].iter().all(|l| l.starts_with("<missing>")),
        "{out}"
    );
    let copy = lines.last().unwrap();
    assert!(copy.contains("COPY busybox /bin/busybox"), "{copy}");
    assert!(
        copy.contains(&format!("{:.2}MB", busybox_bytes() as f64 / 1e6)),
        "{copy}"
    );
    let echo = lines.iter().find(|l| l.contains("echo hi")).unwrap();
    assert!(echo.contains(" 3B "), "{echo}");
    let label = lines.iter().find(|l| l.contains("LABEL")).unwrap();
    assert!(label.contains(" 0B "), "{label}");
    // Truncated to 45 characters with an ellipsis unless --no-trunc.
    assert!(out.contains("RUN /bin/busybox --install -s /bin # buildkit"));
    let q = stdout(&env, &["history", "-q", "bb:1"]);
    assert_eq!(q.lines().count(), lines.len() - 1);
    assert_eq!(q.lines().nth(1), Some("<missing>"));
    let full = stdout(&env, &["history", "--no-trunc", "bb:1"]);
    assert!(full.lines().nth(1).unwrap().starts_with(&id), "{full}");
    let out = env.rbuild().args(["history", "nosuch"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "Error: No such image: nosuch\n"
    );
}

#[test]
fn rmi_untags_refuses_shared_ids_unless_forced_and_prune_frees_the_space() {
    let env = Env::new();
    let id = small_image(&env);
    let short = id["sha256:".len()..][..12].to_string();
    stdout(&env, &["tag", "bb:1", "bb:2"]);
    stdout(&env, &["tag", "bb:1", "other/bb:x"]);
    // By ID with several names: Docker's conflict, nothing removed.
    let out = env.rbuild().args(["rmi", &short]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "Error: conflict: unable to delete {short} (must be forced) - image is referenced in multiple repositories\n"
        )
    );
    assert_eq!(stdout(&env, &["images", "-q"]).lines().count(), 3);
    // By name: only that name goes.
    assert_eq!(stdout(&env, &["rmi", "bb:2"]), "Untagged: bb:2\n");
    // Unknown: Docker's message, exit 1 (0 with -f), the others still removed.
    let out = env
        .rbuild()
        .args(["rmi", "nosuch", "other/bb:x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "Error: No such image: nosuch\n"
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Untagged: other/bb:x\n"
    );
    let out = env.rbuild().args(["rmi", "-f", "nosuch"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    // One name left: by ID is fine; the image goes with its last name.
    stdout(&env, &["tag", "bb:1", "bb:3"]);
    let out = env.rbuild().args(["rmi", &short]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "two tags of one repository still conflict"
    );
    assert_eq!(
        stdout(&env, &["rmi", "-f", &short]),
        format!("Untagged: bb:1\nUntagged: bb:3\nDeleted: {id}\n")
    );
    assert_eq!(stdout(&env, &["images", "-q"]), "");
    // Its layers now belong to cache records only: pruning them frees the space.
    let before = dir_bytes(&env.root().join("snapshots"));
    assert!(before > busybox_bytes(), "{before}");
    stdout(&env, &["prune", "--all"]);
    assert!(dir_bytes(&env.root().join("snapshots")) < 10_000);
    assert!(dir_bytes(&env.root().join("blobs")) < 10_000);
}

fn dir_bytes(p: &std::path::Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
        let m = e.path().symlink_metadata().unwrap();
        total += if m.is_dir() {
            dir_bytes(&e.path())
        } else {
            m.len()
        };
    }
    total
}
