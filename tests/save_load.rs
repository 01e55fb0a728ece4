//! `rbuild save` and `rbuild load` between stores: docker and OCI archives,
//! compressed or not, from a file or standard input; the loaded image is
//! built on and its files read back. Hostile archives (paths and links out
//! of the archive, wrong digests or diff_ids) are refused and write nothing
//! outside the store. A loaded image's space comes back after rmi + prune.

mod common;
use common::{Env, require_file, require_tool};
use std::io::Write;
use std::path::Path;

fn rb(env: &Env, root: &Path, args: &[&str]) -> std::process::Output {
    env.rbuild()
        .env("RBUILD_ROOT", root)
        .args(args)
        .output()
        .unwrap()
}

fn ok(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Build `app:1` (busybox and a message) into the env's store; its ID.
fn app_image(env: &Env) -> String {
    let busybox = require_file("/bin/busybox", "busybox-static");
    let ctx = env.project(
        "app",
        &[
            (
                "Dockerfile",
                "FROM scratch\nCOPY busybox /bin/busybox\nCOPY msg.txt /srv/msg.txt\nENV GREETING=hi\nCMD [\"/bin/busybox\", \"cat\", \"/srv/msg.txt\"]\n",
            ),
            ("msg.txt", "saved and loaded\n"),
        ],
    );
    std::fs::copy(busybox, ctx.join("busybox")).unwrap();
    ok(env
        .rbuild()
        .args(["build", "-q", "-t", "app:1"])
        .arg(&ctx)
        .output()
        .unwrap())
    .trim()
    .to_string()
}

/// Build FROM `image` in `root`, reading `file` with RUN, export the result
/// and return the file's content.
fn read_through_build(env: &Env, root: &Path, image: &str, file: &str) -> String {
    let ctx = env.project(
        &format!("on-{}", image.replace([':', '/'], "-")),
        &[(
            "Dockerfile",
            &format!("FROM {image}\nRUN [\"/bin/busybox\", \"cp\", \"{file}\", \"/copied\"]\n"),
        )],
    );
    let out_dir = env.path(&format!("out-{}", image.replace([':', '/'], "-")));
    ok(rb(
        env,
        root,
        &[
            "build",
            "-q",
            "-o",
            &format!("type=local,dest={}", out_dir.display()),
            ctx.to_str().unwrap(),
        ],
    ));
    std::fs::read_to_string(out_dir.join("copied")).unwrap()
}

#[test]
fn docker_and_oci_archives_round_trip_between_stores() {
    let env = Env::new();
    let id = app_image(&env);
    ok(env
        .rbuild()
        .args(["tag", "app:1", "other/app:2"])
        .output()
        .unwrap());
    for (format, gzip) in [("docker", false), ("oci", true)] {
        let archive = env.path(&format!("{format}.tar"));
        ok(env
            .rbuild()
            .args(["save", "--format", format, "-o"])
            .arg(&archive)
            .args(["app:1", "other/app:2"])
            .output()
            .unwrap());
        let root = env.path(&format!("store-{format}"));
        // From a file, or gzip-compressed on standard input.
        let out = if gzip {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(&std::fs::read(&archive).unwrap()).unwrap();
            let data = gz.finish().unwrap();
            env.rbuild()
                .env("RBUILD_ROOT", &root)
                .arg("load")
                .write_stdin(data)
                .output()
                .unwrap()
        } else {
            rb(&env, &root, &["load", "-i", archive.to_str().unwrap()])
        };
        assert_eq!(
            ok(out),
            "Loaded image: app:1\nLoaded image: other/app:2\n",
            "{format}"
        );
        // The same image ID: the config kept byte for byte.
        let listed = ok(rb(&env, &root, &["images", "-q", "--no-trunc"]));
        assert_eq!(listed, format!("{id}\n{id}\n"), "{format}");
        let v: serde_json::Value =
            serde_json::from_str(&ok(rb(&env, &root, &["inspect", "other/app:2"]))).unwrap();
        assert!(
            v[0]["Config"]["Env"]
                .as_array()
                .unwrap()
                .contains(&"GREETING=hi".into())
        );
        assert_eq!(
            read_through_build(&env, &root, "other/app:2", "/srv/msg.txt"),
            "saved and loaded\n"
        );
    }
}

#[test]
fn save_refuses_a_terminal_and_unknown_images() {
    let env = Env::new();
    app_image(&env);
    let script = require_tool("script", "bsdutils");
    let out = std::process::Command::new(script)
        .args(["-qec"])
        .arg(format!(
            "{} save app:1",
            assert_cmd::cargo::cargo_bin("rbuild").display()
        ))
        .arg("/dev/null")
        .env("RBUILD_ROOT", env.root())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("cowardly refusing to save to a terminal. Use the -o flag or redirect"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // A FIFO (or a device such as /dev/null) given to -o is written to,
    // not replaced.
    let fifo = env.path("fifo");
    common::run(std::process::Command::new("mkfifo").arg(&fifo));
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read(fifo).unwrap())
    };
    ok(env
        .rbuild()
        .args(["save", "-o"])
        .arg(&fifo)
        .arg("app:1")
        .output()
        .unwrap());
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
    let through_fifo = reader.join().unwrap();
    assert!(through_fifo.len() > 1 << 20, "{}", through_fifo.len());
    // To a pipe: the archive on standard output.
    let piped = env.rbuild().args(["save", "app:1"]).output().unwrap();
    assert!(piped.status.success());
    let root = env.path("piped");
    let out = env
        .rbuild()
        .env("RBUILD_ROOT", &root)
        .arg("load")
        .write_stdin(piped.stdout)
        .output()
        .unwrap();
    assert_eq!(ok(out), "Loaded image: app:1\n");
    let out = env
        .rbuild()
        .args(["save", "-o", "/dev/null", "nosuch"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("No such image: nosuch"));
}

/// A tar of (path, content or symlink target).
fn tar_of(entries: &[(&str, Result<&[u8], &str>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, what) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        match what {
            Ok(data) => {
                h.set_size(data.len() as u64);
                h.set_entry_type(tar::EntryType::Regular);
                b.append_data(&mut h, name, *data).unwrap();
            }
            Err(target) => {
                h.set_size(0);
                h.set_entry_type(tar::EntryType::Symlink);
                b.append_link(&mut h, name, target).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

fn sha(data: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(data))
}

/// A one-layer image's parts: the layer tar, its config.
fn layer_and_config(diff_id_of: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let layer = tar_of(&[("hello.txt", Ok(b"hello\n"))]);
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{}},"rootfs":{{"type":"layers","diff_ids":["sha256:{}"]}}}}"#,
        sha(diff_id_of)
    );
    (layer, config.into_bytes())
}

