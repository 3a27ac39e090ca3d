use sea_orm::{DbErr, SqlErr};

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
        source: sea_orm::sqlx::Error,
    },
    #[error("cannot migrate the database: {0}")]
    Migrate(#[source] DbErr),
    /// A uniqueness rule refused the write (the caller knows which one it was asking for).
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotFound(String),
    #[error("database error: {0}")]
    Db(#[source] DbErr),
}

impl From<DbErr> for StoreError {
    fn from(err: DbErr) -> Self {
        StoreError::Db(err)
    }
}

/// Whether a database error is a unique-constraint violation, on either backend.
pub(crate) fn is_unique_violation(err: &DbErr) -> bool {
    matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
}
