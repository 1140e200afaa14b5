//! The item store contract: reads, conditional writes, transactions, expiry,
//! table and index queries, and concurrent conditional creates.

use std::sync::Arc;

use futures::TryStreamExt;
use serde_json::json;
use shared::ports::{Condition, Index, ItemKey, Query, Store, StoreError, WriteOp};

use crate::support::{bare, item, now, query_all, settle_index, sks, Backend};

fn key(pk: &str, sk: &str) -> ItemKey {
    ItemKey::new(pk, sk)
}

fn put(item: shared::ports::Item, condition: Condition) -> WriteOp {
    WriteOp::Put { item, condition }
}

pub async fn put_then_get_round_trips_nested_attributes<B: Backend>() {
    let store = B::store().await;
    let original = item(
        "USER#1",
        "PROFILE",
        json!({
            "name": "Åsa Öberg 🍓",
            "empty": "",
            "count": 42,
            "negative": -7,
            "big": 9_007_199_254_740_993_i64,
            "active": true,
            "nothing": null,
            "tags": ["a", 1, false, null, { "deep": [1, 2, { "deeper": "x" }] }],
            "address": { "street": "1 Farm Lane", "geo": { "zone": 3 }, "lines": [] },
            "emptyMap": {},
        }),
    );
    store.put(original.clone(), Condition::None).await.unwrap();
    assert_eq!(store.get(&original.key).await.unwrap(), Some(original));
}

pub async fn get_of_a_missing_item_is_none<B: Backend>() {
    let store = B::store().await;
    assert_eq!(store.get(&key("USER#missing", "PROFILE")).await.unwrap(), None);
}

pub async fn put_replaces_the_whole_item<B: Backend>() {
    let store = B::store().await;
    store.put(item("A", "1", json!({ "x": 1, "y": 2 })), Condition::None).await.unwrap();
    let replacement = item("A", "1", json!({ "x": 3 }));
    store.put(replacement.clone(), Condition::None).await.unwrap();
    assert_eq!(store.get(&key("A", "1")).await.unwrap(), Some(replacement));
}

pub async fn not_exists_passes_once_then_fails<B: Backend>() {
    let store = B::store().await;
    store.put(item("A", "1", json!({ "n": 1 })), Condition::NotExists).await.unwrap();
    let second = store.put(item("A", "1", json!({ "n": 2 })), Condition::NotExists).await;
    assert!(matches!(second, Err(StoreError::ConditionFailed { index: 0 })), "{second:?}");
    assert_eq!(store.get(&key("A", "1")).await.unwrap().unwrap().int("n"), Some(1));
}

pub async fn exists_fails_on_a_missing_item_and_passes_on_a_present_one<B: Backend>() {
    let store = B::store().await;
    let missing = store.put(item("A", "1", json!({ "n": 1 })), Condition::Exists).await;
    assert!(matches!(missing, Err(StoreError::ConditionFailed { index: 0 })), "{missing:?}");
    assert_eq!(store.get(&key("A", "1")).await.unwrap(), None);
    store.put(item("A", "1", json!({ "n": 1 })), Condition::None).await.unwrap();
    store.put(item("A", "1", json!({ "n": 2 })), Condition::Exists).await.unwrap();
    assert_eq!(store.get(&key("A", "1")).await.unwrap().unwrap().int("n"), Some(2));
}

pub async fn version_condition_passes_on_a_match_only<B: Backend>() {
    let store = B::store().await;
    let on_missing = store.put(item("A", "1", json!({ "version": 1 })), Condition::VersionIs(0)).await;
    assert!(matches!(on_missing, Err(StoreError::ConditionFailed { index: 0 })), "{on_missing:?}");
    store.put(item("A", "1", json!({ "version": 1 })), Condition::NotExists).await.unwrap();
    let stale = store.put(item("A", "1", json!({ "version": 3 })), Condition::VersionIs(2)).await;
    assert!(matches!(stale, Err(StoreError::ConditionFailed { index: 0 })), "{stale:?}");
    store.put(item("A", "1", json!({ "version": 2 })), Condition::VersionIs(1)).await.unwrap();
    assert_eq!(store.get(&key("A", "1")).await.unwrap().unwrap().int("version"), Some(2));
    let stale_delete = store.delete(key("A", "1"), Condition::VersionIs(1)).await;
    assert!(matches!(stale_delete, Err(StoreError::ConditionFailed { index: 0 })), "{stale_delete:?}");
    store.delete(key("A", "1"), Condition::VersionIs(2)).await.unwrap();
    assert_eq!(store.get(&key("A", "1")).await.unwrap(), None);
}

