//! Cross-checks the library against an independent implementation of the
//! format built on the RustCrypto `aes-gcm`, `hkdf`, `hmac` and `sha2`
//! crates (see `util/oracle.rs`).

use std::io::{Read, Write};

use crate::util::oracle;
use crate::util::*;
use vault_core::age::x25519;
use vault_core::{
    ChunkSize, Error, FileKey, Header, Opener, PassphraseStanza, Recipients, SealOptions, Sealer,
    Stanza, chunk_nonce, seal_source,
};

const FILE_KEY: [u8; 32] = [
    0x6d, 0x76, 0x61, 0x75, 0x6c, 0x74, 0x20, 0x6f, 0x72, 0x61, 0x63, 0x6c, 0x65, 0x20, 0x6b, 0x65,
    0x79, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e,
];
const FILE_ID: [u8; 32] = [0x5a; 32];
const SALT: [u8; 16] = [0x11; 16];
const PASS: &str = "oracle passphrase";

fn sizes() -> Vec<usize> {
    vec![0, 1, 5, C - 1, C, C + 1, 2 * C, 3 * C + 7]
}

fn fixed_passphrase_stanza() -> PassphraseStanza {
    PassphraseStanza::wrap_with_salt(&FileKey::from_bytes(FILE_KEY), &secret(PASS), FAST, SALT)
        .unwrap()
}

fn seal_fixed(plaintext: &[u8], stanzas: Vec<Stanza>, recorded: bool) -> Vec<u8> {
    let mut sealer = Sealer::with_key_for_test_vectors(
        Vec::new(),
        &FileKey::from_bytes(FILE_KEY),
        FILE_ID,
        stanzas,
        options(recorded.then_some(plaintext.len() as u64)),
    )
    .unwrap();
    sealer.write_all(plaintext).unwrap();
    sealer.finish().unwrap().0
}

#[test]
fn nonce_layout_matches_the_specification() {
    for (index, last) in [
        (0, false),
        (0, true),
        (1, false),
        (u64::MAX, true),
        (0x0102, true),
    ] {
        assert_eq!(chunk_nonce(index, last), oracle::nonce(index, last));
    }
    assert_eq!(
        chunk_nonce(0x0102_0304_0506_0708, true),
        [0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 1]
    );
}

/// Every payload chunk equals an independent AES-256-GCM encryption under
/// the independently derived payload key, and decrypts with it; the header
/// MAC equals an independent HMAC; the whole file equals an independent
/// encoder's output byte for byte.
#[test]
fn fixed_key_files_match_the_independent_implementation() {
    let keys = oracle::derive(&FILE_KEY, &FILE_ID);
    let passphrase_body = oracle::passphrase_stanza(&FILE_KEY, PASS, &SALT, (64, 1, 1));
    for len in sizes() {
        let plaintext = pattern(len as u64, len);
        for recorded in [true, false] {
            let sealed = seal_fixed(
                &plaintext,
                vec![Stanza::Passphrase(fixed_passphrase_stanza())],
                recorded,
            );
            // Byte-for-byte equal to the independent encoder.
            let independent = oracle::seal(
                &FILE_KEY,
                &FILE_ID,
                &[(oracle::KIND_PASSPHRASE, passphrase_body.clone())],
                16,
                &plaintext,
                recorded,
            );
            assert!(sealed == independent, "len {len} recorded {recorded}");

            // Field by field.
            let header = oracle::parse_header(&sealed);
            assert_eq!(
                (header.version, header.suite, header.chunk_log2),
                (1, 1, 16)
            );
            assert_eq!(header.file_id, FILE_ID);
            assert_eq!(
                header.plaintext_len,
                if recorded { len as u64 } else { u64::MAX }
            );
            assert_eq!(header.stanzas.len(), 1);
            assert_eq!(header.stanzas[0], (2, passphrase_body.clone()));
            let h = header.header_len;
            assert_eq!(
                header.mac,
                oracle::hmac_sha256(&keys.header_key, &sealed[..h - 32])
            );

            // Chunk by chunk.
            let chunks = chunks_for(len);
            assert_eq!(sealed.len(), h + len + chunks * 16);
            for i in 0..chunks {
                let last = i + 1 == chunks;
                let piece = &plaintext[(i * C).min(len)..((i + 1) * C).min(len)];
                let range = h + i * STRIDE..(h + i * STRIDE + piece.len() + 16);
                let nonce = oracle::nonce(i as u64, last);
                assert!(
                    sealed[range.clone()]
                        == oracle::gcm_seal(&keys.payload_key, &nonce, b"", piece)[..],
                    "chunk {i} of {len}"
                );
                let opened =
                    oracle::gcm_open(&keys.payload_key, &nonce, b"", &sealed[range.clone()]);
                assert!(opened.as_deref() == Some(piece));
                // The final flag is part of the nonce: the other flag fails.
                let flipped = oracle::nonce(i as u64, !last);
                assert!(
                    oracle::gcm_open(&keys.payload_key, &flipped, b"", &sealed[range]).is_none()
                );
            }

            // The independent reader agrees, and the library opens it.
            assert!(oracle::open(&sealed, &FILE_KEY).unwrap() == plaintext);
            assert_eq!(
                oracle::unwrap_passphrase(&passphrase_body, PASS),
                Some(FILE_KEY)
            );
            assert!(open_all(sealed, &with_passphrase(PASS)).unwrap() == plaintext);
        }
    }
}