#[test]
fn hostile_archives_are_refused_and_write_nothing_outside() {
    let env = Env::new();
    let canary = env.path("outside");
    let (layer, config) = layer_and_config(&tar_of(&[("hello.txt", Ok(b"hello\n"))]));
    let manifest = |cfg: &str, layer: &str| {
        format!(r#"[{{"Config":"{cfg}","RepoTags":["evil:1"],"Layers":["{layer}"]}}]"#).into_bytes()
    };
    let escape = canary.to_str().unwrap().to_string();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "config path out of the archive",
            tar_of(&[
                (
                    "manifest.json",
                    Ok(&manifest("../../../../../../etc/passwd", "l.tar")),
                ),
                ("l.tar", Ok(&layer)),
            ]),
            "points outside the archive",
        ),
        (
            "symlink out of the archive",
            tar_of(&[
                ("manifest.json", Ok(&manifest("c.json", "l.tar"))),
                ("c.json", Ok(&config)),
                ("l.tar", Err("../../../../../../../../etc/shadow")),
            ]),
            "points outside the archive",
        ),
        (
            "absolute symlink stays in the archive (and is missing there)",
            tar_of(&[
                ("manifest.json", Ok(&manifest("c.json", "l.tar"))),
                ("c.json", Ok(&config)),
                ("l.tar", Err(&escape)),
            ]),
            "has no file",
        ),
        (
            "blob whose digest is not its name",
            tar_of(&[
                (
                    "manifest.json",
                    Ok(&manifest(
                        &format!("blobs/sha256/{}", sha(b"other")),
                        "l.tar",
                    )),
                ),
                (&format!("blobs/sha256/{}", sha(b"other")), Ok(&config)),
                ("l.tar", Ok(&layer)),
            ]),
            "expected sha256:",
        ),
        (
            "layer that is not the config's diff_id",
            tar_of(&[
                ("manifest.json", Ok(&manifest("c.json", "l.tar"))),
                ("c.json", Ok(&layer_and_config(b"something else").1)),
                ("l.tar", Ok(&layer)),
            ]),
            "config says",
        ),
        (
            "not an image archive",
            tar_of(&[("x", Ok(b"x"))]),
            "not an image archive",
        ),
    ];
    for (what, archive, message) in cases {
        let out = env
            .rbuild()
            .arg("load")
            .write_stdin(archive)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{what}: loaded");
        assert!(err.contains(message), "{what}: {err}");
        assert!(!canary.exists(), "{what}: wrote outside");
        assert_eq!(
            ok(env.rbuild().args(["images", "-q"]).output().unwrap()),
            "",
            "{what}"
        );
    }
    // The well-formed version of the same archive loads.
    let good = tar_of(&[
        ("manifest.json", Ok(&manifest("c.json", "sub/../l.tar"))),
        ("c.json", Ok(&config)),
        ("l.tar", Ok(&layer)),
    ]);
    let out = env.rbuild().arg("load").write_stdin(good).output().unwrap();
    assert_eq!(ok(out), "Loaded image: evil:1\n");
}

