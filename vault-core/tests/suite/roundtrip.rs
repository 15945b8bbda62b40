//! Round trips through the real library: every way of sealing, every way of
//! reading back.

use std::io::{Read, Seek, SeekFrom, Write};
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::util::*;
use proptest::prelude::*;
use vault_core::age::x25519;
use vault_core::{
    ChunkSize, Error, FORMAT_VERSION, Opener, Recipients, SealOptions, Sealer, Source, seal_source,
};

static ID: LazyLock<x25519::Identity> = LazyLock::new(x25519::Identity::generate);

/// Plaintext sizes: the chunk-boundary cases plus random sizes up to 5 chunks.
fn size() -> impl Strategy<Value = usize> {
    prop_oneof![
        1 => Just(0usize),
        1 => Just(1usize),
        1 => Just(C - 1),
        1 => Just(C),
        1 => Just(C + 1),
        1 => Just(2 * C),
        6 => 0..5 * C,
    ]
}

/// Random `read_at` requests: (offset seed, length seed).
fn reads() -> impl Strategy<Value = Vec<(u64, usize)>> {
    prop::collection::vec((any::<u64>(), any::<usize>()), 1..12)
}

/// Checks everything an opener offers against the expected plaintext.
fn check_opened<S: Source>(
    opener: Opener<S>,
    plaintext: &[u8],
    recorded: bool,
    reads: &[(u64, usize)],
    read_buf: usize,
) {
    let n = plaintext.len();
    assert_eq!(opener.len(), n as u64);
    assert_eq!(opener.is_empty(), n == 0);
    let header = opener.header();
    assert_eq!(header.chunk_size, ChunkSize::from_log2(16).unwrap());
    assert_eq!(header.plaintext_len, recorded.then_some(n as u64));
    let layout = *opener.layout();
    assert_eq!(layout.chunks as usize, chunks_for(n));
    assert_eq!(layout.plaintext_len, n as u64);
    assert_eq!(layout.sealed_len(), opener.source().len().unwrap());

    // Whole-file decryption, with hashing and progress.
    let progressed = AtomicU64::new(0);
    let mut out = Vec::new();
    let (_, summary) = opener
        .decrypt_to(&mut out, true, &|n| {
            progressed.fetch_add(n, Ordering::Relaxed);
        })
        .unwrap();
    assert!(out == plaintext, "decrypt_to returned different bytes");
    assert_eq!(summary.plaintext_len, n as u64);
    assert_eq!(summary.blake3, Some(blake3::hash(plaintext)));
    assert_eq!(progressed.load(Ordering::Relaxed), n as u64);

    let (_, unhashed) = opener.decrypt_to(Vec::new(), false, &|_| {}).unwrap();
    assert_eq!(unhashed.blake3, None);
    assert_eq!(
        opener.verify(&|_| {}).unwrap().blake3,
        Some(blake3::hash(plaintext))
    );

    // Random access, including reads that run past the end.
    for &(o, l) in reads {
        let offset = o % (n as u64 + C as u64 + 1);
        let len = l % (3 * C + 1);
        let mut buf = vec![0xAAu8; len];
        let got = opener.read_at(&mut buf, offset).unwrap();
        let start = (offset as usize).min(n);
        let end = (start + len).min(n);
        assert_eq!(got, end - start, "read_at({offset}, {len})");
        assert!(
            buf[..got] == plaintext[start..end],
            "read_at({offset}, {len}) bytes"
        );
        assert!(
            buf[got..].iter().all(|&b| b == 0xAA),
            "read_at wrote past its count"
        );
    }
    for index in 0..layout.chunks {
        let mut chunk = vec![0u8; layout.plain_len(index)];
        opener.read_chunk(index, &mut chunk).unwrap();
        let start = layout.plain_offset(index) as usize;
        assert!(chunk == plaintext[start..start + chunk.len()]);
    }

    // Sequential Read + Seek.
    let mut reader = opener.into_reader();
    let mut all = Vec::new();
    let mut buf = vec![0u8; read_buf.max(1)];
    loop {
        let got = reader.read(&mut buf).unwrap();
        if got == 0 {
            break;
        }
        all.extend_from_slice(&buf[..got]);
    }
    assert!(all == plaintext, "sequential read differs");
    for &(o, l) in reads {
        let offset = o % (n as u64 + 2);
        let len = l % (2 * C + 1);
        let from = match o % 3 {
            0 => SeekFrom::Start(offset),
            1 => SeekFrom::End(offset as i64 - n as i64),
            _ => {
                let here = reader.stream_position().unwrap();
                SeekFrom::Current(offset as i64 - here as i64)
            }
        };
        assert_eq!(reader.seek(from).unwrap(), offset);
        let mut got = Vec::new();
        (&mut reader)
            .take(len as u64)
            .read_to_end(&mut got)
            .unwrap();
        let start = (offset as usize).min(n);
        let end = (start + len).min(n);
        assert!(got == plaintext[start..end], "seek+read at {offset}");
    }
    let here = reader.stream_position().unwrap() as i64;
    assert!(reader.seek(SeekFrom::Current(-here - 1)).is_err());
    assert!(reader.seek(SeekFrom::End(-(n as i64) - 1)).is_err());
}

