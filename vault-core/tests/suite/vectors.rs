//! Known-answer test vectors in `tests/vectors/` at the workspace root.
//!
//! Each vector is regenerated from its fixed inputs and must match the
//! stored JSON exactly, must match the independent implementation in
//! `util/oracle.rs`, and must open with its passphrase.
//!
//! To rewrite the files after an intentional format change:
//!
//! ```text
//! MVAULT_REGEN_VECTORS=1 cargo test -p vault-core --test tests vectors::
//! ```

use std::io::Write;
use std::path::PathBuf;

use crate::util::oracle;
use serde_json::{Value, json};
use vault_core::secrecy::SecretString;
use vault_core::{
    Argon2Params, ChunkSize, Error, FileKey, Identities, Opener, PassphraseStanza, SealOptions,
    Sealer, Stanza,
};

const PASSPHRASE: &str = "mvault test vector";
const PARAMS: Argon2Params = Argon2Params {
    memory_kib: 64,
    time_cost: 1,
    parallelism: 1,
};

/// The deterministic plaintext pattern used for vectors too large to store
/// their plaintext: byte `i` is `i mod 251`.
const PATTERN: &str = "byte i = i mod 251";

fn file_key() -> [u8; 32] {
    std::array::from_fn(|i| i as u8)
}

fn file_id() -> [u8; 32] {
    std::array::from_fn(|i| 0x80 + i as u8)
}

fn salt() -> [u8; 16] {
    std::array::from_fn(|i| 0xa0 + i as u8)
}

enum Plain {
    Bytes(&'static [u8]),
    Pattern(usize),
}

impl Plain {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Plain::Bytes(b) => b.to_vec(),
            Plain::Pattern(len) => (0..*len).map(|i| (i % 251) as u8).collect(),
        }
    }

    fn json(&self) -> Value {
        match self {
            Plain::Bytes(b) => json!({ "hex": hex::encode(b) }),
            Plain::Pattern(len) => json!({ "pattern": PATTERN, "len": len }),
        }
    }
}

struct Vector {
    name: &'static str,
    description: &'static str,
    plaintext: Plain,
    recorded: bool,
    /// Base-2 logarithm of the chunk size.
    chunk_log2: u8,
}

fn vectors() -> Vec<Vector> {
    vec![
        Vector {
            name: "v1-empty",
            description: "Empty plaintext: a single empty final chunk (a bare 16-byte tag).",
            plaintext: Plain::Bytes(b""),
            recorded: true,
            chunk_log2: 16,
        },
        Vector {
            name: "v1-basic",
            description: "Five-byte plaintext in one final chunk, length recorded.",
            plaintext: Plain::Bytes(b"hello"),
            recorded: true,
            chunk_log2: 16,
        },
        Vector {
            name: "v1-unrecorded-length",
            description: "Five-byte plaintext sealed as a stream of unknown length: the length field holds 0xffffffffffffffff and readers derive the length from the file size.",
            plaintext: Plain::Bytes(b"hello"),
            recorded: false,
            chunk_log2: 16,
        },
        Vector {
            name: "v1-two-chunks",
            description: "64 KiB + 3 bytes with 64 KiB chunks: one full non-final chunk and a 3-byte final chunk.",
            plaintext: Plain::Pattern((1 << 16) + 3),
            recorded: true,
            chunk_log2: 16,
        },
        Vector {
            name: "v1-small-chunks",
            description: "8 KiB + 5 bytes with the smallest chunks, 4 KiB: two full non-final chunks and a 5-byte final chunk.",
            plaintext: Plain::Pattern((2 << 12) + 5),
            recorded: true,
            chunk_log2: 12,
        },
    ]
}

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors")
}

