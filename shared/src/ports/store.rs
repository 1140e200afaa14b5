//! The item store port: a single-table key/value store with secondary indexes,
//! conditional writes and all-or-nothing transactions (DynamoDB semantics).
//!
//! Every item has a partition key `pk` and a sort key `sk`. Ten optional secondary
//! indexes are keyed by the attributes `gsiNpk`/`gsiNsk` (N = 1..=10); an item is in
//! an index only when it has both of that index's attributes (sparse indexes).
//! An item whose numeric `ttl` attribute (epoch seconds) lies in the past is
//! expired and reads as absent on every backend.

use async_trait::async_trait;
use serde_json::{Map, Value};

/// Attribute map of an item (everything except `pk` and `sk`).
pub type Attrs = Map<String, Value>;

/// Name of the numeric attribute `Condition::VersionIs` compares.
pub const ATTR_VERSION: &str = "version";
/// Name of the numeric epoch-seconds attribute after which an item is expired.
pub const ATTR_TTL: &str = "ttl";

/// Primary key of an item.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ItemKey {
    pub pk: String,
    pub sk: String,
}

impl ItemKey {
    pub fn new(pk: impl Into<String>, sk: impl Into<String>) -> Self {
        Self { pk: pk.into(), sk: sk.into() }
    }
}

/// One stored item: key plus attributes. Attribute values are JSON values;
/// numbers must be integers, strings, booleans, arrays or objects.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub key: ItemKey,
    pub attrs: Attrs,
}

impl Item {
    pub fn new(key: ItemKey, attrs: Attrs) -> Self {
        Self { key, attrs }
    }

    /// String attribute, if present and a string.
    pub fn str(&self, name: &str) -> Option<&str> {
        self.attrs.get(name).and_then(Value::as_str)
    }

    /// Integer attribute, if present and an integer.
    pub fn int(&self, name: &str) -> Option<i64> {
        self.attrs.get(name).and_then(Value::as_i64)
    }
}

/// A secondary index. What each holds is decided by the `repo` modules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Index {
    Gsi1,
    Gsi2,
    Gsi3,
    Gsi4,
    Gsi5,
    Gsi6,
    Gsi7,
    Gsi8,
    Gsi9,
    Gsi10,
}

impl Index {
    /// Every index, in order.
    pub const ALL: [Index; 10] = [
        Index::Gsi1,
        Index::Gsi2,
        Index::Gsi3,
        Index::Gsi4,
        Index::Gsi5,
        Index::Gsi6,
        Index::Gsi7,
        Index::Gsi8,
        Index::Gsi9,
        Index::Gsi10,
    ];

    /// The (partition, sort) attribute names of this index.
    pub fn key_attrs(self) -> (&'static str, &'static str) {
        match self {
            Index::Gsi1 => ("gsi1pk", "gsi1sk"),
            Index::Gsi2 => ("gsi2pk", "gsi2sk"),
            Index::Gsi3 => ("gsi3pk", "gsi3sk"),
            Index::Gsi4 => ("gsi4pk", "gsi4sk"),
            Index::Gsi5 => ("gsi5pk", "gsi5sk"),
            Index::Gsi6 => ("gsi6pk", "gsi6sk"),
            Index::Gsi7 => ("gsi7pk", "gsi7sk"),
            Index::Gsi8 => ("gsi8pk", "gsi8sk"),
            Index::Gsi9 => ("gsi9pk", "gsi9sk"),
            Index::Gsi10 => ("gsi10pk", "gsi10sk"),
        }
    }

    /// The index name used in DynamoDB and the template.
    pub fn name(self) -> &'static str {
        match self {
            Index::Gsi1 => "gsi1",
            Index::Gsi2 => "gsi2",
            Index::Gsi3 => "gsi3",
            Index::Gsi4 => "gsi4",
            Index::Gsi5 => "gsi5",
            Index::Gsi6 => "gsi6",
            Index::Gsi7 => "gsi7",
            Index::Gsi8 => "gsi8",
            Index::Gsi9 => "gsi9",
            Index::Gsi10 => "gsi10",
        }
    }
}

/// A condition a write depends on; checked atomically with the write.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// Always true.
    None,
    /// The item must not exist (or be expired).
    NotExists,
    /// The item must exist.
    Exists,
    /// The item must exist and its `version` attribute must equal this number.
    VersionIs(i64),
}

/// A requirement on an attribute of an existing item, for `WriteOp::Adjust`.
#[derive(Debug, Clone, PartialEq)]
pub enum Guard {
    /// The integer attribute is at least this.
    AtLeast(String, i64),
    /// The integer attribute is at most this (a stock increment that must
    /// never pass a bound).
    AtMost(String, i64),
    /// The attribute equals this value.
    Equals(String, serde_json::Value),
}

/// One write in a transaction.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteOp {
    /// Write the whole item, replacing any existing one.
    Put { item: Item, condition: Condition },
    /// Remove the item (a missing item is not an error unless the condition says so).
    Delete { key: ItemKey, condition: Condition },
    /// Write nothing; only require the condition on this key.
    Check { key: ItemKey, condition: Condition },
    /// Add each delta to its integer attribute of an existing item (an absent
    /// attribute counts as zero), leaving the rest of the item as it is; the
    /// item must exist and every guard hold, as checked atomically with the
    /// write (a stock decrement guarded by `stock >= quantity`).
    Adjust { key: ItemKey, add: Vec<(String, i64)>, guards: Vec<Guard> },
}

