//! The item store on a DynamoDB single table: items map to attribute maps with
//! `serde_dynamo`, conditions become condition expressions that treat expired
//! items as absent, and transactions become `TransactWriteItems`.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Delete, Put, ReturnConsumedCapacity, ReturnValue, TransactWriteItem, Update,
};
use aws_sdk_dynamodb::Client;

use super::capacity::{item_size, write_units, CapacityMeter};
use crate::adapters::rules;
use crate::ports::{
    Attrs, Condition, Guard, Item, ItemKey, Page, Query, Scan, ScanPage, Store, StoreError, WriteOp, ATTR_TTL,
    ATTR_VERSION,
};
use crate::retry::{self, Attempt::Again, Attempt::Done};

type AttrMap = HashMap<String, AttributeValue>;

/// Key of the item `ping` reads: it need not exist, the round trip is the point.
const PING_PK: &str = "HEALTH#PING";

/// The item store on the DynamoDB table `table` (keys `pk`/`sk`, indexes `gsi1`
/// to `gsi7`, TTL attribute `ttl`, as `provision::create_table` and the SAM
/// template create it).
///
/// DynamoDB deletes expired items only eventually, so every read filters them
/// out and every condition treats them as absent (`#ttl < :now`). A transaction
/// of one write uses `PutItem`/`DeleteItem` (half the cost of a transactional
/// write); a lone `Check` is a consistent `GetItem`.
///
/// Every request asks DynamoDB for the capacity it consumed; `capacity` counts
/// it, with the figure computed from item sizes beside it (`super::capacity`).
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    meter: Arc<CapacityMeter>,
}

impl DynamoStore {
    pub fn new(client: Client, table: String) -> Self {
        Self { client, table, meter: Arc::default() }
    }

    /// The capacity this store (and every clone of it) consumed so far.
    pub fn capacity(&self) -> Arc<CapacityMeter> {
        Arc::clone(&self.meter)
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }
}

/// Wraps an SDK failure with context, keeping it as the source.
fn sdk_error<E>(context: &str, err: SdkError<E>) -> StoreError
where
    E: std::error::Error + Send + Sync + 'static,
{
    StoreError::backend(format!("{context}: {}", DisplayErrorContext(&err)), err)
}

fn key_map(key: &ItemKey) -> AttrMap {
    HashMap::from([
        ("pk".to_owned(), AttributeValue::S(key.pk.clone())),
        ("sk".to_owned(), AttributeValue::S(key.sk.clone())),
    ])
}

fn to_dynamo(item: &Item, context: &str) -> Result<AttrMap, StoreError> {
    let mut map: AttrMap =
        serde_dynamo::aws_sdk_dynamodb_1::to_item(&item.attrs).map_err(|e| StoreError::backend(context, e))?;
    map.extend(key_map(&item.key));
    Ok(map)
}

fn from_dynamo(mut map: AttrMap, context: &str) -> Result<Item, StoreError> {
    let mut key_part = |name: &str| match map.remove(name) {
        Some(AttributeValue::S(value)) => Ok(value),
        _ => Err(StoreError::backend(context, format!("stored item has no string {name}"))),
    };
    let key = ItemKey::new(key_part("pk")?, key_part("sk")?);
    let attrs: Attrs = serde_dynamo::aws_sdk_dynamodb_1::from_item(map).map_err(|e| StoreError::backend(context, e))?;
    Ok(Item::new(key, attrs))
}

/// A condition expression with its placeholders.
struct Expression {
    text: &'static str,
    names: HashMap<String, String>,
    values: AttrMap,
}

/// The condition expression of `condition` at epoch second `now`; `None` for
/// `Condition::None`. Expired items count as absent, as everywhere else.
fn expression(condition: &Condition, now: i64) -> Option<Expression> {
    let names = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    let now_value = (":now".to_owned(), AttributeValue::N(now.to_string()));
    match condition {
        Condition::None => None,
        Condition::NotExists => Some(Expression {
            text: "attribute_not_exists(#pk) OR #ttl < :now",
            names: names(&[("#pk", "pk"), ("#ttl", ATTR_TTL)]),
            values: HashMap::from([now_value]),
        }),
        Condition::Exists => Some(Expression {
            text: "attribute_exists(#pk) AND (attribute_not_exists(#ttl) OR #ttl >= :now)",
            names: names(&[("#pk", "pk"), ("#ttl", ATTR_TTL)]),
            values: HashMap::from([now_value]),
        }),
        Condition::VersionIs(version) => Some(Expression {
            text: "#v = :v AND (attribute_not_exists(#ttl) OR #ttl >= :now)",
            names: names(&[("#v", ATTR_VERSION), ("#ttl", ATTR_TTL)]),
            values: HashMap::from([now_value, (":v".to_owned(), AttributeValue::N(version.to_string()))]),
        }),
    }
}

