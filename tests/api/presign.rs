//! The S3 adapter's presigned upload against the AWS-compatible endpoint: the URL
//! and headers it returns are enough for a plain HTTP client to store the object.
//! (The endpoint in tests does not enforce the signed length; S3 does, and the
//! worker re-checks the real size either way.)

use shared::ports::BlobStore;

use crate::helpers::fresh_bucket;

#[tokio::test]
async fn a_presigned_s3_put_stores_the_object_with_its_type() {
    let blobs = fresh_bucket().await;
    let photo = crate::photos::jpeg(64, 48);
    let key = "incoming/01JDQ9A4B7C2D5E8F1G3H6J9KM/01JDQ9B2C5D8E1F4G7H9J2K5MN";
    let upload =
        blobs.presign_put(key, "image/jpeg", photo.len() as u64, std::time::Duration::from_secs(900)).await.unwrap();
    assert!(upload.url.contains("X-Amz-Signature="), "{}", upload.url);
    // S3 itself refuses another type or size: both are signed headers.
    assert!(upload.url.contains("X-Amz-SignedHeaders=content-length%3Bcontent-type%3Bhost"), "{}", upload.url);
    let mut request = reqwest::Client::new().put(&upload.url);
    for (name, value) in &upload.headers {
        if name != "content-length" {
            request = request.header(name.as_str(), value.as_str());
        }
    }
    let response = request.body(photo.clone()).send().await.unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let stored = blobs.get(key).await.unwrap().unwrap();
    assert_eq!(stored.bytes.as_ref(), photo.as_slice());
    assert_eq!(stored.content_type, "image/jpeg");
}