pub async fn transact_is_all_or_nothing<B: Backend>() {
    let store = B::store().await;
    store.put(item("ORDER#1", "ORDER", json!({ "version": 1 })), Condition::None).await.unwrap();
    store.put(bare("GONE", "-"), Condition::None).await.unwrap();
    let writes = |version| {
        vec![
            put(item("ORDER#1", "LINE#a", json!({ "qty": 2 })), Condition::NotExists),
            put(item("STOCK#a", "-", json!({ "stock": 5 })), Condition::None),
            put(item("ORDER#1", "ORDER", json!({ "version": 2 })), Condition::VersionIs(version)),
            WriteOp::Delete { key: key("GONE", "-"), condition: Condition::Exists },
        ]
    };
    let failed = store.transact(writes(7)).await;
    assert!(matches!(failed, Err(StoreError::ConditionFailed { index: 2 })), "{failed:?}");
    assert_eq!(store.get(&key("ORDER#1", "LINE#a")).await.unwrap(), None);
    assert_eq!(store.get(&key("STOCK#a", "-")).await.unwrap(), None);
    assert_eq!(store.get(&key("ORDER#1", "ORDER")).await.unwrap().unwrap().int("version"), Some(1));
    assert!(store.get(&key("GONE", "-")).await.unwrap().is_some());

    store.transact(writes(1)).await.unwrap();
    assert!(store.get(&key("ORDER#1", "LINE#a")).await.unwrap().is_some());
    assert!(store.get(&key("STOCK#a", "-")).await.unwrap().is_some());
    assert_eq!(store.get(&key("ORDER#1", "ORDER")).await.unwrap().unwrap().int("version"), Some(2));
    assert_eq!(store.get(&key("GONE", "-")).await.unwrap(), None);
}

pub async fn transact_reports_the_first_failing_write<B: Backend>() {
    let store = B::store().await;
    store.put(bare("TAKEN", "-"), Condition::None).await.unwrap();
    let writes = vec![
        put(bare("NEW", "-"), Condition::NotExists),
        WriteOp::Check { key: key("MISSING", "-"), condition: Condition::Exists },
        put(bare("TAKEN", "-"), Condition::NotExists),
    ];
    let failed = store.transact(writes).await;
    assert!(matches!(failed, Err(StoreError::ConditionFailed { index: 1 })), "{failed:?}");
    assert_eq!(store.get(&key("NEW", "-")).await.unwrap(), None);
}

pub async fn check_guards_a_write_without_changing_its_item<B: Backend>() {
    let store = B::store().await;
    let guard = item("CATEGORY#1", "CATEGORY", json!({ "version": 4 }));
    store.put(guard.clone(), Condition::None).await.unwrap();
    let writes = |version| {
        vec![
            WriteOp::Check { key: guard.key.clone(), condition: Condition::VersionIs(version) },
            put(bare("PRODUCT#1", "PRODUCT"), Condition::NotExists),
            WriteOp::Check { key: key("ANY", "-"), condition: Condition::None },
        ]
    };
    let failed = store.transact(writes(3)).await;
    assert!(matches!(failed, Err(StoreError::ConditionFailed { index: 0 })), "{failed:?}");
    store.transact(writes(4)).await.unwrap();
    assert!(store.get(&key("PRODUCT#1", "PRODUCT")).await.unwrap().is_some());
    assert_eq!(store.get(&guard.key).await.unwrap(), Some(guard));
    assert_eq!(store.get(&key("ANY", "-")).await.unwrap(), None);
    // A lone check is a transaction too.
    store
        .transact(vec![WriteOp::Check { key: key("CATEGORY#1", "CATEGORY"), condition: Condition::Exists }])
        .await
        .unwrap();
    let lone = store.transact(vec![WriteOp::Check { key: key("NONE", "-"), condition: Condition::Exists }]).await;
    assert!(matches!(lone, Err(StoreError::ConditionFailed { index: 0 })), "{lone:?}");
}

