//! Domain types and rules: plain values that validate on construction, no I/O.

mod category;
mod user;
mod validation;

pub use category::{Category, CategoryDescription, CategoryId, CategoryName, Slug};
pub use user::{DisplayName, Email, Password, PasswordHash, Role, User, UserId};
pub use validation::{FieldError, FieldErrors};
