//! Password hashing's machinery: argon2id with the marketplace's parameters
//! (`hash`, `verify`, behind `domain::PasswordHash`), with reused working
//! memory. Each hash needs `m` KiB (12 to 19 MiB with OWASP's parameters),
//! and allocating that per hash made glibc keep a freed chunk of that size in
//! the arena of every blocking thread that ever hashed (see BENCHMARKS.md for
//! auth's peak RSS). Here the memory is taken from a small process-wide pool
//! and put back, so a process holds one buffer per hash it runs at once, at
//! most one per CPU; a Lambda sandbox (one
//! request at a time) holds one.
//!
//! `ReusingArgon2` implements `PasswordHasher` exactly as `argon2::Argon2`
//! does (same PHC strings), so `PasswordVerifier` and its constant-time
//! comparison come from the `password-hash` crate unchanged.

use std::sync::{LazyLock, Mutex, PoisonError};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{
    self, Decimal, Ident, Output, ParamsString, PasswordHasher, PasswordVerifier, Salt, SaltString,
};
use argon2::{Algorithm, Argon2, Block, Params, Version};

/// argon2id with m = 12 MiB, t = 3, p = 1: of OWASP's equally strong
/// settings (m = 19 MiB with t = 2 is another; the work is about the same)
/// the one that keeps auth's peak memory under 32 MB (BENCHMARKS.md). Hashes
/// stored with other parameters still verify with their own.
fn hasher() -> ReusingArgon2 {
    let params = Params::new(12 * 1024, 3, 1, None).expect("constant argon2 parameters are valid");
    ReusingArgon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// The argon2id PHC string of `password`, with a fresh salt. CPU-bound: call
/// it off the async threads.
pub(crate) fn hash(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    let hash =
        hasher().hash_password(password.as_bytes(), &salt).expect("argon2 hashing with valid parameters cannot fail");
    hash.to_string()
}

/// Whether `password` is the one PHC string `stored` was made from, compared
/// in constant time; a malformed `stored` never verifies.
pub(crate) fn verify(password: &str, stored: &str) -> bool {
    match argon2::PasswordHash::new(stored) {
        Ok(parsed) => hasher().verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

/// Working memory that no hash is using right now.
struct MemoryPool {
    idle: Mutex<Vec<Vec<Block>>>,
}

static WORKING_MEMORY: MemoryPool = MemoryPool { idle: Mutex::new(Vec::new()) };

/// How many idle buffers the pool keeps: one per CPU, asked once (on Linux
/// the answer reads the cgroup's CPU quota from files).
static MAX_IDLE: LazyLock<usize> = LazyLock::new(|| std::thread::available_parallelism().map_or(1, usize::from));

impl MemoryPool {
    /// Runs `hash` over `blocks` blocks of working memory from the pool (a new
    /// buffer when none is idle), then puts the buffer back unless the pool
    /// already holds one per CPU.
    fn with_memory<T>(&self, blocks: usize, hash: impl FnOnce(&mut [Block]) -> T) -> T {
        let idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let mut memory = idle.unwrap_or_default();
        if memory.len() < blocks {
            memory.resize(blocks, Block::default());
        }
        let result = hash(&mut memory[..blocks]);
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < *MAX_IDLE {
            idle.push(memory);
        }
        result
    }
}

/// argon2 with pooled working memory (see the module's documentation).
struct ReusingArgon2 {
    algorithm: Algorithm,
    version: Version,
    params: Params,
}

impl ReusingArgon2 {
    fn new(algorithm: Algorithm, version: Version, params: Params) -> Self {
        Self { algorithm, version, params }
    }
}

impl PasswordHasher for ReusingArgon2 {
    type Params = Params;

    /// As `argon2::Argon2::hash_password`, with the working memory from the pool.
    fn hash_password<'a>(
        &self,
        password: &[u8],
        salt: impl Into<Salt<'a>>,
    ) -> password_hash::Result<password_hash::PasswordHash<'a>> {
        let salt = salt.into();
        let mut salt_buffer = [0u8; Salt::MAX_LENGTH];
        let salt_bytes = salt.decode_b64(&mut salt_buffer)?;
        let argon2 = Argon2::new(self.algorithm, self.version, self.params.clone());
        let output_len = self.params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
        let output = Output::init_with(output_len, |out| {
            WORKING_MEMORY
                .with_memory(self.params.block_count(), |memory| {
                    argon2.hash_password_into_with_memory(password, salt_bytes, out, memory)
                })
                .map_err(password_hash::Error::from)
        })?;
        Ok(password_hash::PasswordHash {
            algorithm: self.algorithm.ident(),
            version: Some(self.version.into()),
            params: ParamsString::try_from(&self.params)?,
            salt: Some(salt),
            hash: Some(output),
        })
    }

    /// The hash with a stored hash's algorithm, version and parameters (what
    /// `PasswordVerifier` calls).
    fn hash_password_customized<'a>(
        &self,
        password: &[u8],
        algorithm: Option<Ident<'a>>,
        version: Option<Decimal>,
        params: Params,
        salt: impl Into<Salt<'a>>,
    ) -> password_hash::Result<password_hash::PasswordHash<'a>> {
        let algorithm = algorithm.map(Algorithm::try_from).transpose()?.unwrap_or_default();
        let version = version.map(Version::try_from).transpose()?.unwrap_or_default();
        Self::new(algorithm, version, params).hash_password(password, salt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> Params {
        Params::new(1024, 2, 1, None).unwrap()
    }

    #[test]
    fn hashes_exactly_as_the_argon2_crate_does_and_each_verifies_the_other() {
        let salt = SaltString::from_b64("c29tZXNhbHRzb21lc2FsdA").unwrap();
        let ours = ReusingArgon2::new(Algorithm::Argon2id, Version::V0x13, params());
        let theirs = Argon2::new(Algorithm::Argon2id, Version::V0x13, params());
        let ours_hash = ours.hash_password(b"correct horse", &salt).unwrap();
        let theirs_hash = theirs.hash_password(b"correct horse", &salt).unwrap();
        assert_eq!(ours_hash.to_string(), theirs_hash.to_string());
        assert!(ours.verify_password(b"correct horse", &theirs_hash).is_ok());
        assert!(theirs.verify_password(b"correct horse", &ours_hash).is_ok());
        assert!(ours.verify_password(b"wrong horse", &theirs_hash).is_err());
    }

    #[test]
    fn a_stored_hash_with_other_parameters_verifies_with_its_own() {
        let salt = SaltString::from_b64("YW5vdGhlcnNhbHR2YWx1ZQ").unwrap();
        let older = Argon2::new(Algorithm::Argon2i, Version::V0x10, Params::new(2048, 3, 1, None).unwrap());
        let stored = older.hash_password(b"old password", &salt).unwrap();
        let current = ReusingArgon2::new(Algorithm::Argon2id, Version::V0x13, params());
        assert!(current.verify_password(b"old password", &stored).is_ok());
        assert!(current.verify_password(b"old passwore", &stored).is_err());
    }

    #[test]
    fn memory_is_reused_and_the_pool_keeps_at_most_one_buffer_per_cpu() {
        let pool = MemoryPool { idle: Mutex::new(Vec::new()) };
        let first = pool.with_memory(16, |memory| memory.as_ptr());
        assert_eq!(pool.with_memory(16, |memory| memory.as_ptr()), first, "one hash after another reuses the buffer");
        assert_eq!(pool.with_memory(8, |memory| memory.len()), 8, "a smaller hash gets exactly its blocks");
        let in_use = std::sync::Barrier::new(8);
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| pool.with_memory(16, |_| in_use.wait()));
            }
        });
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        let kept = pool.idle.lock().unwrap().len();
        assert_eq!(kept, cpus.min(8), "8 hashes at once leave {kept} buffers for {cpus} CPUs");
    }
}
