//! Tampered, truncated and extended sealed files as a user meets them: the
//! right exit code and message, no output file, and no plaintext of a
//! failing chunk on standard output. Each test is a table of rows (a damaged
//! file, then for each command its exit code and a message stderr must
//! contain); the byte-level tamper matrix is vault-core's (`tamper.rs`
//! there).

use std::fs;
use std::path::PathBuf;

use crate::util::*;

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
        let header_len = env.inspect(&path)["header_bytes"].as_u64().unwrap() as usize;
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
        let header_len = env.inspect(&path)["header_bytes"].as_u64().unwrap() as usize;
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
        self.write(&self.flip(offset));
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

    /// The sealed file with byte `offset` XORed with 0x01.
    fn flip(&self, offset: usize) -> Vec<u8> {
        let mut bytes = self.original.clone();
        bytes[offset] ^= 0x01;
        bytes
    }

    /// One row per offset: the file with that byte flipped, and `expect`.
    fn flips(
        &self,
        offsets: impl IntoIterator<Item = usize>,
        expect: &[(Cmd, i32, &str)],
    ) -> Vec<Row> {
        offsets
            .into_iter()
            .map(|offset| Row::new(format!("byte {offset}"), self.flip(offset), expect))
            .collect()
    }

    /// Runs a table: writes each row's damaged file, then runs each of its
    /// commands, which must exit with the row's code, print a non-empty
    /// message on stderr containing the row's text, and keep to [`Cmd`]'s
    /// rules for outputs.
    fn check(&self, rows: &[Row]) {
        for row in rows {
            self.write(&row.bytes);
            for (cmd, code, message) in &row.expect {
                let stderr = match *cmd {
                    Cmd::Open => self.open_fails(*code),
                    Cmd::OpenStdout(want) => {
                        let out = self
                            .env
                            .cmd()
                            .args(["open", "-o", "-"])
                            .arg(&self.path)
                            .assert()
                            .code(*code);
                        let stdout = &out.get_output().stdout;
                        match want {
                            Stdout::Empty => assert!(
                                stdout.is_empty(),
                                "{}: {} bytes on stdout",
                                row.what,
                                stdout.len()
                            ),
                            Stdout::PrefixBefore(bad) => assert_no_leak(stdout, &self.data, bad),
                        }
                        stderr_of(&out)
                    }
                    Cmd::Verify => stderr_of(
                        &self
                            .env
                            .cmd()
                            .arg("verify")
                            .arg(&self.path)
                            .assert()
                            .code(*code)
                            .stdout(""),
                    ),
                    Cmd::Inspect => stderr_of(
                        &self
                            .env
                            .cmd()
                            .arg("inspect")
                            .arg(&self.path)
                            .assert()
                            .code(*code),
                    ),
                };
                assert!(
                    !stderr.is_empty() && stderr.contains(message.as_str()),
                    "{}: {cmd:?}: {stderr}",
                    row.what
                );
            }
        }
    }
}

/// A command run on a damaged file.
#[derive(Clone, Copy, Debug)]
enum Cmd {
    /// `open FILE`: no output file, no temporary file, nothing on stdout.
    Open,
    /// `open -o - FILE`, with what stdout may hold.
    OpenStdout(Stdout),
    /// `verify FILE`: nothing on stdout.
    Verify,
    /// `inspect FILE`.
    Inspect,
}

/// What `open -o -` may write before it fails.
#[derive(Clone, Copy, Debug)]
enum Stdout {
    /// Nothing.
    Empty,
    /// An exact prefix of the plaintext ending before chunk N.
    PrefixBefore(usize),
}

/// One row of a table: a damaged file and, per command, the exit code and
/// a message stderr must contain ("" where any message will do).
struct Row {
    what: String,
    bytes: Vec<u8>,
    expect: Vec<(Cmd, i32, String)>,
}

