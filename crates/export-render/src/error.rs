//! The one error type of the renderers. Messages never quote document content: it may be
//! protected health information.

/// Why a render failed.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("cannot write the output: {0}")]
    Io(#[from] std::io::Error),
    #[error("{format} cannot be made from {what}")]
    Unsupported {
        format: &'static str,
        what: &'static str,
    },
    #[error(
        "{rows} rows are more than one {format} export can hold ({limit} at most); use csv for larger tables"
    )]
    TooManyRows {
        format: &'static str,
        rows: u64,
        limit: u64,
    },
    #[error("row {row} has {got} cells but the table has {expected} columns")]
    RowShape {
        row: u64,
        got: usize,
        expected: usize,
    },
    #[error("the {format} writer failed: {reason}")]
    Writer {
        format: &'static str,
        reason: String,
    },
    #[error("the row source failed at row {row}: {reason}")]
    Source { row: u64, reason: String },
}
