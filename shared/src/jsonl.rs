//! Gzip-compressed JSON lines, the format of archive objects (`archive`) and
//! backup parts (`backup`): reading them back, with errors that say where.

use std::io::Read;

use flate2::read::GzDecoder;
use serde::de::DeserializeOwned;

/// The uncompressed text of `bytes`, or why it is not gzip.
pub fn gunzip(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let mut text = Vec::new();
    GzDecoder::new(bytes).read_to_end(&mut text).map_err(|e| format!("not gzip: {e}"))?;
    Ok(text)
}

/// Every non-empty line of `text` parsed as JSON, or the first that does not
/// parse (numbered from 1).
pub fn parse_lines<T: DeserializeOwned>(text: &[u8]) -> Result<Vec<T>, String> {
    text.split(|b| *b == b'\n')
        .filter(|line| !line.is_empty())
        .enumerate()
        .map(|(n, line)| serde_json::from_slice(line).map_err(|e| format!("line {}: {e}", n + 1)))
        .collect()
}
