//! The gatehouse binary: `serve`, `migrate`, `config check`.

mod cli;
mod config;
mod telemetry;

use std::process::ExitCode;

use clap::Parser;

/// mimalloc instead of glibc's malloc: measured in bench/RESULTS.md.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // `.env` in the working directory fills in variables the environment does not set.
    if let Err(err) = config::load_dotenv() {
        eprintln!("gatehouse: invalid configuration: {err}");
        return ExitCode::from(2);
    }
    let cli = cli::Cli::parse();
    let config = match config::Config::from_args(&cli.config) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("gatehouse: invalid configuration: {err}");
            return ExitCode::from(2);
        }
    };
    match cli.command.run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), "gatehouse stopped on an error");
            eprintln!("gatehouse: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
