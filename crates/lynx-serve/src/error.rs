//! The serving crate's error type: every variant names the file, line or database it is about.

use std::path::PathBuf;

/// Errors of the rating server and its report.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An answer or question file is malformed or inconsistent; `line` is 1-based.
    #[error("{file}{}: {msg}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    Input {
        file: String,
        line: Option<usize>,
        msg: String,
    },
    /// The ratings database could not be opened, read or written, or does not fit the answers.
    #[error("{path}: {msg}")]
    Db { path: String, msg: String },
    /// Anything else that is inconsistent (bad address, too many models, ...).
    #[error("{0}")]
    Invalid(String),
}

/// The serving crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An I/O error about `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// A problem in an input file at a 1-based `line` (if it has one).
    pub fn input(file: impl Into<String>, line: Option<usize>, msg: impl Into<String>) -> Self {
        Error::Input {
            file: file.into(),
            line,
            msg: msg.into(),
        }
    }

    /// A database problem in the database at `path`.
    pub fn db(path: impl Into<String>, msg: impl std::fmt::Display) -> Self {
        Error::Db {
            path: path.into(),
            msg: msg.to_string(),
        }
    }
}
