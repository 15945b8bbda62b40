//! Checking a vault: without a key (signature, every object's ciphertext
//! BLAKE3 and size, missing and extra objects) and with one (also full
//! authenticated decryption and every file's plaintext BLAKE3).

use std::collections::HashSet;
use std::io;
use std::path::Path;

use rayon::prelude::*;

use super::ids::{Blake3Digest, ObjectId};
use super::manifest::EntryKind;
use super::read::{UnlockedVault, Vault};
use super::sign::VerifyingKey;
use super::storage::Store;
use crate::error::{Error, Result};
use crate::pipeline::Progress;
use crate::source::Source;

/// Kinds of failure, stable names for `--json`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// The signature is missing, invalid or by another key.
    Signature,
    /// The index's keyring or manifest section does not match its hash, or
    /// the manifest disagrees with the public list.
    Index,
    /// A listed object is not there.
    Missing,
    /// A file under `objects/` that the index does not list.
    Extra,
    /// An object's size or ciphertext BLAKE3 differs from the index.
    Corrupt,
    /// An object failed authenticated decryption.
    Decrypt,
    /// A file's plaintext BLAKE3 differs from the manifest.
    Plaintext,
}

impl FailureKind {
    /// The stable name.
    pub fn name(self) -> &'static str {
        match self {
            FailureKind::Signature => "signature",
            FailureKind::Index => "index",
            FailureKind::Missing => "missing",
            FailureKind::Extra => "extra",
            FailureKind::Corrupt => "corrupt",
            FailureKind::Decrypt => "decrypt",
            FailureKind::Plaintext => "plaintext",
        }
    }
}

/// One problem found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// What kind.
    pub kind: FailureKind,
    /// The object id (hex) or file path (inside `objects/` for extras).
    pub object: Option<String>,
    /// The vault path of an affected file (keyed checks).
    pub path: Option<String>,
    /// What is wrong.
    pub detail: String,
}

/// Whether and how the signature was checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureStatus {
    /// No public key was given.
    NotChecked,
    /// Verified under the given key.
    Valid,
    /// Missing, invalid, or by another key.
    Bad,
}

/// The outcome of a verification.
#[derive(Clone, Debug)]
pub struct Report {
    /// Vault id (hex).
    pub vault_id: String,
    /// Index generation.
    pub generation: u64,
    /// Whether the index is signed (by anyone).
    pub signed: bool,
    /// Signature check result.
    pub signature: SignatureStatus,
    /// Objects checked.
    pub objects: u64,
    /// Ciphertext bytes hashed.
    pub sealed_bytes: u64,
    /// Files whose plaintext was checked (keyed).
    pub files: u64,
    /// Plaintext bytes authenticated (keyed).
    pub plain_bytes: u64,
    /// Everything that failed.
    pub failures: Vec<Failure>,
}

impl Report {
    /// Whether everything passed.
    pub fn ok(&self) -> bool {
        self.failures.is_empty()
    }

    /// Whether the signature (and only it, possibly among others) failed.
    pub fn signature_failed(&self) -> bool {
        self.failures
            .iter()
            .any(|f| f.kind == FailureKind::Signature)
    }

    fn fail(
        &mut self,
        kind: FailureKind,
        object: Option<String>,
        path: Option<String>,
        detail: String,
    ) {
        self.failures.push(Failure {
            kind,
            object,
            path,
            detail,
        });
    }
}

