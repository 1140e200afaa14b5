//! The embedded blob store: one file per object in a directory tree, written
//! atomically, with each object's content type in a parallel tree. Presigned
//! uploads are URLs on the local gateway signed with HMAC-SHA256 under a key kept
//! in the directory; `verify_upload` makes the checks S3 makes for a presigned PUT.

use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use ring::hmac;
use time::OffsetDateTime;
use ulid::Ulid;

use crate::adapters::rules;
use crate::ports::{Blob, BlobError, BlobStore, PresignedUpload};

/// The local gateway path under which presigned uploads are accepted.
pub const LOCAL_UPLOAD_PATH: &str = "/_local/uploads/";

/// Content type reported when an object's type file is missing.
const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";
/// Age after which a leftover temporary file is considered abandoned.
const STALE_TEMPORARY: std::time::Duration = std::time::Duration::from_secs(3600);

/// Objects in a directory. Layout under the root:
///
/// - `objects/<key>`: the bytes (so `objects/public/ab/cd.jpg` for key
///   `public/ab/cd.jpg`; the tree is browsable by hand);
/// - `content-types/<key>`: the content type as text;
/// - `tmp/`: files being written, renamed into place when complete, so a reader
///   never sees half an object.
///
/// The type is written before the object, so a new object never appears without
/// its type. Unlike S3, a key cannot also be a "directory" of other keys (`a/b`
/// and `a/b/c` cannot both exist); writing the second fails with a backend error.
#[derive(Clone)]
pub struct EmbeddedBlobs {
    root: PathBuf,
    /// Base URL of the local gateway that accepts presigned uploads.
    upload_base_url: String,
    upload_key: hmac::Key,
}

impl std::fmt::Debug for EmbeddedBlobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedBlobs").field("root", &self.root).finish_non_exhaustive()
    }
}

/// Why a presigned upload is refused (S3 answers 403 for all but `TooLarge`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UploadRejected {
    #[error("the upload URL has expired")]
    Expired,
    #[error("the signature does not match this key, content type and length")]
    SignatureMismatch,
}

/// The text an upload signature covers.
fn upload_string_to_sign(key: &str, content_type: &str, content_length: u64, expires: i64) -> String {
    format!("PUT\n{key}\n{content_type}\n{content_length}\n{expires}")
}

/// The upload signing key in `dir`, created on first use.
fn upload_key(dir: &Path) -> std::io::Result<hmac::Key> {
    use rand::RngCore;
    let bytes = super::key_file::read_or_create(
        &dir.join("upload-signing.key"),
        |bytes| bytes.len() == 32,
        || {
            let mut fresh = vec![0u8; 32];
            rand::thread_rng().fill_bytes(&mut fresh);
            fresh
        },
    )?;
    Ok(hmac::Key::new(hmac::HMAC_SHA256, &bytes))
}

impl EmbeddedBlobs {
    /// Opens (creating if needed) the blob directory `dir`.
    /// Presigned uploads go to `upload_base_url` (the local gateway).
    pub fn open(dir: &Path, upload_base_url: &str) -> Result<Self, BlobError> {
        for sub in ["objects", "content-types", "tmp"] {
            let path = dir.join(sub);
            std::fs::create_dir_all(&path)
                .map_err(|e| BlobError::backend(format!("create blob directory {}", path.display()), e))?;
        }
        sweep_stale_temporaries(&dir.join("tmp"));
        let upload_key =
            upload_key(dir).map_err(|e| BlobError::backend(format!("upload signing key in {}", dir.display()), e))?;
        Ok(Self { root: dir.to_owned(), upload_base_url: upload_base_url.trim_end_matches('/').to_owned(), upload_key })
    }

    /// The checks S3 makes before accepting a presigned PUT: the signature covers
    /// this key, content type and length, and has not expired. The caller checks
    /// that the body really is `content_length` bytes.
    pub fn verify_upload(
        &self,
        key: &str,
        content_type: &str,
        content_length: u64,
        expires: i64,
        signature_hex: &str,
        now: OffsetDateTime,
    ) -> Result<(), UploadRejected> {
        let signature = hex::decode(signature_hex).map_err(|_| UploadRejected::SignatureMismatch)?;
        let message = upload_string_to_sign(key, content_type, content_length, expires);
        hmac::verify(&self.upload_key, message.as_bytes(), &signature)
            .map_err(|_| UploadRejected::SignatureMismatch)?;
        if now.unix_timestamp() > expires {
            return Err(UploadRejected::Expired);
        }
        Ok(())
    }

    fn object_path(&self, key: &str) -> PathBuf {
        self.root.join("objects").join(key)
    }

    fn type_path(&self, key: &str) -> PathBuf {
        self.root.join("content-types").join(key)
    }

    /// Runs file system work on the blocking pool.
    async fn blocking<T: Send + 'static>(
        context: String,
        f: impl FnOnce(&str) -> Result<T, BlobError> + Send + 'static,
    ) -> Result<T, BlobError> {
        let inner = context.clone();
        tokio::task::spawn_blocking(move || f(&inner)).await.map_err(|e| BlobError::backend(context, e))?
    }
}

