//! The optional local cache of vault objects (`--cache-dir`): sealed
//! objects exactly as the store holds them (ciphertext only; plaintext
//! never reaches the disk), named by the BLAKE3 of their bytes that the
//! vault's index records, so that repeated epochs do not download them
//! again.
//!
//! - **Verified on use**: an entry is served only when its length and
//!   BLAKE3 match what the index names; any other entry is deleted and
//!   the object fetched again. The opener above still authenticates
//!   every chunk (AES-GCM).
//! - **Written safely**: a new entry is written under a temporary name in
//!   the cache folder, checked, then renamed into place; a crash leaves at
//!   worst a stale temporary file, removed by a later eviction.
//! - **Bounded**: when the cache is opened and before an entry is
//!   added, the least recently used
//!   entries (by modification time, refreshed on every hit) are removed
//!   until the new one fits; an object larger than the bound is never
//!   cached.
//! - **Private**: the folder is created `0700`; an existing folder that
//!   others may read or write is refused.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use vault_core::Source;
use vault_core::vault::Blake3Digest;

use crate::config::CacheConfig;

/// Entries end with this; temporary files start with [`TEMP_PREFIX`].
const ENTRY_SUFFIX: &str = ".sealed";
const TEMP_PREFIX: &str = ".tmp-";
/// Temporary files older than this are left over from a crash.
const STALE_TEMP: Duration = Duration::from_secs(3600);
/// Bytes copied per read while an object is being cached.
const COPY_PIECE: usize = 4 << 20;

/// What the cache did in this process (for tests and benchmarks).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Objects served from the cache.
    pub hits: u64,
    /// Objects fetched and added.
    pub fills: u64,
    /// Entries deleted because they did not match the index.
    pub discarded: u64,
    /// Entries deleted to respect the bound.
    pub evicted: u64,
}

static HITS: AtomicU64 = AtomicU64::new(0);
static FILLS: AtomicU64 = AtomicU64::new(0);
static DISCARDED: AtomicU64 = AtomicU64::new(0);
static EVICTED: AtomicU64 = AtomicU64::new(0);

/// The counters so far.
pub fn stats() -> CacheStats {
    CacheStats {
        hits: HITS.load(Ordering::Relaxed),
        fills: FILLS.load(Ordering::Relaxed),
        discarded: DISCARDED.load(Ordering::Relaxed),
        evicted: EVICTED.load(Ordering::Relaxed),
    }
}

/// A cache folder (see the module doc).
#[derive(Clone, Debug)]
pub struct ObjectCache {
    dir: PathBuf,
    max_bytes: u64,
}

