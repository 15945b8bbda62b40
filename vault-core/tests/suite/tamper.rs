//! Tampering, truncation, splicing and wrong keys: every failure must be the
//! right typed error, and no unauthenticated plaintext may ever come out.

use std::io::Read;
use std::sync::LazyLock;

use crate::util::*;
use proptest::prelude::*;
use vault_core::age::x25519;
use vault_core::{Error, Header, Identities, Opener, Recipients, read_header};

static ID: LazyLock<x25519::Identity> = LazyLock::new(x25519::Identity::generate);
static OTHER: LazyLock<x25519::Identity> = LazyLock::new(x25519::Identity::generate);

const PASS: &str = "correct horse battery staple";

/// A sealed file together with the plaintext it holds.
struct Sample {
    plaintext: Vec<u8>,
    sealed: Vec<u8>,
    recorded: bool,
}

impl Sample {
    fn new(plaintext: Vec<u8>, recipients: &Recipients, recorded: bool) -> Self {
        let sealed = seal_stream(&plaintext, recipients, recorded);
        Sample {
            plaintext,
            sealed,
            recorded,
        }
    }

    fn header_len(&self) -> usize {
        header_len(&self.sealed)
    }

    fn chunks(&self) -> usize {
        chunks_for(self.plaintext.len())
    }

    /// Plaintext of chunk `index`.
    fn chunk_plain(&self, index: usize) -> &[u8] {
        let start = index * C;
        &self.plaintext[start..(start + C).min(self.plaintext.len())]
    }
}

/// Four chunks, the last one short; length recorded.
static RECORDED: LazyLock<Sample> =
    LazyLock::new(|| Sample::new(pattern(1, 3 * C + 100), &to_x25519(&ID), true));
/// Four chunks, the last one short; length not recorded.
static UNRECORDED: LazyLock<Sample> =
    LazyLock::new(|| Sample::new(pattern(2, 3 * C + 100), &to_x25519(&ID), false));
/// Three full chunks; length not recorded (a cut at a chunk boundary leaves a
/// plausible-looking file).
static UNRECORDED_FULL: LazyLock<Sample> =
    LazyLock::new(|| Sample::new(pattern(3, 3 * C), &to_x25519(&ID), false));

fn multi_recipients() -> Recipients {
    let mut r = Recipients::new();
    r.add_age(Box::new(ID.to_public()))
        .add_age(Box::new(OTHER.to_public()))
        .set_passphrase(secret(PASS), FAST);
    r
}

/// Which part of a sealed file a byte belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Region {
    Magic,
    Version,
    Suite,
    ChunkLog2,
    Reserved,
    HeaderLen,
    PlaintextLen,
    FileId,
    StanzaCount,
    StanzaKind,
    StanzaLen,
    /// A byte of the binary age file inside an age stanza.
    AgeBody,
    /// Byte `offset` of a passphrase stanza body.
    PassphraseBody {
        offset: usize,
    },
    Mac,
    Payload {
        chunk: usize,
    },
}

/// Classifies byte `pos` of `sealed` by walking the header independently of
/// the library's parser (offsets as in docs/FORMAT.md).
fn region(sealed: &[u8], pos: usize) -> Region {
    let total = u32::from_le_bytes(sealed[16..20].try_into().unwrap()) as usize;
    match pos {
        0..8 => return Region::Magic,
        8..10 => return Region::Version,
        10..12 => return Region::Suite,
        12 => return Region::ChunkLog2,
        13..16 => return Region::Reserved,
        16..20 => return Region::HeaderLen,
        20..28 => return Region::PlaintextLen,
        28..60 => return Region::FileId,
        60..62 => return Region::StanzaCount,
        _ => {}
    }
    if pos >= total {
        return Region::Payload {
            chunk: (pos - total) / STRIDE,
        };
    }
    if pos >= total - MAC {
        return Region::Mac;
    }
    let mut at = FIXED;
    loop {
        let kind = sealed[at];
        let len = u32::from_le_bytes(sealed[at + 1..at + 5].try_into().unwrap()) as usize;
        if pos == at {
            return Region::StanzaKind;
        }
        if pos < at + 5 {
            return Region::StanzaLen;
        }
        if pos < at + 5 + len {
            return match kind {
                1 => Region::AgeBody,
                2 => Region::PassphraseBody {
                    offset: pos - at - 5,
                },
                other => panic!("unexpected stanza kind {other}"),
            };
        }
        at += 5 + len;
    }
}