/// Feeds `plaintext` to a sealer in writes of the given sizes (cycled).
fn seal_in_pieces(
    plaintext: &[u8],
    recipients: &Recipients,
    recorded: bool,
    writes: &[usize],
) -> Vec<u8> {
    let mut sealer = Sealer::new(
        Vec::new(),
        recipients,
        options(recorded.then_some(plaintext.len() as u64)),
    )
    .unwrap();
    let mut rest = plaintext;
    for &w in writes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (now, later) = rest.split_at(w.min(rest.len()));
        if w % 7 == 0 {
            // Empty writes and flushes are no-ops.
            assert_eq!(sealer.write(&[]).unwrap(), 0);
            sealer.flush().unwrap();
        }
        sealer.write_all(now).unwrap();
        rest = later;
    }
    let (sealed, summary) = sealer.finish().unwrap();
    assert_eq!(summary.plaintext_len, plaintext.len() as u64);
    assert_eq!(summary.sealed_len, sealed.len() as u64);
    assert_eq!(summary.blake3, blake3::hash(plaintext));
    sealed
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn sealer_round_trips(
        len in size(),
        seed in any::<u64>(),
        recorded in any::<bool>(),
        writes in prop::collection::vec(0usize..3 * C, 1..8),
        reads in reads(),
        read_buf in 1usize..2 * C,
    ) {
        let plaintext = pattern(seed, len);
        let writes: Vec<usize> = writes.into_iter().map(|w| w.max(1)).collect();
        let sealed = seal_in_pieces(&plaintext, &to_x25519(&ID), recorded, &writes);
        let opener = Opener::new(sealed, &with_x25519(&ID)).unwrap();
        check_opened(opener, &plaintext, recorded, &reads, read_buf);
    }

    #[test]
    fn seal_source_round_trips(
        len in size(),
        seed in any::<u64>(),
        reads in reads(),
        read_buf in 1usize..2 * C,
    ) {
        let plaintext = pattern(seed, len);
        let progressed = AtomicU64::new(0);
        let (sealed, summary) = seal_source(
            &plaintext,
            Vec::new(),
            &to_x25519(&ID),
            ChunkSize::from_log2(16).unwrap(),
            &|n| { progressed.fetch_add(n, Ordering::Relaxed); },
        )
        .unwrap();
        prop_assert_eq!(progressed.load(Ordering::Relaxed), len as u64);
        prop_assert_eq!(summary.plaintext_len, len as u64);
        prop_assert_eq!(summary.sealed_len, sealed.len() as u64);
        prop_assert_eq!(summary.blake3, blake3::hash(&plaintext));
        let opener = Opener::new(sealed, &with_x25519(&ID)).unwrap();
        check_opened(opener, &plaintext, true, &reads, read_buf);
    }

    #[test]
    fn sealer_rejects_a_wrong_announced_length(
        len in 0usize..3 * C,
        announced in 0u64..3 * C as u64,
        seed in any::<u64>(),
    ) {
        prop_assume!(announced != len as u64);
        let plaintext = pattern(seed, len);
        let mut sealer =
            Sealer::new(Vec::new(), &to_x25519(&ID), options(Some(announced))).unwrap();
        let result = match sealer.write_all(&plaintext) {
            Ok(()) => sealer.finish().map(|_| ()),
            Err(e) => {
                // Too many bytes: the write itself fails, and so does finish.
                prop_assert!(len as u64 > announced);
                let e = Error::from_io(e);
                prop_assert!(matches!(e, Error::SourceChanged(_)), "{:?}", e);
                prop_assert!(sealer.write_all(b"more").is_err());
                prop_assert!(sealer.finish().is_err());
                return Ok(());
            }
        };
        prop_assert!(len as u64 <= announced);
        prop_assert!(matches!(result, Err(Error::SourceChanged(_))), "{}", describe(&result));
    }
}

