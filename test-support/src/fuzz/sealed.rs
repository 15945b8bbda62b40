//! Bodies of the fuzz targets, shared by `fuzz/fuzz_targets/*.rs` (libFuzzer,
//! nightly) and `vault-core/tests/suite/fuzz_corpus.rs` (corpus replay on stable).
//!
//! Each `pub fn TARGET(data: &[u8])` accepts arbitrary bytes and panics only
//! when it finds a bug. Inputs are interpreted deterministically: the fixed
//! identity, file key and fixture files below never change, so a saved input
//! replays the same run under libFuzzer and under `cargo test`.
//!
//! Nothing here protects anything: the identity and keys are public test
//! fixtures.

use std::io::{Read, Seek, SeekFrom, Write};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use vault_core::header::{FIXED_LEN, MAC_LEN, MAGIC, MAX_HEADER_LEN, MAX_STANZAS, SUITE_AES256GCM};
use vault_core::secrecy::SecretString;
use vault_core::{
    Argon2Params, ChunkSize, Error, FORMAT_VERSION, FileKey, Header, Identities, Opener,
    PassphraseStanza, SealOptions, SealSummary, Sealer, Stanza, age,
};

/// A target body: arbitrary bytes in, panic on a bug.
pub type Target = fn(&[u8]);

/// Every target, by name, as used for `tests/fuzz-corpus/<name>/`.
pub const TARGETS: &[(&str, Target)] = &[
    ("header_parse", header_parse),
    ("stanza_decode", stanza_decode),
    ("chunk_open", chunk_open),
    ("opener_random", opener_random),
];

/// The age X25519 identity every fixture is sealed to (generated once with
/// `age::x25519::Identity::generate()`; a public test fixture).
pub const IDENTITY: &str =
    "AGE-SECRET-KEY-13WZCWL8KL6C3QC06JMYDM3NFFNF5JSDY2EHHHAJJA7P9TMC8S2JQPVAC88";

/// The file key of every fixture.
pub const FILE_KEY: [u8; 32] = [0x42; 32];

/// The passphrase of the fixture passphrase stanza.
pub const PASSPHRASE: &str = "fuzz";

/// Cheap Argon2id costs for the fixture passphrase stanza.
const PASSPHRASE_PARAMS: Argon2Params = Argon2Params {
    memory_kib: 8,
    time_cost: 1,
    parallelism: 1,
};

/// A binary age file, encrypted once to [`IDENTITY`], whose plaintext is
/// [`FILE_KEY`]. Fixed (age encryption is randomized) so fixtures are
/// byte-for-byte reproducible.
const AGE_STANZA_HEX: &[&str] = &[
    "6167652d656e6372797074696f6e2e6f72672f76310a2d3e2058323535313920",
    "2b3466456f6f63354c4a6e5856466d7969482f4c396268596859613832466e42",
    "6a43577a2f796c737833490a41694c544172634e727663766454717659357a62",
    "43642b492b364977346d6b55447053354253702f4734490a2d3e204c6446454c",
    "71212d677265617365204269723a5e64203b422a615d2e3d20577851606c3d2b",
    "350a4273714c41454e465277507738704c473348434952336a414f4834514236",
    "695136512f712b544e6c455651314c564a6470752b3837744c4e626277620a2d",
    "2d2d20762b35565a4f35323173356a4f2b657832766f45324562394672352b4d",
    "38694d75704b4f31516b453266510ae39561a44312efb78731bc5955d1cc6a94",
    "3fdb49d88eef4c5ebcd6efe7f6bd5e0122b096a71bd0238c3cb969f59b6c9962",
    "477ad43e244e3b3a5f38dfd2115101",
];

/// Chunk size of the fixture files (the smallest allowed, 64 KiB).
const CHUNK: usize = 1 << 16;

/// Number of fixture sealed files `chunk_open` chooses from.
pub const TEMPLATE_COUNT: usize = 4;

/// Identities holding only the fixed age identity. (No passphrase: the
/// Argon2id costs come from the input and could be minutes of work.)
pub fn identities() -> Identities {
    let identity: age::x25519::Identity = IDENTITY.parse().expect("fixed identity parses");
    let mut identities = Identities::new();
    identities.extend_age([Box::new(identity) as Box<dyn age::Identity>]);
    identities
}

