//! Portable backups of the whole table, and their verified restore.
//!
//! A backup is `backups/<id>/` in the data bucket: parts
//! `part-<segment>-<n>.jsonl.gz` (gzip-compressed JSON lines, one item per line:
//! `{"entity", "schemaVersion", "key": {"pk", "sk"}, "data": {attributes}}`)
//! and, written last, `manifest.json` (format, counts per entity type, and each
//! part's item count, size and SHA-256). The archive objects the table's
//! archived orders point at (`crate::archive`) are copied into the backup too,
//! as `archive/<object key>`, each with its size and SHA-256 in the manifest,
//! and a restore puts them back into the target's data bucket before any item,
//! so every order reads again by id. Nothing in it depends on the backend:
//! a backup taken on DynamoDB restores into the embedded store and the other
//! way round. A backup without a manifest is incomplete and never restored.
//!
//! # Erasures stay erased
//! Erasing an account records its id in the erasure ledger
//! (`repo::users::ERASURE_PARTITION`); each manifest lists the ledger's ids
//! (`erasedUsers`). After writing the items, a restore erases again every
//! account named by the restored ledger, by the target's own ledger, and by
//! the manifest of every other authentic backup in the bucket, so restoring a
//! backup taken before an erasure does not bring the person back (as long as
//! a backup taken after it, or the target's ledger, records it).
//!
//! # Signed manifests
//! `manifest.json.sig`, written just before the manifest, holds the
//! HMAC-SHA256 of the manifest's exact bytes under the backup key
//! (`BackupKey`), which only backup and restore hold: a Secrets Manager secret
//! on AWS, `<DATA_DIR>/backup-key.bin` locally (`crate::config::backup_key`).
//! The manifest names every part and archive object by SHA-256, so the
//! signature covers the whole backup. A restore verifies it before it reads
//! anything else, and refuses an unsigned or wrongly signed backup.
//!
//! The table is read by a parallel scan (`BackupSettings::segments` readers)
//! kept within a read-capacity budget (`read_units_per_second`, from the
//! capacity DynamoDB reports per page). A restore checks the manifest and
//! every part's checksum and lines before it writes anything, and refuses a
//! non-empty target unless forced (the probe reads on past expired items
//! until it finds a live one or the table ends).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::pin::pin;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use flate2::write::GzEncoder;
use flate2::Compression;
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::OffsetDateTime;

use crate::domain::{Role, UserId};
use crate::jobs::Job;
use crate::ports::{BlobError, BlobStore, Clock, Condition, Item, ItemKey, Store, StoreError, WriteOp};
use crate::repo;
use crate::{archive, jsonl};

/// Key prefix of backups in the data bucket.
pub const PREFIX: &str = "backups/";
/// `Manifest::format` of every backup.
pub const FORMAT: &str = "marketplace-backup";
/// `Manifest::format_version` this code writes and reads.
pub const FORMAT_VERSION: u32 = 2;
/// Version of the item layouts (`crate::repo`) the lines follow.
pub const SCHEMA_VERSION: u32 = 1;
const MANIFEST: &str = "manifest.json";
const SIGNATURE: &str = "manifest.json.sig";
/// `Signature::algorithm` of every signed manifest.
const SIGNATURE_ALGORITHM: &str = "HMAC-SHA256";
/// Fewest bytes a backup key holds.
pub const MIN_KEY_BYTES: usize = 32;
const PART_CONTENT_TYPE: &str = "application/x-ndjson";
/// Writes per restore transaction (the store's maximum).
const RESTORE_CHUNK: usize = 25;

/// The HMAC-SHA256 key backup manifests are signed with.
#[derive(Clone)]
pub struct BackupKey(ring::hmac::Key);

impl std::fmt::Debug for BackupKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BackupKey(..)")
    }
}