impl Row {
    fn new(what: impl Into<String>, bytes: Vec<u8>, expect: &[(Cmd, i32, &str)]) -> Row {
        Row {
            what: what.into(),
            bytes,
            expect: expect
                .iter()
                .map(|&(cmd, code, message)| (cmd, code, message.to_owned()))
                .collect(),
        }
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
    let c0 = s.chunk_offset(0);
    let offsets = [
        c0,
        c0 + 1234,
        c0 + C - 1,
        c0 + C,           // first tag byte
        c0 + C + TAG - 1, // last tag byte
    ];
    s.check(&s.flips(
        offsets,
        &[
            (Cmd::Open, EXIT_INTEGRITY, "chunk 0 failed authentication"),
            (Cmd::OpenStdout(Stdout::Empty), EXIT_INTEGRITY, ""),
        ],
    ));
}

#[test]
fn flipped_payload_byte_in_later_chunks() {
    let s = Sealed::new(4 * C + 10);
    let rows: Vec<Row> = (1..=4)
        .map(|index| {
            Row::new(
                format!("chunk {index}"),
                s.flip(s.chunk_offset(index) + 7),
                &[
                    (
                        Cmd::Open,
                        EXIT_INTEGRITY,
                        &format!("chunk {index} failed authentication"),
                    ),
                    (
                        Cmd::OpenStdout(Stdout::PrefixBefore(index)),
                        EXIT_INTEGRITY,
                        "",
                    ),
                    (Cmd::Verify, EXIT_INTEGRITY, ""),
                ],
            )
        })
        .collect();
    s.check(&rows);
}

#[test]
fn stdout_stops_before_a_failing_chunk_in_a_large_file() {
    // More chunks than one parallel batch, so earlier batches do reach
    // stdout: what arrives must be an exact prefix ending before the bad chunk.
    let chunks = 320;
    let s = Sealed::new(chunks * C);
    let bad = chunks - 10;
    s.check(&[Row::new(
        format!("chunk {bad} of {chunks}"),
        s.flip(s.chunk_offset(bad) + 1),
        &[
            (
                Cmd::OpenStdout(Stdout::PrefixBefore(bad)),
                EXIT_INTEGRITY,
                "",
            ),
            (Cmd::Open, EXIT_INTEGRITY, ""),
        ],
    )]);
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
    s.check(&[Row::new(
        "chunks 0 and 1 swapped",
        bytes,
        &[
            (Cmd::Open, EXIT_INTEGRITY, ""),
            (Cmd::OpenStdout(Stdout::Empty), EXIT_INTEGRITY, ""),
        ],
    )]);
}

#[test]
fn flipped_magic_bytes_are_a_format_error() {
    let s = Sealed::new(C + 1);
    s.check(&s.flips(0..8, &[(Cmd::Open, EXIT_FORMAT, "not an mvault")]));
}

#[test]
fn flipped_version_bytes_are_an_unsupported_version() {
    let s = Sealed::new(C + 1);
    s.check(&s.flips(
        8..10,
        &[
            (Cmd::Open, EXIT_FORMAT, "unsupported format version"),
            (Cmd::Inspect, EXIT_FORMAT, "unsupported format version"),
        ],
    ));
}

#[test]
fn flipped_suite_bytes_are_an_unsupported_suite() {
    let s = Sealed::new(C + 1);
    s.check(&s.flips(
        10..12,
        &[(Cmd::Open, EXIT_FORMAT, "unsupported cipher suite")],
    ));
}

#[test]
fn flipped_header_fields_and_mac_are_integrity_errors() {
    // Chunk size, reserved bytes, header length, plaintext length, file id,
    // stanza count, and every byte of the header MAC.
    let s = Sealed::new(2 * C + 3);
    let mac = s.header_len - 32..s.header_len;
    let mut rows = s.flips(
        (12..62).chain(mac),
        &[
            (Cmd::Open, EXIT_INTEGRITY, ""),
            (Cmd::OpenStdout(Stdout::Empty), EXIT_INTEGRITY, ""),
            (Cmd::Verify, EXIT_INTEGRITY, ""),
        ],
    );
    // The MAC in particular names the header.
    rows.push(Row::new(
        "last MAC byte",
        s.flip(s.header_len - 1),
        &[(Cmd::Open, EXIT_INTEGRITY, "header authentication failed")],
    ));
    s.check(&rows);
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
    let rows: Vec<Row> = cuts
        .into_iter()
        .map(|(what, cut)| {
            Row::new(
                what,
                s.original[..cut].to_vec(),
                &[
                    (Cmd::Open, EXIT_INTEGRITY, "truncated"),
                    (Cmd::OpenStdout(Stdout::Empty), EXIT_INTEGRITY, ""),
                    (Cmd::Verify, EXIT_INTEGRITY, "truncated"),
                ],
            )
        })
        .collect();
    s.check(&rows);
}

#[test]
fn truncating_a_streamed_file_at_a_chunk_boundary_is_detected() {
    // Without a recorded length only the final-chunk flag can tell.
    let s = Sealed::streamed(3 * C + 10);
    let mut rows: Vec<Row> = [s.chunk_offset(3), s.chunk_offset(2), s.chunk_offset(1)]
        .into_iter()
        .map(|cut| {
            let bad = (cut - s.header_len) / (C + TAG) - 1;
            Row::new(
                format!("cut at {cut}"),
                s.original[..cut].to_vec(),
                &[
                    (Cmd::Open, EXIT_INTEGRITY, "truncated"),
                    (
                        Cmd::OpenStdout(Stdout::PrefixBefore(bad)),
                        EXIT_INTEGRITY,
                        "",
                    ),
                ],
            )
        })
        .collect();
    // Mid-chunk the cut chunk simply fails to authenticate.
    rows.push(Row::new(
        "mid-chunk",
        s.original[..s.chunk_offset(2) + 500].to_vec(),
        &[(Cmd::Open, EXIT_INTEGRITY, "")],
    ));
    s.check(&rows);
    s.restore();
    s.env.cmd().arg("verify").arg(&s.path).assert().success();
}

/// The sealed file with `extra` appended.
fn appended(s: &Sealed, extra: &[u8]) -> Vec<u8> {
    let mut bytes = s.original.clone();
    bytes.extend_from_slice(extra);
    bytes
}

#[test]
fn appended_garbage_is_an_integrity_error() {
    let s = Sealed::new(2 * C + 10);
    let rows: Vec<Row> = [&b"x"[..], &[0u8; TAG][..], &[7u8; C + TAG][..]]
        .into_iter()
        .map(|extra| {
            Row::new(
                format!("{} bytes appended", extra.len()),
                appended(&s, extra),
                &[
                    (
                        Cmd::Open,
                        EXIT_INTEGRITY,
                        "unexpected data after the final chunk",
                    ),
                    (Cmd::OpenStdout(Stdout::Empty), EXIT_INTEGRITY, ""),
                ],
            )
        })
        .collect();
    s.check(&rows);
}

#[test]
fn appended_garbage_on_a_streamed_file_is_an_integrity_error() {
    let s = Sealed::streamed(2 * C + 10);
    let rows: Vec<Row> = [&b"x"[..], &[0u8; 40][..], &[7u8; C + TAG][..]]
        .into_iter()
        .map(|extra| {
            Row::new(
                format!("{} bytes appended", extra.len()),
                appended(&s, extra),
                &[(Cmd::Open, EXIT_INTEGRITY, "")],
            )
        })
        .collect();
    s.check(&rows);
}

#[test]
fn a_chunk_from_another_file_fails() {
    // Same key owner, same chunk size, same length: chunk 1 spliced across.
    let s = Sealed::new(3 * C);
    let other_input = s.env.write("other.bin", &pattern(99, 3 * C));
    let other = s.env.seal_small_chunks(&other_input);
    let other_bytes = fs::read(&other).unwrap();
    // Headers differ in length (age adds a random grease stanza).
    let other_header = s.env.inspect(&other)["header_bytes"].as_u64().unwrap() as usize;
    let other_chunk = &other_bytes[other_header + (C + TAG)..other_header + 2 * (C + TAG)];
    let mut bytes = s.original.clone();
    bytes[s.chunk_offset(1)..s.chunk_offset(2)].copy_from_slice(other_chunk);
    s.check(&[Row::new(
        "chunk 1 from another file",
        bytes,
        &[(Cmd::Open, EXIT_INTEGRITY, "chunk 1 failed authentication")],
    )]);
}
