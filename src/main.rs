//! cgleak's entry point: parse arguments, set up logging, run, map errors to exit codes.

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cgleak::cli::Cli::parse_checked();
    let level = if cli.global.quiet {
        "error"
    } else {
        match cli.global.verbose {
            0 => "warn",
            1 => "info",
            _ => "debug",
        }
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level))
        .format_timestamp(None)
        .format_target(false)
        .init();
    match cgleak::commands::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("cgleak: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