pub async fn two_writes_to_one_key_are_invalid<B: Backend>() {
    let store = B::store().await;
    let writes = vec![
        put(bare("A", "1"), Condition::None),
        put(bare("B", "1"), Condition::None),
        WriteOp::Delete { key: key("A", "1"), condition: Condition::None },
    ];
    let result = store.transact(writes).await;
    assert!(matches!(result, Err(StoreError::Invalid(_))), "{result:?}");
    assert_eq!(store.get(&key("A", "1")).await.unwrap(), None);
    assert_eq!(store.get(&key("B", "1")).await.unwrap(), None);
}

pub async fn at_most_25_writes_fit_in_a_transaction<B: Backend>() {
    let store = B::store().await;
    let writes = |n: usize| (0..n).map(|i| put(bare("BULK", &format!("{i:02}")), Condition::NotExists)).collect();
    let too_many = store.transact(writes(26)).await;
    assert!(matches!(too_many, Err(StoreError::Invalid(_))), "{too_many:?}");
    assert_eq!(store.get(&key("BULK", "00")).await.unwrap(), None);
    store.transact(writes(25)).await.unwrap();
    assert_eq!(store.query(&Query { limit: 100, ..Query::partition("BULK") }).await.unwrap().items.len(), 25);
}

pub async fn non_integer_numbers_are_invalid<B: Backend>() {
    let store = B::store().await;
    let result = store.put(item("A", "1", json!({ "price": { "amount": 1.5 } })), Condition::None).await;
    assert!(matches!(result, Err(StoreError::Invalid(_))), "{result:?}");
    assert_eq!(store.get(&key("A", "1")).await.unwrap(), None);
}

pub async fn delete_removes_an_item_and_tolerates_a_missing_one<B: Backend>() {
    let store = B::store().await;
    store.put(bare("A", "1"), Condition::None).await.unwrap();
    store.delete(key("A", "1"), Condition::None).await.unwrap();
    assert_eq!(store.get(&key("A", "1")).await.unwrap(), None);
    store.delete(key("A", "1"), Condition::None).await.unwrap();
    let required = store.delete(key("A", "1"), Condition::Exists).await;
    assert!(matches!(required, Err(StoreError::ConditionFailed { index: 0 })), "{required:?}");
}

pub async fn expired_items_read_as_absent<B: Backend>() {
    let store = B::store().await;
    let expired = item("IDEMPOTENCY#k", "-", json!({ "ttl": now() - 60, "gsi1pk": "IDEM", "gsi1sk": "k" }));
    store.put(expired.clone(), Condition::None).await.unwrap();
    let live = item("IDEMPOTENCY#l", "-", json!({ "ttl": now() + 3600, "gsi1pk": "IDEM", "gsi1sk": "l" }));
    store.put(live.clone(), Condition::None).await.unwrap();

    assert_eq!(store.get(&expired.key).await.unwrap(), None);
    assert_eq!(store.get(&live.key).await.unwrap(), Some(live.clone()));
    let exists = store.put(expired.clone(), Condition::Exists).await;
    assert!(matches!(exists, Err(StoreError::ConditionFailed { index: 0 })), "{exists:?}");
    let index_query = Query::index(Index::Gsi1, "IDEM");
    settle_index(&*store, &index_query, 1).await;
    assert_eq!(store.query(&index_query).await.unwrap().items, vec![live.clone()]);

    // An expired item counts as absent: creating over it succeeds.
    let fresh = item("IDEMPOTENCY#k", "-", json!({ "ttl": now() + 3600 }));
    store.put(fresh.clone(), Condition::NotExists).await.unwrap();
    assert_eq!(store.get(&fresh.key).await.unwrap(), Some(fresh));
    // A live one does not.
    let taken = store.put(live, Condition::NotExists).await;
    assert!(matches!(taken, Err(StoreError::ConditionFailed { index: 0 })), "{taken:?}");
}

