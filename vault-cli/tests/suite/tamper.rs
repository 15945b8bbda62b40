//! Tampered, truncated and extended sealed files: the right exit code, no
//! output file, and no plaintext of a failing chunk on standard output.

use std::fs;
use std::path::PathBuf;

use crate::util::*;
use predicates::prelude::*;

/// A sealed file of `chunks` full 64 KiB chunks plus `tail` bytes, with its
/// plaintext and header length.
struct Sealed {
    env: Env,
    data: Vec<u8>,
    path: PathBuf,
    original: Vec<u8>,
    header_len: usize,
}

impl Sealed {
    fn new(len: usize) -> Self {
        let env = Env::new();
        env.keygen();
        let data = pattern(len as u64, len);
        let input = env.write("model.bin", &data);
        let path = env.seal_small_chunks(&input);
        fs::remove_file(&input).unwrap();
        let header_len = env.inspect(&path)["header_len"].as_u64().unwrap() as usize;
        let original = fs::read(&path).unwrap();
        Sealed {
            env,
            data,
            path,
            original,
            header_len,
        }
    }

    /// Sealed from standard input, so the plaintext length is not recorded.
    fn streamed(len: usize) -> Self {
        let env = Env::new();
        env.keygen();
        let data = pattern(len as u64 + 1, len);
        let path = env.path("model.bin.mvlt");
        env.cmd()
            .args(["seal", "--chunk-size", "64K", "-", "-o"])
            .arg(&path)
            .write_stdin(data.clone())
            .assert()
            .success();
        let header_len = env.inspect(&path)["header_len"].as_u64().unwrap() as usize;
        let original = fs::read(&path).unwrap();
        Sealed {
            env,
            data,
            path,
            original,
            header_len,
        }
    }

    /// File offset of chunk `index`'s ciphertext.
    fn chunk_offset(&self, index: usize) -> usize {
        self.header_len + index * (C + TAG)
    }

    fn restore(&self) {
        fs::write(&self.path, &self.original).unwrap();
    }

    fn write(&self, bytes: &[u8]) {
        fs::write(&self.path, bytes).unwrap();
    }

    fn flipped(&self, offset: usize) {
        let mut bytes = self.original.clone();
        bytes[offset] ^= 0x01;
        self.write(&bytes);
    }

    fn output(&self) -> PathBuf {
        self.env.path("model.bin")
    }

    /// `mvault open` to the default output name must fail with `code`,
    /// leaving no output and no temporary file; returns stderr.
    fn open_fails(&self, code: i32) -> String {
        let out = self
            .env
            .cmd()
            .arg("open")
            .arg(&self.path)
            .assert()
            .code(code)
            .stdout("");
        assert!(!self.output().exists(), "output created for a bad file");
        assert!(
            self.env.temp_files().is_empty(),
            "{:?}",
            self.env.temp_files()
        );
        stderr_of(&out)
    }

    /// `mvault open -o -` must fail with `code`; returns stdout.
    fn open_stdout_fails(&self, code: i32) -> Vec<u8> {
        let out = self
            .env
            .cmd()
            .args(["open", "-o", "-"])
            .arg(&self.path)
            .assert()
            .code(code);
        out.get_output().stdout.clone()
    }
}

fn assert_no_leak(stdout: &[u8], plaintext: &[u8], bad_chunk: usize) {
    assert!(
        stdout.len() <= bad_chunk * C,
        "{} bytes on stdout reach into failing chunk {bad_chunk}",
        stdout.len()
    );
    assert!(
        plaintext.starts_with(stdout),
        "stdout is not a prefix of the plaintext"
    );
}

#[test]
fn untampered_file_opens() {
    // The fixture itself is good, so the failures below are due to tampering.
    let s = Sealed::new(4 * C + 10);
    s.env.cmd().arg("open").arg(&s.path).assert().success();
    assert_eq!(fs::read(s.output()).unwrap(), s.data);
}

#[test]
fn flipped_payload_byte_in_the_first_chunk() {
    let s = Sealed::new(4 * C + 10);
    for offset in [
        s.chunk_offset(0),
        s.chunk_offset(0) + 1234,
        s.chunk_offset(0) + C - 1,
        s.chunk_offset(0) + C,           // first tag byte
        s.chunk_offset(0) + C + TAG - 1, // last tag byte
    ] {
        s.flipped(offset);
        let err = s.open_fails(EXIT_INTEGRITY);
        assert!(err.contains("chunk 0 failed authentication"), "{err}");
        let stdout = s.open_stdout_fails(EXIT_INTEGRITY);
        assert!(
            stdout.is_empty(),
            "{} bytes on stdout although chunk 0 failed",
            stdout.len()
        );
    }
}

