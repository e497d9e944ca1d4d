//! Breakwater's configuration: YAML in, validated typed structures out.
//!
//! Loading happens once per start or reload: [`load`] reads the file, [`parse`] checks it
//! against the schema (unknown fields refused) and validates every value. Every error names
//! the file, line, column and field path. Nothing here knows about pingora or wasmtime.

mod error;
mod raw;
mod types;
mod validate;

pub use error::{ConfigError, Location};
pub use types::*;

use std::path::Path;

/// Read and validate the config file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text, path)
}

/// Validate config text; `file` names it in errors and anchors relative paths.
pub fn parse(text: &str, file: &Path) -> Result<Config, ConfigError> {
    // The parser's default budget (250 000 nodes) refuses a config of some 25 000 routes; an
    // edge node's may have hundreds of thousands (a route is about ten nodes). The budget
    // guards against YAML bombs, which its alias limits still catch, and the input against
    // nothing an operator does not write.
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_nodes: 20_000_000,
            max_events: 40_000_000,
        },
    };
    let raw: raw::RawConfig =
        serde_saphyr::from_str_with_options(text, options).map_err(|e| syntax_error(&e, file))?;
    validate::Validator::new(file).config(raw)
}

fn syntax_error(e: &serde_saphyr::Error, file: &Path) -> ConfigError {
    let at = e.location().map_or_else(
        || Location {
            file: file.to_path_buf(),
            line: 0,
            column: 0,
        },
        |loc| Location::new(file, loc),
    );
    ConfigError::Syntax {
        at,
        message: strip_location_suffix(e.without_snippet().to_string()),
    }
}

/// The YAML library appends " at line L, column C"; the location already leads the message.
fn strip_location_suffix(mut message: String) -> String {
    if let Some(i) = message.rfind(" at line ") {
        if message[i..].contains(", column ") {
            message.truncate(i);
        }
    }
    message
}