pub async fn table_queries_read_one_partition_in_sort_order<B: Backend>() {
    let store = B::store().await;
    for sk in ["B#02", "A#03", "A#01", "B#01", "A#02", "C"] {
        store.put(item("ORDER#1", sk, json!({ "lower": sk.to_lowercase() })), Condition::None).await.unwrap();
    }
    store.put(bare("ORDER#2", "A#00"), Condition::None).await.unwrap();
    store.put(bare("ORDER#10", "A#00"), Condition::None).await.unwrap();

    let all = store.query(&Query::partition("ORDER#1")).await.unwrap();
    assert_eq!(sks(&all.items), ["A#01", "A#02", "A#03", "B#01", "B#02", "C"]);
    assert_eq!(all.last, None);
    assert_eq!(all.items[0].str("lower"), Some("a#01"));

    let prefixed = Query { sort_prefix: Some("A#".into()), ..Query::partition("ORDER#1") };
    assert_eq!(sks(&store.query(&prefixed).await.unwrap().items), ["A#01", "A#02", "A#03"]);
    let descending = Query { ascending: false, ..prefixed.clone() };
    assert_eq!(sks(&store.query(&descending).await.unwrap().items), ["A#03", "A#02", "A#01"]);
    let none = Query { sort_prefix: Some("Z".into()), ..Query::partition("ORDER#1") };
    assert_eq!(store.query(&none).await.unwrap(), shared::ports::Page { items: vec![], last: None });
    assert!(store.query(&Query::partition("ORDER#3")).await.unwrap().items.is_empty());
}

pub async fn pagination_returns_every_item_once_in_order<B: Backend>() {
    let store = B::store().await;
    let expected: Vec<String> = (0..25).map(|i| format!("LINE#{i:02}")).collect();
    for sk in expected.iter().rev() {
        store.put(bare("ORDER#1", sk), Condition::None).await.unwrap();
    }
    store.put(bare("ORDER#1", "META"), Condition::None).await.unwrap();
    let query = Query { limit: 7, sort_prefix: Some("LINE#".into()), ..Query::partition("ORDER#1") };

    let (items, pages) = query_all(&*store, &query).await;
    assert_eq!(sks(&items), expected);
    assert_eq!(pages.iter().map(|p| p.items.len()).collect::<Vec<_>>(), [7, 7, 7, 4]);
    assert_eq!(pages[0].last.as_ref().map(|last| last.key.sk.as_str()), Some("LINE#06"));

    let (items, _) = query_all(&*store, &Query { ascending: false, ..query.clone() }).await;
    let reversed: Vec<String> = expected.iter().rev().cloned().collect();
    assert_eq!(sks(&items), reversed);

    // A page that ends exactly at the end says so.
    let exact = store.query(&Query { limit: 25, ..query }).await.unwrap();
    assert_eq!((exact.items.len(), exact.last), (25, None));
}

pub async fn gsi1_queries_order_by_the_index_sort_key<B: Backend>() {
    let store = B::store().await;
    // Products of one category, newest first, from different partitions.
    for (id, created) in [("p3", "2024-03"), ("p1", "2024-01"), ("p5", "2024-05"), ("p2", "2024-02"), ("p4", "2024-04")]
    {
        let product = item(
            &format!("PRODUCT#{id}"),
            "PRODUCT",
            json!({ "gsi1pk": "CATEGORY#veg", "gsi1sk": format!("{created}#{id}"), "id": id }),
        );
        store.put(product, Condition::None).await.unwrap();
    }
    let other = json!({ "gsi1pk": "CATEGORY#fruit", "gsi1sk": "2024-06#p6" });
    store.put(item("PRODUCT#p6", "PRODUCT", other), Condition::None).await.unwrap();

    let newest_first = Query { ascending: false, limit: 2, ..Query::index(Index::Gsi1, "CATEGORY#veg") };
    settle_index(&*store, &newest_first, 5).await;
    let (items, pages) = query_all(&*store, &newest_first).await;
    let ids: Vec<_> = items.iter().map(|i| i.str("id").unwrap().to_owned()).collect();
    assert_eq!(ids, ["p5", "p4", "p3", "p2", "p1"]);
    assert_eq!(pages.len(), 3);
    assert_eq!(items[0].key, ItemKey::new("PRODUCT#p5", "PRODUCT"));

    let early = Query { sort_prefix: Some("2024-0".into()), ..Query::index(Index::Gsi1, "CATEGORY#veg") };
    assert_eq!(store.query(&early).await.unwrap().items.len(), 5);
    let february = Query { sort_prefix: Some("2024-02".into()), ..Query::index(Index::Gsi1, "CATEGORY#veg") };
    let found = store.query(&february).await.unwrap().items;
    assert_eq!(found.iter().map(|i| i.key.pk.as_str()).collect::<Vec<_>>(), ["PRODUCT#p2"]);
}