impl BackupKey {
    /// The key made of `secret`, which holds at least `MIN_KEY_BYTES` bytes.
    pub fn new(secret: &[u8]) -> Result<Self, BackupError> {
        if secret.len() < MIN_KEY_BYTES {
            return Err(BackupError::WeakKey { bytes: secret.len() });
        }
        Ok(Self(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret)))
    }

    /// A fresh random secret for `new` (the local key file).
    pub fn generate() -> Vec<u8> {
        use ring::rand::SecureRandom;
        let mut secret = vec![0; MIN_KEY_BYTES];
        ring::rand::SystemRandom::new().fill(&mut secret).expect("the system random source is available");
        secret
    }

    fn sign(&self, bytes: &[u8]) -> Signature {
        Signature {
            algorithm: SIGNATURE_ALGORITHM.into(),
            value: hex::encode(ring::hmac::sign(&self.0, bytes).as_ref()),
        }
    }

    fn verifies(&self, bytes: &[u8], signature: &Signature) -> bool {
        signature.algorithm == SIGNATURE_ALGORITHM
            && hex::decode(&signature.value).is_ok_and(|tag| ring::hmac::verify(&self.0, bytes, &tag).is_ok())
    }
}

/// `manifest.json.sig`: the manifest's signature.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Signature {
    algorithm: String,
    /// Hex of the HMAC of `manifest.json`'s bytes.
    value: String,
}

/// How a backup runs and how long backups are kept.
#[derive(Debug, Clone, Copy)]
pub struct BackupSettings {
    /// Parallel scan readers.
    pub segments: u32,
    /// Read capacity units per second the scan may use on average (0: no limit).
    pub read_units_per_second: f64,
    /// Most items per part.
    pub part_items: usize,
    /// Backups older than this are pruned (the newest complete one always stays).
    pub retention: time::Duration,
}

impl Default for BackupSettings {
    fn default() -> Self {
        Self { segments: 4, read_units_per_second: 200.0, part_items: 50_000, retention: time::Duration::days(35) }
    }
}

/// One part of a backup, as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Part {
    pub key: String,
    pub items: u64,
    pub bytes: u64,
    /// SHA-256 (hex) of the object as stored (compressed).
    pub sha256: String,
}

/// An archive object copied into a backup, as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchiveCopy {
    /// Its key in the data bucket (under `archive::OBJECT_PREFIX`), where a restore puts it back.
    pub key: String,
    /// Its copy in the backup.
    pub copy: String,
    pub bytes: u64,
    /// SHA-256 (hex) of the object's bytes.
    pub sha256: String,
}

/// `manifest.json`: what a complete backup holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub format: String,
    pub format_version: u32,
    pub id: String,
    pub created_at: String,
    /// The backend it was taken from (`aws` or `embedded`), for information.
    pub source: String,
    pub items: u64,
    /// Items per entity type.
    pub counts: BTreeMap<String, u64>,
    pub parts: Vec<Part>,
    /// The archive objects the backed-up archived orders point at.
    pub archive_objects: Vec<ArchiveCopy>,
    /// Objects archived orders point at that were not in the data bucket when
    /// the backup ran (logged as errors; those orders answer 410 after a restore).
    pub missing_archive_objects: Vec<String>,
    /// Read capacity units the scan consumed (0 on the embedded store).
    pub read_units: f64,
    /// The accounts the erasure ledger names: a restore of any backup in the
    /// same bucket erases them again.
    pub erased_users: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LineKey {
    pk: String,
    sk: String,
}

/// One item in a part.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Line {
    entity: String,
    schema_version: u32,
    key: LineKey,
    data: Map<String, Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// The backup cannot be restored; nothing was written.
    #[error("backup {id}: {reason}")]
    Invalid { id: String, reason: String },
    /// A part's bytes or lines disagree with the manifest; nothing was written.
    #[error("backup part {part} is corrupt: {reason}")]
    CorruptPart { part: String, reason: String },
    /// The manifest is unsigned, or its signature does not verify with this
    /// key; nothing was read past it and nothing was written.
    #[error("backup {id} is not authentic: {reason}; nothing was restored")]
    Unauthentic { id: String, reason: String },
    /// The backup key is too short to sign with.
    #[error("the backup key has {bytes} bytes; it needs at least {MIN_KEY_BYTES}")]
    WeakKey { bytes: usize },
    /// The target store holds items and the restore was not forced.
    #[error("the target store is not empty (it holds at least the item {pk}/{sk}); restore into an empty store, or force it to write over what is there")]
    NotEmpty { pk: String, sk: String },
}

/// The entity type of an item: its `entity` attribute, or else its partition
/// key's prefix (sessions, throttles, sales and other bookkeeping items).
fn entity_of(item: &Item) -> String {
    match item.str("entity") {
        Some(entity) => entity.to_owned(),
        None => item.key.pk.split('#').next().unwrap_or_default().to_ascii_lowercase(),
    }
}

