//! `rbuild images` (as `docker images`) and `rbuild rmi` (as `docker rmi`).

use super::human;
use anyhow::{Context as _, Result, bail};
use clap::Args;
use rbuild::cache::{LockMode, Store, default_root};
use rbuild::image::local::{LocalImage, image_size, list};
use rbuild::image::remove::{RemoveError, Removed, remove};
use rbuild::registry::Reference;
use std::process::ExitCode;

/// Arguments of `rbuild images`.
#[derive(Args, Debug)]
pub struct ImagesArgs {
    /// Only show image IDs.
    #[arg(short, long)]
    pub quiet: bool,
    /// Show digests.
    #[arg(long)]
    pub digests: bool,
    /// Don't truncate output (full image IDs).
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Show all images (there are no intermediate images: same as without).
    #[arg(short, long)]
    pub all: bool,
    /// Filter: `dangling=true|false`, `reference=PATTERN`, `label=KEY[=VALUE]`; repeatable.
    #[arg(short = 'f', long = "filter", value_name = "KEY=VALUE")]
    pub filters: Vec<String>,
    /// Only images whose name matches (`busybox`, `busybox:1.36`, `bu*`).
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub filter: Option<String>,
}

/// `--filter`s, as Docker's image list applies them.
#[derive(Debug, Default)]
struct Filters {
    dangling: Option<bool>,
    references: Vec<String>,
    labels: Vec<(String, Option<String>)>,
}

impl Filters {
    fn parse(args: &ImagesArgs) -> Result<Filters> {
        let mut f = Filters::default();
        f.references.extend(args.filter.clone());
        for spec in &args.filters {
            let (k, v) = spec.split_once('=').unwrap_or((spec.as_str(), ""));
            match k {
                "dangling" => {
                    f.dangling = Some(match v {
                        "true" | "1" => true,
                        "false" | "0" => false,
                        _ => bail!("invalid filter 'dangling={v}'"),
                    })
                }
                "reference" => f.references.push(v.to_string()),
                "label" => f.labels.push(match v.split_once('=') {
                    Some((lk, lv)) => (lk.to_string(), Some(lv.to_string())),
                    None => (v.to_string(), None),
                }),
                _ => bail!("invalid filter '{k}'"),
            }
        }
        Ok(f)
    }

    /// Whether the image passes the filters other than `reference`.
    fn keeps(&self, img: &LocalImage) -> bool {
        let labels = &img.config.config.labels;
        self.dangling.is_none_or(|d| d == img.names.is_empty())
            && self.labels.iter().all(|(k, v)| match v {
                Some(v) => labels.get(k) == Some(v),
                None => labels.contains_key(k),
            })
    }
}