/// The fixed age stanza body (see [`AGE_STANZA_HEX`]).
pub fn age_stanza() -> Vec<u8> {
    let hex: String = AGE_STANZA_HEX.concat();
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("valid hex"))
        .collect()
}

/// A passphrase stanza wrapping [`FILE_KEY`] under [`PASSPHRASE`] with a
/// fixed salt and cheap costs.
pub fn passphrase_stanza() -> PassphraseStanza {
    static STANZA: OnceLock<PassphraseStanza> = OnceLock::new();
    STANZA
        .get_or_init(|| {
            PassphraseStanza::wrap_with_salt(
                &FileKey::from_bytes(FILE_KEY),
                &SecretString::from(PASSPHRASE),
                PASSPHRASE_PARAMS,
                [0x5a; 16],
            )
            .expect("fixture passphrase stanza")
        })
        .clone()
}

/// The encoded body of [`passphrase_stanza`].
pub fn passphrase_stanza_body() -> Vec<u8> {
    let header = Header {
        chunk_size: ChunkSize::DEFAULT,
        file_id: [0; 32],
        plaintext_len: None,
        stanzas: vec![Stanza::Passphrase(passphrase_stanza())],
        mac: [0; MAC_LEN],
    };
    let bytes = header.encode_unauthenticated();
    bytes[FIXED_LEN + 5..].to_vec()
}

/// Re-encodes `header` with the MAC the library computes for [`FILE_KEY`]:
/// what any sender who knows a recipient's public key can produce, so the
/// opener must cope with every authenticated header, not only sane ones.
pub fn with_valid_mac(header: &Header) -> Vec<u8> {
    let mut out = Vec::new();
    let options = SealOptions {
        chunk_size: header.chunk_size,
        plaintext_len: header.plaintext_len,
    };
    let sealer = Sealer::with_key_for_test_vectors(
        &mut out,
        &FileKey::from_bytes(FILE_KEY),
        header.file_id,
        header.stanzas.clone(),
        options,
    )
    .expect("header re-encodes");
    drop(sealer);
    out
}

/// A valid sealed file and what it holds.
pub struct Template {
    /// The sealed file.
    pub sealed: Vec<u8>,
    /// Its plaintext.
    pub plaintext: Vec<u8>,
    /// What sealing reported.
    pub summary: SealSummary,
    /// Length of its header.
    pub header_len: usize,
}

/// Fixture sealed file `i % TEMPLATE_COUNT`, all sealed to [`IDENTITY`]
/// under [`FILE_KEY`] with 64 KiB chunks:
///
/// 0. 2 chunks + 1000 bytes, length recorded, one age stanza;
/// 1. exactly 3 chunks, length not recorded, one age stanza;
/// 2. empty, length not recorded, passphrase stanza then age stanza;
/// 3. 100 bytes, length recorded, age stanza then an unknown stanza.
pub fn template(i: usize) -> &'static Template {
    static TEMPLATES: OnceLock<Vec<Template>> = OnceLock::new();
    &TEMPLATES.get_or_init(|| (0..TEMPLATE_COUNT).map(build_template).collect())[i % TEMPLATE_COUNT]
}

fn build_template(i: usize) -> Template {
    let (len, recorded, stanzas) = match i {
        0 => (2 * CHUNK + 1000, true, vec![Stanza::Age(age_stanza())]),
        1 => (3 * CHUNK, false, vec![Stanza::Age(age_stanza())]),
        2 => (
            0,
            false,
            vec![
                Stanza::Passphrase(passphrase_stanza()),
                Stanza::Age(age_stanza()),
            ],
        ),
        _ => (
            100,
            true,
            vec![
                Stanza::Age(age_stanza()),
                Stanza::Unknown {
                    kind: 9,
                    body: b"future".to_vec(),
                },
            ],
        ),
    };
    let plaintext: Vec<u8> = (0..len).map(|k| (k * 31 + k / 251 + i) as u8).collect();
    let options = SealOptions {
        chunk_size: ChunkSize::from_log2(16).unwrap(),
        plaintext_len: recorded.then_some(len as u64),
    };
    let mut file_id = [0x17; 32];
    file_id[31] = i as u8;
    let mut sealer = Sealer::with_key_for_test_vectors(
        Vec::new(),
        &FileKey::from_bytes(FILE_KEY),
        file_id,
        stanzas,
        options,
    )
    .expect("fixture seals");
    sealer.write_all(&plaintext).expect("fixture seals");
    let (sealed, summary) = sealer.finish().expect("fixture seals");
    let (_, header_len) = Header::parse(&sealed).expect("fixture header parses");
    Template {
        sealed,
        plaintext,
        summary,
        header_len,
    }
}