/// The update and condition expressions of a `WriteOp::Adjust`.
struct Adjustment {
    update: String,
    condition: String,
    names: HashMap<String, String>,
    values: AttrMap,
}

fn adjustment(add: &[(String, i64)], guards: &[Guard], now: i64, context: &str) -> Result<Adjustment, StoreError> {
    let mut names = HashMap::from([("#pk".to_owned(), "pk".to_owned()), ("#ttl".to_owned(), ATTR_TTL.to_owned())]);
    let mut values: AttrMap = HashMap::from([
        (":now".to_owned(), AttributeValue::N(now.to_string())),
        (":zero".to_owned(), AttributeValue::N("0".into())),
    ]);
    let mut sets = Vec::new();
    for (n, (attr, delta)) in add.iter().enumerate() {
        names.insert(format!("#a{n}"), attr.clone());
        values.insert(format!(":a{n}"), AttributeValue::N(delta.to_string()));
        sets.push(format!("#a{n} = if_not_exists(#a{n}, :zero) + :a{n}"));
    }
    let mut condition = "attribute_exists(#pk) AND (attribute_not_exists(#ttl) OR #ttl >= :now)".to_owned();
    for (n, guard) in guards.iter().enumerate() {
        let (attr, test, value) = match guard {
            Guard::AtLeast(attr, min) => (attr, format!("#g{n} >= :g{n}"), AttributeValue::N(min.to_string())),
            // An absent attribute counts as zero, as it does for the deltas.
            Guard::AtMost(attr, max) if *max >= 0 => {
                (attr, format!("(attribute_not_exists(#g{n}) OR #g{n} <= :g{n})"), AttributeValue::N(max.to_string()))
            }
            Guard::AtMost(attr, max) => (attr, format!("#g{n} <= :g{n}"), AttributeValue::N(max.to_string())),
            Guard::Equals(attr, value) => {
                let value = serde_dynamo::to_attribute_value(value).map_err(|e| StoreError::backend(context, e))?;
                (attr, format!("#g{n} = :g{n}"), value)
            }
        };
        names.insert(format!("#g{n}"), attr.clone());
        values.insert(format!(":g{n}"), value);
        condition.push_str(&format!(" AND {test}"));
    }
    Ok(Adjustment { update: format!("SET {}", sets.join(", ")), condition, names, values })
}

/// Cancellation reason codes worth retrying: nothing was wrong with the request.
fn retryable_reason(code: Option<&str>) -> bool {
    matches!(code, Some("TransactionConflict" | "ThrottlingError" | "ProvisionedThroughputExceeded"))
}

