//! The whole-table scan as a stream: `scan_all` reads one segment of the table
//! page by page, for the jobs that walk every item (backups and the checks
//! around a restore, the photo clean-up), so none of them pages by hand.

use futures::stream::{self, Stream};

use crate::ports::{Scan, ScanPage, Store, StoreError};

/// The pages of segment `segment` of `total_segments` of a scan of the whole
/// table (live items only), at most `limit` items each, in order. A page is read
/// when the stream is polled for it, so a reader that stops early reads no
/// further; `total_segments` readers, one per segment, together read every live
/// item exactly once. The stream ends after the first error.
pub fn scan_all(
    store: &dyn Store,
    segment: u32,
    total_segments: u32,
    limit: usize,
) -> impl Stream<Item = Result<ScanPage, StoreError>> + Send + '_ {
    let first = Scan { segment, total_segments, limit, start_after: None };
    stream::try_unfold(Some(first), move |next| async move {
        let Some(mut scan) = next else {
            return Ok(None);
        };
        let page = store.scan(&scan).await?;
        let next = page.last.clone().map(|last| {
            scan.start_after = Some(last);
            scan
        });
        Ok(Some((page, next)))
    })
}