/// Reads little-endian fields off the front of the input; missing bytes
/// read as zero.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head
    }

    fn uint(&mut self, n: usize) -> u64 {
        let mut word = [0u8; 8];
        let bytes = self.take(n);
        word[..bytes.len()].copy_from_slice(bytes);
        u64::from_le_bytes(word)
    }

    fn u8(&mut self) -> u8 {
        self.uint(1) as u8
    }

    fn u16(&mut self) -> usize {
        self.uint(2) as usize
    }

    fn u24(&mut self) -> usize {
        self.uint(3) as usize
    }
}

// ---------------------------------------------------------------------------
// header_parse

/// `Header::parse`, `Header::read_from` and `read_header` on arbitrary bytes:
/// no panics, the three agree, `read_from` consumes exactly the header, and a
/// parsed header re-encodes to exactly the bytes it was parsed from.
pub fn header_parse(data: &[u8]) {
    let parsed = Header::parse(data);
    let mut rest = data;
    let read = Header::read_from(&mut rest);
    let via_source = vault_core::read_header(&data);
    match parsed {
        Ok((header, len)) => {
            assert!(len <= data.len(), "parsed length {len} > input");
            assert_eq!(header.encode(), data[..len], "re-encoding differs");
            assert_eq!(header.encoded_len(), len, "encoded_len disagrees");
            let read = read.expect("parse succeeded but read_from failed");
            assert_eq!(read, header, "read_from disagrees with parse");
            assert_eq!(
                data.len() - rest.len(),
                len,
                "read_from read past the header"
            );
            let (h, n) = via_source.expect("parse succeeded but read_header failed");
            assert_eq!((h, n), (header, len as u64), "read_header disagrees");
        }
        Err(_) => {
            assert!(read.is_err(), "read_from accepted what parse refused");
            assert!(
                via_source.is_err(),
                "read_header accepted what parse refused"
            );
        }
    }
}

// ---------------------------------------------------------------------------
// stanza_decode

