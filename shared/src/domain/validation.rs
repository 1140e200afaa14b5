//! Field-level validation errors collected while converting request bodies into
//! domain values, so one response can name every bad field at once.

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

/// A collector of field errors.
#[derive(Debug, Default)]
pub struct FieldErrors(Vec<FieldError>);

impl FieldErrors {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `field`'s error if `result` failed and returns the value if it did not.
    pub fn check<T>(&mut self, field: &str, result: Result<T, String>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(message) => {
                self.0.push(FieldError { field: field.to_owned(), message });
                None
            }
        }
    }

    /// Like `check` for optional input: `None` input stays `Some(None)`.
    pub fn check_opt<T, U>(
        &mut self,
        field: &str,
        input: Option<U>,
        parse: impl FnOnce(U) -> Result<T, String>,
    ) -> Option<Option<T>> {
        match input {
            None => Some(None),
            Some(raw) => self.check(field, parse(raw)).map(Some),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn into_vec(self) -> Vec<FieldError> {
        self.0
    }
}
