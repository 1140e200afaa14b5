//! The blob store contract: bytes and content type round trips, replacement,
//! deletion, prefix listing, and key validation.

use bytes::Bytes;
use shared::ports::{Blob, BlobError};

use crate::support::Backend;

pub async fn put_then_get_round_trips_bytes_and_content_type<B: Backend>() {
    let blobs = B::blobs().await;
    let bytes = Bytes::from((0..=255u8).cycle().take(70_000).collect::<Vec<_>>());
    blobs.put("public/ab/cd.jpg", bytes.clone(), "image/jpeg").await.unwrap();
    let blob = blobs.get("public/ab/cd.jpg").await.unwrap();
    assert_eq!(blob, Some(Blob { bytes, content_type: "image/jpeg".into() }));
}

pub async fn get_of_a_missing_key_is_none<B: Backend>() {
    let blobs = B::blobs().await;
    assert_eq!(blobs.get("public/none.jpg").await.unwrap(), None);
    blobs.put("public/dir/file.txt", Bytes::from_static(b"x"), "text/plain").await.unwrap();
    // A "directory" of other keys is not an object.
    assert_eq!(blobs.get("public/dir").await.unwrap(), None);
}

pub async fn put_replaces_bytes_and_content_type<B: Backend>() {
    let blobs = B::blobs().await;
    blobs.put("uploads/1", Bytes::from_static(b"first version"), "text/plain").await.unwrap();
    blobs.put("uploads/1", Bytes::from_static(b"{}"), "application/json").await.unwrap();
    let blob = blobs.get("uploads/1").await.unwrap().unwrap();
    assert_eq!((blob.bytes.as_ref(), blob.content_type.as_str()), (&b"{}"[..], "application/json"));
}

pub async fn empty_objects_round_trip<B: Backend>() {
    let blobs = B::blobs().await;
    blobs.put("empty", Bytes::new(), "application/octet-stream").await.unwrap();
    assert_eq!(blobs.get("empty").await.unwrap().unwrap().bytes.len(), 0);
}

pub async fn delete_removes_and_tolerates_a_missing_key<B: Backend>() {
    let blobs = B::blobs().await;
    blobs.put("a/b.txt", Bytes::from_static(b"x"), "text/plain").await.unwrap();
    blobs.delete("a/b.txt").await.unwrap();
    assert_eq!(blobs.get("a/b.txt").await.unwrap(), None);
    assert!(blobs.list("").await.unwrap().is_empty());
    blobs.delete("a/b.txt").await.unwrap();
    blobs.delete("never/was.txt").await.unwrap();
}

pub async fn list_returns_the_keys_under_a_prefix_in_order<B: Backend>() {
    let blobs = B::blobs().await;
    for key in ["public/b/1.jpg", "public/a/2.jpg", "public/a/1.jpg", "private/x", "publicity.txt", "top"] {
        blobs.put(key, Bytes::from_static(b"x"), "text/plain").await.unwrap();
    }
    assert_eq!(blobs.list("public/").await.unwrap(), ["public/a/1.jpg", "public/a/2.jpg", "public/b/1.jpg"]);
    assert_eq!(blobs.list("public/a/").await.unwrap(), ["public/a/1.jpg", "public/a/2.jpg"]);
    assert_eq!(blobs.list("public/a/1").await.unwrap(), ["public/a/1.jpg"]);
    assert_eq!(
        blobs.list("public").await.unwrap(),
        ["public/a/1.jpg", "public/a/2.jpg", "public/b/1.jpg", "publicity.txt"]
    );
    assert_eq!(blobs.list("").await.unwrap().len(), 6);
    assert!(blobs.list("nothing/").await.unwrap().is_empty());
}

pub async fn list_pages_through_many_keys<B: Backend>() {
    let blobs = B::blobs().await;
    // More than one S3 page (1000 keys) would be slow here; 30 keys and the
    // prefix filter exercise the same code path on the embedded side.
    let mut expected = Vec::new();
    for i in 0..30 {
        let key = format!("batch/{i:03}");
        blobs.put(&key, Bytes::from(vec![i as u8]), "application/octet-stream").await.unwrap();
        expected.push(key);
    }
    assert_eq!(blobs.list("batch/").await.unwrap(), expected);
}

pub async fn invalid_keys_are_rejected<B: Backend>() {
    let blobs = B::blobs().await;
    for key in ["", "/etc/passwd", "../escape", "a/../../b", "a\\b", "nul\0byte", "a//b", "trailing/"] {
        let put = blobs.put(key, Bytes::from_static(b"x"), "text/plain").await;
        assert!(matches!(put, Err(BlobError::InvalidKey(_))), "put {key:?}: {put:?}");
        assert!(matches!(blobs.get(key).await, Err(BlobError::InvalidKey(_))), "get {key:?}");
        assert!(matches!(blobs.delete(key).await, Err(BlobError::InvalidKey(_))), "delete {key:?}");
    }
    assert!(matches!(blobs.list("../").await, Err(BlobError::InvalidKey(_))));
    assert!(blobs.list("").await.unwrap().is_empty());
}

pub async fn presigned_uploads_fix_key_type_and_length<B: Backend>() {
    let blobs = B::blobs().await;
    let before = time::OffsetDateTime::now_utc();
    let upload =
        blobs.presign_put("incoming/p1/i1", "image/jpeg", 1234, std::time::Duration::from_secs(900)).await.unwrap();
    assert!(upload.url.contains("incoming/p1/i1"), "{}", upload.url);
    let header = |name: &str| upload.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    assert_eq!(header("content-type"), Some("image/jpeg"));
    assert_eq!(header("content-length"), Some("1234"));
    let lifetime = (upload.expires_at - before).whole_seconds();
    assert!((895..=905).contains(&lifetime), "expires in {lifetime} s");
    assert!(matches!(
        blobs.presign_put("../escape", "image/jpeg", 1, std::time::Duration::from_secs(60)).await,
        Err(BlobError::InvalidKey(_))
    ));
}