/// Flipping a bit of the Argon2id memory cost's third byte asks for up to
/// 2 GiB of Argon2id work, which the library rightly performs (it is within
/// MAX_MEMORY_KIB); too slow for a sweep, so those bits are skipped.
fn too_expensive(sealed: &[u8], pos: usize) -> bool {
    matches!(region(sealed, pos), Region::PassphraseBody { offset: 2 })
}

/// The errors a flipped bit in a header region may legitimately produce.
fn header_error_allowed(region: Region, err: &Error) -> bool {
    use Error::*;
    match region {
        Region::Magic => matches!(err, NotSealed),
        Region::Version => {
            matches!(err, UnsupportedVersion { found, supported: 1 } if *found != 1)
        }
        Region::Suite => matches!(err, UnsupportedSuite(s) if *s != 1),
        // Another valid chunk size fails the MAC; an invalid one the parser.
        Region::ChunkLog2 => matches!(err, MalformedHeader(_) | HeaderTampered),
        Region::Reserved | Region::StanzaCount | Region::StanzaLen => {
            matches!(err, MalformedHeader(_))
        }
        // A header that claims to run past the end of the file is incomplete.
        Region::HeaderLen => matches!(err, MalformedHeader(_) | Truncated(_)),
        Region::PlaintextLen | Region::FileId | Region::Mac => matches!(err, HeaderTampered),
        // A changed kind byte turns a stanza into an unknown kind that is
        // skipped: nothing else unlocks, or another stanza unlocks and the
        // MAC fails.
        Region::StanzaKind => {
            matches!(
                err,
                MalformedHeader(_) | NoMatchingIdentity | HeaderTampered
            )
        }
        // age itself detects a corrupt file: unparsable, the X25519 stanza no
        // longer unwraps, or age's own header MAC / payload fails.
        Region::AgeBody => {
            matches!(
                err,
                MalformedHeader(_) | NoMatchingIdentity | HeaderTampered
            )
        }
        // A passphrase-wrapped key cannot tell tampering from a wrong
        // passphrase; out-of-range parameters are refused as malformed. If
        // another stanza unlocked, the header MAC catches it.
        Region::PassphraseBody { .. } => {
            matches!(err, WrongPassphrase | MalformedHeader(_) | HeaderTampered)
        }
        Region::Payload { .. } => false,
    }
}

fn flip(sealed: &[u8], bit: usize) -> Vec<u8> {
    let mut t = sealed.to_vec();
    t[bit / 8] ^= 1 << (bit % 8);
    t
}

/// Flips every bit of the header, one at a time, and checks the error.
fn sweep_header(sealed: &[u8], ids: &Identities) {
    let h = header_len(sealed);
    let mut bad = Vec::new();
    for bit in 0..h * 8 {
        let pos = bit / 8;
        if too_expensive(sealed, pos) {
            continue;
        }
        let result = Opener::new(flip(sealed, bit), ids).map(|_| ());
        let reg = region(sealed, pos);
        if !matches!(&result, Err(e) if header_error_allowed(reg, e)) {
            bad.push(format!("bit {bit} ({reg:?}): {}", describe(&result)));
        }
    }
    assert!(
        bad.is_empty(),
        "{} of {} header bits misreported:\n{}",
        bad.len(),
        h * 8,
        bad.join("\n")
    );
}

#[test]
fn every_header_bit_of_an_x25519_file() {
    for recorded in [true, false] {
        let sealed = seal_stream(&pattern(5, 100), &to_x25519(&ID), recorded);
        sweep_header(&sealed, &with_x25519(&ID));
    }
}

#[test]
fn every_header_bit_of_a_passphrase_file() {
    let sealed = seal_stream(&pattern(6, 100), &to_passphrase(PASS), true);
    sweep_header(&sealed, &with_passphrase(PASS));
}

#[test]
fn every_header_bit_of_a_multi_recipient_file() {
    let sealed = seal_stream(&pattern(7, 100), &multi_recipients(), true);
    sweep_header(&sealed, &with_x25519(&OTHER));
    sweep_header(&sealed, &with_passphrase(PASS));
}

