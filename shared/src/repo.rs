//! Item layouts of the single table: how each entity maps to keys, index keys and
//! attributes, and the storage operations handlers share.

pub mod categories;
pub mod farmers;
pub mod idempotency;
pub mod link_tokens;
pub mod notifications;
pub mod orders;
pub mod outbox;
pub mod pages;
pub mod products;
pub mod sales;
pub mod sessions;
pub mod throttle;
pub mod users;
