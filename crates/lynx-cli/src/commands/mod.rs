//! One file per `lynx` subcommand.

pub mod ask;
pub mod bench;
pub mod convert;
pub mod data;
pub mod eval;
pub mod eval_loss;
pub mod eval_probe;
pub mod forward;
pub mod generate;
pub mod model_args;
pub mod plot;
pub mod prompts;
pub mod rate;
pub mod recipe;
pub mod train;

use crate::args::Command;

/// Runs one parsed subcommand.
pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Ask(args) => ask::run(args),
        Command::Generate(args) => generate::run(args),
        Command::Forward(args) => forward::run(args),
        Command::Convert(args) => convert::run(args),
        Command::Train(args) => train::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Data(args) => data::run(args),
        Command::Rate(args) => rate::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Prompts(args) => prompts::run(args),
        Command::Plot(args) => plot::run(args),
        Command::Recipe(args) => recipe::run(args),
    }
}