impl WriteOp {
    pub fn key(&self) -> &ItemKey {
        match self {
            WriteOp::Put { item, .. } => &item.key,
            WriteOp::Delete { key, .. } | WriteOp::Check { key, .. } | WriteOp::Adjust { key, .. } => key,
        }
    }
}

/// A key-range read: one partition of the table or of an index, in sort-key order.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// `None` queries the table by `pk`; `Some` queries that index.
    pub index: Option<Index>,
    /// Value of the partition key (of the table or the index).
    pub partition: String,
    /// Only items whose sort key starts with this prefix.
    pub sort_prefix: Option<String>,
    /// Only items whose sort key lies between these bounds (inclusive, compared
    /// as strings). Not combined with `sort_prefix`.
    pub sort_between: Option<(String, String)>,
    /// `true` for ascending sort-key order, `false` for descending.
    pub ascending: bool,
    /// Maximum number of items returned (1..=1000).
    pub limit: usize,
    /// Continue after the item with this key (from `Page::last`).
    pub start_after: Option<Item>,
}

impl Query {
    /// Ascending query of one table partition.
    pub fn partition(pk: impl Into<String>) -> Self {
        Self {
            index: None,
            partition: pk.into(),
            sort_prefix: None,
            sort_between: None,
            ascending: true,
            limit: 100,
            start_after: None,
        }
    }

    /// Ascending query of one index partition.
    pub fn index(index: Index, partition: impl Into<String>) -> Self {
        Self { index: Some(index), ..Self::partition(partition) }
    }
}

/// One segment of a scan of the whole table, for backups: `total_segments`
/// readers each scan their own `segment` (`0..total_segments`), together
/// reading every live item exactly once.
#[derive(Debug, Clone, PartialEq)]
pub struct Scan {
    pub segment: u32,
    pub total_segments: u32,
    /// Maximum number of items returned (1..=1000).
    pub limit: usize,
    /// Continue after this key (from `ScanPage::last`).
    pub start_after: Option<ItemKey>,
}

/// One page of a scan.
#[derive(Debug, Clone, PartialEq)]
pub struct ScanPage {
    pub items: Vec<Item>,
    /// Set when more items may follow in this segment.
    pub last: Option<ItemKey>,
    /// Read capacity units the page consumed (DynamoDB's own figure; 0 for the
    /// embedded store), so a backup can keep within a read budget.
    pub read_units: f64,
}

/// One page of query results.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub items: Vec<Item>,
    /// Set when more items may follow: the last item returned, to pass as
    /// `Query::start_after` for the next page.
    pub last: Option<Item>,
}

/// Store failures. Each variant's doc names the HTTP status it usually becomes.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// 409 (or a domain-specific status): the condition of write number `index`
    /// in the transaction did not hold; nothing was written.
    #[error("condition failed on write {index} of the transaction")]
    ConditionFailed { index: usize },
    /// 400 from the caller's point of view: the request to the store was invalid
    /// (e.g. two writes to one key in a transaction, a non-integer number).
    #[error("invalid store request: {0}")]
    Invalid(String),
    /// 409 with `Retry-After`: the items kept conflicting with concurrent
    /// transactions after every retry; nothing was written.
    #[error("busy: {0}")]
    Contended(String),
    /// 500 (503 from health): the backend failed or is unreachable.
    #[error("{context}")]
    Backend {
        context: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl StoreError {
    pub fn backend(context: impl Into<String>, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        StoreError::Backend { context: context.into(), source: source.into() }
    }
}

/// The item store.
#[async_trait]
pub trait Store: Send + Sync {
    /// Reads one item; `None` when absent or expired.
    async fn get(&self, key: &ItemKey) -> Result<Option<Item>, StoreError>;

    /// Applies all writes atomically, or none of them when a condition fails
    /// (`StoreError::ConditionFailed` names the first failing write).
    /// At most 25 writes, each to a distinct key.
    async fn transact(&self, writes: Vec<WriteOp>) -> Result<(), StoreError>;

    /// Reads one page of a partition of the table or of an index.
    async fn query(&self, query: &Query) -> Result<Page, StoreError>;

    /// Reads one page of one segment of the whole table (live items only, in
    /// no particular order across segments).
    async fn scan(&self, scan: &Scan) -> Result<ScanPage, StoreError>;

    /// Cheap round trip proving the store is reachable.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Atomically adds one to the integer attribute `attr` of the item at `key`
    /// (an absent or expired item counts as zero and is created with just that
    /// attribute), sets its expiry to `expires_at` (epoch seconds) and returns
    /// the new value. Concurrent increments each see a distinct value.
    async fn increment(&self, key: &ItemKey, attr: &str, expires_at: i64) -> Result<i64, StoreError>;

    /// Writes one item under a condition (a transaction of one).
    async fn put(&self, item: Item, condition: Condition) -> Result<(), StoreError> {
        self.transact(vec![WriteOp::Put { item, condition }]).await
    }

    /// Deletes one item under a condition (a transaction of one).
    async fn delete(&self, key: ItemKey, condition: Condition) -> Result<(), StoreError> {
        self.transact(vec![WriteOp::Delete { key, condition }]).await
    }
}
