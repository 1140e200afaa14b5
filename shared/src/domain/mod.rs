//! Domain types and rules: plain values that validate on construction, no I/O.

/// Declares an id newtype over a ULID: `new`, `parse` (`None` unless a ULID in
/// its canonical upper-case form), `Default` (a fresh id), `Display`, serde as
/// that string, and the OpenAPI schema `Ulid`. ULIDs sort by creation time, which
/// the listings rely on.
macro_rules! ulid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(pub ulid::Ulid);

        impl $name {
            pub fn new() -> Self {
                Self(ulid::Ulid::new())
            }

            /// Only the canonical form (26 upper-case Crockford base-32 characters),
            /// so every id has exactly one spelling.
            pub fn parse(raw: &str) -> Option<Self> {
                ulid::Ulid::from_string(raw).ok().filter(|id| id.to_string() == raw).map(Self)
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

        impl TryFrom<String> for $name {
            type Error = String;

            fn try_from(raw: String) -> Result<Self, String> {
                Self::parse(&raw).ok_or_else(|| "must be an id (a ULID)".to_owned())
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.to_string()
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                crate::domain::ulid_schema()
            }
        }

        impl utoipa::ToSchema for $name {
            fn name() -> std::borrow::Cow<'static, str> {
                "Ulid".into()
            }
        }
    };
}

/// Implements the OpenAPI schema of a domain value (`schema` builds it), so its
/// limits appear in the document because the type says so, and `TryFrom<$raw>`
/// through `parse`, for `#[serde(try_from = ...)]`.
macro_rules! domain_value {
    ($name:ident, $raw:ty, $parse:expr, $schema:expr) => {
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                let schema: utoipa::openapi::schema::Object = $schema;
                schema.into()
            }
        }

        impl utoipa::ToSchema for $name {}

        impl TryFrom<$raw> for $name {
            type Error = String;

            fn try_from(raw: $raw) -> Result<Self, String> {
                let parse: fn($raw) -> Result<Self, String> = $parse;
                parse(raw)
            }
        }
    };
}

/// A bounded, trimmed text without control characters (line breaks allowed
/// where `multiline`).
fn text(raw: &str, max: usize, multiline: bool, required: bool) -> Result<String, String> {
    if raw.chars().count() > max {
        return Err(format!("must be at most {max} characters"));
    }
    let value = raw.trim();
    if required && value.is_empty() {
        return Err("must not be empty".into());
    }
    if value.chars().any(|c| c.is_control() && !(multiline && (c == '\n' || c == '\r' || c == '\t'))) {
        return Err("must not contain control characters".into());
    }
    Ok(value.to_owned())
}

/// Declares a text newtype: `parse` (through `text`, so at most `MAX_CHARS`
/// characters as sent, trimmed, not blank when `required`, no control
/// characters but line breaks and tabs when `multiline`), `as_str`, serde as
/// that string (`#[serde(try_from = "String")]`) and its OpenAPI schema, whose
/// limits come from `MAX_CHARS` and `required`.
macro_rules! text_value {
    ($(#[$doc:meta])* $name:ident, $max:expr, $multiline:expr, $required:expr, $description:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub const MAX_CHARS: usize = $max;

            pub fn parse(raw: &str) -> Result<Self, String> {
                $crate::domain::text(raw, Self::MAX_CHARS, $multiline, $required).map(Self)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        domain_value!(
            $name,
            String,
            |raw| $name::parse(&raw),
            $crate::domain::string_schema($description, if $required { 1 } else { 0 }, $name::MAX_CHARS)
        );
    };
}

/// A string schema with a description and length limits (in characters).
fn string_schema(description: &str, min: usize, max: usize) -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .min_length((min > 0).then_some(min))
        .max_length(Some(max))
        .build()
}

/// An integer schema with a description and inclusive bounds.
fn integer_schema(description: &str, min: i64, max: i64) -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::Int64)))
        .description(Some(description))
        .minimum(Some(min))
        .maximum(Some(max))
        .build()
}

/// A string schema listing its values.
fn enum_schema<'a>(description: &str, values: impl IntoIterator<Item = &'a str>) -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .enum_values(Some(values.into_iter().collect::<Vec<_>>()))
        .build()
}

/// The schema every id shares.
fn ulid_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some("A ULID: 26 upper-case Crockford base-32 characters."))
        .pattern(Some("^[0-7][0-9A-HJKMNP-TV-Z]{25}$"))
        .examples([serde_json::json!("01JD7M2K4Q9R3S5T6V8W0X1Y2Z")])
        .build()
        .into()
}

mod category;
mod farm;
mod order;
mod product;
mod user;
mod validation;

pub use category::{Category, CategoryDescription, CategoryId, CategoryName, Slug};
pub use farm::{region_key, Coordinates, FarmDescription, FarmName, FarmNote, FarmProfile, Place};
pub use order::{
    Address, CheckoutId, Fulfilment, FulfilmentMethod, Order, OrderId, OrderLine, OrderStatus, Party, Payment,
    PaymentStatus, Quantity, StatusChange,
};
pub use product::{
    format_date, parse_harvest_date, search_words, ImageFormat, ImageId, ListingStatus, Price, PriceBound, Product,
    ProductDescription, ProductId, ProductImage, ProductName, SearchText, Stock, Unit, MAX_IMAGES_PER_PRODUCT,
};
pub use user::{DisplayName, Email, Password, PasswordHash, Role, User, UserId};
pub use validation::FieldError;