/// Checks a vault without any decryption key. With `pubkey`, the index must
/// carry a valid signature by it.
pub fn verify_public(path: &Path, pubkey: Option<&VerifyingKey>) -> Result<(Vault, Report)> {
    let vault = Vault::open(path)?;
    let index = vault.index();
    let mut report = Report {
        vault_id: index.public.vault_id.to_hex(),
        generation: index.public.generation,
        signed: index.signature.is_some(),
        signature: SignatureStatus::NotChecked,
        objects: index.public.objects.len() as u64,
        sealed_bytes: 0,
        files: 0,
        plain_bytes: 0,
        failures: Vec::new(),
    };
    if let Some(key) = pubkey {
        match index.verify_signature(key) {
            Ok(()) => report.signature = SignatureStatus::Valid,
            Err(Error::BadSignature(why)) => {
                report.signature = SignatureStatus::Bad;
                report.fail(FailureKind::Signature, None, None, why);
            }
            Err(e) => return Err(e),
        }
    }
    for problem in index.check_sections() {
        report.fail(FailureKind::Index, None, None, problem);
    }
    let results: Vec<Option<Failure>> = index
        .public
        .objects
        .par_iter()
        .map(|o| check_object_file(vault.store(), &o.id, o.sealed_len, &o.sealed_blake3))
        .collect();
    // Saturating: without a key these sizes are whatever the index says.
    report.sealed_bytes = index
        .public
        .objects
        .iter()
        .fold(0u64, |sum, o| sum.saturating_add(o.sealed_len));
    report.failures.extend(results.into_iter().flatten());
    let listed: HashSet<String> = index.public.objects.iter().map(|o| o.id.to_hex()).collect();
    let is_listed = |name: &[u8]| std::str::from_utf8(name).is_ok_and(|n| listed.contains(n));
    for extra in vault.store().extras(&is_listed)? {
        report.fail(
            FailureKind::Extra,
            Some(extra),
            None,
            "not listed in the index (left by an interrupted write, or planted)".into(),
        );
    }
    Ok((vault, report))
}

fn check_object_file(
    vault: &dyn Store,
    id: &ObjectId,
    sealed_len: u64,
    expected: &Blake3Digest,
) -> Option<Failure> {
    let hex_id = id.to_hex();
    let failure = |kind, detail: String| {
        Some(Failure {
            kind,
            object: Some(hex_id.clone()),
            path: None,
            detail,
        })
    };
    let file = match vault.open_object(id) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return failure(FailureKind::Missing, "object file is missing".into());
        }
        Err(e) if e.kind() == io::ErrorKind::InvalidData => {
            return failure(
                FailureKind::Corrupt,
                "a symlink or not a regular file (not followed)".into(),
            );
        }
        Err(e) => return failure(FailureKind::Missing, format!("cannot open: {e}")),
    };
    // The store opened a regular file only (else `InvalidData` above).
    let len = match file.len() {
        Ok(len) => len,
        Err(e) => return failure(FailureKind::Missing, format!("cannot stat: {e}")),
    };
    if len != sealed_len {
        return failure(
            FailureKind::Corrupt,
            format!("{len} bytes, the index says {sealed_len}"),
        );
    }
    // Parallel positional reads of the file we opened (no memory map: an
    // object truncated meanwhile is an error here, not a SIGBUS).
    let hash = match crate::hash_source(&file, &|_| {}) {
        Ok(hash) => hash,
        Err(e) => return failure(FailureKind::Missing, format!("cannot read: {e}")),
    };
    if *expected != hash {
        return failure(
            FailureKind::Corrupt,
            "ciphertext BLAKE3 differs from the index".into(),
        );
    }
    None
}

/// The keyed checks, added to `report`: every object is decrypted with
/// authentication and every file's plaintext BLAKE3 compared with the
/// manifest.
pub fn verify_keyed(vault: &UnlockedVault, report: &mut Report) {
    verify_keyed_with_progress(vault, report, &|_| {});
}

/// [`verify_keyed`], calling `progress` with the plaintext bytes of each
/// window of an object as it is checked (the total is the sum of the
/// objects' plaintext lengths).
pub fn verify_keyed_with_progress(
    vault: &UnlockedVault,
    report: &mut Report,
    progress: Progress<'_>,
) {
    let manifest = vault.manifest();
    // Files by object.
    let mut by_object: Vec<Vec<usize>> = vec![Vec::new(); manifest.objects.len()];
    for (i, e) in manifest.entries.iter().enumerate() {
        if let EntryKind::File { object, .. } = e.kind {
            by_object[object as usize].push(i);
        }
    }
    let results: Vec<(u64, u64, Vec<Failure>)> = by_object
        .par_iter()
        .enumerate()
        .map(|(o, files)| check_object_plaintext(vault, o as u32, files, progress))
        .collect();
    for (files, bytes, failures) in results {
        report.files += files;
        report.plain_bytes += bytes;
        report.failures.extend(failures);
    }
}