pub async fn gsi2_queries_read_their_own_keys<B: Backend>() {
    let store = B::store().await;
    for (order, status) in [("o1", "PLACED"), ("o2", "SHIPPED"), ("o3", "PLACED"), ("o4", "PLACED")] {
        let attrs = json!({
            "gsi1pk": "CUSTOMER#c1", "gsi1sk": order,
            "gsi2pk": "FARMER#f1", "gsi2sk": format!("{status}#{order}"),
        });
        store.put(item(&format!("ORDER#{order}"), "ORDER", attrs), Condition::None).await.unwrap();
    }
    let placed = Query { sort_prefix: Some("PLACED#".into()), limit: 2, ..Query::index(Index::Gsi2, "FARMER#f1") };
    settle_index(&*store, &placed, 3).await;
    let (items, pages) = query_all(&*store, &placed).await;
    let pks: Vec<_> = items.iter().map(|i| i.key.pk.as_str()).collect();
    assert_eq!(pks, ["ORDER#o1", "ORDER#o3", "ORDER#o4"]);
    assert_eq!(pages.len(), 2);
    // gsi1 keys do not leak into gsi2 and vice versa.
    assert!(store.query(&Query::index(Index::Gsi2, "CUSTOMER#c1")).await.unwrap().items.is_empty());
    assert!(store.query(&Query::index(Index::Gsi1, "FARMER#f1")).await.unwrap().items.is_empty());
}

pub async fn every_index_reads_only_its_own_keys<B: Backend>() {
    let store = B::store().await;
    let mut attrs = serde_json::Map::new();
    for (n, index) in Index::ALL.into_iter().enumerate() {
        let (pk, sk) = index.key_attrs();
        attrs.insert(pk.into(), json!(format!("P{n}")));
        attrs.insert(sk.into(), json!("s"));
    }
    store.put(item("MULTI#1", "X", serde_json::Value::Object(attrs)), Condition::None).await.unwrap();
    for (n, index) in Index::ALL.into_iter().enumerate() {
        let own = Query::index(index, format!("P{n}"));
        settle_index(&*store, &own, 1).await;
        assert_eq!(store.query(&own).await.unwrap().items.len(), 1, "{} reads its own partition", index.name());
        let other = Query::index(index, format!("P{}", (n + 1) % Index::ALL.len()));
        assert!(store.query(&other).await.unwrap().items.is_empty(), "{} reads another index's keys", index.name());
    }
}

pub async fn sort_ranges_bound_a_query_in_both_directions<B: Backend>() {
    let store = B::store().await;
    for price in [100, 250, 300, 450, 900] {
        let attrs = json!({ "gsi6pk": "PRODUCTS", "gsi6sk": format!("{price:010}#p{price}") });
        store.put(item(&format!("PRODUCT#p{price}"), "PRODUCT", attrs), Condition::None).await.unwrap();
    }
    let range = Some((format!("{:010}", 250), format!("{:010}~", 450)));
    let ascending = Query { sort_between: range.clone(), limit: 2, ..Query::index(Index::Gsi6, "PRODUCTS") };
    settle_index(&*store, &ascending, 3).await;
    let (items, pages) = query_all(&*store, &ascending).await;
    let pks: Vec<_> = items.iter().map(|i| i.key.pk.as_str()).collect();
    assert_eq!(pks, ["PRODUCT#p250", "PRODUCT#p300", "PRODUCT#p450"]);
    assert_eq!(pages.len(), 2);
    let descending = Query { ascending: false, ..ascending.clone() };
    let (items, _) = query_all(&*store, &descending).await;
    let pks: Vec<_> = items.iter().map(|i| i.key.pk.as_str()).collect();
    assert_eq!(pks, ["PRODUCT#p450", "PRODUCT#p300", "PRODUCT#p250"]);
    let both = Query { sort_prefix: Some("0".into()), ..ascending };
    assert!(matches!(store.query(&both).await, Err(StoreError::Invalid(_))));
}

pub async fn items_without_index_keys_stay_out_of_the_index<B: Backend>() {
    let store = B::store().await;
    store.put(item("A", "1", json!({ "gsi1pk": "P", "gsi1sk": "1" })), Condition::None).await.unwrap();
    store.put(item("A", "2", json!({ "gsi1pk": "P" })), Condition::None).await.unwrap();
    store.put(item("A", "3", json!({ "other": "P" })), Condition::None).await.unwrap();
    store.put(item("A", "4", json!({ "gsi1pk": "P", "gsi1sk": "4", "gsi2pk": null })), Condition::None).await.unwrap();
    // Re-writing an item without its index keys takes it out of the index.
    store.put(item("A", "4", json!({ "gsi1pk": null, "gsi1sk": null })), Condition::None).await.unwrap();
    let query = Query::index(Index::Gsi1, "P");
    settle_index(&*store, &query, 1).await;
    let items = store.query(&query).await.unwrap().items;
    assert_eq!(items.iter().map(|i| i.key.sk.as_str()).collect::<Vec<_>>(), ["1"]);
    // A null index key is dropped rather than stored.
    assert_eq!(store.get(&key("A", "4")).await.unwrap(), Some(bare("A", "4")));
}

