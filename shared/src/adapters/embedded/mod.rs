//! The embedded backend: SQLite (one file in WAL mode, shared by every local
//! function process) for items and jobs, a plain directory for blobs, and one for outgoing mail. It is a
//! real, durable store, the default when no AWS resources are configured.

mod blobs;
mod db;
mod jobs;
pub(crate) mod key_file;
mod mail;
mod store;
pub mod wake;

pub use blobs::{EmbeddedBlobs, UploadRejected, LOCAL_UPLOAD_PATH};
pub use jobs::EmbeddedJobs;
pub use mail::{MailDir, StoredMail};
pub use store::EmbeddedStore;