/// Input: `flags: u8` then records `kind: u8, len: u16, body: [u8; len]`.
/// Builds a header holding exactly those stanzas and checks that it parses
/// exactly when it should, that every stanza decodes to its body, that
/// hostile Argon2id costs are refused before any work, and that
/// `Identities::unlock` (fixed age identity) only ever yields [`FILE_KEY`].
/// With `flags & 1` the header carries a valid MAC for [`FILE_KEY`].
pub fn stanza_decode(data: &[u8]) {
    let mut input = Input(data);
    let flags = input.u8();
    let mut records: Vec<(u8, &[u8])> = Vec::new();
    while !input.is_empty() && records.len() <= MAX_STANZAS + 8 {
        let kind = input.u8();
        let len = input.u16();
        records.push((kind, input.take(len)));
    }

    let total = FIXED_LEN + records.iter().map(|(_, b)| 5 + b.len()).sum::<usize>() + MAC_LEN;
    let mut bytes = Vec::with_capacity(total);
    bytes.extend_from_slice(&MAGIC);
    bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    bytes.extend_from_slice(&SUITE_AES256GCM.to_le_bytes());
    bytes.push(ChunkSize::DEFAULT.log2());
    bytes.extend_from_slice(&[0; 3]);
    bytes.extend_from_slice(&(total as u32).to_le_bytes());
    bytes.extend_from_slice(&u64::MAX.to_le_bytes());
    bytes.extend_from_slice(&[0x17; 32]);
    bytes.extend_from_slice(&(records.len() as u16).to_le_bytes());
    for (kind, body) in &records {
        bytes.push(*kind);
        bytes.extend_from_slice(&(body.len() as u32).to_le_bytes());
        bytes.extend_from_slice(body);
    }
    bytes.extend_from_slice(&[0; MAC_LEN]);

    let passphrase_len = passphrase_stanza_body().len();
    let should_parse = (1..=MAX_STANZAS).contains(&records.len())
        && total <= MAX_HEADER_LEN
        && records
            .iter()
            .all(|(kind, body)| *kind != 2 || body.len() == passphrase_len);
    let parsed = Header::parse(&bytes);
    assert_eq!(
        parsed.is_ok(),
        should_parse,
        "parse result {:?} for {} stanzas",
        parsed.as_ref().err(),
        records.len()
    );
    let Ok((header, len)) = parsed else { return };
    assert_eq!(len, bytes.len());
    assert_eq!(header.encode(), bytes, "re-encoding differs");

    assert_eq!(header.stanzas.len(), records.len());
    for ((kind, body), stanza) in records.iter().zip(&header.stanzas) {
        match stanza {
            Stanza::Age(b) => assert!(*kind == 1 && b == body),
            Stanza::Passphrase(p) => {
                assert_eq!(*kind, 2);
                check_passphrase_stanza(p, body);
            }
            Stanza::Unknown { kind: k, body: b } => {
                assert!(k == kind && *k != 1 && *k != 2 && b == body)
            }
        }
    }

    let header = if flags & 1 != 0 {
        Header::parse(&with_valid_mac(&header))
            .expect("re-MACed header parses")
            .0
    } else {
        header
    };
    if let Ok(key) = identities().unlock(&header) {
        assert!(flags & 1 != 0, "unlock accepted an all-zero header MAC");
        assert_eq!(key.expose(), &FILE_KEY, "unlock returned a foreign key");
    }
}

fn check_passphrase_stanza(stanza: &PassphraseStanza, body: &[u8]) {
    let word = |i: usize| u32::from_le_bytes(body[i..i + 4].try_into().unwrap());
    let Argon2Params {
        memory_kib: m,
        time_cost: t,
        parallelism: p,
    } = stanza.params;
    assert_eq!((m, t, p), (word(0), word(4), word(8)), "params misdecoded");
    // The opener's documented ceilings (passphrase.rs): 4 GiB, t <= 64,
    // p <= 64, and Argon2's own m >= 8p.
    let refused = m > 4 << 20 || !(1..=64).contains(&t) || !(1..=64).contains(&p) || m < 8 * p;
    let passphrase = SecretString::from(PASSPHRASE);
    if refused {
        // Must be refused before any Argon2id work is done.
        let result = stanza.unwrap(&passphrase);
        assert!(
            matches!(result, Err(Error::MalformedHeader(_))),
            "hostile Argon2id costs m={m} t={t} p={p} not refused: {:?}",
            result.map(|_| ())
        );
    } else if m <= 256 && t <= 2 {
        // Cheap enough to run on every input.
        match stanza.unwrap(&passphrase) {
            Ok(key) => assert_eq!(key.expose(), &FILE_KEY, "foreign key unwrapped"),
            Err(Error::WrongPassphrase) => {}
            Err(e) => panic!("in-range Argon2id costs m={m} t={t} p={p} failed: {e}"),
        }
    }
}

// ---------------------------------------------------------------------------
// chunk_open