/// Files made with random keys (both sealing paths) decrypt with the
/// independent implementation once the file key is recovered independently
/// from the passphrase stanza (Argon2id + AES-256-GCM) or the age stanza.
#[test]
fn random_key_files_decrypt_independently() {
    let id = x25519::Identity::generate();
    let mut recipients = Recipients::new();
    recipients
        .add_age(Box::new(id.to_public()))
        .set_passphrase(secret(PASS), FAST);
    for len in sizes() {
        let plaintext = pattern(1000 + len as u64, len);
        for sealed in [
            seal_stream(&plaintext, &recipients, true),
            seal_stream(&plaintext, &recipients, false),
            seal_vec(&plaintext, &recipients),
        ] {
            let header = oracle::parse_header(&sealed);
            assert_eq!(header.stanzas.len(), 2);
            assert_eq!(header.stanzas[0].0, oracle::KIND_AGE);
            assert_eq!(header.stanzas[1].0, oracle::KIND_PASSPHRASE);
            let from_passphrase = oracle::unwrap_passphrase(&header.stanzas[1].1, PASS).unwrap();
            assert!(oracle::unwrap_passphrase(&header.stanzas[1].1, "nope").is_none());

            // The age stanza is a complete binary age file whose plaintext
            // is the file key.
            let decryptor = vault_core::age::Decryptor::new_buffered(&header.stanzas[0].1[..])
                .expect("a binary age file");
            let mut from_age = Vec::new();
            decryptor
                .decrypt(std::iter::once(&id as &dyn vault_core::age::Identity))
                .unwrap()
                .read_to_end(&mut from_age)
                .unwrap();
            assert_eq!(from_age, from_passphrase);

            assert!(oracle::open(&sealed, &from_passphrase).unwrap() == plaintext);
        }
    }
}

/// The library opens files produced by the independent encoder, including
/// ones with stanza kinds it does not know (they are skipped, and still
/// covered by the header MAC) and an age stanza made directly with `age`.
#[test]
fn library_opens_independently_made_files() {
    let id = x25519::Identity::generate();
    let age_body = {
        let encryptor = vault_core::age::Encryptor::with_recipients(std::iter::once(
            &id.to_public() as &dyn vault_core::age::Recipient,
        ))
        .unwrap();
        let mut out = Vec::new();
        let mut w = encryptor.wrap_output(&mut out).unwrap();
        w.write_all(&FILE_KEY).unwrap();
        w.finish().unwrap();
        out
    };
    let passphrase_body = oracle::passphrase_stanza(&FILE_KEY, PASS, &SALT, (64, 1, 1));
    let stanzas = vec![
        (0x7f, b"a stanza kind from the future".to_vec()),
        (oracle::KIND_AGE, age_body),
        (0, Vec::new()),
        (oracle::KIND_PASSPHRASE, passphrase_body),
    ];
    for (log2, len) in [(16, 3 * C + 1), (17, 3 * C + 1), (16, 0), (16, 2 * C)] {
        let plaintext = pattern(len as u64 + 7, len);
        for recorded in [true, false] {
            let file = oracle::seal(&FILE_KEY, &FILE_ID, &stanzas, log2, &plaintext, recorded);
            for ids in [with_x25519(&id), with_passphrase(PASS)] {
                let opener = Opener::new(file.clone(), &ids).unwrap();
                assert_eq!(opener.header().stanzas.len(), 4);
                assert_eq!(opener.header().stanzas[0].kind_name(), "unknown");
                assert_eq!(
                    opener.header().chunk_size,
                    ChunkSize::from_log2(log2).unwrap()
                );
                let mut out = Vec::new();
                let (_, summary) = opener.decrypt_to(&mut out, true, &|_| {}).unwrap();
                assert!(out == plaintext);
                assert_eq!(summary.blake3, Some(blake3::hash(&plaintext)));
            }
        }
    }
}

