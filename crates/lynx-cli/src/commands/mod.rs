//! One file per `lynx` subcommand.

pub mod data;

use crate::args::Command;

/// Runs one parsed subcommand.
pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Data(args) => data::run(args),
    }
}
