//! One file per `lynx` subcommand.

pub mod plot;
pub mod prompts;

use crate::args::Command;

/// Runs one parsed subcommand.
pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Prompts(args) => prompts::run(args),
        Command::Plot(args) => plot::run(args),
    }
}
