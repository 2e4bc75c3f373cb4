use std::fmt;

/// A configuration mistake, found when a layer (or a key) is built. The message says how to fix it.
///
/// ```
/// use protothrive::error::ConfigError;
/// let e = ConfigError::new("set an issuer");
/// assert_eq!(e.to_string(), "configuration: set an issuer");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    message: String,
}

impl ConfigError {
    /// An error with a message.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }

    /// The message.
    #[must_use]
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "configuration: {}", self.message)
    }
}

impl std::error::Error for ConfigError {}
