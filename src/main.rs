//! The `slaw` binary: the command line ([`cli`]) over the `slaw` library, with slaw's Burn
//! trainer ([`trainer`]) plugged into its executors.

mod cli;
mod trainer;

fn main() -> std::process::ExitCode {
    trainer::configure_from_env();
    cli::main()
}
