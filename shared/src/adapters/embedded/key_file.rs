//! Secrets generated once into the local data directory (the token signing key,
//! the upload signing key): read when present, else created exclusively, so
//! several local processes starting at once end up sharing one key.

use std::io::Write;
use std::path::Path;

/// The bytes in `path` if `valid` accepts them; otherwise `generate`s a key,
/// writes it to a synced temporary file and hard-links it into place. A process
/// losing that race reads the winner's key.
pub(crate) fn read_or_create(
    path: &Path,
    valid: impl Fn(&[u8]) -> bool,
    generate: impl FnOnce() -> Vec<u8>,
) -> std::io::Result<Vec<u8>> {
    if let Ok(bytes) = std::fs::read(path) {
        if valid(&bytes) {
            return Ok(bytes);
        }
    }
    let fresh = generate();
    let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("key");
    let tmp = path.with_file_name(format!("{file_name}.{}.tmp", ulid::Ulid::new()));
    let written = std::fs::File::create(&tmp).and_then(|mut file| {
        file.write_all(&fresh)?;
        file.sync_all()
    });
    let linked = written.and_then(|()| std::fs::hard_link(&tmp, path));
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(fresh),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => std::fs::read(path),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_created_once_and_then_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let first = read_or_create(&path, |b| b.len() == 3, || vec![1, 2, 3]).unwrap();
        let second = read_or_create(&path, |b| b.len() == 3, || vec![9, 9, 9]).unwrap();
        assert_eq!((first, second), (vec![1, 2, 3], vec![1, 2, 3]));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file is left");
    }
}