fn backup_id(now: OffsetDateTime) -> String {
    let stamp =
        now.format(format_description!("[year][month][day]T[hour][minute][second]Z")).expect("a UTC time formats");
    let unique = ulid::Ulid::new().to_string();
    format!("{stamp}-{}", &unique[20..])
}

/// When backup `id` was taken, from its name.
fn taken_at(id: &str) -> Option<OffsetDateTime> {
    let stamp = id.get(..16)?;
    let format = format_description!("[year][month][day]T[hour][minute][second]Z");
    time::PrimitiveDateTime::parse(stamp, format).ok().map(time::PrimitiveDateTime::assume_utc)
}

fn manifest_key(id: &str) -> String {
    format!("{PREFIX}{id}/{MANIFEST}")
}

fn signature_key(id: &str) -> String {
    format!("{PREFIX}{id}/{SIGNATURE}")
}

/// Where backup `id` keeps its copy of archive object `key`.
fn archive_copy_key(id: &str, key: &str) -> String {
    format!("{PREFIX}{id}/archive/{key}")
}

/// Keeps a scan within `per_second` read units on average.
struct ReadBudget {
    per_second: f64,
    started: Instant,
    spent: Mutex<f64>,
}

impl ReadBudget {
    async fn spend(&self, units: f64) {
        if self.per_second <= 0.0 || units <= 0.0 {
            return;
        }
        let total = {
            let mut spent = self.spent.lock().expect("budget lock");
            *spent += units;
            *spent
        };
        let due = Duration::from_secs_f64(total / self.per_second);
        if let Some(wait) = due.checked_sub(self.started.elapsed()) {
            tokio::time::sleep(wait).await;
        }
    }
}

/// Items of one part being written.
struct PartWriter {
    gz: GzEncoder<Vec<u8>>,
    items: u64,
}

impl PartWriter {
    fn new() -> Self {
        Self { gz: GzEncoder::new(Vec::new(), Compression::fast()), items: 0 }
    }

    fn add(&mut self, item: &Item) {
        let line = Line {
            entity: entity_of(item),
            schema_version: SCHEMA_VERSION,
            key: LineKey { pk: item.key.pk.clone(), sk: item.key.sk.clone() },
            data: item.attrs.clone(),
        };
        serde_json::to_writer(&mut self.gz, &line).expect("writing to memory cannot fail");
        self.gz.write_all(b"\n").expect("writing to memory cannot fail");
        self.items += 1;
    }

    async fn store(self, bucket: &dyn BlobStore, key: String) -> Result<Part, BlobError> {
        let bytes = self.gz.finish().expect("writing to memory cannot fail");
        let part =
            Part { key, items: self.items, bytes: bytes.len() as u64, sha256: hex::encode(Sha256::digest(&bytes)) };
        bucket.put(&part.key, Bytes::from(bytes), PART_CONTENT_TYPE).await?;
        Ok(part)
    }
}

/// What one scan segment wrote.
#[derive(Default)]
struct SegmentResult {
    parts: Vec<Part>,
    counts: BTreeMap<String, u64>,
    /// Archive objects the segment's archived orders point at.
    archive_objects: BTreeSet<String>,
    /// Accounts the segment's erasure ledger entries name.
    erased_users: BTreeSet<String>,
    read_units: f64,
}

async fn back_up_segment(
    store: &dyn Store,
    bucket: &dyn BlobStore,
    id: &str,
    segment: u32,
    settings: &BackupSettings,
    budget: &ReadBudget,
) -> Result<SegmentResult, BackupError> {
    let mut result = SegmentResult::default();
    let mut writer = PartWriter::new();
    let mut pages = pin!(repo::scan_all(store, segment, settings.segments, 1000));
    while let Some(page) = pages.try_next().await? {
        result.read_units += page.read_units;
        for item in &page.items {
            writer.add(item);
            *result.counts.entry(entity_of(item)).or_default() += 1;
            if let Some(object) = archive::pointed_object(item) {
                result.archive_objects.insert(object.to_owned());
            }
            if let Some(user) = repo::users::erased_by(item) {
                result.erased_users.insert(user.to_string());
            }
            if writer.items as usize >= settings.part_items {
                let key = format!("{PREFIX}{id}/part-{segment:03}-{:05}.jsonl.gz", result.parts.len());
                result.parts.push(std::mem::replace(&mut writer, PartWriter::new()).store(bucket, key).await?);
            }
        }
        budget.spend(page.read_units).await;
    }
    if writer.items > 0 {
        let key = format!("{PREFIX}{id}/part-{segment:03}-{:05}.jsonl.gz", result.parts.len());
        result.parts.push(writer.store(bucket, key).await?);
    }
    Ok(result)
}

