//! Changing who can open a vault: [`rekey`] writes a new keyring under
//! the same vault key; [`rotate_key`] reseals every object under a fresh
//! vault key so a removed recipient's copy of the old key opens nothing new.

use rayon::prelude::*;

use super::WriteSummary;
use super::commit::{Installer, ensure_current, garbage_warnings, seal_manifest};
use super::pack::NewObject;
use crate::error::Result;
use crate::seal::SealOptions;
use crate::vault::ids::Blake3Digest;
use crate::vault::index::{Index, IndexPublic};
use crate::vault::keyring::{self, KeyringInfo};
use crate::vault::manifest::ObjectInfo;
use crate::vault::read::UnlockedVault;
use crate::vault::sign::SigningKey;
use crate::vault::storage::{IndexExpect, PendingObject};
use crate::wrap::Recipients;

/// Writes a new index for `vault` with a new keyring (and everything else
/// unchanged but the generation): `rekey`.
pub fn rekey(
    vault: UnlockedVault,
    recipients: &Recipients,
    info: KeyringInfo,
    signer: Option<&SigningKey>,
) -> Result<u64> {
    let writable = vault.store().begin_write()?;
    ensure_current(&vault)?;
    let keyring = keyring::seal(vault.key(), recipients, &info)?;
    let mut manifest = vault.manifest().clone();
    manifest.generation += 1;
    manifest.keyring_blake3 = Blake3Digest::of(&keyring);
    let generation = manifest.generation;
    let sealed_manifest = seal_manifest(vault.key(), &manifest)?;
    let public = IndexPublic {
        generation,
        ..vault.index().public.clone()
    };
    let bytes = Index::encode(public, &keyring, &sealed_manifest, signer);
    writable.replace_index(&bytes, IndexExpect::Version(vault.index_version()))?;
    Ok(generation)
}

/// Re-encrypts every object under a fresh vault key (same vault id) and a
/// new keyring for `recipients`: after removing a recipient, whatever they
/// kept of the old key opens none of the new objects. Objects are streamed
/// (decrypted with authentication and re-sealed chunk batch by chunk
/// batch); the switch is the usual single index rename.
pub fn rotate_key(
    vault: UnlockedVault,
    recipients: &Recipients,
    info: KeyringInfo,
    signer: Option<&SigningKey>,
) -> Result<WriteSummary> {
    let writable = vault.store().begin_write()?;
    ensure_current(&vault)?;
    let new_key = vault.key().rotated()?;
    let keyring = keyring::seal(&new_key, recipients, &info)?;
    let old = vault.manifest();
    let resealed: Vec<(ObjectInfo, PendingObject)> = (0..old.objects.len())
        .into_par_iter()
        .map(|i| {
            let opener = vault.open_object(i as u32)?;
            let mut object = NewObject::start(
                writable.as_ref(),
                &new_key,
                SealOptions {
                    chunk_size: opener.header().chunk_size,
                    plaintext_len: Some(opener.len()),
                },
            )?;
            opener.decrypt_to(&mut object.sealer, false, &|_| {})?;
            let (info, _, temp) = object.finish()?;
            Ok((info, temp))
        })
        .collect::<Result<_>>()
        .inspect_err(|_| writable.clean_scratch())?;
    let mut manifest = old.clone();
    manifest.generation += 1;
    manifest.keyring_blake3 = Blake3Digest::of(&keyring);
    manifest.objects = resealed.iter().map(|(o, _)| o.clone()).collect();
    manifest.validate()?;
    let temps: Vec<&PendingObject> = resealed.iter().map(|(_, t)| t).collect();
    let installer = Installer {
        writable: writable.as_ref(),
        key: &new_key,
        keyring: &keyring,
        signer,
        expect: IndexExpect::Version(vault.index_version()),
    };
    let garbage = installer.install(&manifest, &temps)?;
    Ok(WriteSummary {
        generation: manifest.generation,
        files: manifest.file_count() as u64,
        bytes: manifest.total_bytes(),
        objects_written: resealed.len() as u64,
        objects_removed: garbage.removed,
        warnings: garbage_warnings(&garbage),
        ..WriteSummary::default()
    })
}