pub async fn invalid_queries_are_rejected<B: Backend>() {
    let store = B::store().await;
    for limit in [0, 1001] {
        let result = store.query(&Query { limit, ..Query::partition("A") }).await;
        assert!(matches!(result, Err(StoreError::Invalid(_))), "{result:?}");
    }
    let elsewhere = Query { start_after: Some(bare("B", "1")), ..Query::partition("A") };
    assert!(matches!(store.query(&elsewhere).await, Err(StoreError::Invalid(_))));
    let unindexed = Query { start_after: Some(bare("A", "1")), ..Query::index(Index::Gsi1, "A") };
    assert!(matches!(store.query(&unindexed).await, Err(StoreError::Invalid(_))));
}

/// Twenty handles (separate connections / clients, as separate processes would
/// have) create the same key at once: exactly one wins.
pub async fn twenty_concurrent_creates_of_one_key_let_exactly_one_win<B: Backend>() {
    let store = B::store().await;
    let mut handles: Vec<Arc<dyn Store>> = Vec::new();
    for _ in 0..20 {
        handles.push(store.another_handle().await);
    }
    let tasks = handles.into_iter().enumerate().map(|(i, handle)| {
        tokio::spawn(async move {
            handle.put(item("EMAIL#kim@example.com", "-", json!({ "userId": i })), Condition::NotExists).await
        })
    });
    let results: Vec<_> = futures::future::join_all(tasks).await.into_iter().map(|r| r.expect("task")).collect();
    let wins = results.iter().filter(|r| r.is_ok()).count();
    let conflicts = results.iter().filter(|r| matches!(r, Err(StoreError::ConditionFailed { index: 0 }))).count();
    assert_eq!((wins, conflicts), (1, 19), "{results:?}");
    assert!(store.get(&key("EMAIL#kim@example.com", "-")).await.unwrap().is_some());
}

/// Twenty registrations of one email at once, each a transaction of the user
/// item and the email guard: exactly one wins, the others fail on the guard.
pub async fn twenty_concurrent_registrations_let_exactly_one_win<B: Backend>() {
    let store = B::store().await;
    let mut handles: Vec<Arc<dyn Store>> = Vec::new();
    for _ in 0..20 {
        handles.push(store.another_handle().await);
    }
    let tasks = handles.into_iter().enumerate().map(|(i, handle)| {
        tokio::spawn(async move {
            let writes = vec![
                put(
                    item(&format!("USER#{i:02}"), "PROFILE", json!({ "email": "kim@example.com" })),
                    Condition::NotExists,
                ),
                put(item("EMAIL#kim@example.com", "-", json!({ "userId": i })), Condition::NotExists),
            ];
            handle.transact(writes).await
        })
    });
    let results: Vec<_> = futures::future::join_all(tasks).await.into_iter().map(|r| r.expect("task")).collect();
    let winners: Vec<usize> = results.iter().enumerate().filter(|(_, r)| r.is_ok()).map(|(i, _)| i).collect();
    let conflicts = results.iter().filter(|r| matches!(r, Err(StoreError::ConditionFailed { index: 1 }))).count();
    assert_eq!((winners.len(), conflicts), (1, 19), "{results:?}");
    let guard = store.get(&key("EMAIL#kim@example.com", "-")).await.unwrap().expect("guard written");
    assert_eq!(guard.int("userId"), Some(winners[0] as i64));
    let mut present = 0;
    for i in 0..20 {
        present += usize::from(store.get(&key(&format!("USER#{i:02}"), "PROFILE")).await.unwrap().is_some());
    }
    assert_eq!(present, 1, "only the winner's user item exists");
}

pub async fn ping_answers<B: Backend>() {
    let store = B::store().await;
    store.ping().await.unwrap();
}

