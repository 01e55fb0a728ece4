//! Hostile paths: symlinks (absolute, relative, chained, through globs,
//! swapped mid-build) in the build context, in another stage, in an ADD
//! archive and among COPY's own sources must never lead a build to a host
//! file. Each test keeps a "host" directory beside the context, holding a
//! file whose content must never reach an image, and checks it is untouched.

mod common;
use common::Env;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

const HOST_SECRET: &str = "host-secret-5f1c";

/// A host directory with `secret` in it, outside every context.
fn host_dir(env: &Env) -> PathBuf {
    let h = env.path("host");
    std::fs::create_dir_all(h.join("etc")).unwrap();
    std::fs::write(h.join("secret"), HOST_SECRET).unwrap();
    std::fs::write(h.join("etc/passwd"), HOST_SECRET).unwrap();
    h
}

/// Every file below `dir`, read, must not hold the host's secret.
fn assert_no_secret(dir: &Path) {
    for e in walk(dir) {
        if std::fs::symlink_metadata(&e).is_ok_and(|m| m.is_file()) {
            let c = std::fs::read(&e).unwrap();
            assert!(
                !String::from_utf8_lossy(&c).contains(HOST_SECRET),
                "host content reached {}",
                e.display()
            );
        }
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}

fn assert_host_untouched(host: &Path) {
    let names: Vec<String> = std::fs::read_dir(host)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "nothing added on the host: {names:?}");
    assert_eq!(
        std::fs::read_to_string(host.join("secret")).unwrap(),
        HOST_SECRET
    );
}

fn local_out(env: &Env, name: &str) -> (PathBuf, String) {
    let out = env.path(name);
    (out.clone(), format!("type=local,dest={}", out.display()))
}

