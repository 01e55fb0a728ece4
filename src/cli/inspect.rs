//! `rbuild inspect` (as `docker image inspect`) and `rbuild history` (as
//! `docker history`).

use super::human;
use super::images::open_store;
use anyhow::Result;
use clap::Args;
use rbuild::cache::LockMode;
use rbuild::image::history::history;
use rbuild::image::inspect::{inspect, to_docker_json};
use rbuild::image::local::find;
use std::process::ExitCode;

/// Arguments of `rbuild inspect`.
#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Format each image with a Go template (`{{.Id}}`, `{{json .Config}}`,
    /// `{{index .Config.Labels "k"}}`; no range/if).
    #[arg(short, long)]
    pub format: Option<String>,
    /// Images: names, `name@digest` or IDs.
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

/// Arguments of `rbuild history`.
#[derive(Args, Debug)]
pub struct HistoryArgs {
    /// Don't truncate output.
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Only show image IDs.
    #[arg(short, long)]
    pub quiet: bool,
    /// The image.
    pub image: String,
}

/// `rbuild inspect`: the array of what was found; each image not found is
/// an error line and exit status 1, as Docker.
pub fn run(args: InspectArgs) -> Result<ExitCode> {
    let store = open_store(LockMode::Shared)?;
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for s in &args.images {
        match find(&store, s) {
            Ok((img, _)) => found.push(inspect(&store, &img)),
            Err(e) => errors.push(e.to_string()),
        }
    }
    match &args.format {
        Some(t) => {
            for v in &found {
                println!("{}", super::template::render(t, &v.to_value())?);
            }
        }
        None => println!("{}", to_docker_json(&found)),
    }
    for e in &errors {
        eprintln!("Error: {e}");
    }
    Ok(if errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `rbuild history`.
pub fn history_cmd(args: HistoryArgs) -> Result<ExitCode> {
    let store = open_store(LockMode::Shared)?;
    let img = match find(&store, &args.image) {
        Ok((img, _)) => img,
        Err(e) => {
            eprintln!("Error: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let rows = history(&store, &img);
    let id = |d: Option<rbuild::digest::Digest>| match d {
        Some(d) if args.no_trunc => d.to_string(),
        Some(d) => d.hex()[..12].to_string(),
        None => "<missing>".into(),
    };
    if args.quiet {
        for r in &rows {
            println!("{}", id(r.id));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = vec![
        ["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]
            .map(String::from)
            .to_vec(),
    ];
    for r in rows {
        let created_by = r.created_by.replace('\t', " ");
        let created = r
            .created
            .as_deref()
            .and_then(rbuild::image::config::parse_rfc3339);
        table.push(vec![
            id(r.id),
            human::ago(created),
            if args.no_trunc {
                created_by
            } else {
                human::ellipsis(&created_by, 45)
            },
            human::size(r.size),
            r.comment,
        ]);
    }
    print!("{}", human::table(&table));
    Ok(ExitCode::SUCCESS)
}
