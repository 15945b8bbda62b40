//! Fuzz target bodies for the directory-vault parsers and the small text
//! parsers, shared by the libFuzzer binaries in `fuzz/fuzz_targets/` and by
//! the stable corpus replay in `vault-core/tests/suite/fuzz_corpus.rs`.
//!
//! | target            | input                     | checks |
//! |-------------------|---------------------------|--------|
//! | `manifest_decode` | raw bytes                 | `Manifest::decode` never panics; a decoded manifest validates, every name is one safe path component, every parent is an earlier directory, and `decode(encode(m)) == m`. |
//! | `index_parse`     | raw bytes                 | `Index::parse` never panics; section hash and signature checks never panic; re-encoding the parsed sections parses back to the same public part and sections. |
//! | `text_parse`      | raw bytes (UTF-8 or not)  | `Argon2Params::parse` accepts only in-range costs and round-trips; `VerifyingKey::from_text` and `SigningKey::from_text` never panic and round-trip; `parse_user_path` yields only safe components. |

use vault_core::Argon2Params;
use vault_core::vault::{
    Blake3Digest, Entry, EntryKind, Index, IndexPublic, MANIFEST_VERSION, Manifest, ObjectId,
    ObjectInfo, PublicObject, SigningKey, VaultId, VerifyingKey, parse_user_path, valid_name,
};

/// A target's body.
pub type Target = fn(&[u8]);

/// Every target: (name, body).
pub const TARGETS: [(&str, Target); 3] = [
    ("manifest_decode", manifest_decode),
    ("index_parse", index_parse),
    ("text_parse", text_parse),
];

pub fn manifest_decode(data: &[u8]) {
    let Ok(manifest) = Manifest::decode(data) else {
        return;
    };
    manifest.validate().expect("a decoded manifest is valid");
    assert_eq!(manifest.version, MANIFEST_VERSION);
    for (i, entry) in manifest.entries.iter().enumerate() {
        assert!(valid_name(&entry.name), "entry {i}: unsafe name");
        assert!(entry.name != b".." && !entry.name.contains(&b'/'));
        if entry.parent > 0 {
            let parent = entry.parent as usize - 1;
            assert!(parent < i, "entry {i}: parent after child");
            assert!(matches!(manifest.entries[parent].kind, EntryKind::Dir));
        }
        if let EntryKind::File { object, .. } = entry.kind {
            assert!((object as usize) < manifest.objects.len());
        }
    }
    let again = Manifest::decode(&manifest.encode()).expect("re-encoded manifest decodes");
    assert_eq!(again, manifest);
}

pub fn index_parse(data: &[u8]) {
    let Ok(index) = Index::parse(data) else {
        return;
    };
    let _ = index.check_sections();
    if let Some((key, _)) = index.signature {
        let _ = index.verify_signature(&key);
    }
    let encoded = Index::encode(index.public.clone(), &index.keyring, &index.manifest, None);
    let again = Index::parse(&encoded).expect("re-encoded index parses");
    assert!(
        again.check_sections().is_empty(),
        "encode writes true hashes"
    );
    assert_eq!(again.keyring, index.keyring);
    assert_eq!(again.manifest, index.manifest);
    assert_eq!(again.public.objects, index.public.objects);
    assert_eq!(again.public.vault_id, index.public.vault_id);
    assert_eq!(again.public.generation, index.public.generation);
    assert!(again.signature.is_none());
}

