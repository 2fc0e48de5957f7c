//! The API's error type, shared with publish-server so both answer `{"error": {"code", "message"}}`.

pub use shared::http::{ApiError, ApiJson};
