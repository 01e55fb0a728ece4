//! The `rbuild` binary: a thin wrapper over the library.

mod cli;

fn main() -> std::process::ExitCode {
    // Descriptors rbuild's caller left open reach no child process.
    rbuild::exec::cloexec_inherited();
    cli::main()
}