/// What the independent implementation considers tampered, the library
/// does too, with the same chunk index (a light differential check).
#[test]
fn both_implementations_reject_the_same_payload_damage() {
    let plaintext = pattern(5, 3 * C + 9);
    let file = seal_fixed(
        &plaintext,
        vec![Stanza::Passphrase(fixed_passphrase_stanza())],
        true,
    );
    let h = oracle::parse_header(&file).header_len;
    for pos in [h, h + 1, h + C, h + STRIDE - 1, h + STRIDE, file.len() - 1] {
        let mut bad = file.clone();
        bad[pos] ^= 0x80;
        let chunk = (pos - h) / STRIDE;
        assert_eq!(oracle::open(&bad, &FILE_KEY), Err(format!("chunk {chunk}")));
        let result = open_all(bad, &with_passphrase(PASS));
        assert!(
            matches!(result, Err(Error::ChunkTampered { index }) if index == chunk as u64),
            "{}",
            describe(&result)
        );
    }
}

/// A header that authenticates (its maker holds the file key) but records
/// an absurd plaintext length must be refused as a length mismatch, not
/// overflow the reader's arithmetic.
#[test]
fn authentic_header_with_absurd_length_is_refused() {
    let passphrase_body = oracle::passphrase_stanza(&FILE_KEY, PASS, &SALT, (64, 1, 1));
    let mut file = oracle::seal(
        &FILE_KEY,
        &FILE_ID,
        &[(oracle::KIND_PASSPHRASE, passphrase_body)],
        16,
        &pattern(1, 100),
        true,
    );
    let keys = oracle::derive(&FILE_KEY, &FILE_ID);
    let h = oracle::parse_header(&file).header_len;
    for absurd in [u64::MAX - 1, u64::MAX / 2, 1 << 62, (1 << 48) + 3] {
        file[20..28].copy_from_slice(&absurd.to_le_bytes());
        let mac = oracle::hmac_sha256(&keys.header_key, &file[..h - 32]);
        file[h - 32..h].copy_from_slice(&mac);
        // The header itself is authentic...
        let (header, _) = Header::parse(&file).unwrap();
        assert_eq!(header.plaintext_len, Some(absurd));
        // ...but the file is far too short for it.
        let result = Opener::new(file.clone(), &with_passphrase(PASS)).map(|_| ());
        assert!(
            matches!(result, Err(Error::Truncated(_))),
            "length {absurd}: {}",
            describe(&result)
        );
    }
}

/// `seal_source` and `Sealer` agree on the header fields they record.
#[test]
fn both_sealing_paths_record_the_same_fields() {
    let plaintext = pattern(3, 2 * C + 1);
    let id = x25519::Identity::generate();
    let recipients = to_x25519(&id);
    let (a, _) = seal_source(
        &plaintext,
        Vec::new(),
        &recipients,
        ChunkSize::from_log2(16).unwrap(),
        &|_| {},
    )
    .unwrap();
    let mut sealer = Sealer::new(
        Vec::new(),
        &recipients,
        SealOptions {
            chunk_size: ChunkSize::from_log2(16).unwrap(),
            plaintext_len: Some(plaintext.len() as u64),
        },
    )
    .unwrap();
    sealer.write_all(&plaintext).unwrap();
    let (b, _) = sealer.finish().unwrap();
    let (ha, hb) = (oracle::parse_header(&a), oracle::parse_header(&b));
    assert_eq!(ha.plaintext_len, hb.plaintext_len);
    assert_eq!(ha.chunk_log2, hb.chunk_log2);
    assert_ne!(ha.file_id, hb.file_id, "file ids are random");
    assert_eq!(
        a.len() - ha.header_len,
        b.len() - hb.header_len,
        "same payload geometry"
    );
}