impl DynamoStore {
    async fn get_live(&self, key: &ItemKey, context: &str) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_map(key)))
            .consistent_read(true)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| sdk_error(context, e))?;
        let size = out.item.as_ref().map_or(0, item_size);
        self.meter.read(out.consumed_capacity.as_slice(), size, true);
        match out.item {
            None => Ok(None),
            Some(map) => {
                let item = from_dynamo(map, context)?;
                Ok((!rules::is_expired(&item.attrs, rules::now_epoch())).then_some(item))
            }
        }
    }

    async fn put_one(&self, item: &Item, condition: &Condition, context: &str) -> Result<(), StoreError> {
        let map = to_dynamo(item, context)?;
        let units = write_units(item_size(&map));
        let mut request = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(map))
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        if let Some(e) = expression(condition, rules::now_epoch()) {
            request = request
                .condition_expression(e.text)
                .set_expression_attribute_names(Some(e.names))
                .set_expression_attribute_values(Some(e.values));
        }
        retry::run(retry::TRANSACTION_CONFLICT, |_| async {
            match request.clone().send().await {
                Ok(out) => {
                    self.meter.write(out.consumed_capacity.as_slice(), units);
                    Ok(Done(()))
                }
                Err(err) => match err.as_service_error() {
                    Some(PutItemError::ConditionalCheckFailedException(_)) => {
                        Err(StoreError::ConditionFailed { index: 0 })
                    }
                    Some(PutItemError::TransactionConflictException(_)) => {
                        Ok(Again(StoreError::Contended(context.to_owned())))
                    }
                    _ => Err(sdk_error(context, err)),
                },
            }
        })
        .await
    }

    async fn delete_one(&self, key: &ItemKey, condition: &Condition, context: &str) -> Result<(), StoreError> {
        let mut request = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key_map(key)))
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        if let Some(e) = expression(condition, rules::now_epoch()) {
            request = request
                .condition_expression(e.text)
                .set_expression_attribute_names(Some(e.names))
                .set_expression_attribute_values(Some(e.values));
        }
        retry::run(retry::TRANSACTION_CONFLICT, |_| async {
            match request.clone().send().await {
                Ok(out) => {
                    self.meter.write(out.consumed_capacity.as_slice(), 1.0);
                    Ok(Done(()))
                }
                Err(err) => match err.as_service_error() {
                    Some(DeleteItemError::ConditionalCheckFailedException(_)) => {
                        Err(StoreError::ConditionFailed { index: 0 })
                    }
                    Some(DeleteItemError::TransactionConflictException(_)) => {
                        Ok(Again(StoreError::Contended(context.to_owned())))
                    }
                    _ => Err(sdk_error(context, err)),
                },
            }
        })
        .await
    }

    /// The `TransactWriteItems` entries for `writes`, and for each entry the index
    /// of its write (a `Check` under `Condition::None` needs no entry).
    fn transact_items(
        &self,
        writes: &[WriteOp],
        context: &str,
    ) -> Result<(Vec<TransactWriteItem>, Vec<usize>), StoreError> {
        let now = rules::now_epoch();
        let build = |e: aws_sdk_dynamodb::error::BuildError| StoreError::backend(context, e);
        let mut items = Vec::with_capacity(writes.len());
        let mut positions = Vec::with_capacity(writes.len());
        for (index, write) in writes.iter().enumerate() {
            let entry = match write {
                WriteOp::Put { item, condition } => {
                    let mut put = Put::builder().table_name(&self.table).set_item(Some(to_dynamo(item, context)?));
                    if let Some(e) = expression(condition, now) {
                        put = put
                            .condition_expression(e.text)
                            .set_expression_attribute_names(Some(e.names))
                            .set_expression_attribute_values(Some(e.values));
                    }
                    TransactWriteItem::builder().put(put.build().map_err(build)?).build()
                }
                WriteOp::Delete { key, condition } => {
                    let mut delete = Delete::builder().table_name(&self.table).set_key(Some(key_map(key)));
                    if let Some(e) = expression(condition, now) {
                        delete = delete
                            .condition_expression(e.text)
                            .set_expression_attribute_names(Some(e.names))
                            .set_expression_attribute_values(Some(e.values));
                    }
                    TransactWriteItem::builder().delete(delete.build().map_err(build)?).build()
                }
                WriteOp::Check { key, condition } => {
                    let Some(e) = expression(condition, now) else { continue };
                    let check = ConditionCheck::builder()
                        .table_name(&self.table)
                        .set_key(Some(key_map(key)))
                        .condition_expression(e.text)
                        .set_expression_attribute_names(Some(e.names))
                        .set_expression_attribute_values(Some(e.values))
                        .build()
                        .map_err(build)?;
                    TransactWriteItem::builder().condition_check(check).build()
                }
                WriteOp::Adjust { key, add, guards } => {
                    let e = adjustment(add, guards, now, context)?;
                    let update = Update::builder()
                        .table_name(&self.table)
                        .set_key(Some(key_map(key)))
                        .update_expression(e.update)
                        .condition_expression(e.condition)
                        .set_expression_attribute_names(Some(e.names))
                        .set_expression_attribute_values(Some(e.values))
                        .build()
                        .map_err(build)?;
                    TransactWriteItem::builder().update(update).build()
                }
            };
            items.push(entry);
            positions.push(index);
        }
        Ok((items, positions))
    }

    async fn transact_many(&self, writes: &[WriteOp], context: &str) -> Result<(), StoreError> {
        let (items, positions) = self.transact_items(writes, context)?;
        if items.is_empty() {
            return Ok(());
        }
        // Twice the units of each write, as for every transactional write.
        let units: f64 =
            items.iter().map(|entry| 2.0 * entry.put().map_or(1.0, |put| write_units(item_size(put.item())))).sum();
        let request = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        retry::run(retry::TRANSACTION_CONFLICT, |_| async {
            // A token per attempt makes the SDK's own retries of this attempt (after
            // a timeout or a 5xx) idempotent: DynamoDB does not apply it twice.
            let token = ulid::Ulid::new().to_string();
            let err = match request.clone().client_request_token(token).send().await {
                Ok(out) => {
                    self.meter.write(out.consumed_capacity(), units);
                    return Ok(Done(()));
                }
                Err(err) => err,
            };
            if let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) = err.as_service_error() {
                let reasons = cancelled.cancellation_reasons();
                if let Some(failed) = reasons.iter().position(|r| r.code() == Some("ConditionalCheckFailed")) {
                    let index = positions.get(failed).copied().unwrap_or(failed);
                    return Err(StoreError::ConditionFailed { index });
                }
                if reasons.iter().any(|r| retryable_reason(r.code())) {
                    return Ok(Again(StoreError::Contended(context.to_owned())));
                }
            }
            Err(sdk_error(context, err))
        })
        .await
    }
}