/// Copies each archive object of `objects` from `data` into backup `id`;
/// returns the copies and the objects that were missing.
async fn copy_archive_objects(
    data: &dyn BlobStore,
    bucket: &dyn BlobStore,
    id: &str,
    objects: &BTreeSet<String>,
) -> Result<(Vec<ArchiveCopy>, Vec<String>), BackupError> {
    let mut copies = Vec::new();
    let mut missing = Vec::new();
    for key in objects {
        if !key.starts_with(archive::OBJECT_PREFIX) || key.contains("..") {
            tracing::error!(backup_id = %id, object = %key, "an archived order points outside the archive; the backup goes on without it");
            missing.push(key.clone());
            continue;
        }
        let Some(blob) = data.get(key).await? else {
            tracing::error!(backup_id = %id, object = %key, "an archived order points at an archive object that is not in the data bucket; the backup goes on without it");
            missing.push(key.clone());
            continue;
        };
        let copy = ArchiveCopy {
            key: key.clone(),
            copy: archive_copy_key(id, key),
            bytes: blob.bytes.len() as u64,
            sha256: hex::encode(Sha256::digest(&blob.bytes)),
        };
        bucket.put(&copy.copy, blob.bytes, archive::CONTENT_TYPE).await?;
        copies.push(copy);
    }
    Ok((copies, missing))
}

/// Backs up every live item of `store`, and the archive objects in `data` its
/// archived orders point at, to `bucket`; returns the manifest, which is
/// written last, signed with `key`. `source` names the backend.
pub async fn back_up(
    store: &dyn Store,
    data: &dyn BlobStore,
    bucket: &dyn BlobStore,
    key: &BackupKey,
    clock: &dyn Clock,
    settings: &BackupSettings,
    source: &str,
) -> Result<Manifest, BackupError> {
    let settings = BackupSettings { segments: settings.segments.max(1), ..*settings };
    let now = clock.now();
    let id = backup_id(now);
    let budget =
        ReadBudget { per_second: settings.read_units_per_second, started: Instant::now(), spent: Mutex::new(0.0) };
    let segments =
        (0..settings.segments).map(|segment| back_up_segment(store, bucket, &id, segment, &settings, &budget));
    let mut manifest = Manifest {
        format: FORMAT.into(),
        format_version: FORMAT_VERSION,
        id: id.clone(),
        created_at: now.format(&Rfc3339).unwrap_or_default(),
        source: source.into(),
        items: 0,
        counts: BTreeMap::new(),
        parts: Vec::new(),
        archive_objects: Vec::new(),
        missing_archive_objects: Vec::new(),
        read_units: 0.0,
        erased_users: Vec::new(),
    };
    let mut archive_objects = BTreeSet::new();
    let mut erased_users = BTreeSet::new();
    for result in futures::future::try_join_all(segments).await? {
        manifest.parts.extend(result.parts);
        archive_objects.extend(result.archive_objects);
        erased_users.extend(result.erased_users);
        for (entity, count) in result.counts {
            *manifest.counts.entry(entity).or_default() += count;
        }
        manifest.read_units += result.read_units;
    }
    manifest.items = manifest.counts.values().sum();
    manifest.erased_users = erased_users.into_iter().collect();
    (manifest.archive_objects, manifest.missing_archive_objects) =
        copy_archive_objects(data, bucket, &id, &archive_objects).await?;
    let json = serde_json::to_vec_pretty(&manifest).expect("a manifest serializes");
    let signature = serde_json::to_vec(&key.sign(&json)).expect("a signature serializes");
    bucket.put(&signature_key(&id), Bytes::from(signature), "application/json").await?;
    bucket.put(&manifest_key(&id), Bytes::from(json), "application/json").await?;
    Ok(manifest)
}

