//! Item layouts of the single table: how each entity maps to keys, index keys and
//! attributes, and the storage operations handlers share.

pub mod categories;
pub mod farmers;
pub mod idempotency;
pub mod link_tokens;
pub mod products;
pub mod sessions;
pub mod throttle;
pub mod users;