#[test]
fn context_symlinks_resolve_inside_the_context() {
    let env = Env::new();
    let host = host_dir(&env);
    let ctx = env.project(
        "ctx",
        &[
            ("etc/passwd", "context passwd"),
            ("Dockerfile", "FROM scratch\nCOPY hostfile* /h/\n"),
        ],
    );
    symlink("/etc", ctx.join("abs")).unwrap();
    symlink("../../../../../../etc", ctx.join("rel")).unwrap();
    symlink("abs", ctx.join("chain")).unwrap();
    symlink(host.join("etc"), ctx.join("link")).unwrap();
    symlink(host.join("secret"), ctx.join("hostfile")).unwrap();
    // The link's target, re-rooted in the context, does not exist.
    let err = env.build_err(&["--no-cache"], &ctx);
    assert!(err.contains("hostfile"), "{err}");
    assert!(!err.contains(HOST_SECRET), "{err}");
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nCOPY abs/passwd /a\nCOPY rel/passwd /r\nCOPY chain/passwd /c\nCOPY l*/* /glob/\n",
    )
    .unwrap();
    // `link` → the host's etc is re-rooted to the context's <host>/etc: while
    // it is missing, the wildcard matches nothing and copies nothing.
    let (out, o) = local_out(&env, "empty");
    env.build_ok(&["--no-cache", "-o", &o], &ctx);
    assert!(!out.join("glob").exists());
    assert_no_secret(&out);
    let inside = ctx.join(host.strip_prefix("/").unwrap()).join("etc");
    std::fs::create_dir_all(&inside).unwrap();
    std::fs::write(inside.join("passwd"), "re-rooted").unwrap();
    let (out, o) = local_out(&env, "out");
    env.build_ok(&["--no-cache", "-o", &o], &ctx);
    for f in ["a", "r", "c"] {
        assert_eq!(
            std::fs::read_to_string(out.join(f)).unwrap(),
            "context passwd"
        );
    }
    assert_eq!(
        std::fs::read_to_string(out.join("glob/passwd")).unwrap(),
        "re-rooted"
    );
    assert_no_secret(&out);
    assert_no_secret(&env.root());
    assert_host_untouched(&host);
}

#[test]
fn dockerignore_and_bind_sources_stay_in_the_context() {
    let env = Env::new();
    let host = host_dir(&env);
    std::fs::write(host.join("secret"), format!("*.txt\n{HOST_SECRET}")).unwrap();
    let ctx = env.project(
        "ctx",
        &[
            ("a.txt", "kept"),
            ("Dockerfile", "FROM scratch\nCOPY *.txt /\n"),
        ],
    );
    symlink(host.join("secret"), ctx.join(".dockerignore")).unwrap();
    let (out, o) = local_out(&env, "out");
    env.build_ok(&["-o", &o], &ctx);
    assert_eq!(std::fs::read_to_string(out.join("a.txt")).unwrap(), "kept");
}

#[test]
fn copy_from_a_stage_never_leaves_the_stage() {
    let env = Env::new();
    let host = host_dir(&env);
    let ctx = env.project(
        "ctx",
        &[
            ("tree/etc/passwd", "stage passwd"),
            (
                "Dockerfile",
                "FROM scratch AS s\nCOPY tree/ /\n\nFROM scratch\nCOPY --from=s /hostroot/etc/passwd /p\nCOPY --from=s /up/passwd /u\n",
            ),
        ],
    );
    symlink("/", ctx.join("tree/hostroot")).unwrap();
    symlink("../../../../../../../etc", ctx.join("tree/up")).unwrap();
    let (out, o) = local_out(&env, "out");
    env.build_ok(&["-o", &o], &ctx);
    assert_eq!(
        std::fs::read_to_string(out.join("p")).unwrap(),
        "stage passwd"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("u")).unwrap(),
        "stage passwd"
    );
    // A host-only path through the link is simply not found in the stage.
    let marker = host.join("secret");
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM scratch AS s\nCOPY tree/ /\n\nFROM scratch\nCOPY --from=s /hostroot{} /x\n",
            marker.display()
        ),
    )
    .unwrap();
    let err = env.build_err(&[], &ctx);
    assert!(err.contains("not found"), "{err}");
    assert_host_untouched(&host);
}

#[test]
fn copy_sources_cannot_write_through_their_own_links() {
    let env = Env::new();
    let host = host_dir(&env);
    let ctx = env.project(
        "ctx",
        &[
            ("b/x/pwned", "through a link"),
            (
                "Dockerfile",
                "FROM scratch\nCOPY a/ b/ /dst/\nCOPY <<EOF /dst/y\ninline\nEOF\n",
            ),
        ],
    );
    std::fs::create_dir_all(ctx.join("a")).unwrap();
    symlink(&host, ctx.join("a/x")).unwrap();
    symlink(host.join("secret"), ctx.join("a/y")).unwrap();
    let (out, o) = local_out(&env, "out");
    env.build_ok(&["-o", &o], &ctx);
    assert_eq!(
        std::fs::read_to_string(out.join("dst/x/pwned")).unwrap(),
        "through a link"
    );
    // A destination that is a link in the image is followed inside the image.
    assert!(
        std::fs::symlink_metadata(out.join("dst/y"))
            .unwrap()
            .is_symlink()
    );
    let inside = out.join(host.strip_prefix("/").unwrap());
    assert_eq!(
        std::fs::read_to_string(inside.join("secret")).unwrap(),
        "inline\n"
    );
    assert_host_untouched(&host);
}

/// A tar with a symlink to the host directory and files written through it.
fn hostile_tar(host: &Path) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut link = |name: &str, target: &Path| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        h.set_mode(0o777);
        b.append_link(&mut h, name, target).unwrap();
    };
    link("abs", host);
    link("rel", Path::new("../../../../../../../../../tmp"));
    let mut file = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, data).unwrap();
    };
    file("abs/pwned", b"through abs");
    file("abs/secret", b"overwritten?");
    file("rel/pwned-rel", b"through rel");
    b.into_inner().unwrap()
}

#[test]
fn add_archives_extract_inside_the_destination() {
    let env = Env::new();
    let host = host_dir(&env);
    let ctx = env.project(
        "ctx",
        &[("Dockerfile", "FROM scratch\nADD evil.tar /dest/\n")],
    );
    std::fs::write(ctx.join("evil.tar"), hostile_tar(&host)).unwrap();
    let (out, o) = local_out(&env, "out");
    env.build_ok(&["-o", &o], &ctx);
    let inside = out.join("dest").join(host.strip_prefix("/").unwrap());
    assert_eq!(
        std::fs::read_to_string(inside.join("pwned")).unwrap(),
        "through abs"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("dest/tmp/pwned-rel")).unwrap(),
        "through rel"
    );
    assert!(!Path::new("/tmp/pwned-rel").exists());
    assert_host_untouched(&host);
}

#[test]
fn a_link_swapped_mid_build_never_leads_out() {
    let env = Env::new();
    let host = host_dir(&env);
    let ctx = env.project(
        "ctx",
        &[
            ("d/secret", "context file"),
            (
                "Dockerfile",
                "FROM scratch\nCOPY d/secret /s\nCOPY d/ /all/\n",
            ),
        ],
    );
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let swapper = {
        let (ctx, host, stop) = (ctx.clone(), host.clone(), stop.clone());
        std::thread::spawn(move || {
            let (d, real, tmp) = (ctx.join("d"), ctx.join("d.real"), ctx.join("d.link"));
            symlink(&host, &tmp).unwrap();
            let mut swaps = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // Swap the directory for a link to the host and back.
                std::fs::rename(&d, &real).unwrap();
                std::fs::rename(&tmp, &d).unwrap();
                std::thread::sleep(std::time::Duration::from_micros(300));
                std::fs::rename(&d, &tmp).unwrap();
                std::fs::rename(&real, &d).unwrap();
                std::thread::sleep(std::time::Duration::from_micros(700));
                swaps += 1;
            }
            swaps
        })
    };
    let mut ok = 0;
    for i in 0..25 {
        let (out, o) = local_out(&env, &format!("out{i}"));
        let r = env
            .rbuild()
            .args(["build", "--no-cache", "-o", &o])
            .arg(&ctx)
            .output()
            .unwrap();
        if r.status.success() {
            ok += 1;
            assert_eq!(
                std::fs::read_to_string(out.join("s")).unwrap(),
                "context file"
            );
        }
        assert!(!String::from_utf8_lossy(&r.stderr).contains(HOST_SECRET));
        assert_no_secret(&out);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let swaps = swapper.join().unwrap();
    assert!(
        swaps > 25,
        "the link was swapped during the builds ({swaps})"
    );
    eprintln!("{ok} of 25 builds succeeded while the link was swapped {swaps} times");
    assert_no_secret(&env.root());
    assert_host_untouched(&host);
}

#[test]
fn context_bind_mounts_hold_only_what_the_context_sends() {
    let env = Env::new();
    env.busybox_base("test/busybox:latest");
    let host = host_dir(&env);
    let ctx = env.project(
        "ctx",
        &[
            (".dockerignore", "excluded.txt\n"),
            ("excluded.txt", HOST_SECRET),
            ("data/kept.txt", "kept"),
            (
                "Dockerfile",
                "FROM test/busybox:latest\n\
                 RUN --mount=type=bind,target=/ctx ls -a /ctx > /listing && cat /ctx/data/kept.txt > /kept\n\
                 RUN --mount=type=bind,source=link,target=/m,rw ls /m > /via-link 2>&1; true\n\
                 RUN --mount=type=bind,source=data,target=/d,rw echo changed > /d/kept.txt\n",
            ),
        ],
    );
    symlink(&host, ctx.join("link")).unwrap();
    let inside = ctx.join(host.strip_prefix("/").unwrap());
    std::fs::create_dir_all(&inside).unwrap();
    std::fs::write(inside.join("in-context"), "x").unwrap();
    let (out, o) = local_out(&env, "out");
    env.build_ok(&["-o", &o], &ctx);
    let listing = std::fs::read_to_string(out.join("listing")).unwrap();
    assert!(!listing.contains("excluded.txt"), "{listing}");
    assert!(listing.contains("data"), "{listing}");
    assert_eq!(std::fs::read_to_string(out.join("kept")).unwrap(), "kept");
    assert_eq!(
        std::fs::read_to_string(out.join("via-link")).unwrap(),
        "in-context\n"
    );
    assert_eq!(
        std::fs::read_to_string(ctx.join("data/kept.txt")).unwrap(),
        "kept"
    );
    assert_no_secret(&out);
    assert_host_untouched(&host);
}

#[test]
fn local_export_never_writes_through_links_in_its_destination() {
    let env = Env::new();
    let host = host_dir(&env);
    let ctx = env.project(
        "ctx",
        &[
            ("tree/a/pwned", "x"),
            ("Dockerfile", "FROM scratch\nCOPY tree/ /\n"),
        ],
    );
    let (out, o) = local_out(&env, "out");
    // An earlier export left a link to the host where the image has a directory.
    std::fs::create_dir_all(&out).unwrap();
    symlink(&host, out.join("a")).unwrap();
    env.build_ok(&["-o", &o], &ctx);
    assert!(std::fs::symlink_metadata(out.join("a")).unwrap().is_dir());
    assert_eq!(std::fs::read_to_string(out.join("a/pwned")).unwrap(), "x");
    assert_host_untouched(&host);
}

#[test]
fn a_later_source_turning_a_directory_into_a_link_cannot_redirect_queued_files() {
    // Review finding: files queued under a/x/ were written after b/x (a link
    // to a host directory) replaced that directory.
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    let host = host_dir(&env);
    let ctx = env.project(
        "ctx",
        &[
            ("a/x/f", "queued"),
            (
                "Dockerfile",
                "FROM scratch\nCOPY a b /dst/\nADD a evil.tar /dst2/\n",
            ),
        ],
    );
    std::fs::set_permissions(ctx.join("a/x/f"), std::fs::Permissions::from_mode(0o4755)).unwrap();
    std::fs::create_dir_all(ctx.join("b")).unwrap();
    symlink(&host, ctx.join("b/x")).unwrap();
    let mut t = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    h.set_mode(0o777);
    t.append_link(&mut h, "x", &host).unwrap();
    std::fs::write(ctx.join("evil.tar"), t.into_inner().unwrap()).unwrap();
    let (out, o) = local_out(&env, "out");
    let r = env
        .rbuild()
        .args(["build", "-o", &o])
        .arg(&ctx)
        .output()
        .unwrap();
    if r.status.success() {
        // The later source wins: x is the link, nothing was written below it.
        assert!(
            std::fs::symlink_metadata(out.join("dst/x"))
                .unwrap()
                .is_symlink()
        );
    }
    assert_host_untouched(&host);
}

#[test]
fn a_link_in_a_lower_layer_under_a_directory_never_exposes_the_host() {
    // Review finding: a lower layer's `x -> host dir` under an upper layer's
    // directory `x` let COPY --from, the local export and cache seeding
    // read the host directory.
    let env = Env::new();
    env.busybox_base("test/busybox:latest");
    let host = host_dir(&env);
    std::fs::create_dir_all(host.join("etc")).unwrap();
    let df = format!(
        "FROM test/busybox:latest AS s\n\
         RUN ln -s {h} /x\n\
         RUN rm /x && mkdir -p /x/etc\n\
         FROM test/busybox:latest\n\
         COPY --from=s /x /copied\n\
         RUN --mount=type=cache,from=s,source=/x,target=/c ls -R /c > /seeded\n",
        h = host.display()
    );
    let ctx = env.project("ctx", &[("Dockerfile", &df)]);
    let (out, o) = local_out(&env, "out");
    env.build_ok(&["-o", &o], &ctx);
    assert_no_secret(&out);
    let seeded = std::fs::read_to_string(out.join("seeded")).unwrap();
    assert!(!seeded.contains("secret"), "{seeded}");
    assert!(!out.join("copied/secret").exists() && !out.join("copied/etc/passwd").exists());
    let (stage_out, o) = local_out(&env, "stage-out");
    env.build_ok(&["--target", "s", "-o", &o], &ctx);
    assert_no_secret(&stage_out);
    assert!(!stage_out.join("x/etc/passwd").exists());
    assert_host_untouched(&host);
}