impl ObjectCache {
    /// Opens (creating it `0700`) the cache `config` names.
    pub fn open(config: &CacheConfig) -> io::Result<Self> {
        let dir = &config.dir;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| annotate(dir, "cannot create the cache folder", e))?;
        let meta = fs::symlink_metadata(dir)?;
        if !meta.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("cache folder {} is not a folder", dir.display()),
            ));
        }
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "cache folder {} is open to other users (mode {:o}); `chmod 700` it or choose another",
                    dir.display(),
                    meta.permissions().mode() & 0o777
                ),
            ));
        }
        let cache = ObjectCache {
            dir: dir.clone(),
            max_bytes: config.max_bytes,
        };
        // A bound lowered since the last run holds from now on.
        cache.make_room(0);
        Ok(cache)
    }

    /// The file of the entry for bytes hashing to `digest`.
    pub fn entry_path(&self, digest: &Blake3Digest) -> PathBuf {
        self.dir.join(format!("{}{ENTRY_SUFFIX}", digest.to_hex()))
    }

    /// Whether an object of `len` bytes may be cached at all.
    pub fn fits(&self, len: u64) -> bool {
        len <= self.max_bytes
    }

    /// The cached object of `len` bytes hashing to `digest`, if there is
    /// one and it checks out (a mismatching entry is deleted).
    pub fn get(&self, digest: &Blake3Digest, len: u64) -> Option<File> {
        let path = self.entry_path(digest);
        let mut file = File::open(&path).ok()?;
        let good = file.metadata().is_ok_and(|m| m.is_file() && m.len() == len)
            && hash_reader(&mut file).is_ok_and(|h| h == *digest);
        if !good {
            let _ = fs::remove_file(&path);
            DISCARDED.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let _ = file.set_modified(SystemTime::now());
        HITS.fetch_add(1, Ordering::Relaxed);
        Some(file)
    }

    /// Copies `source` (`len` bytes, read in order so that the reader's
    /// read-ahead keeps several GETs in flight) into a new entry and
    /// returns it; `Ok(None)` when its bytes do not hash to `digest` (the
    /// store holds something other than what the index names: nothing is
    /// cached, and the caller reads the store directly).
    pub fn fill(
        &self,
        digest: &Blake3Digest,
        len: u64,
        source: &dyn Source,
    ) -> io::Result<Option<File>> {
        self.make_room(len);
        let temp = self
            .dir
            .join(format!("{TEMP_PREFIX}{}", crate::unique_hex(16)));
        let result = self.write_temp(&temp, digest, len, source);
        match result {
            Ok(true) => {
                fs::rename(&temp, self.entry_path(digest))?;
                FILLS.fetch_add(1, Ordering::Relaxed);
                File::open(self.entry_path(digest)).map(Some)
            }
            Ok(false) => {
                let _ = fs::remove_file(&temp);
                Ok(None)
            }
            Err(e) => {
                let _ = fs::remove_file(&temp);
                Err(e)
            }
        }
    }

    /// Writes `source` to `temp`; whether it hashed to `digest`.
    fn write_temp(
        &self,
        temp: &Path,
        digest: &Blake3Digest,
        len: u64,
        source: &dyn Source,
    ) -> io::Result<bool> {
        let mut out = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(temp)?;
        let mut hasher = blake3::Hasher::new();
        let mut buf = vec![0u8; COPY_PIECE.min(len as usize).max(1)];
        let mut pos = 0u64;
        while pos < len {
            let n = (len - pos).min(buf.len() as u64) as usize;
            source.read_exact_at(&mut buf[..n], pos)?;
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n])?;
            pos += n as u64;
        }
        out.sync_data()?;
        Ok(Blake3Digest::from(*hasher.finalize().as_bytes()) == *digest)
    }

    /// Removes stale temporary files, then the least recently used
    /// entries until `incoming` more bytes fit under the bound.
    fn make_room(&self, incoming: u64) {
        let Ok(list) = fs::read_dir(&self.dir) else {
            return;
        };
        let now = SystemTime::now();
        let mut entries = Vec::new();
        for item in list.flatten() {
            let name = item.file_name().to_string_lossy().into_owned();
            let Ok(meta) = item.metadata() else { continue };
            let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            if name.starts_with(TEMP_PREFIX) {
                if now.duration_since(modified).unwrap_or_default() > STALE_TEMP {
                    let _ = fs::remove_file(item.path());
                }
            } else if name.ends_with(ENTRY_SUFFIX) && meta.is_file() {
                entries.push((modified, meta.size(), item.path()));
            }
        }
        entries.sort();
        let mut total: u64 = entries.iter().map(|e| e.1).sum();
        for (_, size, path) in entries {
            if total.saturating_add(incoming) <= self.max_bytes {
                break;
            }
            if fs::remove_file(&path).is_ok() {
                total -= size;
                EVICTED.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Bytes held by entries now.
    pub fn used_bytes(&self) -> u64 {
        fs::read_dir(&self.dir)
            .map(|list| {
                list.flatten()
                    .filter(|e| e.file_name().to_string_lossy().ends_with(ENTRY_SUFFIX))
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.size())
                    .sum()
            })
            .unwrap_or(0)
    }
}

/// BLAKE3 of everything `reader` yields.
fn hash_reader(reader: &mut impl Read) -> io::Result<Blake3Digest> {
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(Blake3Digest::from(*hasher.finalize().as_bytes()))
}

fn annotate(path: &Path, what: &str, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(dir: &Path, max_bytes: u64) -> ObjectCache {
        ObjectCache::open(&CacheConfig {
            dir: dir.to_path_buf(),
            max_bytes,
        })
        .unwrap()
    }

    #[test]
    fn entries_are_verified_on_use_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("c");
        let c = cache(&root, 250);
        assert_eq!(
            fs::metadata(&root).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let a = vec![1u8; 100];
        let da = Blake3Digest::of(&a);
        assert!(c.get(&da, 100).is_none());
        assert!(c.fill(&da, 100, &a).unwrap().is_some());
        assert!(c.get(&da, 100).is_some());
        // Bytes that do not match the digest are never cached.
        assert!(c.fill(&Blake3Digest::of(b"x"), 100, &a).unwrap().is_none());
        // A corrupted entry is discarded on use.
        let mut bad = a.clone();
        bad[7] ^= 1;
        fs::write(c.entry_path(&da), &bad).unwrap();
        assert!(c.get(&da, 100).is_none());
        assert!(!c.entry_path(&da).exists());
        // The bound holds: the least recently used entry goes first.
        for byte in 2..6u8 {
            let v = vec![byte; 100];
            c.fill(&Blake3Digest::of(&v), 100, &v).unwrap().unwrap();
            assert!(c.used_bytes() <= 250);
        }
        let big = vec![9u8; 300];
        assert!(!c.fits(big.len() as u64));
        assert!(fs::read_dir(&root).unwrap().all(|e| {
            let name = e.unwrap().file_name();
            !name.to_string_lossy().starts_with(TEMP_PREFIX)
        }));
    }

    #[test]
    fn a_cache_folder_open_to_others_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let err = ObjectCache::open(&CacheConfig {
            dir: dir.path().to_path_buf(),
            max_bytes: 1,
        })
        .unwrap_err();
        assert!(err.to_string().contains("chmod 700"), "{err}");
    }
}