fn seal(v: &Vector) -> Vec<u8> {
    let key = FileKey::from_bytes(file_key());
    let stanza =
        PassphraseStanza::wrap_with_salt(&key, &SecretString::from(PASSPHRASE), PARAMS, salt())
            .unwrap();
    let plaintext = v.plaintext.bytes();
    let mut sealer = Sealer::with_key_for_test_vectors(
        Vec::new(),
        &key,
        file_id(),
        vec![Stanza::Passphrase(stanza)],
        SealOptions {
            chunk_size: ChunkSize::from_log2(v.chunk_log2).unwrap(),
            plaintext_len: v.recorded.then_some(plaintext.len() as u64),
        },
    )
    .unwrap();
    sealer.write_all(&plaintext).unwrap();
    let (sealed, summary) = sealer.finish().unwrap();
    assert_eq!(summary.blake3, blake3::hash(&plaintext));
    sealed
}

/// The complete JSON document for a vector, computed from its inputs.
fn generate(v: &Vector) -> Value {
    let sealed = seal(v);
    let plaintext = v.plaintext.bytes();
    let keys = oracle::derive(&file_key(), &file_id());
    let header = oracle::parse_header(&sealed);
    let chunk_size = 1usize << v.chunk_log2;
    let kek = oracle::argon2id(PASSPHRASE.as_bytes(), &salt(), 64, 1, 1);
    json!({
        "name": v.name,
        "format_version": 1,
        "description": v.description,
        "inputs": {
            "file_key": hex::encode(file_key()),
            "file_id": hex::encode(file_id()),
            "chunk_size": chunk_size,
            "record_plaintext_len": v.recorded,
            "plaintext": v.plaintext.json(),
            "stanzas": [{
                "kind": "argon2id-passphrase",
                "passphrase": PASSPHRASE,
                "argon2id": { "m_kib": PARAMS.memory_kib, "t": PARAMS.time_cost, "p": PARAMS.parallelism },
                "salt": hex::encode(salt()),
            }],
        },
        "intermediate": {
            "plaintext_len": plaintext.len(),
            "plaintext_blake3": blake3::hash(&plaintext).to_hex().to_string(),
            "passphrase_kek": hex::encode(kek),
            "passphrase_stanza_body": hex::encode(&header.stanzas[0].1),
            "header_mac_key": hex::encode(keys.header_key),
            "payload_key": hex::encode(keys.payload_key),
            "header_len": header.header_len,
            "header_mac": hex::encode(header.mac),
            "chunks": plaintext.len().div_ceil(chunk_size).max(1),
        },
        "expected": {
            "sealed_len": sealed.len(),
            "sealed_blake3": blake3::hash(&sealed).to_hex().to_string(),
            "sealed_hex": hex::encode(&sealed),
        },
    })
}

fn regenerating() -> bool {
    std::env::var_os("MVAULT_REGEN_VECTORS").is_some_and(|v| v == "1")
}

/// With `MVAULT_REGEN_VECTORS=1`, rewrites every vector file once, before
/// any test reads them (tests run in parallel).
fn maybe_regenerate() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    if !regenerating() {
        return;
    }
    ONCE.call_once(|| {
        let dir = vectors_dir();
        std::fs::create_dir_all(&dir).unwrap();
        for v in vectors() {
            let mut text = serde_json::to_string_pretty(&generate(&v)).unwrap();
            text.push('\n');
            std::fs::write(dir.join(format!("{}.json", v.name)), text).unwrap();
        }
    });
}

#[test]
fn vectors_match_their_regeneration() {
    maybe_regenerate();
    for v in vectors() {
        let path = vectors_dir().join(format!("{}.json", v.name));
        let fresh = generate(&v);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; run MVAULT_REGEN_VECTORS=1 cargo test -p vault-core --test tests vectors::",
                path.display()
            )
        });
        let stored: Value = serde_json::from_str(&text).unwrap();
        // Compare the sealed bytes first for a readable failure.
        assert_eq!(
            stored["expected"]["sealed_hex"], fresh["expected"]["sealed_hex"],
            "{}: sealed bytes differ",
            v.name
        );
        assert_eq!(stored, fresh, "{}: vector differs", v.name);
    }
}

#[test]
fn no_unknown_vector_files() {
    maybe_regenerate();
    let known: Vec<String> = vectors()
        .iter()
        .map(|v| format!("{}.json", v.name))
        .collect();
    for entry in std::fs::read_dir(vectors_dir()).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".json") {
            assert!(known.contains(&name), "stale vector file {name}");
        }
    }
}

