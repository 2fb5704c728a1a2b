//! One file per `lynx` subcommand.

pub mod eval;
pub mod data;

use crate::args::Command;

/// Runs one parsed subcommand.
pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Eval(args) => eval::run(args),
        Command::Data(args) => data::run(args),
    }
}
