//! Domain types and rules: plain values that validate on construction, no I/O.

/// Declares an id newtype over a ULID: `new`, `parse` (`None` unless a ULID),
/// `Default` (a fresh id), `Display` and transparent serde. ULIDs sort by
/// creation time, which the listings rely on.
macro_rules! ulid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub ulid::Ulid);

        impl $name {
            pub fn new() -> Self {
                Self(ulid::Ulid::new())
            }

            pub fn parse(raw: &str) -> Option<Self> {
                ulid::Ulid::from_string(raw).ok().map(Self)
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

mod category;
mod product;
mod user;
mod validation;

pub use category::{Category, CategoryDescription, CategoryId, CategoryName, Slug};
pub use product::{
    format_date, parse_harvest_date, search_words, ImageFormat, ImageId, ListingStatus, Price, Product,
    ProductDescription, ProductId, ProductImage, ProductName, Stock, Unit, MAX_IMAGES_PER_PRODUCT,
};
pub use user::{DisplayName, Email, Password, PasswordHash, Role, User, UserId};
pub use validation::{FieldError, FieldErrors};
