//! The one error type of gatehouse's rules. The HTTP layer maps each variant to a status
//! and a stable code; internal causes are logged there and never shown to a client.

type Cause = Box<dyn std::error::Error + Send + Sync>;

/// What can go wrong in a gatehouse operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A dependency (the database) is not answering; the caller may retry later.
    #[error("service unavailable: {0}")]
    Unavailable(#[source] Cause),
    /// A bug or an unexpected failure; logged, answered opaquely.
    #[error("internal error: {0}")]
    Internal(#[source] Cause),
}

impl From<gatehouse_store::StoreError> for Error {
    fn from(err: gatehouse_store::StoreError) -> Self {
        match err {
            gatehouse_store::StoreError::Connect { .. } => Self::Unavailable(Box::new(err)),
            other => Self::Internal(Box::new(other)),
        }
    }
}