pub async fn increment_counts_from_one_and_sets_the_expiry<B: Backend>() {
    let store = B::store().await;
    let counter = key("THROTTLE#a", "-");
    let expires = now() + 600;
    assert_eq!(store.increment(&counter, "count", expires).await.unwrap(), 1);
    assert_eq!(store.increment(&counter, "count", expires).await.unwrap(), 2);
    let stored = store.get(&counter).await.unwrap().unwrap();
    assert_eq!((stored.int("count"), stored.int("ttl")), (Some(2), Some(expires)));
    // An expired counter starts again.
    store.put(item("THROTTLE#b", "-", json!({ "count": 9, "ttl": now() - 5 })), Condition::None).await.unwrap();
    assert_eq!(store.increment(&key("THROTTLE#b", "-"), "count", expires).await.unwrap(), 1);
}

pub async fn twenty_concurrent_increments_each_see_a_distinct_value<B: Backend>() {
    let store = B::store().await;
    let counter = key("THROTTLE#race", "-");
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (handle, counter) = (store.another_handle().await, counter.clone());
        tasks.push(tokio::spawn(async move { handle.increment(&counter, "count", now() + 600).await.unwrap() }));
    }
    let mut seen = Vec::new();
    for task in tasks {
        seen.push(task.await.unwrap());
    }
    seen.sort_unstable();
    assert_eq!(seen, (1..=20).collect::<Vec<i64>>());
}

pub async fn adjust_adds_under_guards_and_leaves_the_rest<B: Backend>() {
    use shared::ports::Guard;
    let store = B::store().await;
    let stock = item("PRODUCT#A", "PRODUCT", json!({ "stock": 3, "status": "listed", "name": "Kale", "version": 1 }));
    store.put(stock.clone(), Condition::None).await.unwrap();
    let take = |n: i64| WriteOp::Adjust {
        key: key("PRODUCT#A", "PRODUCT"),
        add: vec![("stock".into(), -n), ("version".into(), 1)],
        guards: vec![Guard::AtLeast("stock".into(), n), Guard::Equals("status".into(), json!("listed"))],
    };
    store.transact(vec![take(2)]).await.unwrap();
    let after = store.get(&stock.key).await.unwrap().unwrap();
    assert_eq!(
        after,
        item("PRODUCT#A", "PRODUCT", json!({ "stock": 1, "status": "listed", "name": "Kale", "version": 2 }))
    );
    // Short: the guard fails, nothing in the transaction is written.
    let other = item("ORDER#1", "ORDER", json!({}));
    let short = store.transact(vec![put(other.clone(), Condition::NotExists), take(2)]).await;
    assert!(matches!(short, Err(StoreError::ConditionFailed { index: 1 })), "{short:?}");
    assert_eq!(store.get(&other.key).await.unwrap(), None);
    // An equality guard, a missing item, and an absent attribute counting as zero.
    let unlisted = item("PRODUCT#B", "PRODUCT", json!({ "stock": 9, "status": "unlisted" }));
    store.put(unlisted, Condition::None).await.unwrap();
    let refused = WriteOp::Adjust {
        key: key("PRODUCT#B", "PRODUCT"),
        add: vec![("stock".into(), -1)],
        guards: vec![Guard::Equals("status".into(), json!("listed"))],
    };
    assert!(matches!(store.transact(vec![refused]).await, Err(StoreError::ConditionFailed { index: 0 })));
    let missing = WriteOp::Adjust { key: key("PRODUCT#C", "PRODUCT"), add: vec![("stock".into(), 1)], guards: vec![] };
    assert!(matches!(store.transact(vec![missing]).await, Err(StoreError::ConditionFailed { index: 0 })));
    let counted = WriteOp::Adjust { key: key("PRODUCT#A", "PRODUCT"), add: vec![("sold".into(), 2)], guards: vec![] };
    store.transact(vec![counted]).await.unwrap();
    assert_eq!(store.get(&stock.key).await.unwrap().unwrap().int("sold"), Some(2));
    // Keys, index keys and the TTL cannot be adjusted.
    let bad = WriteOp::Adjust { key: key("PRODUCT#A", "PRODUCT"), add: vec![("gsi1pk".into(), 1)], guards: vec![] };
    assert!(matches!(store.transact(vec![bad]).await, Err(StoreError::Invalid(_))));
}