/// Input: `template: u8`, then up to 32 operations applied in order to a
/// copy of fixture sealed file [`template`]:
///
/// | op % 8 | arguments                 | effect                                   |
/// |--------|---------------------------|------------------------------------------|
/// | 0      | `off: u24, x: u8`         | `file[off % len] ^= x`                   |
/// | 1      | `len: u24`                | truncate to `len % (file_len + 1)`       |
/// | 2      | `src: u24, dst: u24, n: u16` | copy `n` bytes within the file        |
/// | 3      | `src: u24, n: u16`        | append a copy of `n` bytes               |
/// | 4      | `v: u64`                  | overwrite the plaintext-length field     |
/// | 5      | -                         | re-MAC the header under [`FILE_KEY`]     |
/// | 6      | `v: u8`                   | overwrite the chunk-size byte            |
/// | 7      | `off: u16, x: u8`         | xor inside the header (+ 32 bytes)       |
///
/// Then opens the result with the fixed identity and reads it every way
/// there is. Nothing may panic, and any plaintext byte returned must equal
/// the original plaintext at that offset: no wrong plaintext, ever.
pub fn chunk_open(data: &[u8]) {
    let mut input = Input(data);
    let template = template(input.u8() as usize);
    let mut file = template.sealed.clone();
    for _ in 0..32 {
        if input.is_empty() {
            break;
        }
        mutate(&mut file, template.header_len, &mut input);
    }
    let probe = input.uint(8);
    let identities = identities();
    if let Ok(opener) = Opener::new(file.as_slice(), &identities) {
        check_opened(opener, Some(template), probe);
    }
}

fn mutate(file: &mut Vec<u8>, header_len: usize, input: &mut Input<'_>) {
    let len = file.len();
    match input.u8() % 8 {
        0 => {
            let (off, x) = (input.u24(), input.u8());
            if len > 0 {
                file[off % len] ^= x;
            }
        }
        1 => {
            let to = input.u24() % (len + 1);
            file.truncate(to);
        }
        2 => {
            let (src, dst, n) = (input.u24(), input.u24(), input.u16());
            if len > 0 {
                let (src, dst) = (src % len, dst % len);
                let n = n.min(len - src.max(dst));
                file.copy_within(src..src + n, dst);
            }
        }
        3 => {
            let (src, n) = (input.u24(), input.u16());
            if len > 0 {
                let src = src % len;
                let n = n.min(len - src);
                file.extend_from_within(src..src + n);
            }
        }
        4 => {
            let v = input.uint(8);
            if len >= 28 {
                file[20..28].copy_from_slice(&v.to_le_bytes());
            }
        }
        5 => {
            if let Ok((header, n)) = Header::parse(file) {
                let fresh = with_valid_mac(&header);
                assert_eq!(fresh.len(), n, "re-encoded header changed length");
                file[..n].copy_from_slice(&fresh);
            }
        }
        6 => {
            let v = input.u8();
            if len > 12 {
                file[12] = v;
            }
        }
        _ => {
            let (off, x) = (input.u16(), input.u8());
            let span = len.min(header_len + 32);
            if span > 0 {
                file[off % span] ^= x;
            }
        }
    }
}