/// A plaintext that cannot be told apart from the batch size would hide
/// off-by-one errors in the batching; these sizes straddle the batch
/// boundaries (256 chunks of 64 KiB = 16 MiB on any machine with at most
/// 256 threads) and take both the buffered and the direct write paths.
#[test]
fn sealer_across_batch_boundaries() {
    let batch = 256 * C;
    let plaintext = pattern(42, 2 * batch + C + 7);
    let recipients = to_x25519(&ID);
    let ids = with_x25519(&ID);
    let cases: [(usize, &[usize]); 5] = [
        (batch, &[batch]),
        (batch + 1, &[batch + 1]),
        (batch - 1, &[C / 3]),
        (2 * batch + C + 7, &[batch + 5, 777_777]),
        (2 * batch, &[batch, 1, batch - 1]),
    ];
    for (len, writes) in cases {
        let pt = &plaintext[..len];
        for recorded in [true, false] {
            let sealed = seal_in_pieces(pt, &recipients, recorded, writes);
            let opener = Opener::new(sealed, &ids).unwrap();
            let reads = [
                (batch as u64 - 3, 10),
                (batch as u64 + C as u64 - 1, C + 2),
                (len as u64 - 1, 5),
                (0, 100),
            ];
            check_opened(opener, pt, recorded, &reads, 3 * C + 11);
        }
    }
}

#[test]
fn seal_source_and_open_from_files() {
    let plaintext = pattern(7, 3 * C + 1234);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("model.safetensors");
    std::fs::write(&input, &plaintext).unwrap();
    let source = std::fs::File::open(&input).unwrap();
    let output = std::fs::File::create(dir.path().join("model.mvlt")).unwrap();
    let (_, summary) = seal_source(
        &source,
        output,
        &to_x25519(&ID),
        ChunkSize::from_log2(16).unwrap(),
        &|_| {},
    )
    .unwrap();
    assert_eq!(summary.blake3, blake3::hash(&plaintext));

    let sealed = std::fs::File::open(dir.path().join("model.mvlt")).unwrap();
    assert_eq!(sealed.metadata().unwrap().len(), summary.sealed_len);
    let opener = Opener::new(sealed, &with_x25519(&ID)).unwrap();
    check_opened(opener, &plaintext, true, &[(5, C), (u64::MAX, 9)], 4096);

    let file = std::fs::File::open(dir.path().join("model.mvlt")).unwrap();
    // SAFETY: the file lives in a private temporary directory and nothing
    // modifies it while the map exists.
    let map = unsafe { memmap2::Mmap::map(&file) }.unwrap();
    let opener = Opener::new(map, &with_x25519(&ID)).unwrap();
    check_opened(opener, &plaintext, true, &[(C as u64, 1)], C);
}

#[test]
fn seal_source_on_other_thread_counts() {
    let plaintext = pattern(9, 5 * C + 3);
    for threads in [1, 3] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let (sealed, summary) = pool
            .install(|| {
                seal_source(
                    &plaintext,
                    Vec::new(),
                    &to_x25519(&ID),
                    ChunkSize::from_log2(16).unwrap(),
                    &|_| {},
                )
            })
            .unwrap();
        assert_eq!(summary.blake3, blake3::hash(&plaintext));
        let opener = Opener::new(sealed, &with_x25519(&ID)).unwrap();
        let out = pool
            .install(|| opener.decrypt_to(Vec::new(), true, &|_| {}))
            .unwrap();
        assert!(out.0 == plaintext);
    }
}

/// A source whose length changes between the start and the end of sealing.
struct Shrinking {
    data: Vec<u8>,
    calls: AtomicU64,
}

impl Source for Shrinking {
    fn len(&self) -> std::io::Result<u64> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(self.data.len() as u64 - call.min(1))
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        self.data.read_exact_at(buf, offset)
    }
}

/// A source that claims more bytes than it holds.
struct Lying(Vec<u8>);

impl Source for Lying {
    fn len(&self) -> std::io::Result<u64> {
        Ok(self.0.len() as u64 + 100)
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        self.0.read_exact_at(buf, offset)
    }
}