#[async_trait]
impl Store for DynamoStore {
    async fn get(&self, key: &ItemKey) -> Result<Option<Item>, StoreError> {
        rules::check_key(key)?;
        self.get_live(key, &format!("get item {}/{} from table {}", key.pk, key.sk, self.table)).await
    }

    async fn transact(&self, writes: Vec<WriteOp>) -> Result<(), StoreError> {
        let writes = rules::check_writes(writes)?;
        let context = format!("{} in table {}", rules::describe_writes(&writes), self.table);
        match writes.as_slice() {
            [] => Ok(()),
            [WriteOp::Put { item, condition }] => self.put_one(item, condition, &context).await,
            [WriteOp::Delete { key, condition }] => self.delete_one(key, condition, &context).await,
            [WriteOp::Check { key, condition }] => {
                let live = self.get_live(key, &context).await?;
                match rules::condition_holds(condition, live.as_ref().map(|item| &item.attrs)) {
                    true => Ok(()),
                    false => Err(StoreError::ConditionFailed { index: 0 }),
                }
            }
            _ => self.transact_many(&writes, &context).await,
        }
    }

    async fn query(&self, query: &Query) -> Result<Page, StoreError> {
        rules::check_query(query)?;
        let context = format!("{} in table {}", rules::query_context(query), self.table);
        let (partition_attr, sort_attr) = match query.index {
            None => ("pk", "sk"),
            Some(index) => index.key_attrs(),
        };
        let mut condition = "#p = :p".to_owned();
        let mut names = HashMap::from([("#p".to_owned(), partition_attr.to_owned())]);
        let mut values = HashMap::from([(":p".to_owned(), AttributeValue::S(query.partition.clone()))]);
        if let Some(prefix) = query.sort_prefix.as_deref().filter(|p| !p.is_empty()) {
            condition.push_str(" AND begins_with(#s, :prefix)");
            names.insert("#s".to_owned(), sort_attr.to_owned());
            values.insert(":prefix".to_owned(), AttributeValue::S(prefix.to_owned()));
        }
        if let Some((low, high)) = &query.sort_between {
            condition.push_str(" AND #s BETWEEN :low AND :high");
            names.insert("#s".to_owned(), sort_attr.to_owned());
            values.insert(":low".to_owned(), AttributeValue::S(low.clone()));
            values.insert(":high".to_owned(), AttributeValue::S(high.clone()));
        }
        let request = self
            .client
            .query()
            .table_name(&self.table)
            .set_index_name(query.index.map(|index| index.name().to_owned()))
            .key_condition_expression(condition)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .scan_index_forward(query.ascending)
            // Indexes are global, hence eventually consistent; the table reads its writes.
            .consistent_read(query.index.is_none());

        // The start key: the table key plus, for an index, the item's index key.
        let mut start = query.start_after.as_ref().map(|after| {
            let mut key = key_map(&after.key);
            if let Some((index_pk, index_sk)) = rules::sort_key(query, after).filter(|_| query.index.is_some()) {
                key.insert(partition_attr.to_owned(), AttributeValue::S(index_pk.to_owned()));
                key.insert(sort_attr.to_owned(), AttributeValue::S(index_sk.to_owned()));
            }
            key
        });
        // Read until limit + 1 live items (to know whether more follow) or the end;
        // expired items are dropped, so a DynamoDB page may hold fewer.
        let now = rules::now_epoch();
        let mut items = Vec::new();
        loop {
            let wanted = i32::try_from(query.limit + 1 - items.len()).unwrap_or(i32::MAX);
            let out = request
                .clone()
                .limit(wanted)
                .set_exclusive_start_key(start.take())
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await
                .map_err(|e| sdk_error(&context, e))?;
            let size = out.items().iter().map(item_size).sum();
            self.meter.read(out.consumed_capacity.as_slice(), size, query.index.is_none());
            for map in out.items.unwrap_or_default() {
                let item = from_dynamo(map, &context)?;
                if !rules::is_expired(&item.attrs, now) {
                    items.push(item);
                }
            }
            match out.last_evaluated_key {
                Some(next) if items.len() <= query.limit => start = Some(next),
                _ => break,
            }
        }
        let last = if items.len() > query.limit {
            items.truncate(query.limit);
            items.last().cloned()
        } else {
            None
        };
        Ok(Page { items, last })
    }