/// Arguments of `rbuild rmi`.
#[derive(Args, Debug)]
pub struct RmiArgs {
    /// Remove an image that several names use, by ID.
    #[arg(short, long)]
    pub force: bool,
    /// Images: names, `name@digest` or IDs.
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

/// Open the store.
pub fn open_store(mode: LockMode) -> Result<Store> {
    let root = default_root();
    Store::open(&root, mode).with_context(|| format!("opening store {}", root.display()))
}

/// Go's `path.Match` for `*` and `?` (neither crosses a `/`), as Docker
/// matches the `REPOSITORY[:TAG]` argument.
fn glob(pattern: &[u8], s: &[u8]) -> bool {
    match pattern.split_first() {
        None => s.is_empty(),
        Some((b'*', rest)) => (0..=s.len())
            .take_while(|&i| i == 0 || s[i - 1] != b'/')
            .any(|i| glob(rest, &s[i..])),
        Some((b'?', rest)) => s.first().is_some_and(|&c| c != b'/') && glob(rest, &s[1..]),
        Some((c, rest)) => s.first() == Some(c) && glob(rest, &s[1..]),
    }
}

/// Docker's `FamiliarMatch`: the pattern against `name:tag`, then `name`.
fn name_matches(pattern: &str, name: &str) -> bool {
    let Ok(r) = Reference::parse(name) else {
        return false;
    };
    glob(pattern.as_bytes(), r.familiar_string().as_bytes())
        || glob(pattern.as_bytes(), r.familiar_name().as_bytes())
}

/// One row per name (`<none>` for an image without one).
fn rows_of(img: &LocalImage, filters: &Filters) -> Vec<(String, String, String)> {
    let mut rows = Vec::new();
    if !filters.keeps(img) {
        return rows;
    }
    let refs = &filters.references;
    for (n, e) in &img.names {
        if !refs.is_empty() && !refs.iter().any(|f| name_matches(f, n)) {
            continue;
        }
        let Ok(r) = Reference::parse(n) else { continue };
        let digest = e
            .manifest
            .or(e.pushed)
            .map_or("<none>".to_string(), |d| d.to_string());
        rows.push((
            r.familiar_name(),
            r.tag().unwrap_or("<none>").to_string(),
            digest,
        ));
    }
    if img.names.is_empty() && refs.is_empty() {
        rows.push(("<none>".into(), "<none>".into(), "<none>".into()));
    }
    rows
}

/// `rbuild images`.
pub fn images(args: ImagesArgs) -> Result<ExitCode> {
    let store = open_store(LockMode::Shared)?;
    let filter = Filters::parse(&args)?;
    let id_of = |img: &LocalImage| {
        if args.no_trunc {
            img.id.to_string()
        } else {
            img.id.hex()[..12].to_string()
        }
    };
    if args.quiet {
        // One line per row, as Docker's CLI prints (an ID with two names twice).
        for img in list(&store) {
            for _ in rows_of(&img, &filter) {
                println!("{}", id_of(&img));
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = vec![{
        let mut h = vec!["REPOSITORY".to_string(), "TAG".into()];
        if args.digests {
            h.push("DIGEST".into());
        }
        h.extend(["IMAGE ID".into(), "CREATED".into(), "SIZE".into()]);
        h
    }];
    for img in list(&store) {
        let rows = rows_of(&img, &filter);
        if rows.is_empty() {
            continue;
        }
        let size = human::size(image_size(&store, &img));
        let created = human::ago(img.created_secs());
        for (repo, tag, digest) in rows {
            let mut r = vec![repo, tag];
            if args.digests {
                r.push(digest);
            }
            r.extend([id_of(&img), created.clone(), size.clone()]);
            table.push(r);
        }
    }
    print!("{}", human::table(&table));
    Ok(ExitCode::SUCCESS)
}

/// `rbuild rmi`: each image in turn; errors are printed and make the exit
/// status 1, except a missing image under `-f` (as Docker).
pub fn rmi(args: RmiArgs) -> Result<ExitCode> {
    let store = open_store(LockMode::Shared)?;
    let mut failed = false;
    for s in &args.images {
        match remove(&store, s, args.force) {
            Ok(events) => {
                for e in events {
                    match e {
                        Removed::Untagged(n) => println!("Untagged: {n}"),
                        Removed::Deleted(d) => println!("Deleted: {d}"),
                    }
                }
            }
            Err(e) => {
                eprintln!("Error: {e}");
                let missing = matches!(
                    e,
                    RemoveError::Lookup(rbuild::image::local::LocalError::NotFound(_))
                );
                failed |= !(missing && args.force);
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_as_docker() {
        assert!(name_matches("busybox", "docker.io/library/busybox:latest"));
        assert!(name_matches(
            "busybox:latest",
            "docker.io/library/busybox:latest"
        ));
        assert!(!name_matches(
            "busybox:1",
            "docker.io/library/busybox:latest"
        ));
        assert!(name_matches("bu*", "docker.io/library/busybox:1"));
        assert!(!name_matches("*", "docker.io/other/busybox:1"));
        assert!(name_matches("*/*", "docker.io/other/busybox:1"));
        assert!(name_matches("localhost:5000/a", "localhost:5000/a:2"));
    }
}
