//! Config errors: every one names the file, line, column and field path.

use std::fmt;
use std::path::{Path, PathBuf};

/// A place in a config file, 1-based. Line 0 means "the file as a whole".
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Location {
    pub file: PathBuf,
    pub line: u64,
    pub column: u64,
}

impl Location {
    pub(crate) fn new(file: &Path, loc: serde_saphyr::Location) -> Self {
        Self {
            file: file.to_path_buf(),
            line: loc.line(),
            column: loc.column(),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.file.display())
        } else {
            write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
        }
    }
}

/// Why a config was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: cannot read config: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The YAML is malformed or does not fit the schema (unknown field, wrong type).
    #[error("{at}: {message}")]
    Syntax { at: Location, message: String },
    /// The YAML fits the schema but a value is invalid.
    #[error("{at}: {field}: {message}")]
    Invalid {
        at: Location,
        field: String,
        message: String,
    },
}

impl ConfigError {
    /// An invalid value at `at`, in the field `field` (e.g. `routes[2].pool`).
    pub fn invalid(at: Location, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            at,
            field: field.into(),
            message: message.into(),
        }
    }
}
