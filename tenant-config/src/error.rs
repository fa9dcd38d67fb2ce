//! Config errors: every one names the file and the JSON Pointer of the offending node.

use std::fmt;

/// One problem in a tenant config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file as it was given (`tenant-config/examples/express.yaml`), or the name passed to
    /// [`crate::ConfigSet::from_yaml_str`].
    pub file: String,
    /// JSON Pointer inside the file (`/business_identities/cold-chain/order_types/standard/fields/2/slot`);
    /// empty for the document itself.
    pub path: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(
        file: impl Into<String>,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        ConfigError {
            file: file.into(),
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    /// `file:path: message`, or `file: message` for the document itself: one line a CI log
    /// and an editor's problem matcher can read.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{}:{}: {}", self.file, self.path, self.message)
        }
    }
}

/// Every problem found in one pass over a config (a file or a directory). Never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(Vec<ConfigError>);

impl ConfigErrors {
    /// `None` when `errors` is empty.
    pub fn from_vec(errors: Vec<ConfigError>) -> Option<ConfigErrors> {
        if errors.is_empty() {
            None
        } else {
            Some(ConfigErrors(errors))
        }
    }

    pub fn single(
        file: impl Into<String>,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        ConfigErrors(vec![ConfigError::new(file, path, message)])
    }

    pub fn errors(&self) -> &[ConfigError] {
        &self.0
    }

    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false (kept for clippy's `len_without_is_empty`).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn into_vec(self) -> Vec<ConfigError> {
        self.0
    }
}

impl fmt::Display for ConfigErrors {
    /// One error per line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, error) in self.0.iter().enumerate() {
            if index > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// Collects errors while walking a document; paths are JSON Pointers built segment by segment.
#[derive(Debug)]
pub(crate) struct Collector<'f> {
    pub(crate) file: &'f str,
    pub(crate) errors: Vec<ConfigError>,
}

impl<'f> Collector<'f> {
    pub(crate) fn new(file: &'f str) -> Self {
        Collector {
            file,
            errors: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ConfigError::new(self.file, path, message));
    }
}

/// Escape one JSON Pointer segment (RFC 6901: `~` → `~0`, `/` → `~1`).
pub(crate) fn pointer_segment(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// `parent` + `/segment`, escaped.
pub(crate) fn child(parent: &str, segment: impl fmt::Display) -> String {
    format!("{parent}/{}", pointer_segment(&segment.to_string()))
}
