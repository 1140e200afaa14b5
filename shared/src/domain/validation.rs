//! Field-level validation errors: what a 422 problem names for each bad field
//! of a request body.

use serde::Serialize;

/// One invalid field: its JSON path (camelCase, dotted) and a readable message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// camelCase JSON path of the field (`(body)` for the body as a whole).
    #[schema(examples("displayName"))]
    pub field: String,
    #[schema(examples("must not be empty"))]
    pub message: String,
}
