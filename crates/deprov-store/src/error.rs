use sea_orm::{DbErr, RuntimeErr, SqlErr};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("invalid database URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error(
        "unsupported database scheme {0:?} in the database URL (use sqlite://PATH or postgres://…)"
    )]
    UnsupportedScheme(String),
    #[error("cannot open the database at {location}: {source}")]
    Connect {
        location: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("cannot migrate the database: {0}")]
    Migrate(#[source] DbErr),
    /// A uniqueness rule refused the write (the caller knows which one it was asking for).
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotFound(String),
    /// A write conditioned on a version (an `If-Match` ETag, RFC 7644 §3.14, or the version
    /// a read-modify-write read) found another: the SCIM layer answers 412 Precondition
    /// Failed, or reads again. `current` is the version last read.
    #[error("the resource is not at the expected version (last read at version {current})")]
    VersionMismatch { current: i64 },
    /// Group members that are not users (or groups) of the tenant; nothing was written. The
    /// SCIM layer answers 400 `invalidValue` (RFC 7644 §3.12).
    #[error("unknown members: {}", .0.join(", "))]
    InvalidMembers(Vec<String>),
    /// A filter or sort the store cannot evaluate (a comparison that makes no sense for the
    /// attribute's type, say): 400 `invalidFilter` (RFC 7644 §3.4.2.2).
    #[error("{0}")]
    InvalidFilter(String),
    #[error("database error: {0}")]
    Db(#[source] DbErr),
}

impl StoreError {
    /// A failure around the database rather than in it (a task that stopped, a batch
    /// that could not be committed), reported like a database error.
    pub fn other(message: impl Into<String>) -> Self {
        StoreError::Db(DbErr::Custom(message.into()))
    }
}

impl From<DbErr> for StoreError {
    fn from(err: DbErr) -> Self {
        StoreError::Db(err)
    }
}

/// Whether a database error is a unique-constraint violation, on either backend.
pub(crate) fn is_unique_violation(err: &DbErr) -> bool {
    if let DbErr::Exec(RuntimeErr::Internal(message)) | DbErr::Query(RuntimeErr::Internal(message)) =
        err
        && message.starts_with(crate::sqlite::UNIQUE_VIOLATION)
    {
        return true;
    }
    matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
}
