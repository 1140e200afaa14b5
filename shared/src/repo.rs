//! Item layouts of the single table: how each entity maps to keys, index keys and
//! attributes, and the storage operations handlers share.

pub mod categories;
pub mod cursor_key;
pub mod farmers;
pub mod idempotency;
pub mod link_tokens;
pub mod notifications;
pub mod orders;
pub mod outbox;
pub mod pages;
pub mod products;
pub mod sales;
mod scan;
pub mod sessions;
pub mod throttle;
pub mod users;

pub use scan::scan_all;

use crate::ports::{Item, StoreError};

/// `parse(item)`, or `None` when the stored item does not decode: the failure is
/// logged with the item's key and counted (`telemetry::report_undecodable`), and
/// the item is skipped, so one bad item never fails a page, a read or a run.
/// Every read that decodes stored items goes through here.
pub fn decoded<T>(item: &Item, parse: impl FnOnce(&Item) -> Result<T, StoreError>) -> Option<T> {
    match parse(item) {
        Ok(value) => Some(value),
        Err(error) => {
            crate::telemetry::report_undecodable(&item.key, &error);
            None
        }
    }
}
