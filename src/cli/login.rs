//! `rbuild login [SERVER]` and `rbuild logout [SERVER]`, as `docker login`
//! and `docker logout`: credentials are checked against the registry, then
//! stored in Docker's config.json (or its credential helper), where pulls
//! and pushes (rbuild's and Docker's) find them.

use anyhow::{Context as _, Result, bail};
use clap::Args;
use rbuild::registry::RegistryOptions;
use rbuild::registry::docker_config::{self, DOCKER_HUB_KEY, server_key};
use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

/// Arguments of `rbuild login`.
#[derive(Args, Debug)]
pub struct LoginArgs {
    /// Username.
    #[arg(short = 'u', long = "username")]
    pub username: Option<String>,
    /// Password (prefer --password-stdin: this one shows in `ps`).
    #[arg(short = 'p', long = "password", conflicts_with = "password_stdin")]
    pub password: Option<String>,
    /// Read the password from standard input.
    #[arg(long = "password-stdin")]
    pub password_stdin: bool,
    /// Allow plain HTTP (and unverified HTTPS) for this registry (`HOST[:PORT]`); repeatable.
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    pub insecure_registries: Vec<String>,
    /// The registry (`HOST[:PORT]`); Docker Hub when omitted.
    pub server: Option<String>,
}

/// Arguments of `rbuild logout`.
#[derive(Args, Debug)]
pub struct LogoutArgs {
    /// The registry (`HOST[:PORT]`); Docker Hub when omitted.
    pub server: Option<String>,
}

/// A line of standard input without its line ending.
fn read_line(prompt: Option<&str>) -> Result<String> {
    if let Some(p) = prompt {
        eprint!("{p}");
        std::io::stderr().flush().ok();
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading standard input")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// Read a password from the terminal without echoing it.
fn read_password(prompt: &str) -> Result<String> {
    let fd = libc::STDIN_FILENO;
    // SAFETY: a zeroed termios is a valid out-parameter for tcgetattr.
    let mut old: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: fd is standard input; `old` is a valid termios.
    let have = unsafe { libc::tcgetattr(fd, &mut old) } == 0;
    if have {
        let mut quiet = old;
        quiet.c_lflag &= !libc::ECHO;
        // SAFETY: `quiet` is a valid termios copied from the terminal's.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &quiet) };
    }
    let line = read_line(Some(prompt));
    if have {
        // SAFETY: restores the settings read above.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &old) };
        eprintln!();
    }
    line
}

/// The username and password from the flags, stdin or a prompt.
fn credentials(args: &LoginArgs) -> Result<(String, String)> {
    let interactive = std::io::stdin().is_terminal();
    if args.password_stdin {
        let Some(user) = &args.username else {
            bail!("Must provide --username with --password-stdin");
        };
        let mut pass = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut pass)
            .context("reading the password from standard input")?;
        let pass = pass.trim_end_matches(['\n', '\r']).to_string();
        return Ok((user.clone(), pass));
    }
    if args.password.is_some() {
        eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
    }
    let user = match &args.username {
        Some(u) => u.clone(),
        None if interactive => read_line(Some("Username: "))?,
        None => bail!("Cannot perform an interactive login from a non TTY device"),
    };
    let pass = match &args.password {
        Some(p) => p.clone(),
        None if interactive => read_password("Password: ")?,
        None => bail!("Cannot perform an interactive login from a non TTY device"),
    };
    if user.is_empty() {
        bail!("Error: Non-null Username Required");
    }
    if pass.is_empty() {
        bail!("Error: Password Required");
    }
    Ok((user, pass))
}

/// Check the credentials at the registry, then store them.
pub fn login(args: LoginArgs) -> Result<ExitCode> {
    let key = server_key(args.server.as_deref());
    let (user, pass) = credentials(&args)?;
    let mut registry = RegistryOptions::load()?;
    registry.insecure = args.insecure_registries;
    rbuild::registry::login::verify(&key, &user, &pass, &registry)?;
    let config = docker_config::read(&docker_config::path())?;
    let path = docker_config::store(&key, &user, &pass)?;
    if docker_config::helper_for(&config, &key).is_none() {
        eprintln!(
            "WARNING! Your password will be stored unencrypted in {}.",
            path.display()
        );
        eprintln!(
            "Configure a credential helper to remove this warning. See\nhttps://docs.docker.com/engine/reference/commandline/login/#credentials-store\n"
        );
    }
    println!("Login Succeeded");
    Ok(ExitCode::SUCCESS)
}

/// Remove the stored credentials of a server.
pub fn logout(args: LogoutArgs) -> Result<ExitCode> {
    let key = server_key(args.server.as_deref());
    let shown = if key == DOCKER_HUB_KEY {
        key.clone()
    } else {
        args.server.clone().unwrap_or_else(|| key.clone())
    };
    if docker_config::erase(&key)? {
        println!("Removing login credentials for {shown}");
    } else {
        println!("Not logged in to {shown}");
    }
    Ok(ExitCode::SUCCESS)
}
