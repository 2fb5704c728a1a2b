//! One file per `lynx` subcommand.

pub mod rate;

use crate::args::Command;

/// Runs one parsed subcommand.
pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Rate(args) => rate::run(args),
    }
}
