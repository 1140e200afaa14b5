//! Domain types and rules: plain values that validate on construction, no I/O.

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
