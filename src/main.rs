//! The `slaw` binary: everything is in the library.

fn main() -> std::process::ExitCode {
    slaw::cli::main()
}
