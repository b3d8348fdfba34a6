//! The `gatehouse` binary: parse the command line, load configuration, start logging, and
//! hand over to `gatehouse::cli`.

use std::process::ExitCode;

use clap::Parser;

use gatehouse::cli::Cli;
use gatehouse::config::Config;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::from_process() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("gatehouse: {e}");
            return ExitCode::from(2);
        }
    };
    gatehouse::telemetry::init(&config.log_level, &config.log_style);
    match gatehouse::cli::run(cli, config, &mut std::io::stdout()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gatehouse: {e:#}");
            ExitCode::FAILURE
        }
    }
}
