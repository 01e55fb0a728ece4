//! The `rbuild` binary: a thin wrapper over the library.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
