//! The crate's error type.
//!
//! Library code never panics on user input: every fallible public function
//! returns [`Result<T>`](Result) with an [`Error`] that says what was wrong and
//! where (file, line and field for malformed curve sets).

use std::path::PathBuf;

/// Everything that can go wrong in foresight.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A line of a curve set is not what the format says.
    #[error("{path}:{line}: field `{field}`: {message}")]
    Format {
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        field: String,
        message: String,
    },

    /// A search space or configuration is invalid.
    #[error("parameter `{param}`: {message}")]
    Space { param: String, message: String },

    /// A study's storage cannot be used (damaged, holds another study, a
    /// rule it refuses). `storage` names it, never with credentials.
    #[error("{storage}: {message}")]
    Storage { storage: String, message: String },

    /// A sampler over a finite pool has no configuration left.
    #[error("no configuration left to propose")]
    Exhausted,

    /// The study was interrupted ([`crate::tuner::Interrupt`]); its running
    /// trials are left to a later run, which starts them again.
    #[error("interrupted")]
    Interrupted,

    /// An argument or setting is out of its valid range.
    #[error("invalid {what}: {message}")]
    Invalid { what: &'static str, message: String },
}

/// `Result` with foresight's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Shorthand for [`Error::Invalid`].
    pub fn invalid(what: &'static str, message: impl Into<String>) -> Self {
        Error::Invalid {
            what,
            message: message.into(),
        }
    }
}
