//! What removing a recipient from a vault does and does not do
//! (docs/SECURITY.md, "Keys: management and rotation").
//!
//! The attacker here is a former recipient who kept a copy of the keyring
//! from before their removal and can read the vault's storage. They use
//! their own tool: the keyring is an ordinary sealed file they can open,
//! and object keys follow from the vault key by the HKDF in FORMAT.md 8.1
//! (recomputed below with the RustCrypto `hkdf` crate, independently of
//! vault-core).
//!
//! - `rekey` (new keyring, same vault key): objects added after the
//!   removal still open with the kept vault key.
//! - `rotate_key` (`rekey --new-key`): no object of the vault opens with
//!   the kept key any more, including those added afterwards.

use std::fs;
use std::path::Path;

use hkdf::Hkdf;
use sha2::Sha256;
use vault_core::vault::{self, KeyringInfo, NewVault, Vault, WriteOptions};
use vault_core::{FileKey, Identities, Opener, Recipients};

struct Person {
    identity: age::x25519::Identity,
}

impl Person {
    fn new() -> Person {
        Person {
            identity: age::x25519::Identity::generate(),
        }
    }

    fn recipient(&self) -> String {
        self.identity.to_public().to_string()
    }

    fn identities(&self) -> Identities {
        let mut ids = Identities::new();
        ids.extend_age([Box::new(self.identity.clone()) as Box<dyn age::Identity>]);
        ids
    }
}

fn recipients(people: &[&Person]) -> (Recipients, KeyringInfo) {
    let mut r = Recipients::new();
    for p in people {
        r.add_age(Box::new(p.identity.to_public()));
    }
    let info = KeyringInfo {
        recipients: people.iter().map(|p| p.recipient()).collect(),
        passphrase: false,
    };
    (r, info)
}

fn options() -> WriteOptions {
    WriteOptions::default()
}

/// The vault id and key from a keyring the attacker can unwrap.
fn vault_key_from_keyring(keyring: &[u8], who: &Person) -> ([u8; 32], [u8; 32]) {
    let opener = Opener::new(keyring, &who.identities()).expect("their keyring opens for them");
    let (plain, _) = opener.decrypt_to(Vec::new(), false, &|_| {}).unwrap();
    // postcard: version (varint 1), vault id (32 bytes), vault key (32 bytes), ...
    assert_eq!(plain[0], 1, "keyring version");
    (
        plain[1..33].try_into().unwrap(),
        plain[33..65].try_into().unwrap(),
    )
}

/// FORMAT.md 8.1: object key = HKDF-SHA-256(salt = vault id, ikm = vault
/// key, info = "mvault/v1 vault object" || object id).
fn object_key(vault_id: &[u8; 32], vault_key: &[u8; 32], object_id: &[u8; 32]) -> FileKey {
    let mut out = [0u8; 32];
    Hkdf::<Sha256>::new(Some(vault_id), vault_key)
        .expand(
            &[&b"mvault/v1 vault object"[..], object_id].concat(),
            &mut out,
        )
        .unwrap();
    FileKey::from_bytes(out)
}

/// Plaintext of every object of `v` that opens with the kept key.
fn objects_readable_with(v: &Path, id: &[u8; 32], key: &[u8; 32]) -> Vec<Vec<u8>> {
    let index = Vault::open(v).unwrap().index().clone();
    index
        .public
        .objects
        .iter()
        .filter_map(|o| {
            let file = fs::File::open(o.id.path_in(v)).unwrap();
            let opener = Opener::with_file_key(file, &object_key(id, key, o.id.as_bytes())).ok()?;
            Some(opener.decrypt_to(Vec::new(), false, &|_| {}).ok()?.0)
        })
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn removed_recipient_with_a_kept_vault_key_reads_later_files_until_the_key_rotates() {
    let t = tempfile::tempdir().unwrap();
    let (owner, former) = (Person::new(), Person::new());
    let src = t.path().join("ckpt");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("config.json"), br#"{"layers": 2}"#).unwrap();
    let v = t.path().join("v");
    let (both, both_info) = recipients(&[&owner, &former]);
    vault::seal_dir(
        &src,
        &v,
        None,
        Some(NewVault {
            recipients: &both,
            info: both_info,
        }),
        None,
        &options(),
        &|_| {},
    )
    .unwrap();
    // What the former recipient keeps before being removed.
    let kept_keyring = Vault::open(&v).unwrap().index().keyring.clone();
    let (vault_id, vault_key) = vault_key_from_keyring(&kept_keyring, &former);
    assert_eq!(
        &vault_id,
        &Vault::open(&v).unwrap().index().public.vault_id.0
    );

    // Removed: the new keyring no longer opens for them.
    let (only_owner, owner_info) = recipients(&[&owner]);
    let unlock = |who: &Person| Vault::open(&v).unwrap().unlock(&who.identities());
    vault::rekey(
        unlock(&owner).unwrap(),
        &only_owner,
        owner_info.clone(),
        None,
    )
    .unwrap();
    assert!(unlock(&former).is_err());

    // A file added after the removal still opens with the kept vault key.
    let late = b"weights added after the removal".repeat(10);
    fs::write(t.path().join("late.bin"), &late).unwrap();
    vault::add_paths(
        unlock(&owner).unwrap(),
        &[(t.path().join("late.bin"), vec![b"late.bin".to_vec()])],
        None,
        &options(),
        &|_| {},
    )
    .unwrap();
    let readable = objects_readable_with(&v, &vault_id, &vault_key);
    assert!(
        readable.iter().any(|p| contains(p, &late)),
        "expected the documented limit: rekey keeps the vault key"
    );

    // `rekey --new-key`: every object re-encrypted under a fresh key; the
    // kept key opens nothing, now or after later additions.
    vault::rotate_key(unlock(&owner).unwrap(), &only_owner, owner_info, None).unwrap();
    fs::write(t.path().join("later.bin"), b"after the rotation").unwrap();
    vault::add_paths(
        unlock(&owner).unwrap(),
        &[(t.path().join("later.bin"), vec![b"later.bin".to_vec()])],
        None,
        &options(),
        &|_| {},
    )
    .unwrap();
    assert!(objects_readable_with(&v, &vault_id, &vault_key).is_empty());
    // The owner still reads everything.
    let u = unlock(&owner).unwrap();
    for name in [&b"late.bin"[..], b"later.bin", b"config.json"] {
        let i = u.find(&[name.to_vec()]).unwrap();
        let mut got = Vec::new();
        u.file_reader(i).unwrap().copy_to(&mut got).unwrap();
        assert!(!got.is_empty());
    }
}