/// Removes temporary files a crashed writer left behind (older than an hour, so
/// another process's write in progress is never touched). Best effort.
fn sweep_stale_temporaries(tmp: &Path) {
    let Ok(entries) = std::fs::read_dir(tmp) else { return };
    for entry in entries.flatten() {
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|modified| modified.elapsed().ok())
            .is_some_and(|age| age > STALE_TEMPORARY);
        if stale {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Writes `bytes` to `target` through a synced temporary file and a rename.
fn write_atomically(tmp_dir: &Path, target: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = tmp_dir.join(Ulid::new().to_string());
    let written = std::fs::File::create(&tmp).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    match written.and_then(|()| std::fs::rename(&tmp, target)) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Reads a file; `None` when it (or a directory on its path) does not exist, or
/// when the path names a directory (a prefix of other keys, not an object).
fn read_if_exists(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == ErrorKind::NotFound || e.kind() == ErrorKind::NotADirectory => Ok(None),
        Err(_) if path.is_dir() => Ok(None),
        Err(e) => Err(e),
    }
}

fn remove_if_exists(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() == ErrorKind::NotFound || e.kind() == ErrorKind::NotADirectory => Ok(()),
        Err(_) if path.is_dir() => Ok(()),
        other => other,
    }
}

/// Collects the keys of all files under `dir` (whose key prefix is `base`).
fn walk(dir: &Path, base: &str, keys: &mut Vec<String>) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound || e.kind() == ErrorKind::NotADirectory => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue; // not written by us: keys are UTF-8
        };
        let key = format!("{base}{name}");
        if entry.file_type()?.is_dir() {
            walk(&entry.path(), &format!("{key}/"), keys)?;
        } else {
            keys.push(key);
        }
    }
    Ok(())
}

#[async_trait]
impl BlobStore for EmbeddedBlobs {
    async fn put(&self, key: &str, bytes: Bytes, content_type: &str) -> Result<(), BlobError> {
        rules::check_blob_key(key)?;
        let (tmp, object, kind) = (self.root.join("tmp"), self.object_path(key), self.type_path(key));
        let content_type = content_type.to_owned();
        Self::blocking(format!("put blob {key}"), move |context| {
            write_atomically(&tmp, &kind, content_type.as_bytes())
                .and_then(|()| write_atomically(&tmp, &object, &bytes))
                .map_err(|e| BlobError::backend(context, e))
        })
        .await
    }

    async fn get(&self, key: &str) -> Result<Option<Blob>, BlobError> {
        rules::check_blob_key(key)?;
        let (object, kind) = (self.object_path(key), self.type_path(key));
        Self::blocking(format!("get blob {key}"), move |context| {
            let err = |e| BlobError::backend(context, e);
            let Some(bytes) = read_if_exists(&object).map_err(err)? else {
                return Ok(None);
            };
            let content_type = read_if_exists(&kind)
                .map_err(err)?
                .and_then(|raw| String::from_utf8(raw).ok())
                .unwrap_or_else(|| DEFAULT_CONTENT_TYPE.to_owned());
            Ok(Some(Blob { bytes: Bytes::from(bytes), content_type }))
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<(), BlobError> {
        rules::check_blob_key(key)?;
        let (object, kind) = (self.object_path(key), self.type_path(key));
        Self::blocking(format!("delete blob {key}"), move |context| {
            remove_if_exists(&object).and_then(|()| remove_if_exists(&kind)).map_err(|e| BlobError::backend(context, e))
        })
        .await
    }

    async fn presign_put(
        &self,
        key: &str,
        content_type: &str,
        content_length: u64,
        expires_in: Duration,
    ) -> Result<PresignedUpload, BlobError> {
        rules::check_blob_key(key)?;
        let expires_at = OffsetDateTime::now_utc() + expires_in;
        let expires = expires_at.unix_timestamp();
        let message = upload_string_to_sign(key, content_type, content_length, expires);
        let signature = hex::encode(hmac::sign(&self.upload_key, message.as_bytes()).as_ref());
        Ok(PresignedUpload {
            url: format!("{}{LOCAL_UPLOAD_PATH}{key}?expires={expires}&signature={signature}", self.upload_base_url),
            headers: vec![
                ("content-type".to_owned(), content_type.to_owned()),
                ("content-length".to_owned(), content_length.to_string()),
            ],
            expires_at,
        })
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, BlobError> {
        rules::check_blob_prefix(prefix)?;
        // Walk only the deepest directory the prefix names, then filter.
        let base = prefix.rfind('/').map(|i| &prefix[..=i]).unwrap_or("").to_owned();
        let start = self.root.join("objects").join(&base);
        let prefix = prefix.to_owned();
        Self::blocking(format!("list blobs under {prefix:?}"), move |context| {
            let mut keys = Vec::new();
            walk(&start, &base, &mut keys).map_err(|e| BlobError::backend(context, e))?;
            keys.retain(|key| key.starts_with(&prefix));
            keys.sort();
            Ok(keys)
        })
        .await
    }
}