/// Reads a stored vector back using only its JSON.
fn load(name: &str) -> (Value, Vec<u8>, Vec<u8>) {
    maybe_regenerate();
    let path = vectors_dir().join(format!("{name}.json"));
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let sealed = hex::decode(doc["expected"]["sealed_hex"].as_str().unwrap()).unwrap();
    let plain = &doc["inputs"]["plaintext"];
    let plaintext = match plain["hex"].as_str() {
        Some(h) => hex::decode(h).unwrap(),
        None => {
            assert_eq!(plain["pattern"], PATTERN);
            let len = plain["len"].as_u64().unwrap() as usize;
            (0..len).map(|i| (i % 251) as u8).collect()
        }
    };
    (doc, sealed, plaintext)
}

#[test]
fn vectors_open_with_their_passphrase() {
    for v in vectors() {
        let (doc, sealed, plaintext) = load(v.name);
        assert_eq!(
            doc["expected"]["sealed_len"].as_u64().unwrap(),
            sealed.len() as u64
        );
        assert_eq!(
            doc["expected"]["sealed_blake3"].as_str().unwrap(),
            blake3::hash(&sealed).to_hex().as_str()
        );
        let passphrase = doc["inputs"]["stanzas"][0]["passphrase"].as_str().unwrap();
        let mut ids = Identities::new();
        ids.set_passphrase(SecretString::from(passphrase.to_owned()));
        let opener = Opener::new(sealed.clone(), &ids).unwrap();
        assert_eq!(
            opener.header().plaintext_len,
            v.recorded.then_some(plaintext.len() as u64)
        );
        let mut out = Vec::new();
        let (_, summary) = opener.decrypt_to(&mut out, true, &|_| {}).unwrap();
        assert!(out == plaintext, "{}", v.name);
        assert_eq!(
            summary.blake3.unwrap().to_hex().as_str(),
            doc["intermediate"]["plaintext_blake3"].as_str().unwrap()
        );

        let mut wrong = Identities::new();
        wrong.set_passphrase(SecretString::from("not the test vector".to_owned()));
        assert!(matches!(
            Opener::new(sealed, &wrong).map(|_| ()),
            Err(Error::WrongPassphrase)
        ));
    }
}

/// The independent implementation reproduces every vector from the JSON
/// inputs alone, and decrypts it.
#[test]
fn vectors_match_the_independent_implementation() {
    for v in vectors() {
        let (doc, sealed, plaintext) = load(v.name);
        let inputs = &doc["inputs"];
        let key: [u8; 32] = hex::decode(inputs["file_key"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        let id: [u8; 32] = hex::decode(inputs["file_id"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        let stanza = &inputs["stanzas"][0];
        let salt: [u8; 16] = hex::decode(stanza["salt"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        let a = &stanza["argon2id"];
        let params = (
            a["m_kib"].as_u64().unwrap() as u32,
            a["t"].as_u64().unwrap() as u32,
            a["p"].as_u64().unwrap() as u32,
        );
        let body =
            oracle::passphrase_stanza(&key, stanza["passphrase"].as_str().unwrap(), &salt, params);
        let log2 = inputs["chunk_size"].as_u64().unwrap().trailing_zeros() as u8;
        let recorded = inputs["record_plaintext_len"].as_bool().unwrap();
        let independent = oracle::seal(
            &key,
            &id,
            &[(oracle::KIND_PASSPHRASE, body)],
            log2,
            &plaintext,
            recorded,
        );
        assert!(independent == sealed, "{}", v.name);
        assert!(oracle::open(&sealed, &key).unwrap() == plaintext);
        let keys = oracle::derive(&key, &id);
        assert_eq!(
            doc["intermediate"]["payload_key"].as_str().unwrap(),
            hex::encode(keys.payload_key)
        );
        assert_eq!(
            doc["intermediate"]["header_mac_key"].as_str().unwrap(),
            hex::encode(keys.header_key)
        );
    }
}