#[test]
fn seal_source_detects_a_changing_source() {
    let shrinking = Shrinking {
        data: pattern(1, 2 * C + 5),
        calls: AtomicU64::new(0),
    };
    let result = seal_source(
        &shrinking,
        Vec::new(),
        &to_x25519(&ID),
        ChunkSize::from_log2(16).unwrap(),
        &|_| {},
    );
    assert!(
        matches!(result, Err(Error::SourceChanged(_))),
        "{}",
        describe(&result)
    );

    let lying = Lying(pattern(2, C + 5));
    let result = seal_source(
        &lying,
        Vec::new(),
        &to_x25519(&ID),
        ChunkSize::from_log2(16).unwrap(),
        &|_| {},
    );
    assert!(
        matches!(result, Err(Error::SourceChanged(_))),
        "{}",
        describe(&result)
    );
}

#[test]
fn header_fields_are_as_sealed() {
    let plaintext = pattern(3, 100);
    for chunk_size in [
        ChunkSize::MIN,
        ChunkSize::from_log2(16).unwrap(),
        ChunkSize::DEFAULT,
        ChunkSize::MAX,
    ] {
        let mut sealer = Sealer::new(
            Vec::new(),
            &to_x25519(&ID),
            SealOptions {
                chunk_size,
                plaintext_len: None,
            },
        )
        .unwrap();
        sealer.write_all(&plaintext).unwrap();
        let (sealed, _) = sealer.finish().unwrap();
        assert_eq!(&sealed[..8], b"MVLT\r\n\x1a\n");
        assert_eq!(u16::from_le_bytes([sealed[8], sealed[9]]), FORMAT_VERSION);
        let opener = Opener::new(sealed, &with_x25519(&ID)).unwrap();
        assert_eq!(opener.header().chunk_size, chunk_size);
        assert_eq!(opener.header().plaintext_len, None);
        assert_eq!(opener.layout().chunk_size, chunk_size.bytes() as u64);
        assert!(opener.decrypt_to(Vec::new(), false, &|_| {}).unwrap().0 == plaintext);
    }
}

#[test]
fn passphrase_and_multi_recipient_round_trip() {
    let second = x25519::Identity::generate();
    let plaintext = pattern(11, 2 * C + 17);
    let mut recipients = Recipients::new();
    recipients
        .add_age(Box::new(ID.to_public()))
        .add_age(Box::new(second.to_public()))
        .set_passphrase(secret("correct horse"), FAST);
    for sealed in [
        seal_stream(&plaintext, &recipients, true),
        seal_stream(&plaintext, &recipients, false),
        seal_vec(&plaintext, &recipients),
    ] {
        for ids in [
            with_x25519(&ID),
            with_x25519(&second),
            with_passphrase("correct horse"),
        ] {
            assert!(open_all(sealed.clone(), &ids).unwrap() == plaintext);
        }
    }
}

#[test]
fn empty_recipients_are_refused() {
    let result = Sealer::new(Vec::new(), &Recipients::new(), options(None));
    assert!(matches!(result, Err(Error::InvalidArgument(_))));
    let result = seal_source(
        &Vec::new(),
        Vec::new(),
        &Recipients::new(),
        ChunkSize::from_log2(16).unwrap(),
        &|_| {},
    );
    assert!(matches!(result, Err(Error::InvalidArgument(_))));
}

/// The header limits readers enforce (one stanza at most 64 KiB) must be
/// enforced when sealing too: a file that no reader accepts must not be
/// written.
#[test]
fn sealing_never_writes_a_header_readers_refuse() {
    let ids: Vec<x25519::Identity> = (0..700).map(|_| x25519::Identity::generate()).collect();
    let plaintext = pattern(12, 10);
    for count in [600, 700] {
        let mut recipients = Recipients::new();
        for id in &ids[..count] {
            recipients.add_age(Box::new(id.to_public()));
        }
        let last = with_x25519(&ids[count - 1]);
        let streamed = Sealer::new(Vec::new(), &recipients, options(None)).and_then(|mut s| {
            s.write_all(&plaintext)?;
            s.finish()
        });
        let positional = seal_source(
            &plaintext,
            Vec::new(),
            &recipients,
            ChunkSize::from_log2(16).unwrap(),
            &|_| {},
        );
        for result in [streamed, positional] {
            if count == 600 {
                // About 59 KiB of age stanza: fits, and every recipient opens.
                let (sealed, _) = result.unwrap();
                assert!(open_all(sealed, &last).unwrap() == plaintext);
            } else {
                assert!(
                    matches!(result, Err(Error::InvalidArgument(_))),
                    "{}",
                    describe(&result)
                );
            }
        }
    }
}