/// Reads an opened file through `decrypt_to`, `verify`, `read_at` and the
/// `Read + Seek` adapter. With `original`, every byte returned must match its
/// plaintext; without, the paths must agree with each other.
fn check_opened<S: vault_core::Source>(opener: Opener<S>, original: Option<&Template>, probe: u64) {
    let len = opener.len();
    let chunk = opener.layout().chunk_size;

    let progressed = AtomicU64::new(0);
    let progress = |n: u64| {
        progressed.fetch_add(n, Ordering::Relaxed);
    };
    let decrypted = opener.decrypt_to(Vec::new(), true, &progress);
    if let Ok((out, summary)) = &decrypted {
        assert_eq!(out.len() as u64, len, "decrypt_to length != opener.len()");
        assert_eq!(summary.plaintext_len, len);
        assert_eq!(progressed.load(Ordering::Relaxed), len, "progress total");
        if let Some(t) = original {
            assert!(*out == t.plaintext, "decrypt_to returned a wrong plaintext");
            assert_eq!(summary.blake3, Some(t.summary.blake3));
        }
    }
    let verified = opener.verify(&|_| {});
    assert_eq!(
        verified.as_ref().ok().map(|s| (s.plaintext_len, s.blake3)),
        decrypted
            .as_ref()
            .ok()
            .map(|(_, s)| (s.plaintext_len, s.blake3)),
        "verify and decrypt_to disagree"
    );

    let reference: Option<&[u8]> = match original {
        Some(t) => Some(&t.plaintext),
        None => decrypted.as_ref().ok().map(|(out, _)| out.as_slice()),
    };
    let check = |off: u64, got: &[u8]| {
        if let Some(reference) = reference.filter(|_| !got.is_empty()) {
            let end = off.checked_add(got.len() as u64);
            assert!(
                end.is_some_and(|end| end <= reference.len() as u64),
                "read past the authentic plaintext at {off}"
            );
            assert!(
                got == &reference[off as usize..][..got.len()],
                "wrong plaintext at {off}"
            );
        }
    };

    let random_len = (probe >> 48) as usize % (2 * CHUNK) + 1;
    let random_off = if len == u64::MAX {
        probe
    } else {
        probe % (len + 1)
    };
    let probes = [
        (0, 16),
        (chunk.saturating_sub(3), 7),
        (chunk, CHUNK),
        (len.saturating_sub(5), 10),
        (len, 1),
        (random_off, random_len),
    ];
    for (off, n) in probes {
        let mut buf = vec![0xAA; n];
        if let Ok(k) = opener.read_at(&mut buf, off) {
            let want = len.saturating_sub(off).min(n as u64);
            assert_eq!(k as u64, want, "read_at({off}, {n}) returned {k}");
            check(off, &buf[..k]);
        }
    }

    let mut reader = opener.into_reader();
    if reader.seek(SeekFrom::Start(random_off)).is_ok() {
        let mut got = Vec::new();
        if (&mut reader)
            .take(random_len as u64)
            .read_to_end(&mut got)
            .is_ok()
        {
            check(random_off, &got);
        }
    }
}

// ---------------------------------------------------------------------------
// opener_random

/// Arbitrary bytes as a whole sealed file, opened with the fixed identity:
/// no panics, and if it opens, every read path agrees.
pub fn opener_random(data: &[u8]) {
    let identities = identities();
    if let Ok(opener) = Opener::new(data, &identities) {
        check_opened(opener, None, data.len() as u64);
    }
}

// ---------------------------------------------------------------------------
// Seeds

/// Starting inputs for each target: valid files, valid headers, and the
/// fixture stanzas, so the fuzzer begins past the magic-byte checks.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let mut seeds = Vec::new();
    for i in 0..TEMPLATE_COUNT {
        let t = template(i);
        seeds.push(("header_parse", t.sealed[..t.header_len].to_vec()));
        seeds.push(("chunk_open", vec![i as u8]));
        if t.sealed.len() < 4096 {
            seeds.push(("opener_random", t.sealed.clone()));
        }
    }
    // chunk_open: forge the recorded length, truncate at a chunk boundary,
    // swap two chunks.
    let mut forged = vec![0u8, 4];
    forged.extend_from_slice(&(CHUNK as u64).to_le_bytes());
    forged.push(5);
    seeds.push(("chunk_open", forged));
    let boundary = template(1).header_len + CHUNK + 16;
    let mut cut = vec![1u8, 1];
    cut.extend_from_slice(&(boundary as u32).to_le_bytes()[..3]);
    seeds.push(("chunk_open", cut));
    let mut swap = vec![1u8, 2];
    swap.extend_from_slice(&(boundary as u32).to_le_bytes()[..3]);
    swap.extend_from_slice(&(template(1).header_len as u32).to_le_bytes()[..3]);
    swap.extend_from_slice(&((CHUNK + 16) as u16).to_le_bytes());
    seeds.push(("chunk_open", swap));

    let record = |kind: u8, body: &[u8]| {
        let mut r = vec![kind];
        r.extend_from_slice(&(body.len() as u16).to_le_bytes());
        r.extend_from_slice(body);
        r
    };
    let age = record(1, &age_stanza());
    let pass = record(2, &passphrase_stanza_body());
    let unknown = record(7, b"x");
    for flags in [0u8, 1] {
        seeds.push(("stanza_decode", [&[flags][..], &age].concat()));
        seeds.push(("stanza_decode", [&[flags][..], &pass, &age].concat()));
        seeds.push(("stanza_decode", [&[flags][..], &unknown, &pass].concat()));
    }
    seeds
}