    /// `UpdateItem` adding one to a live item (or creating it), else setting one
    /// on an expired item: each step is conditional, so neither can lose a count.
    async fn increment(&self, key: &ItemKey, attr: &str, expires_at: i64) -> Result<i64, StoreError> {
        rules::check_key(key)?;
        let context = format!("increment {attr} of {}/{}", key.pk, key.sk);
        let names = HashMap::from([("#n".to_owned(), attr.to_owned()), ("#ttl".to_owned(), ATTR_TTL.to_owned())]);
        let context = &context;
        let names = &names;
        retry::run(retry::TRANSACTION_CONFLICT, |_| async move {
            let now = AttributeValue::N(rules::now_epoch().to_string());
            let values = HashMap::from([
                (":one".to_owned(), AttributeValue::N("1".into())),
                (":exp".to_owned(), AttributeValue::N(expires_at.to_string())),
                (":now".to_owned(), now),
            ]);
            // Live or absent: add. Expired: start again at one.
            for (update, condition) in [
                ("ADD #n :one SET #ttl = :exp", "attribute_not_exists(#ttl) OR #ttl >= :now"),
                ("SET #n = :one, #ttl = :exp", "#ttl < :now"),
            ] {
                let sent = self
                    .client
                    .update_item()
                    .table_name(&self.table)
                    .set_key(Some(key_map(key)))
                    .update_expression(update)
                    .condition_expression(condition)
                    .set_expression_attribute_names(Some(names.clone()))
                    .set_expression_attribute_values(Some(values.clone()))
                    .return_values(ReturnValue::UpdatedNew)
                    .return_consumed_capacity(ReturnConsumedCapacity::Total)
                    .send()
                    .await;
                match sent {
                    Ok(out) => {
                        self.meter.write(out.consumed_capacity.as_slice(), 1.0);
                        return match out.attributes.as_ref().and_then(|a| a.get(attr)) {
                            Some(AttributeValue::N(n)) => {
                                n.parse().map(Done).map_err(|e| StoreError::backend(context, e))
                            }
                            _ => Err(StoreError::backend(context, "UpdateItem returned no count")),
                        };
                    }
                    Err(err) => match err.as_service_error() {
                        Some(UpdateItemError::ConditionalCheckFailedException(_)) => continue,
                        Some(UpdateItemError::TransactionConflictException(_)) => break,
                        _ => return Err(sdk_error(context, err)),
                    },
                }
            }
            Ok(Again(StoreError::backend(context, "the count kept changing between its live and expired forms")))
        })
        .await
    }

    async fn scan(&self, scan: &Scan) -> Result<ScanPage, StoreError> {
        rules::check_scan(scan)?;
        let context = format!("scan segment {} of {} of table {}", scan.segment, scan.total_segments, self.table);
        let out = self
            .client
            .scan()
            .table_name(&self.table)
            .segment(scan.segment as i32)
            .total_segments(scan.total_segments as i32)
            .limit(i32::try_from(scan.limit).unwrap_or(1000))
            .set_exclusive_start_key(scan.start_after.as_ref().map(key_map))
            .consistent_read(true)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| sdk_error(&context, e))?;
        let read_units = out.consumed_capacity().and_then(|c| c.capacity_units()).unwrap_or(0.0);
        self.meter.read(out.consumed_capacity.as_slice(), out.items().iter().map(item_size).sum(), true);
        let last = match out.last_evaluated_key() {
            Some(key) if !key.is_empty() => {
                let text = |name: &str| key.get(name).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
                Some(ItemKey::new(text("pk"), text("sk")))
            }
            _ => None,
        };
        // DynamoDB deletes expired items lazily: drop them here, as every read does.
        let now = rules::now_epoch();
        let mut items = Vec::new();
        for map in out.items.unwrap_or_default() {
            let item = from_dynamo(map, &context)?;
            if !rules::is_expired(&item.attrs, now) {
                items.push(item);
            }
        }
        Ok(ScanPage { items, last, read_units })
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let key = ItemKey::new(PING_PK, "-");
        self.client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_map(&key)))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| sdk_error(&format!("ping table {}", self.table), e))
            .map(|out| self.meter.read(out.consumed_capacity.as_slice(), 0, false))
    }
}