/// `Sealer::flush_sealed` between writes (at chunk boundaries, inside a
/// chunk, twice in a row, on an empty buffer) never changes the sealed
/// stream's meaning: it opens to exactly what was written, whether or not
/// the plaintext ends at a chunk boundary.
#[test]
fn flushing_between_writes_round_trips() {
    for total in [0, 1, C - 1, C, C + 1, 3 * C, 3 * C + 7] {
        let plaintext = pattern(23, total);
        let cuts = [0, 1, C / 2, C, C, C + 1, 2 * C, 3 * C, total];
        let mut sealer = Sealer::new(Vec::new(), &to_x25519(&ID), options(None)).unwrap();
        let mut at = 0;
        for &cut in &cuts {
            let cut = cut.min(total).max(at);
            sealer.write_all(&plaintext[at..cut]).unwrap();
            sealer.flush_sealed().unwrap();
            at = cut;
        }
        sealer.write_all(&plaintext[at..]).unwrap();
        let (sealed, summary) = sealer.finish().unwrap();
        assert_eq!(summary.plaintext_len, total as u64);
        let opener = Opener::new(sealed, &with_x25519(&ID)).unwrap();
        let (back, _) = opener.decrypt_to(Vec::new(), false, &|_| {}).unwrap();
        assert!(back == plaintext, "total {total}");
    }
}

/// `read_chunks` (one read for a run of chunks, what the mount uses for
/// sequential reads of small chunks) returns exactly what `read_chunk`
/// returns chunk by chunk, at the smallest chunk size and at 64 KiB;
/// a run that does not fill the buffer with whole chunks is refused, and
/// a tampered chunk anywhere in the run fails the whole run with zeros.
#[test]
fn runs_of_chunks_read_like_single_chunks() {
    for log2 in [12u8, 16] {
        let chunk = 1usize << log2;
        let plaintext = pattern(7, 9 * chunk + 123);
        let mut sealer = Sealer::new(
            Vec::new(),
            &to_x25519(&ID),
            SealOptions {
                chunk_size: ChunkSize::from_log2(log2).unwrap(),
                plaintext_len: Some(plaintext.len() as u64),
            },
        )
        .unwrap();
        sealer.write_all(&plaintext).unwrap();
        let (sealed, _) = sealer.finish().unwrap();
        let opener = Opener::new(sealed.clone(), &with_x25519(&ID)).unwrap();
        for (first, count) in [(0u64, 1usize), (0, 10), (3, 4), (8, 2), (9, 1)] {
            let end = (first as usize + count) * chunk;
            let want = &plaintext[first as usize * chunk..end.min(plaintext.len())];
            let mut got = vec![0u8; want.len()];
            opener.read_chunks(first, &mut got).unwrap();
            assert!(got == want, "chunks {first}+{count} of 2^{log2}");
        }
        // Not whole chunks, or past the end.
        for (first, len) in [(0u64, chunk - 1), (0, chunk + 1), (9, 124), (10, 1), (2, 0)] {
            let mut out = vec![0u8; len];
            assert!(
                matches!(
                    opener.read_chunks(first, &mut out),
                    Err(Error::InvalidArgument(_))
                ),
                "{first} {len}"
            );
        }
        // Flip one ciphertext byte of chunk 5: a run over it fails, zeroed;
        // a run before it still reads.
        let mut bad = sealed;
        let at = opener.layout().sealed_offset(5) as usize + 10;
        bad[at] ^= 1;
        let opener = Opener::new(bad, &with_x25519(&ID)).unwrap();
        let mut out = vec![0u8; 6 * chunk];
        assert!(matches!(
            opener.read_chunks(2, &mut out),
            Err(Error::ChunkTampered { index: 5 })
        ));
        assert!(out.iter().all(|&b| b == 0));
        let mut out = vec![0u8; 3 * chunk];
        opener.read_chunks(2, &mut out).unwrap();
        assert!(out == plaintext[2 * chunk..5 * chunk]);
    }
}