/// Deletes backups taken longer ago than `retention` (and incomplete ones
/// older than a day), always keeping the newest complete backup. Returns the
/// ids removed.
pub async fn prune(
    bucket: &dyn BlobStore,
    clock: &dyn Clock,
    retention: time::Duration,
) -> Result<Vec<String>, BlobError> {
    let mut backups: BTreeMap<String, (Vec<String>, bool)> = BTreeMap::new();
    for key in bucket.list(PREFIX).await? {
        let Some((id, name)) = key.strip_prefix(PREFIX).and_then(|rest| rest.split_once('/')) else { continue };
        let entry = backups.entry(id.to_owned()).or_default();
        entry.1 |= name == MANIFEST;
        entry.0.push(key);
    }
    let newest_complete = backups.iter().rev().find(|(_, (_, complete))| *complete).map(|(id, _)| id.clone());
    let now = clock.now();
    let mut removed = Vec::new();
    for (id, (keys, complete)) in backups {
        let Some(taken) = taken_at(&id) else { continue };
        let keep_for = if complete { retention } else { time::Duration::days(1) };
        if Some(&id) == newest_complete.as_ref() || now - taken <= keep_for {
            continue;
        }
        // The manifest goes first, so a prune cut short never leaves a
        // manifest naming missing parts.
        let (manifests, parts): (Vec<_>, Vec<_>) = keys.into_iter().partition(|key| key.ends_with(MANIFEST));
        for key in manifests.iter().chain(&parts) {
            bucket.delete(key).await?;
        }
        removed.push(id);
    }
    Ok(removed)
}

/// The complete backups in `bucket`, oldest first.
pub async fn list(bucket: &dyn BlobStore) -> Result<Vec<String>, BlobError> {
    Ok(bucket
        .list(PREFIX)
        .await?
        .iter()
        .filter_map(|key| key.strip_prefix(PREFIX)?.strip_suffix(&format!("/{MANIFEST}")).map(str::to_owned))
        .collect())
}

/// Reads backup `id`'s manifest, verifies its signature with `key`, and checks it.
pub async fn manifest(bucket: &dyn BlobStore, id: &str, key: &BackupKey) -> Result<Manifest, BackupError> {
    let invalid = |reason: String| BackupError::Invalid { id: id.to_owned(), reason };
    let unauthentic = |reason: String| BackupError::Unauthentic { id: id.to_owned(), reason };
    let blob = bucket
        .get(&manifest_key(id))
        .await?
        .ok_or_else(|| invalid(format!("no {} (the backup does not exist or never completed)", manifest_key(id))))?;
    let signature = bucket.get(&signature_key(id)).await?.ok_or_else(|| {
        unauthentic(format!("it is unsigned (no {}); only signed backups are restored", signature_key(id)))
    })?;
    let signature: Signature = serde_json::from_slice(&signature.bytes)
        .map_err(|e| unauthentic(format!("{SIGNATURE} is not a signature: {e}")))?;
    if !key.verifies(&blob.bytes, &signature) {
        return Err(unauthentic(
            "the manifest's signature does not verify with this backup key: the manifest was changed after it was signed, or signed with another key".into(),
        ));
    }
    let manifest: Manifest =
        serde_json::from_slice(&blob.bytes).map_err(|e| invalid(format!("{MANIFEST} is not a manifest: {e}")))?;
    if manifest.format != FORMAT || manifest.format_version != FORMAT_VERSION {
        return Err(invalid(format!(
            "format {} version {} is not {FORMAT} version {FORMAT_VERSION}",
            manifest.format, manifest.format_version
        )));
    }
    if manifest.items != manifest.counts.values().sum::<u64>()
        || manifest.items != manifest.parts.iter().map(|p| p.items).sum::<u64>()
    {
        return Err(invalid("the manifest's counts do not add up".into()));
    }
    let own_prefix = format!("{PREFIX}{id}/");
    if let Some(stray) = manifest.parts.iter().find(|p| !p.key.starts_with(&own_prefix)) {
        return Err(invalid(format!("part {} lies outside the backup", stray.key)));
    }
    if let Some(stray) = manifest.archive_objects.iter().find(|o| {
        o.copy != archive_copy_key(id, &o.key) || !o.key.starts_with(archive::OBJECT_PREFIX) || o.key.contains("..")
    }) {
        return Err(invalid(format!("archive object {} lies outside the archive or the backup", stray.key)));
    }
    Ok(manifest)
}

