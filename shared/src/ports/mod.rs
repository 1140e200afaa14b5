//! Ports: the small async traits handlers talk to. Handlers never name a concrete
//! backend; `adapters::embedded` and `adapters::aws` implement each trait.

mod blobs;
mod clock;
mod jobs;
mod mail;
mod store;

pub use blobs::{Blob, BlobError, BlobStore, PresignedUpload};
pub use clock::{Clock, SystemClock};
pub use jobs::{JobError, JobMessage, JobQueue};
pub use mail::{MailError, Mailer, OutgoingMail};
pub use store::{
    Attrs, Condition, Guard, Index, Item, ItemKey, Page, Query, Scan, ScanPage, Store, StoreError, WriteOp, ATTR_TTL,
    ATTR_VERSION,
};