#[test]
fn flipped_payload_byte_in_later_chunks() {
    let s = Sealed::new(4 * C + 10);
    for index in 1..=4 {
        s.flipped(s.chunk_offset(index) + 7);
        let err = s.open_fails(EXIT_INTEGRITY);
        assert!(
            err.contains(&format!("chunk {index} failed authentication")),
            "{err}"
        );
        assert_no_leak(&s.open_stdout_fails(EXIT_INTEGRITY), &s.data, index);
        s.env
            .cmd()
            .arg("verify")
            .arg(&s.path)
            .assert()
            .code(EXIT_INTEGRITY)
            .stdout("");
    }
}

#[test]
fn stdout_stops_before_a_failing_chunk_in_a_large_file() {
    // More chunks than one parallel batch, so earlier batches do reach
    // stdout: what arrives must be an exact prefix ending before the bad chunk.
    let chunks = 320;
    let s = Sealed::new(chunks * C);
    let bad = chunks - 10;
    s.flipped(s.chunk_offset(bad) + 1);
    assert_no_leak(&s.open_stdout_fails(EXIT_INTEGRITY), &s.data, bad);
    s.open_fails(EXIT_INTEGRITY);
}

#[test]
fn swapped_chunks_fail() {
    let s = Sealed::new(3 * C + 10);
    let mut bytes = s.original.clone();
    let (a, b) = (s.chunk_offset(0), s.chunk_offset(1));
    let first: Vec<u8> = bytes[a..b].to_vec();
    let second: Vec<u8> = bytes[b..b + (C + TAG)].to_vec();
    bytes[a..b].copy_from_slice(&second);
    bytes[b..b + (C + TAG)].copy_from_slice(&first);
    s.write(&bytes);
    s.open_fails(EXIT_INTEGRITY);
    assert!(s.open_stdout_fails(EXIT_INTEGRITY).is_empty());
}

#[test]
fn flipped_magic_bytes_are_a_format_error() {
    let s = Sealed::new(C + 1);
    for offset in 0..8 {
        s.flipped(offset);
        let err = s.open_fails(EXIT_FORMAT);
        assert!(err.contains("not an mvault"), "byte {offset}: {err}");
    }
}

#[test]
fn flipped_version_bytes_are_an_unsupported_version() {
    let s = Sealed::new(C + 1);
    for offset in 8..10 {
        s.flipped(offset);
        let err = s.open_fails(EXIT_FORMAT);
        assert!(
            err.contains("unsupported format version"),
            "byte {offset}: {err}"
        );
        s.env
            .cmd()
            .arg("inspect")
            .arg(&s.path)
            .assert()
            .code(EXIT_FORMAT)
            .stderr(predicate::str::contains("unsupported format version"));
    }
}

#[test]
fn flipped_suite_bytes_are_an_unsupported_suite() {
    let s = Sealed::new(C + 1);
    for offset in 10..12 {
        s.flipped(offset);
        let err = s.open_fails(EXIT_FORMAT);
        assert!(
            err.contains("unsupported cipher suite"),
            "byte {offset}: {err}"
        );
    }
}

#[test]
fn flipped_header_fields_and_mac_are_integrity_errors() {
    // Chunk size, reserved bytes, header length, plaintext length, file id,
    // stanza count, and every byte of the header MAC.
    let s = Sealed::new(2 * C + 3);
    let mac = s.header_len - 32..s.header_len;
    for offset in (12..62).chain(mac) {
        s.flipped(offset);
        let err = s.open_fails(EXIT_INTEGRITY);
        assert!(!err.is_empty(), "byte {offset}: no message");
        assert!(
            s.open_stdout_fails(EXIT_INTEGRITY).is_empty(),
            "byte {offset}"
        );
        s.env
            .cmd()
            .arg("verify")
            .arg(&s.path)
            .assert()
            .code(EXIT_INTEGRITY)
            .stdout("");
    }
    // The MAC in particular names the header.
    s.flipped(s.header_len - 1);
    let err = s.open_fails(EXIT_INTEGRITY);
    assert!(err.contains("header authentication failed"), "{err}");
}