pub fn text_parse(data: &[u8]) {
    if let Ok(parts) = parse_user_path(data) {
        for part in &parts {
            assert!(valid_name(part), "unsafe component {part:?}");
            assert!(part.as_slice() != b"." && part.as_slice() != b"..");
        }
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(p) = Argon2Params::parse(text) {
        // The opener's ceilings (passphrase.rs): 4 GiB, 64 passes, 64 lanes.
        assert!(p.memory_kib <= 4 << 20);
        assert!((1..=64).contains(&p.time_cost));
        assert!((1..=64).contains(&p.parallelism));
        assert!(p.memory_kib >= 8 * p.parallelism);
        let again = Argon2Params::parse(&format!(
            "m={},t={},p={}",
            p.memory_kib, p.time_cost, p.parallelism
        ))
        .expect("canonical form parses");
        assert_eq!(again, p);
    }
    if let Ok(key) = VerifyingKey::from_text(text) {
        assert_eq!(VerifyingKey::from_text(&key.to_text()).ok(), Some(key));
        let _ = key.verify(b"message", &[0u8; 64]);
    }
    if let Ok(key) = SigningKey::from_text(text) {
        let again = SigningKey::from_text(&key.to_text()).expect("written key parses");
        assert_eq!(again.verifying_key(), key.verifying_key());
        let sig = key.sign(b"message");
        assert!(key.verifying_key().verify(b"message", &sig));
    }
}

fn entry(parent: u32, name: &[u8], kind: EntryKind) -> Entry {
    Entry {
        parent,
        name: name.to_vec(),
        mode: 0o644,
        mtime: 1_700_000_000,
        mtime_nsec: 5,
        kind,
    }
}

/// A small valid manifest: a folder, two files sharing one packed object.
pub fn sample_manifest() -> Manifest {
    Manifest {
        version: MANIFEST_VERSION,
        vault_id: VaultId([7; 32]),
        generation: 3,
        objects: vec![ObjectInfo {
            id: ObjectId([1; 32]),
            plain_len: 30,
            sealed_len: 300,
            sealed_blake3: Blake3Digest([2; 32]),
        }],
        entries: vec![
            entry(0, b"ckpt", EntryKind::Dir),
            entry(
                1,
                b"config.json",
                EntryKind::File {
                    size: 10,
                    blake3: Blake3Digest([3; 32]),
                    object: 0,
                    offset: 0,
                },
            ),
            entry(
                1,
                b"model.safetensors",
                EntryKind::File {
                    size: 20,
                    blake3: Blake3Digest([4; 32]),
                    object: 0,
                    offset: 10,
                },
            ),
        ],
        // Fields added later keep their defaults.
        ..Manifest::default()
    }
}

fn sample_public() -> IndexPublic {
    IndexPublic {
        vault_id: VaultId([7; 32]),
        generation: 3,
        keyring_len: 0,
        keyring_blake3: Blake3Digest([0; 32]),
        manifest_len: 0,
        manifest_blake3: Blake3Digest([0; 32]),
        objects: vec![PublicObject {
            id: ObjectId([1; 32]),
            sealed_len: 300,
            sealed_blake3: Blake3Digest([2; 32]),
        }],
    }
}

/// Seed inputs: valid encodings and a few near misses.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let manifest = sample_manifest().encode();
    let mut escaping = sample_manifest();
    escaping.entries[1].name = b"..".to_vec();
    let empty = Manifest {
        version: MANIFEST_VERSION,
        ..Manifest::default()
    };
    let unsigned = Index::encode(sample_public(), b"keyring bytes", b"manifest bytes", None);
    let mut seeds = vec![
        ("manifest_decode", manifest.clone()),
        ("manifest_decode", empty.encode()),
        ("manifest_decode", escaping.encode()),
        ("manifest_decode", manifest[..manifest.len() - 3].to_vec()),
        ("index_parse", unsigned.clone()),
        ("index_parse", unsigned[..unsigned.len() - 1].to_vec()),
        ("text_parse", b"m=65536,t=3,p=1".to_vec()),
        ("text_parse", b"m=8,t=1,p=1".to_vec()),
        ("text_parse", b"m=4294967295,t=64,p=64".to_vec()),
        ("text_parse", b"ckpt/./model.safetensors".to_vec()),
        ("text_parse", b"/a/../b".to_vec()),
        (
            "text_parse",
            format!("mvault-ed25519 {}", "ab".repeat(32)).into_bytes(),
        ),
    ];
    if let Ok(key) = SigningKey::generate() {
        seeds.push((
            "index_parse",
            Index::encode(sample_public(), b"k", b"m", Some(&key)),
        ));
        seeds.push(("text_parse", key.to_text().as_bytes().to_vec()));
    }
    seeds
}