/// Plaintext bytes of one object decrypted at a time by the keyed checks
/// (per object being checked; objects are checked in parallel).
const VERIFY_WINDOW: usize = 16 << 20;

fn check_object_plaintext(
    vault: &UnlockedVault,
    object: u32,
    files: &[usize],
    progress: Progress<'_>,
) -> (u64, u64, Vec<Failure>) {
    let manifest = vault.manifest();
    let id = manifest.objects[object as usize].id.to_hex();
    let path_of = |i: usize| String::from_utf8_lossy(vault.entry_path(i)).into_owned();
    let opener = match vault.open_object(object) {
        Ok(o) => o,
        Err(e) => {
            let mut failures = vec![Failure {
                kind: FailureKind::Decrypt,
                object: Some(id.clone()),
                path: None,
                detail: e.to_string(),
            }];
            failures.extend(files.iter().map(|&i| Failure {
                kind: FailureKind::Decrypt,
                object: Some(id.clone()),
                path: Some(path_of(i)),
                detail: "its object cannot be opened".into(),
            }));
            return (files.len() as u64, 0, failures);
        }
    };
    // Decrypt every chunk, remembering which failed, a bounded window at a
    // time (an object can be a many-GiB shard), feeding each file's hasher.
    let layout = *opener.layout();
    let cs = layout.chunk_size as usize;
    let window = (VERIFY_WINDOW / cs).max(1) * cs;
    let total = layout.plaintext_len;
    let mut plain = crate::WipedVec::new(vec![0u8; (window as u64).min(total) as usize]);
    let mut hashers: Vec<blake3::Hasher> = files.iter().map(|_| blake3::Hasher::new()).collect();
    let mut bad: Vec<(u64, String)> = Vec::new();
    if total == 0 {
        if let Err(e) = opener.read_chunk(0, &mut []) {
            bad.push((0, e.to_string()));
        }
    }
    let mut start = 0u64;
    while start < total {
        let len = (window as u64).min(total - start) as usize;
        let buf = &mut plain[..len];
        let first = start / cs as u64;
        let errors: Vec<Option<(u64, String)>> = buf
            .par_chunks_mut(cs)
            .enumerate()
            .map(|(k, slot)| {
                let index = first + k as u64;
                opener
                    .read_chunk(index, slot)
                    .err()
                    .map(|e| (index, e.to_string()))
            })
            .collect();
        bad.extend(errors.into_iter().flatten());
        progress(len as u64);
        let end = start + len as u64;
        for (hasher, &i) in hashers.iter_mut().zip(files) {
            if let EntryKind::File { size, offset, .. } = manifest.entries[i].kind {
                let (lo, hi) = (offset.max(start), (offset + size).min(end));
                if lo < hi {
                    hasher.update(&buf[(lo - start) as usize..(hi - start) as usize]);
                }
            }
        }
        start = end;
    }
    let mut failures: Vec<Failure> = bad
        .iter()
        .map(|(_, why)| Failure {
            kind: FailureKind::Decrypt,
            object: Some(id.clone()),
            path: None,
            detail: why.clone(),
        })
        .collect();
    let mut bytes = 0;
    for (hasher, &i) in hashers.iter().zip(files) {
        let EntryKind::File {
            size,
            blake3,
            offset,
            ..
        } = manifest.entries[i].kind
        else {
            continue;
        };
        let first = offset / cs as u64;
        let last = (offset + size).saturating_sub(1) / cs as u64;
        if bad.iter().any(|(k, _)| *k >= first && *k <= last) || (total == 0 && !bad.is_empty()) {
            failures.push(Failure {
                kind: FailureKind::Decrypt,
                object: Some(id.clone()),
                path: Some(path_of(i)),
                detail: "a chunk of this file failed authentication".into(),
            });
            continue;
        }
        bytes += size;
        if blake3 != hasher.finalize() {
            failures.push(Failure {
                kind: FailureKind::Plaintext,
                object: Some(id.clone()),
                path: Some(path_of(i)),
                detail: "plaintext BLAKE3 differs from the manifest".into(),
            });
        }
    }
    (files.len() as u64, bytes, failures)
}