#[test]
fn flipped_stanza_bytes_never_open() {
    // A damaged key stanza cannot be told from a stanza for someone else, so
    // a key error (3) is as acceptable as an integrity error (4); what matters
    // is that nothing opens and nothing is written.
    let s = Sealed::new(C + 5);
    for offset in (62..s.header_len - 32).step_by(7) {
        s.flipped(offset);
        let out = s
            .env
            .cmd()
            .args(["open", "-o", "-"])
            .arg(&s.path)
            .assert()
            .failure()
            .stdout("");
        let code = out.get_output().status.code();
        assert!(
            matches!(code, Some(EXIT_KEY | EXIT_INTEGRITY)),
            "byte {offset}: exit {code:?}"
        );
        assert!(!s.output().exists());
    }
    s.restore();
    s.env.cmd().arg("verify").arg(&s.path).assert().success();
}

#[test]
fn truncation_is_reported_as_truncated() {
    let s = Sealed::new(3 * C + 10);
    let cuts = [
        ("at a chunk boundary", s.chunk_offset(2)),
        ("at the first chunk boundary", s.chunk_offset(1)),
        ("mid-chunk", s.chunk_offset(1) + 500),
        ("inside the last tag", s.original.len() - 3),
        ("after the header", s.header_len),
        ("inside the header", s.header_len - 10),
    ];
    for (what, cut) in cuts {
        s.write(&s.original[..cut]);
        let err = s.open_fails(EXIT_INTEGRITY);
        assert!(err.contains("truncated"), "{what}: {err}");
        assert!(s.open_stdout_fails(EXIT_INTEGRITY).is_empty(), "{what}");
        s.env
            .cmd()
            .arg("verify")
            .arg(&s.path)
            .assert()
            .code(EXIT_INTEGRITY)
            .stderr(predicate::str::contains("truncated"));
    }
}

#[test]
fn truncating_a_streamed_file_at_a_chunk_boundary_is_detected() {
    // Without a recorded length only the final-chunk flag can tell.
    let s = Sealed::streamed(3 * C + 10);
    for cut in [s.chunk_offset(3), s.chunk_offset(2), s.chunk_offset(1)] {
        s.write(&s.original[..cut]);
        let err = s.open_fails(EXIT_INTEGRITY);
        assert!(err.contains("truncated"), "cut at {cut}: {err}");
        assert_no_leak(
            &s.open_stdout_fails(EXIT_INTEGRITY),
            &s.data,
            (cut - s.header_len) / (C + TAG) - 1,
        );
    }
    // Mid-chunk the cut chunk simply fails to authenticate.
    s.write(&s.original[..s.chunk_offset(2) + 500]);
    s.open_fails(EXIT_INTEGRITY);
    s.restore();
    s.env.cmd().arg("verify").arg(&s.path).assert().success();
}

#[test]
fn appended_garbage_is_an_integrity_error() {
    let s = Sealed::new(2 * C + 10);
    for extra in [&b"x"[..], &[0u8; TAG][..], &[7u8; C + TAG][..]] {
        let mut bytes = s.original.clone();
        bytes.extend_from_slice(extra);
        s.write(&bytes);
        let err = s.open_fails(EXIT_INTEGRITY);
        assert!(
            err.contains("unexpected data after the final chunk"),
            "{err}"
        );
        assert!(s.open_stdout_fails(EXIT_INTEGRITY).is_empty());
    }
}

#[test]
fn appended_garbage_on_a_streamed_file_is_an_integrity_error() {
    let s = Sealed::streamed(2 * C + 10);
    for extra in [&b"x"[..], &[0u8; 40][..], &[7u8; C + TAG][..]] {
        let mut bytes = s.original.clone();
        bytes.extend_from_slice(extra);
        s.write(&bytes);
        s.open_fails(EXIT_INTEGRITY);
    }
}

#[test]
fn a_chunk_from_another_file_fails() {
    // Same key owner, same chunk size, same length: chunk 1 spliced across.
    let s = Sealed::new(3 * C);
    let other_input = s.env.write("other.bin", &pattern(99, 3 * C));
    let other = s.env.seal_small_chunks(&other_input);
    let other_bytes = fs::read(&other).unwrap();
    // Headers differ in length (age adds a random grease stanza).
    let other_header = s.env.inspect(&other)["header_len"].as_u64().unwrap() as usize;
    let other_chunk = &other_bytes[other_header + (C + TAG)..other_header + 2 * (C + TAG)];
    let mut bytes = s.original.clone();
    bytes[s.chunk_offset(1)..s.chunk_offset(2)].copy_from_slice(other_chunk);
    s.write(&bytes);
    let err = s.open_fails(EXIT_INTEGRITY);
    assert!(err.contains("chunk 1 failed authentication"), "{err}");
}