/// Downloads `part` and checks it against the manifest: size, SHA-256, and
/// that every line parses; returns its items.
async fn read_part(bucket: &dyn BlobStore, part: &Part) -> Result<Vec<(String, Item)>, BackupError> {
    let corrupt = |reason: String| BackupError::CorruptPart { part: part.key.clone(), reason };
    let blob = bucket.get(&part.key).await?.ok_or_else(|| corrupt("missing".into()))?;
    let checksum = hex::encode(Sha256::digest(&blob.bytes));
    if checksum != part.sha256 {
        return Err(corrupt(format!("its SHA-256 is {checksum}, the manifest says {}", part.sha256)));
    }
    let text = jsonl::gunzip(&blob.bytes).map_err(corrupt)?;
    let lines: Vec<Line> = jsonl::parse_lines(&text).map_err(corrupt)?;
    let mut items = Vec::with_capacity(lines.len());
    for (n, line) in lines.into_iter().enumerate() {
        if line.schema_version != SCHEMA_VERSION || line.key.pk.is_empty() || line.key.sk.is_empty() {
            return Err(corrupt(format!("line {}: schema version {} or an empty key", n + 1, line.schema_version)));
        }
        items.push((line.entity, Item::new(ItemKey::new(line.key.pk, line.key.sk), line.data)));
    }
    if items.len() as u64 != part.items {
        return Err(corrupt(format!("it holds {} items, the manifest says {}", items.len(), part.items)));
    }
    Ok(items)
}

/// Downloads an archive object's copy and checks its size and SHA-256.
async fn read_archive_copy(bucket: &dyn BlobStore, object: &ArchiveCopy) -> Result<Bytes, BackupError> {
    let corrupt = |reason: String| BackupError::CorruptPart { part: object.copy.clone(), reason };
    let blob = bucket.get(&object.copy).await?.ok_or_else(|| corrupt("missing".into()))?;
    let checksum = hex::encode(Sha256::digest(&blob.bytes));
    if checksum != object.sha256 || blob.bytes.len() as u64 != object.bytes {
        return Err(corrupt(format!("its SHA-256 is {checksum}, the manifest says {}", object.sha256)));
    }
    Ok(blob.bytes)
}

/// The first live item of `store`, if it holds any. Reads page after page:
/// DynamoDB applies a scan's limit before expired items are dropped, so a page
/// can come back empty although live items follow. The deployment's cursor key
/// (`repo::cursor_key`), made by the first list any function serves, is not
/// data: a fresh stack that has answered a list still counts as empty.
async fn first_live_item(store: &dyn Store) -> Result<Option<Item>, StoreError> {
    let mut pages = pin!(repo::scan_all(store, 0, 1, 100));
    while let Some(page) = pages.try_next().await? {
        if let Some(item) = page.items.into_iter().find(|item| item.key.pk != repo::cursor_key::PARTITION) {
            return Ok(Some(item));
        }
    }
    Ok(None)
}

/// Where a restore is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Checked `done` of `total` parts and archive objects.
    Verified { done: usize, total: usize },
    /// Wrote `done` of `total` items.
    Written { done: u64, total: u64 },
    /// Erased again this many live accounts the erasure ledgers name.
    Erased { accounts: usize },
}

/// The deployment a restore writes into.
#[derive(Clone, Copy)]
pub struct Target<'a> {
    /// Its table.
    pub store: &'a dyn Store,
    /// Its data bucket (archive objects).
    pub data: &'a dyn BlobStore,
    /// Its clock: the time the accounts erased again are recorded at.
    pub clock: &'a dyn Clock,
}