pub async fn an_at_most_guard_keeps_an_increment_within_its_bound<B: Backend>() {
    use shared::ports::Guard;
    let store = B::store().await;
    let stock = item("PRODUCT#M", "PRODUCT", json!({ "stock": 8, "version": 1 }));
    store.put(stock.clone(), Condition::None).await.unwrap();
    // Adding n keeps stock within 10 only while stock <= 10 - n.
    let give = |n: i64| WriteOp::Adjust {
        key: key("PRODUCT#M", "PRODUCT"),
        add: vec![("stock".into(), n), ("version".into(), 1)],
        guards: vec![Guard::AtMost("stock".into(), 10 - n)],
    };
    store.transact(vec![give(2)]).await.unwrap();
    assert_eq!(store.get(&stock.key).await.unwrap().unwrap().int("stock"), Some(10));
    let over = store.transact(vec![give(1)]).await;
    assert!(matches!(over, Err(StoreError::ConditionFailed { index: 0 })), "{over:?}");
    let after = store.get(&stock.key).await.unwrap().unwrap();
    assert_eq!((after.int("stock"), after.int("version")), (Some(10), Some(2)), "nothing was written");
    // An absent attribute counts as zero, as it does for the delta.
    store.put(item("PRODUCT#N", "PRODUCT", json!({})), Condition::None).await.unwrap();
    let fresh = WriteOp::Adjust {
        key: key("PRODUCT#N", "PRODUCT"),
        add: vec![("stock".into(), 3)],
        guards: vec![Guard::AtMost("stock".into(), 7)],
    };
    store.transact(vec![fresh]).await.unwrap();
    assert_eq!(store.get(&key("PRODUCT#N", "PRODUCT")).await.unwrap().unwrap().int("stock"), Some(3));
}

pub async fn concurrent_guarded_decrements_never_oversell<B: Backend>() {
    use shared::ports::Guard;
    let store = B::store().await;
    store.put(item("PRODUCT#S", "PRODUCT", json!({ "stock": 5 })), Condition::None).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let store = store.another_handle().await;
        tasks.push(tokio::spawn(async move {
            let take = WriteOp::Adjust {
                key: key("PRODUCT#S", "PRODUCT"),
                add: vec![("stock".into(), -1)],
                guards: vec![Guard::AtLeast("stock".into(), 1)],
            };
            store.transact(vec![take]).await
        }));
    }
    let mut won = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => won += 1,
            Err(StoreError::ConditionFailed { .. }) => {}
            Err(other) => panic!("{other}"),
        }
    }
    assert_eq!(won, 5);
    assert_eq!(store.get(&key("PRODUCT#S", "PRODUCT")).await.unwrap().unwrap().int("stock"), Some(0));
}

/// Every live item, by scanning each of `segments` segments page by page.
async fn scan_all(store: &dyn Store, segments: u32, limit: usize) -> Vec<Vec<ItemKey>> {
    let mut found = Vec::new();
    for segment in 0..segments {
        let pages: Vec<_> = shared::repo::scan_all(store, segment, segments, limit).try_collect().await.unwrap();
        assert!(pages.iter().all(|page| page.items.len() <= limit));
        found.push(pages.iter().flat_map(|page| page.items.iter().map(|item| item.key.clone())).collect());
    }
    found
}

pub async fn a_segmented_scan_reads_every_live_item_once<B: Backend>() {
    let store = B::store().await;
    let mut expected = Vec::new();
    for p in 0..12 {
        for s in 0..3 {
            let key = item(&format!("SCAN#{p}"), &format!("S{s}"), json!({ "n": p * 3 + s }));
            expected.push(key.key.clone());
            store.put(key, Condition::None).await.unwrap();
        }
    }
    store.put(item("SCAN#expired", "S0", json!({ "ttl": now() - 5 })), Condition::None).await.unwrap();
    expected.sort_by(|a, b| (&a.pk, &a.sk).cmp(&(&b.pk, &b.sk)));
    for segments in [1, 3] {
        let found = scan_all(&*store, segments, 5).await;
        let mut all: Vec<ItemKey> = found.iter().flatten().cloned().collect();
        let count = all.len();
        all.sort_by(|a, b| (&a.pk, &a.sk).cmp(&(&b.pk, &b.sk)));
        all.dedup();
        assert_eq!(all.len(), count, "{segments} segment(s): an item came twice");
        assert_eq!(all, expected, "{segments} segment(s): every live item, the expired one left out");
    }
    let bad = shared::ports::Scan { segment: 3, total_segments: 3, limit: 5, start_after: None };
    assert!(matches!(store.scan(&bad).await, Err(StoreError::Invalid(_))));
}