#[test]
fn unnamed_images_load_under_their_id_and_rmi_then_prune_frees_them() {
    let env = Env::new();
    app_image(&env);
    let archive = env.path("unnamed.tar");
    let id = ok(env
        .rbuild()
        .args(["inspect", "-f", "{{.Id}}", "app:1"])
        .output()
        .unwrap());
    let id = id.trim();
    // Saved by ID: no names in the archive.
    ok(env
        .rbuild()
        .args(["save", "--format", "oci", "-o"])
        .arg(&archive)
        .arg(&id[7..19])
        .output()
        .unwrap());
    let root = env.path("store2");
    let out = ok(rb(&env, &root, &["load", "-i", archive.to_str().unwrap()]));
    assert_eq!(out, format!("Loaded image ID: {id}\n"));
    let listed = ok(rb(&env, &root, &["images"]));
    assert!(
        listed
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("<none>       <none>    "),
        "{listed}"
    );
    let dangling = ok(rb(
        &env,
        &root,
        &["images", "-q", "--no-trunc", "-f", "dangling=true"],
    ));
    assert_eq!(dangling, format!("{id}\n"));
    // Naming it makes it an ordinary image; removing the name removes it.
    ok(rb(&env, &root, &["tag", &id[7..19], "named:1"]));
    assert_eq!(ok(rb(&env, &root, &["images", "-q"])).lines().count(), 1);
    let out = ok(rb(&env, &root, &["rmi", "named:1"]));
    assert_eq!(out, format!("Untagged: named:1\nDeleted: {id}\n"));
    let snapshots = |root: &Path| std::fs::read_dir(root.join("snapshots")).unwrap().count();
    assert!(snapshots(&root) > 0);
    // Nothing else refers to its layers (no build records): plain prune frees them.
    ok(rb(&env, &root, &["prune"]));
    assert_eq!(snapshots(&root), 0);
    assert_eq!(
        std::fs::read_dir(root.join("blobs/sha256"))
            .unwrap()
            .count(),
        0
    );
}
