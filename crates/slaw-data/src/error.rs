//! The errors of reading, decoding and caching an image data set: each names the file or folder
//! at fault, so that the planner can report it as a validation error before any trial starts.

use std::path::PathBuf;

/// What went wrong with an image data set.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file or folder could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The data set's layout or contents are not what its format requires.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file or folder at fault.
        path: PathBuf,
        /// What is wrong, and what was expected.
        reason: String,
    },
    /// An image could not be decoded (and `skip_bad` is off).
    #[error("{path}: cannot decode the image ({reason}); set data.skip_bad: true to leave out unreadable images")]
    Decode {
        /// The image file.
        path: PathBuf,
        /// The decoder's message.
        reason: String,
    },
}

impl DataError {
    /// An [`DataError::Invalid`] for `path`.
    pub fn invalid(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        DataError::Invalid {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// An [`DataError::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            source,
        }
    }
}
