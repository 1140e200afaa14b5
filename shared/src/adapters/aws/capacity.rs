//! The capacity a `DynamoStore` consumes, call by call: as DynamoDB reports it
//! (`ReturnConsumedCapacity`) and as computed from item sizes with DynamoDB's
//! on-demand rules, since the test endpoint (moto) reports placeholders
//! (0.5 for any read, 1 for any write, nothing for transactions).
//!
//! The rules: a read unit is 4 KB strongly consistent or 8 KB eventually
//! consistent (a query sums the items it reads, then rounds up; a read that
//! finds nothing still costs one unit or half of one); a write unit is 1 KB of
//! the item written, twice that in a transaction. Deletes, updates and
//! condition checks are counted as one unit (two in a transaction): the old
//! item's size is not returned, so those figures are lower bounds.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_sdk_dynamodb::types::{AttributeValue, ConsumedCapacity};

/// Running totals; shared by every clone of the store.
#[derive(Debug, Default)]
pub struct CapacityMeter {
    calls: AtomicU64,
    // Thousandths of a unit, so atomics can add them.
    reported_read: AtomicU64,
    reported_write: AtomicU64,
    estimated_read: AtomicU64,
    estimated_write: AtomicU64,
}

/// What a meter has counted so far.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CapacityUsed {
    /// DynamoDB requests made.
    pub calls: u64,
    /// Read and write units DynamoDB reported.
    pub reported_read: f64,
    pub reported_write: f64,
    /// Read and write units computed from the item sizes.
    pub estimated_read: f64,
    pub estimated_write: f64,
}

impl CapacityUsed {
    /// What was used since `earlier`.
    pub fn since(self, earlier: CapacityUsed) -> CapacityUsed {
        CapacityUsed {
            calls: self.calls - earlier.calls,
            reported_read: self.reported_read - earlier.reported_read,
            reported_write: self.reported_write - earlier.reported_write,
            estimated_read: self.estimated_read - earlier.estimated_read,
            estimated_write: self.estimated_write - earlier.estimated_write,
        }
    }
}

fn milli(units: f64) -> u64 {
    (units * 1000.0).round() as u64
}

fn units(milli: &AtomicU64) -> f64 {
    milli.load(Ordering::Relaxed) as f64 / 1000.0
}

fn reported(capacity: &[ConsumedCapacity]) -> f64 {
    capacity.iter().filter_map(ConsumedCapacity::capacity_units).sum()
}

impl CapacityMeter {
    pub fn used(&self) -> CapacityUsed {
        CapacityUsed {
            calls: self.calls.load(Ordering::Relaxed),
            reported_read: units(&self.reported_read),
            reported_write: units(&self.reported_write),
            estimated_read: units(&self.estimated_read),
            estimated_write: units(&self.estimated_write),
        }
    }

    /// A read of `bytes` of items.
    pub(super) fn read(&self, reported_by_dynamo: &[ConsumedCapacity], bytes: usize, consistent: bool) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.reported_read.fetch_add(milli(reported(reported_by_dynamo)), Ordering::Relaxed);
        self.estimated_read.fetch_add(milli(read_units(bytes, consistent)), Ordering::Relaxed);
    }

    /// A write that costs `estimated` units.
    pub(super) fn write(&self, reported_by_dynamo: &[ConsumedCapacity], estimated: f64) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.reported_write.fetch_add(milli(reported(reported_by_dynamo)), Ordering::Relaxed);
        self.estimated_write.fetch_add(milli(estimated), Ordering::Relaxed);
    }
}

/// Read units of reading `bytes` (at least one block).
pub fn read_units(bytes: usize, consistent: bool) -> f64 {
    let per_unit = if consistent { 4096 } else { 8192 };
    bytes.div_ceil(per_unit).max(1) as f64
}

/// Write units of writing an item of `bytes` (outside a transaction).
pub fn write_units(bytes: usize) -> f64 {
    bytes.div_ceil(1024).max(1) as f64
}

/// DynamoDB's size of an item: attribute names plus values (numbers taken at
/// their text length, a close upper bound of their stored size).
pub fn item_size(item: &HashMap<String, AttributeValue>) -> usize {
    item.iter().map(|(name, value)| name.len() + value_size(value)).sum()
}

fn value_size(value: &AttributeValue) -> usize {
    match value {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => n.len().div_ceil(2) + 1,
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::L(list) => 3 + list.iter().map(|v| 1 + value_size(v)).sum::<usize>(),
        AttributeValue::M(map) => 3 + map.iter().map(|(k, v)| 1 + k.len() + value_size(v)).sum::<usize>(),
        AttributeValue::Ss(set) => set.iter().map(String::len).sum(),
        AttributeValue::Ns(set) => set.iter().map(|n| n.len().div_ceil(2) + 1).sum(),
        AttributeValue::Bs(set) => set.iter().map(|b| b.as_ref().len()).sum(),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_follow_dynamodbs_rounding() {
        assert_eq!(read_units(0, true), 1.0);
        assert_eq!(read_units(4096, true), 1.0);
        assert_eq!(read_units(4097, true), 2.0);
        assert_eq!(read_units(8192, false), 1.0);
        assert_eq!(write_units(1), 1.0);
        assert_eq!(write_units(1025), 2.0);
        let item = HashMap::from([
            ("pk".to_owned(), AttributeValue::S("PRODUCT#1".into())),
            ("stock".to_owned(), AttributeValue::N("12".into())),
        ]);
        assert_eq!(item_size(&item), 2 + 9 + 5 + 2);
    }
}
