//! File references and the naming rules that keep files inside their directories.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

use crate::error::ActivityError;
use crate::names::is_identifier;

/// Error codes of file operations.
pub mod codes {
    /// A reference string is not `postgres://{workflow_id}/{activity_key}/{filename}`.
    pub const INVALID_FILE_REFERENCE: &str = "INVALID_FILE_REFERENCE";
    /// A filename breaks the naming rule.
    pub const INVALID_FILENAME: &str = "INVALID_FILENAME";
    /// The server has no such file.
    pub const FILE_NOT_FOUND: &str = "FILE_NOT_FOUND";
    /// The local file to upload does not exist or cannot be read.
    pub const LOCAL_FILE_NOT_FOUND: &str = "LOCAL_FILE_NOT_FOUND";
    /// The transfer kept failing (after retries) or wrote nothing usable.
    pub const FILE_TRANSFER_FAILED: &str = "FILE_TRANSFER_FAILED";
}

/// The storage provider of the built-in store.
pub(crate) const PROVIDER: &str = "postgres";

/// A file in workflow storage: `postgres://{workflow_id}/{activity_key}/{filename}`.
///
/// ```
/// use kruxiaflow_worker::files::FileReference;
///
/// let reference: FileReference =
///     "postgres://0193b2c4-ffee-7aa0-9b11-2c3d4e5f6071/extract_content/passages.jsonl".parse().unwrap();
/// assert_eq!(reference.activity_key, "extract_content");
/// assert_eq!(reference.filename, "passages.jsonl");
/// assert_eq!(reference.to_string(), "postgres://0193b2c4-ffee-7aa0-9b11-2c3d4e5f6071/extract_content/passages.jsonl");
///
/// let err = "s3://bucket/key".parse::<FileReference>().unwrap_err();
/// assert_eq!(err.code(), "INVALID_FILE_REFERENCE");
/// assert!(err.message().contains("expected postgres://{workflow_id}/{activity_key}/{filename}"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FileReference {
    /// Owning workflow.
    pub workflow_id: Uuid,
    /// Owning activity key.
    pub activity_key: String,
    /// File name: up to 255 letters, digits, `_`, `.` or `-`, starting with a letter,
    /// digit or `_` (no `/`, no `..`, nothing hidden or absolute).
    pub filename: String,
}

impl FileReference {
    /// A reference to `filename` of `(workflow_id, activity_key)`, if all parts are valid.
    pub fn new(workflow_id: Uuid, activity_key: &str, filename: &str) -> Result<Self, ActivityError> {
        if !is_identifier(activity_key) {
            return Err(ActivityError::terminal(
                codes::INVALID_FILE_REFERENCE,
                format!("activity key {activity_key:?} is invalid: use 1 to 255 letters, digits, '_' or '-'"),
            ));
        }
        check_filename(filename)?;
        Ok(Self { workflow_id, activity_key: activity_key.to_owned(), filename: filename.to_owned() })
    }
}

impl fmt::Display for FileReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PROVIDER}://{}/{}/{}", self.workflow_id, self.activity_key, self.filename)
    }
}

impl FromStr for FileReference {
    type Err = ActivityError;

    fn from_str(reference: &str) -> Result<Self, Self::Err> {
        let invalid = |why: &str| {
            ActivityError::terminal(
                codes::INVALID_FILE_REFERENCE,
                format!(
                    "file reference {reference:?} {why}; expected {PROVIDER}://{{workflow_id}}/{{activity_key}}/{{filename}}"
                ),
            )
        };
        let rest = reference
            .strip_prefix(PROVIDER)
            .and_then(|r| r.strip_prefix("://"))
            .ok_or_else(|| invalid("does not start with postgres://"))?;
        let parts: Vec<&str> = rest.split('/').collect();
        let [workflow_id, activity_key, filename] = parts.as_slice() else {
            return Err(invalid("does not have exactly three parts"));
        };
        let workflow_id = Uuid::parse_str(workflow_id).map_err(|_| invalid("has a workflow id that is not a UUID"))?;
        Self::new(workflow_id, activity_key, filename).map_err(|e| invalid(&format!("is invalid: {}", e.message())))
    }
}

/// `^[A-Za-z0-9_][A-Za-z0-9_.-]*$`, at most 255 bytes: no `/`, no `..` segment, no
/// hidden or absolute names, nothing that can leave the directory it is joined to.
pub(crate) fn check_filename(filename: &str) -> Result<(), ActivityError> {
    let mut bytes = filename.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_');
    let rest_ok = bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if first_ok && rest_ok && filename.len() <= 255 {
        return Ok(());
    }
    Err(ActivityError::terminal(
        codes::INVALID_FILENAME,
        format!(
            "filename {filename:?} is invalid: use up to 255 letters, digits, '_', '.' or '-', starting with a letter, digit or '_'"
        ),
    ))
}

/// The content type for `filename`, from its extension (`application/octet-stream`
/// when unknown).
pub(crate) fn guess_content_type(filename: &str) -> String {
    mime_guess::from_path(filename).first_or_octet_stream().essence_str().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_with_traversal_or_extra_parts_are_refused() {
        let wf = Uuid::now_v7();
        for bad in [
            format!("postgres://{wf}/key/../x"),
            format!("postgres://{wf}/key/a/b"),
            format!("postgres://{wf}/key/"),
            format!("postgres://{wf}/../x"),
            "postgres://not-a-uuid/key/x".to_owned(),
            format!("postgres:/{wf}/key/x"),
            format!("{wf}/key/x"),
        ] {
            let error = bad.parse::<FileReference>().unwrap_err();
            assert_eq!(error.code(), codes::INVALID_FILE_REFERENCE, "{bad}");
        }
    }

    #[test]
    fn filenames_that_could_leave_their_directory_are_refused() {
        assert!(check_filename("report-2026.v2.pdf").is_ok());
        for bad in ["../x", "a/b", "/etc/passwd", "a\0b", "", ".hidden", "..", "a b"] {
            assert_eq!(check_filename(bad).unwrap_err().code(), codes::INVALID_FILENAME, "{bad:?}");
        }
    }

    #[test]
    fn content_types_are_guessed_from_the_extension() {
        assert_eq!(guess_content_type("a.txt"), "text/plain");
        assert_eq!(guess_content_type("a.json"), "application/json");
        assert_eq!(guess_content_type("a.unknownext"), "application/octet-stream");
    }
}