trait IsChunkErr {
    fn is_chunk_err(&self, bad: usize) -> bool;
}

impl<T> IsChunkErr for Result<T, Error> {
    fn is_chunk_err(&self, bad: usize) -> bool {
        matches!(self, Err(Error::ChunkTampered { index }) if *index == bad as u64)
    }
}

/// Checks a file whose chunk `bad` (only) was modified in place.
fn check_tampered_chunk(sample: &Sample, tampered: Vec<u8>, bad: usize) {
    let opener = Opener::new(tampered, &with_x25519(&ID)).expect("the header is intact");
    let want = Error::ChunkTampered { index: bad as u64 };
    let is_want = |r: &dyn IsChunkErr| r.is_chunk_err(bad);

    let verified = opener.verify(&|_| {});
    assert!(
        is_want(&verified),
        "verify: {} != {want:?}",
        describe(&verified)
    );

    // A whole-file decryption writes nothing of the failing batch (all four
    // chunks are one batch here).
    let mut out = Vec::new();
    let result = opener.decrypt_to(&mut out, true, &|_| {});
    assert!(is_want(&result), "decrypt_to: {}", describe(&result));
    assert!(out.is_empty(), "decrypt_to wrote {} bytes", out.len());

    // Random access: every other chunk still reads, the bad one never does.
    for index in 0..sample.chunks() {
        let expect = sample.chunk_plain(index);
        let mut buf = vec![0u8; expect.len()];
        let result = opener.read_at(&mut buf, (index * C) as u64);
        if index == bad {
            assert!(
                is_want(&result),
                "read_at chunk {index}: {}",
                describe(&result)
            );
            assert!(
                expect.is_empty() || buf.iter().all(|&b| b == 0),
                "failed read_at left bytes"
            );
            let mut one = [0u8; 1];
            let last_byte = (index * C + expect.len().max(1) - 1) as u64;
            assert!(is_want(&opener.read_at(&mut one, last_byte)));
            let mut chunk = vec![0u8; expect.len()];
            assert!(is_want(&opener.read_chunk(index as u64, &mut chunk)));
        } else {
            assert_eq!(result.unwrap(), expect.len());
            assert!(buf == expect, "chunk {index} read back wrong");
            let mut tail = [0u8; 3];
            let at = (index * C + expect.len() - 3) as u64;
            opener.read_at(&mut tail, at).unwrap();
            assert!(tail == expect[expect.len() - 3..]);
        }
    }
    // A read spanning the bad chunk fails as a whole.
    let mut span = vec![0u8; 3 * C];
    let from = (bad * C).saturating_sub(C / 2) as u64;
    assert!(is_want(&opener.read_at(&mut span, from)));

    // The Read adapter yields the good prefix, then the typed error.
    let mut reader = opener.into_reader();
    let mut got = Vec::new();
    let err = reader.read_to_end(&mut got).expect_err("reader must fail");
    let err = Error::from_io(err);
    assert!(matches!(err, Error::ChunkTampered { index } if index == bad as u64));
    assert!(
        got == sample.plaintext[..bad * C],
        "reader returned wrong bytes"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// One flipped bit anywhere in a multi-chunk file.
    #[test]
    fn any_flipped_bit_is_caught(bit_seed in any::<u64>(), recorded in any::<bool>()) {
        let sample: &Sample = if recorded { &RECORDED } else { &UNRECORDED };
        let bits = sample.sealed.len() * 8;
        let bit = (bit_seed % bits as u64) as usize;
        let pos = bit / 8;
        prop_assume!(!too_expensive(&sample.sealed, pos));
        let tampered = flip(&sample.sealed, bit);
        match region(&sample.sealed, pos) {
            Region::Payload { chunk } => check_tampered_chunk(sample, tampered, chunk),
            reg => {
                let result = Opener::new(tampered, &with_x25519(&ID)).map(|_| ());
                prop_assert!(
                    matches!(&result, Err(e) if header_error_allowed(reg, e)),
                    "bit {} ({:?}): {}", bit, reg, describe(&result)
                );
            }
        }
    }

    /// Several corrupted payload bytes: the first bad chunk is reported.
    #[test]
    fn corrupted_payload_bytes_report_the_first_bad_chunk(
        hits in prop::collection::vec((any::<u64>(), 1u8..=255), 1..6),
        recorded in any::<bool>(),
    ) {
        let sample: &Sample = if recorded { &RECORDED } else { &UNRECORDED };
        let h = sample.header_len();
        let payload = sample.sealed.len() - h;
        let mut tampered = sample.sealed.clone();
        let mut first = usize::MAX;
        for (at, mask) in hits {
            let pos = h + (at % payload as u64) as usize;
            tampered[pos] ^= mask;
            first = first.min((pos - h) / STRIDE);
        }
        let opener = Opener::new(tampered, &with_x25519(&ID)).unwrap();
        let mut out = Vec::new();
        let result = opener.decrypt_to(&mut out, false, &|_| {});
        prop_assert!(
            matches!(result, Err(Error::ChunkTampered { index }) if index == first as u64),
            "{} (first bad chunk {})", describe(&result), first
        );
        prop_assert!(out.is_empty());
    }

    /// Any cut of a file whose length is recorded is reported as truncation.
    #[test]
    fn any_cut_of_a_recorded_file_is_truncation(cut_seed in any::<u64>()) {
        let sample = &*RECORDED;
        let cut = 1 + (cut_seed % (sample.sealed.len() as u64 - 1)) as usize;
        let result = Opener::new(sample.sealed[..cut].to_vec(), &with_x25519(&ID)).map(|_| ());
        prop_assert!(matches!(result, Err(Error::Truncated(_))), "cut {}: {}", cut, describe(&result));
    }

    /// Any cut of a file whose length is not recorded fails, at open or when
    /// the last chunk is read, and never yields plaintext.
    #[test]
    fn any_cut_of_an_unrecorded_file_fails(cut_seed in any::<u64>(), full in any::<bool>()) {
        let sample: &Sample = if full { &UNRECORDED_FULL } else { &UNRECORDED };
        let cut = 1 + (cut_seed % (sample.sealed.len() as u64 - 1)) as usize;
        let result = open_all(sample.sealed[..cut].to_vec(), &with_x25519(&ID));
        prop_assert!(
            matches!(result, Err(Error::Truncated(_) | Error::ChunkTampered { .. })),
            "cut {}: {}", cut, describe(&result)
        );
    }

    /// Bytes appended to a file.
    #[test]
    fn trailing_garbage(len in 1usize..3 * C, seed in any::<u64>(), recorded in any::<bool>()) {
        let sample: &Sample = if recorded { &RECORDED } else { &UNRECORDED };
        let mut sealed = sample.sealed.clone();
        sealed.extend_from_slice(&pattern(seed, len));
        let result = open_all(sealed, &with_x25519(&ID));
        if recorded {
            prop_assert!(
                matches!(result, Err(Error::TrailingData(n)) if n == len as u64),
                "{}", describe(&result)
            );
        } else {
            // Without a recorded length the garbage is taken as payload and
            // fails authentication (or makes an impossible length).
            prop_assert!(
                matches!(result, Err(Error::Truncated(_) | Error::ChunkTampered { .. })),
                "{}", describe(&result)
            );
        }
    }

    /// Arbitrary input never panics and never opens.
    #[test]
    fn garbage_never_opens(bytes in prop::collection::vec(any::<u8>(), 0..400), magic in any::<bool>()) {
        let mut input = bytes;
        if magic {
            input.splice(0..input.len().min(8), *b"MVLT\r\n\x1a\n");
        }
        prop_assert!(Opener::new(input.clone(), &with_x25519(&ID)).is_err());
        let _ = Header::parse(&input);
        let _ = Header::read_from(&mut input.as_slice());
    }
}

#[test]
fn truncation_at_and_around_every_chunk_boundary() {
    for sample in [&*RECORDED, &*UNRECORDED, &*UNRECORDED_FULL] {
        let h = sample.header_len();
        let len = sample.sealed.len();
        let ids = with_x25519(&ID);
        for k in 0..=sample.chunks() {
            for cut in [h + k * STRIDE - 1, h + k * STRIDE, h + k * STRIDE + 1] {
                if cut >= len {
                    continue;
                }
                let truncated = sample.sealed[..cut].to_vec();
                let opened = Opener::new(truncated.clone(), &ids);
                let exact_boundary = cut == h + k * STRIDE;
                let rem = cut.saturating_sub(h) % STRIDE;
                if sample.recorded || cut <= h || (1..=TAG).contains(&rem) {
                    // Caught at open: the length cannot be right.
                    assert!(
                        matches!(opened, Err(Error::Truncated(_))),
                        "recorded={} cut {cut}: {}",
                        sample.recorded,
                        describe(&opened.map(|_| ()))
                    );
                    continue;
                }
                let opener = opened.unwrap();
                let result = opener.verify(&|_| {});
                if exact_boundary {
                    // The apparent last chunk authenticates only as a
                    // non-final chunk: the file was cut at a boundary.
                    assert!(
                        matches!(result, Err(Error::Truncated(_))),
                        "cut at boundary {k}: {}",
                        describe(&result)
                    );
                    // Earlier chunks still read; the apparent last one
                    // reports the truncation.
                    let mut buf = vec![0u8; C];
                    assert!(matches!(
                        opener.read_at(&mut buf, ((k - 1) * C) as u64),
                        Err(Error::Truncated(_))
                    ));
                    if k > 1 {
                        opener.read_at(&mut buf, 0).unwrap();
                        assert!(buf == sample.chunk_plain(0));
                    }
                } else {
                    // Cut inside a chunk: indistinguishable from a corrupt
                    // final chunk.
                    assert!(
                        matches!(
                            result,
                            Err(Error::Truncated(_) | Error::ChunkTampered { .. })
                        ),
                        "cut {cut}: {}",
                        describe(&result)
                    );
                }
            }
        }
    }
}

const TAG: usize = vault_core::TAG_LEN;

#[test]
fn every_header_prefix_is_truncation_or_not_sealed() {
    let sealed = &RECORDED.sealed;
    let h = RECORDED.header_len();
    let opened = Opener::new(sealed[..h].to_vec(), &with_x25519(&ID)).map(|_| ());
    assert!(
        matches!(opened, Err(Error::Truncated(_))),
        "{}",
        describe(&opened)
    );
    for cut in 0..h {
        let prefix = sealed[..cut].to_vec();
        let opened = Opener::new(prefix.clone(), &with_x25519(&ID)).map(|_| ());
        let via_source = read_header(&prefix).map(|_| ());
        let via_reader = Header::read_from(&mut prefix.as_slice()).map(|_| ());
        let via_parse = Header::parse(&prefix).map(|_| ());
        let expect_not_sealed = cut == 0;
        for (what, result) in [
            ("Opener::new", &opened),
            ("read_header", &via_source),
            ("Header::read_from", &via_reader),
            ("Header::parse", &via_parse),
        ] {
            let ok = if expect_not_sealed {
                matches!(result, Err(Error::NotSealed))
            } else {
                matches!(result, Err(Error::Truncated(_)))
            };
            assert!(
                ok,
                "{what} on {cut} of {h} header bytes: {}",
                describe(result)
            );
        }
    }
}

/// A file that is not mvault at all.
#[test]
fn foreign_files_are_not_sealed() {
    for input in [
        b"PK\x03\x04 a zip file, not a sealed one............................................"
            .to_vec(),
        b"age-encryption.org/v1\n".to_vec(),
        b"MVLT".to_vec().repeat(30),
        vec![0u8; 500],
    ] {
        let result = Opener::new(input.clone(), &with_x25519(&ID)).map(|_| ());
        assert!(
            matches!(result, Err(Error::NotSealed)),
            "{}",
            describe(&result)
        );
        let result = Header::read_from(&mut input.as_slice()).map(|_| ());
        assert!(matches!(result, Err(Error::NotSealed)));
    }
}

/// Byte ranges of the chunks of a sample, and a rebuilt file from a list of
/// (source file, chunk index) pairs after a header.
fn rebuild(header_of: &[u8], parts: &[(&[u8], usize)]) -> Vec<u8> {
    let mut out = header_of[..header_len(header_of)].to_vec();
    for &(file, index) in parts {
        out.extend_from_slice(&file[chunk_range(file, index)]);
    }
    out
}

#[test]
fn reordered_duplicated_and_dropped_chunks() {
    for sample in [&*RECORDED, &*UNRECORDED] {
        let s = &sample.sealed[..];
        let ids = with_x25519(&ID);
        let expect = |parts: &[(&[u8], usize)], want: usize| {
            let result = open_all(rebuild(s, parts), &ids);
            assert!(
                matches!(result, Err(Error::ChunkTampered { index }) if index == want as u64),
                "recorded={} {:?}: {}",
                sample.recorded,
                parts.iter().map(|p| p.1).collect::<Vec<_>>(),
                describe(&result)
            );
        };
        // Sanity: rebuilding in order gives back the original file.
        assert!(rebuild(s, &[(s, 0), (s, 1), (s, 2), (s, 3)]) == s);
        // Swapped neighbours.
        expect(&[(s, 1), (s, 0), (s, 2), (s, 3)], 0);
        expect(&[(s, 0), (s, 2), (s, 1), (s, 3)], 1);
        // A chunk duplicated over another.
        expect(&[(s, 0), (s, 0), (s, 2), (s, 3)], 1);
        expect(&[(s, 0), (s, 1), (s, 1), (s, 3)], 2);
        // A middle chunk dropped: the short last chunk moves up a slot.
        let dropped = rebuild(s, &[(s, 0), (s, 2), (s, 3)]);
        let result = open_all(dropped, &ids);
        if sample.recorded {
            assert!(matches!(result, Err(Error::Truncated(_))));
        } else {
            assert!(matches!(result, Err(Error::ChunkTampered { index: 1 })));
        }
        // A chunk inserted twice.
        let inserted = rebuild(s, &[(s, 0), (s, 0), (s, 1), (s, 2), (s, 3)]);
        let result = open_all(inserted, &ids);
        if sample.recorded {
            assert!(matches!(result, Err(Error::TrailingData(n)) if n == STRIDE as u64));
        } else {
            assert!(matches!(result, Err(Error::ChunkTampered { index: 1 })));
        }
    }
}

#[test]
fn chunks_spliced_between_files_for_the_same_recipient() {
    // Same plaintext, same recipient, same length: only the file key and
    // file id differ, and that must be enough.
    let a = &RECORDED.sealed[..];
    let b = seal_stream(&RECORDED.plaintext, &to_x25519(&ID), true);
    let b = &b[..];
    // (The age stanza's random grease makes header lengths differ.)
    assert_eq!(a.len() - header_len(a), b.len() - header_len(b));
    let ids = with_x25519(&ID);
    for (i, want) in [(0, 0), (1, 1), (3, 3)] {
        let mut parts: Vec<(&[u8], usize)> = (0..4).map(|j| (a, j)).collect();
        parts[i] = (b, i);
        let result = open_all(rebuild(a, &parts), &ids);
        assert!(
            matches!(result, Err(Error::ChunkTampered { index }) if index == want),
            "{}",
            describe(&result)
        );
    }
    // File B's chunks work in file B, of course.
    assert!(open_all(b.to_vec(), &ids).unwrap() == RECORDED.plaintext);
}

#[test]
fn header_of_one_file_with_payload_of_another() {
    let ids = with_x25519(&ID);
    let a = &RECORDED.sealed;
    let h = header_len(a);
    // Same length payload: fails on the first chunk.
    let b = seal_stream(
        &pattern(99, RECORDED.plaintext.len()),
        &to_x25519(&ID),
        true,
    );
    let hb = header_len(&b);
    let mut mixed = a[..h].to_vec();
    mixed.extend_from_slice(&b[hb..]);
    let result = open_all(mixed, &ids);
    assert!(matches!(result, Err(Error::ChunkTampered { index: 0 })));
    // Different length payloads: the recorded length no longer matches.
    for other_len in [0, 5, C, 5 * C] {
        let b = seal_stream(&pattern(98, other_len), &to_x25519(&ID), false);
        let mut mixed = a[..h].to_vec();
        mixed.extend_from_slice(&b[header_len(&b)..]);
        let result = open_all(mixed, &ids);
        assert!(
            matches!(result, Err(Error::Truncated(_) | Error::TrailingData(_))),
            "{}",
            describe(&result)
        );
        // And with an unrecorded header every chunk fails authentication.
        let u = &UNRECORDED.sealed;
        let mut mixed = u[..header_len(u)].to_vec();
        mixed.extend_from_slice(&b[header_len(&b)..]);
        let result = open_all(mixed, &ids);
        assert!(
            matches!(result, Err(Error::ChunkTampered { index: 0 })),
            "{}",
            describe(&result)
        );
    }
}

#[test]
fn wrong_keys() {
    let plaintext = pattern(8, 1000);
    let x_only = seal_stream(&plaintext, &to_x25519(&ID), true);
    let pass_only = seal_stream(&plaintext, &to_passphrase(PASS), true);
    let both = seal_stream(&plaintext, &multi_recipients(), true);
    let stranger = x25519::Identity::generate();

    let fails = |sealed: &Vec<u8>, ids: &Identities| {
        Opener::new(sealed.clone(), ids).map(|_| ()).unwrap_err()
    };
    assert!(matches!(
        fails(&x_only, &with_x25519(&stranger)),
        Error::NoMatchingIdentity
    ));
    assert!(matches!(
        fails(&x_only, &with_x25519(&OTHER)),
        Error::NoMatchingIdentity
    ));
    assert!(matches!(
        fails(&x_only, &with_passphrase(PASS)),
        Error::NoMatchingIdentity
    ));
    assert!(matches!(
        fails(&x_only, &Identities::new()),
        Error::NoMatchingIdentity
    ));
    assert!(matches!(
        fails(&pass_only, &with_passphrase("wrong")),
        Error::WrongPassphrase
    ));
    assert!(matches!(
        fails(&pass_only, &with_passphrase("")),
        Error::WrongPassphrase
    ));
    assert!(matches!(
        fails(&pass_only, &with_x25519(&ID)),
        Error::NoMatchingIdentity
    ));
    assert!(matches!(
        fails(&both, &with_x25519(&stranger)),
        Error::NoMatchingIdentity
    ));
    assert!(matches!(
        fails(&both, &with_passphrase("wrong")),
        Error::WrongPassphrase
    ));
    let mut stranger_and_wrong = with_x25519(&stranger);
    stranger_and_wrong.set_passphrase(secret("wrong"));
    assert!(matches!(
        fails(&both, &stranger_and_wrong),
        Error::WrongPassphrase
    ));

    // Each of the three recipients opens the multi-recipient file, also
    // when holding keys that do not match alongside.
    let mut stranger_and_right = with_x25519(&stranger);
    stranger_and_right.set_passphrase(secret(PASS));
    let mut wrong_pass_and_key = with_passphrase("wrong");
    wrong_pass_and_key.extend_age([Box::new(OTHER.clone()) as Box<dyn vault_core::age::Identity>]);
    for ids in [
        with_x25519(&ID),
        with_x25519(&OTHER),
        with_passphrase(PASS),
        stranger_and_right,
        wrong_pass_and_key,
    ] {
        assert!(open_all(both.clone(), &ids).unwrap() == plaintext);
        let key = ids.unlock(&Header::parse(&both).unwrap().0).unwrap();
        assert_eq!(key.expose().len(), 32);
    }
}

/// Plaintext over several decryption batches: a bad chunk in a later batch
/// lets earlier, fully authenticated batches through, but nothing of the
/// failing batch or after it.
#[test]
fn decrypt_to_writes_nothing_of_a_failing_batch() {
    let chunks = 300;
    let plaintext = pattern(77, chunks * C - 5);
    let sealed = seal_stream(&plaintext, &to_x25519(&ID), true);
    let ids = with_x25519(&ID);
    for bad in [0usize, 1, 255, 256, 280, chunks - 1] {
        let mut tampered = sealed.clone();
        let at = chunk_range(&sealed, bad).start + 17;
        tampered[at] ^= 0x40;
        let opener = Opener::new(tampered, &ids).unwrap();
        let mut out = Vec::new();
        let result = opener.decrypt_to(&mut out, true, &|_| {});
        assert!(
            matches!(result, Err(Error::ChunkTampered { index }) if index == bad as u64),
            "{}",
            describe(&result)
        );
        assert!(
            out.len() % C == 0 && out.len() <= bad * C,
            "bad chunk {bad}: wrote {} bytes",
            out.len()
        );
        assert!(out == plaintext[..out.len()], "wrote wrong bytes");
        // Random access to chunks on either side still works.
        for index in [bad.saturating_sub(1), (bad + 1).min(chunks - 1)] {
            if index == bad {
                continue;
            }
            let mut buf = vec![0u8; C.min(plaintext.len() - index * C)];
            opener.read_at(&mut buf, (index * C) as u64).unwrap();
            assert!(buf == plaintext[index * C..index * C + buf.len()]);
        }
    }
}
