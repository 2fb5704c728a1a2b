//! The library's error type: every variant names the file, line, key or field it is about.

use std::path::PathBuf;

/// Errors returned by the lynx library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file's content is malformed (JSON, YAML, JSONL, TSV, ...); `line` is 1-based.
    #[error("{file}{}: {msg}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    Parse {
        file: String,
        line: Option<usize>,
        msg: String,
    },
    /// A configuration key is unknown, missing or has a bad value.
    #[error("config key `{key}`: {msg}")]
    Config { key: String, msg: String },
    /// A weight file lacks a key, has one too many, or has the wrong shape.
    #[error("{file}: tensor `{key}`: {msg}")]
    Weights {
        file: String,
        key: String,
        msg: String,
    },
    /// An image or video could not be read or decoded.
    #[error("{path}: {msg}")]
    Media { path: String, msg: String },
    /// Tokenizer loading or encoding failed.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// A remote server (LLM judge, prompt expansion) failed.
    #[error("{url}: {msg}")]
    Http { url: String, msg: String },
    /// An input value is out of range or inconsistent.
    #[error("{0}")]
    Invalid(String),
    /// An error from candle (shapes, dtypes, devices).
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An I/O error about `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// A parse error in `file` at 1-based `line` (if known).
    pub fn parse(file: impl Into<String>, line: Option<usize>, msg: impl Into<String>) -> Self {
        Error::Parse {
            file: file.into(),
            line,
            msg: msg.into(),
        }
    }

    /// A configuration error about `key`.
    pub fn config(key: impl Into<String>, msg: impl Into<String>) -> Self {
        Error::Config {
            key: key.into(),
            msg: msg.into(),
        }
    }

    /// A weights error about tensor `key` in `file`.
    pub fn weights(
        file: impl Into<String>,
        key: impl Into<String>,
        msg: impl Into<String>,
    ) -> Self {
        Error::Weights {
            file: file.into(),
            key: key.into(),
            msg: msg.into(),
        }
    }

    /// A media error about `path`.
    pub fn media(path: impl Into<String>, msg: impl Into<String>) -> Self {
        Error::Media {
            path: path.into(),
            msg: msg.into(),
        }
    }
}
