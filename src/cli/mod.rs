//! Command-line interface: clap definitions and thin command handlers over
//! the library.

mod build;
mod build_entry;
mod build_multi;
mod cache_io;
mod check;
mod context_source;
mod human;
mod images;
mod inspect;
mod login;
mod parse;
mod platforms;
mod pull;
mod push;
mod remote;
mod remote_store;
mod run;
mod save_load;
mod serve;
mod source;
mod store_cmds;
mod template;
mod volume;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// rbuild: build OCI images from Dockerfiles.
#[derive(Parser, Debug)]
#[command(name = "rbuild", version, about, propagate_version = true)]
pub struct Cli {
    /// A build server (`rbuild serve`) whose store `images`, `du`, `prune`
    /// (and `build`) use: `unix:///PATH` or `tcp://HOST:PORT`.
    #[arg(long, value_name = "ADDR")]
    pub server: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Build an image (the default command).
    Build(build::BuildArgs),
    /// Parse and validate a Dockerfile; print build-check warnings.
    Check(check::CheckArgs),
    /// Print the Dockerfile's AST.
    Parse(parse::ParseArgs),
    /// Show the store's disk usage.
    Du,
    /// Remove unused data from the store.
    Prune(store_cmds::PruneArgs),
    /// Pull an image from a registry into the store.
    Pull(pull::PullArgs),
    /// Log in to a registry (stores credentials as `docker login`).
    Login(login::LoginArgs),
    /// Log out from a registry.
    Logout(login::LogoutArgs),
    /// Push a stored image to its registry.
    Push(push::PushArgs),
    /// Give a stored image another name (`rbuild tag SOURCE TARGET`).
    Tag(push::TagArgs),
    /// List stored images (as `docker images`).
    Images(images::ImagesArgs),
    /// Show stored images as JSON (as `docker image inspect`).
    Inspect(inspect::InspectArgs),
    /// Show an image's history (as `docker history`).
    History(inspect::HistoryArgs),
    /// Remove image names, and images left without one (as `docker rmi`).
    Rmi(images::RmiArgs),
    /// Write stored images to a tar archive (as `docker save`).
    Save(save_load::SaveArgs),
    /// Load images from a docker or OCI archive (as `docker load`).
    Load(save_load::LoadArgs),
    /// Run a stored image as a container (its writable layer is thrown away when it ends).
    Run(run::RunArgs),
    /// Manage volumes (`ls`, `create`, `inspect`, `rm`, `prune`).
    Volume(volume::VolumeArgs),
    /// Run a build server that CI clients share (`rbuild build --server ADDR`).
    Serve(serve::ServeArgs),
}

/// The subcommands' names: any other first argument means `build`.
const SUBCOMMANDS: &[&str] = &[
    "build", "check", "parse", "du", "prune", "pull", "push", "tag", "login", "logout", "images",
    "inspect", "history", "rmi", "save", "load", "run", "volume", "serve", "help", "--help", "-h",
];

/// Parse the process arguments (`rbuild [build] ...`: build is the default) and run.
pub fn main() -> ExitCode {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).and_then(|a| a.to_str()) == Some("__sandbox") {
        rbuild::exec::sandbox::sandbox_main();
    }
    // `rbuild --server ADDR CMD …`: the command is after the address.
    let cmd_at = match args.get(1).and_then(|a| a.to_str()) {
        Some("--server") => 3,
        Some(a) if a.starts_with("--server=") => 2,
        _ => 1,
    };
    if let Some(first) = args.get(cmd_at).and_then(|a| a.to_str()) {
        let known = SUBCOMMANDS.contains(&first) || first == "--version" || first == "-V";
        if !known {
            args.insert(cmd_at, "build".into());
        }
    }
    let cli = Cli::parse_from(args);
    let result = match (cli.command, cli.server) {
        (Command::Build(mut a), server) => {
            a.server = a.server.or(server);
            build_entry::run(a)
        }
        (Command::Images(a), Some(s)) => {
            remote_store::run(&s, "images", remote_store::images_args(&a))
        }
        (Command::Du, Some(s)) => remote_store::run(&s, "du", Vec::new()),
        (Command::Prune(a), Some(s)) => {
            remote_store::run(&s, "prune", remote_store::prune_args(&a))
        }
        (_, Some(_)) => Err(anyhow::anyhow!(
            "--server works with build, images, du and prune"
        )),
        (command, None) => local(command),
    };
    // No slirp4netns of a RUN step outlives rbuild.
    rbuild::exec::network::reap_all();
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Run a command on this machine.
fn local(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Build(a) => build_entry::run(a),
        Command::Check(a) => check::run(a),
        Command::Parse(a) => parse::run(a),
        Command::Du => store_cmds::du(),
        Command::Prune(a) => store_cmds::prune(a),
        Command::Pull(a) => pull::run(a),
        Command::Login(a) => login::login(a),
        Command::Logout(a) => login::logout(a),
        Command::Push(a) => push::run(a),
        Command::Tag(a) => push::tag(a),
        Command::Images(a) => images::images(a),
        Command::Inspect(a) => inspect::run(a),
        Command::History(a) => inspect::history_cmd(a),
        Command::Rmi(a) => images::rmi(a),
        Command::Save(a) => save_load::save(a),
        Command::Load(a) => save_load::load(a),
        Command::Run(a) => run::run(a),
        Command::Volume(a) => volume::run(a),
        Command::Serve(a) => serve::run(a),
    }
}