/// Restores backup `id` from `bucket` into `into`: verifies the manifest's
/// signature with `key`, then checks the manifest, every part and every
/// archive object first (any error leaves the target untouched), refuses a
/// non-empty target unless `force`, then puts the archive objects back and
/// writes every item as it was.
pub async fn restore(
    bucket: &dyn BlobStore,
    id: &str,
    key: &BackupKey,
    into: Target<'_>,
    force: bool,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<Manifest, BackupError> {
    let Target { store: target, data: target_data, clock } = into;
    let manifest = manifest(bucket, id, key).await?;
    if !force {
        if let Some(item) = first_live_item(target).await? {
            return Err(BackupError::NotEmpty { pk: item.key.pk, sk: item.key.sk });
        }
    }
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let total = manifest.parts.len() + manifest.archive_objects.len();
    for (done, part) in manifest.parts.iter().enumerate() {
        for (entity, _) in read_part(bucket, part).await? {
            *counts.entry(entity).or_default() += 1;
        }
        progress(Progress::Verified { done: done + 1, total });
    }
    for (done, object) in manifest.archive_objects.iter().enumerate() {
        read_archive_copy(bucket, object).await?;
        progress(Progress::Verified { done: manifest.parts.len() + done + 1, total });
    }
    if counts != manifest.counts {
        return Err(BackupError::Invalid {
            id: id.to_owned(),
            reason: format!("the parts hold {counts:?}, the manifest says {:?}", manifest.counts),
        });
    }
    // The objects go first: an item pointing at a missing object would answer 410.
    for object in &manifest.archive_objects {
        let bytes = read_archive_copy(bucket, object).await?;
        target_data.put(&object.key, bytes, archive::CONTENT_TYPE).await?;
    }
    let mut written = 0;
    for part in &manifest.parts {
        // Read again (parts are not kept in memory) and checked again.
        let items = read_part(bucket, part).await?;
        for chunk in items.chunks(RESTORE_CHUNK) {
            let writes =
                chunk.iter().map(|(_, item)| WriteOp::Put { item: item.clone(), condition: Condition::None }).collect();
            target.transact(writes).await?;
            written += chunk.len() as u64;
            progress(Progress::Written { done: written, total: manifest.items });
        }
    }
    let erased = erase_again(bucket, key, &manifest, target, clock.now()).await?;
    progress(Progress::Erased { accounts: erased });
    Ok(manifest)
}

/// Erases again, in `target`, every account the restored backup's ledger,
/// the target's own ledger, or another authentic backup in `bucket` names,
/// and records each in the target's ledger as erased at `now`; returns how
/// many live accounts it erased.
async fn erase_again(
    bucket: &dyn BlobStore,
    key: &BackupKey,
    restored: &Manifest,
    target: &dyn Store,
    now: OffsetDateTime,
) -> Result<usize, BackupError> {
    let mut ids: BTreeSet<String> = restored.erased_users.iter().cloned().collect();
    for other in list(bucket).await? {
        if other == restored.id {
            continue;
        }
        match manifest(bucket, &other, key).await {
            Ok(manifest) => ids.extend(manifest.erased_users),
            Err(e) => tracing::warn!(backup_id = %other, error = %e, "its erasure ledger is not applied"),
        }
    }
    let mut ids: BTreeSet<UserId> = ids.iter().filter_map(|id| UserId::parse(id)).collect();
    ids.extend(repo::users::erased_accounts(target).await?);
    let mut erased = 0;
    for id in ids {
        let writes = match repo::users::lookup(target, id).await? {
            repo::users::Stored::Live(user) => {
                erased += 1;
                let mut writes = repo::users::erase(&user, now);
                if user.role == Role::Farmer {
                    writes.push(repo::farmers::delete(id));
                    let sync = Job::SyncFarmer { farmer_id: id };
                    writes.push(repo::outbox::write(&ulid::Ulid::new().to_string(), &sync, now.unix_timestamp()));
                }
                writes
            }
            repo::users::Stored::Erased | repo::users::Stored::Missing => vec![repo::users::record_erasure(id, now)],
        };
        target.transact(writes).await?;
    }
    if erased > 0 {
        tracing::info!(accounts = erased, "accounts erased again after the restore (erasure ledger)");
    }
    Ok(erased)
}

/// Every live item of `store` in key order: the item count and a SHA-256 over
/// each item's key and attributes (canonical JSON), to compare two stores.
pub async fn digest(store: &dyn Store) -> Result<(usize, String), StoreError> {
    let mut lines = Vec::new();
    let mut pages = pin!(repo::scan_all(store, 0, 1, 1000));
    while let Some(page) = pages.try_next().await? {
        for item in page.items {
            let line = serde_json::json!([item.key.pk, item.key.sk, item.attrs]);
            lines.push(serde_json::to_string(&line).expect("JSON values serialize"));
        }
    }
    lines.sort_unstable();
    let mut hasher = Sha256::new();
    for line in &lines {
        hasher.update(line.as_bytes());
        hasher.update(b"\n");
    }
    Ok((lines.len(), hex::encode(hasher.finalize())))
}
