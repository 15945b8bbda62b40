//! The CLI tamper matrix, beyond the single cases in `tamper.rs`: random
//! payload offsets, truncation at every chunk boundary and one byte either
//! side, dropped, duplicated and reordered chunks, whole headers and final
//! chunks spliced between two files of the same key, and the replay of an
//! older sealed file (which is valid, and only `--expect-blake3` catches).
//!
//! Every case must exit 4 (or 5 for a broken magic/version, which
//! `tamper.rs` covers), write no output file, and put on stdout with
//! `open -o -` only an exact prefix of the plaintext that ends on a chunk
//! boundary before the first failing chunk.

use std::fs;
use std::path::{Path, PathBuf};

use crate::util::*;

/// A sealed file plus everything needed to tamper with it.
struct Fixture {
    env: Env,
    data: Vec<u8>,
    path: PathBuf,
    original: Vec<u8>,
    header_len: usize,
    chunks: usize,
}

impl Fixture {
    /// `len` plaintext bytes sealed with 64 KiB chunks (recorded length),
    /// or from stdin (no recorded length) when `streamed`.
    fn new(name: &str, seed: u64, len: usize, streamed: bool) -> Fixture {
        let env = Env::new();
        env.keygen();
        let data = pattern(seed, len);
        let path = env.path(&format!("{name}.mvlt"));
        let mut cmd = env.cmd();
        cmd.args(["seal", "--chunk-size", "64K", "-o"]).arg(&path);
        if streamed {
            cmd.arg("-").write_stdin(data.clone());
        } else {
            cmd.arg(env.write(name, &data));
        }
        cmd.assert().success();
        let _ = fs::remove_file(env.path(name));
        let header_len = env.inspect(&path)["header_bytes"].as_u64().unwrap() as usize;
        let original = fs::read(&path).unwrap();
        let chunks = len.div_ceil(C).max(1);
        assert_eq!(original.len(), header_len + len + chunks * TAG);
        Fixture {
            env,
            data,
            path,
            original,
            header_len,
            chunks,
        }
    }

    /// File offset where chunk `i` starts.
    fn chunk(&self, i: usize) -> usize {
        self.header_len + i * (C + TAG)
    }

    /// The sealed bytes of chunk `i` (ciphertext and tag).
    fn chunk_bytes(&self, i: usize) -> &[u8] {
        &self.original[self.chunk(i)..self.original.len().min(self.chunk(i + 1))]
    }

    /// Writes `bytes` as the sealed file and checks that open (to a file
    /// and to stdout) and verify all fail with exit 4, that no output or
    /// temporary file is left, and that stdout holds only authenticated
    /// plaintext from before chunk `bad`. Returns open's stderr and the
    /// number of bytes `open -o -` released.
    fn rejects_releasing(&self, what: &str, bytes: &[u8], bad: usize) -> (String, usize) {
        fs::write(&self.path, bytes).unwrap();
        let out_path = self.env.path("opened.bin");
        let out = self
            .env
            .cmd()
            .arg("open")
            .arg(&self.path)
            .arg("-o")
            .arg(&out_path)
            .assert()
            .code(EXIT_INTEGRITY)
            .stdout("");
        let stderr = stderr_of(&out);
        assert!(!stderr.contains("panicked"), "{what}: {stderr}");
        assert!(!out_path.exists(), "{what}: an output was left");
        assert!(
            self.env.temp_files().is_empty(),
            "{what}: temporary files left"
        );

        let out = self
            .env
            .cmd()
            .args(["open", "-o", "-"])
            .arg(&self.path)
            .assert()
            .code(EXIT_INTEGRITY);
        let stdout = &out.get_output().stdout;
        assert!(
            self.data.starts_with(stdout),
            "{what}: stdout is not a prefix of the plaintext"
        );
        assert_eq!(stdout.len() % C, 0, "{what}: stdout ends mid-chunk");
        assert!(
            stdout.len() <= bad * C,
            "{what}: {} bytes on stdout reach failing chunk {bad}",
            stdout.len()
        );

        self.env
            .cmd()
            .arg("verify")
            .arg(&self.path)
            .assert()
            .code(EXIT_INTEGRITY)
            .stdout("");
        (stderr, stdout.len())
    }

    /// [`Fixture::rejects_releasing`], returning only stderr.
    fn rejects(&self, what: &str, bytes: &[u8], bad: usize) -> String {
        self.rejects_releasing(what, bytes, bad).0
    }

    fn restore(&self) {
        fs::write(&self.path, &self.original).unwrap();
    }
}

#[test]
fn random_payload_bit_flips_in_a_multi_batch_file() {
    // 300 chunks: more than one 16 MiB batch, so a flip late in the file
    // lets the first batch through, and that must be an exact prefix.
    let f = Fixture::new("big.bin", 1, 300 * C + 123, false);
    let mut rng = XorShift64::from_env_or_time();
    for _ in 0..10 {
        let offset = f.header_len + rng.below(f.original.len() - f.header_len);
        let bit = rng.below(8);
        let mut bytes = f.original.clone();
        bytes[offset] ^= 1 << bit;
        let bad = (offset - f.header_len) / (C + TAG);
        let err = f.rejects(&format!("bit {bit} at {offset}"), &bytes, bad);
        assert!(
            err.contains(&format!("chunk {bad} failed authentication")),
            "{err}"
        );
    }
    // A flip in the second batch: the whole first batch (256 chunks of
    // 64 KiB) authenticated and is released, and not a byte more.
    let mut bytes = f.original.clone();
    bytes[f.chunk(290) + 5] ^= 0x80;
    let (_, released) = f.rejects_releasing("flip in chunk 290", &bytes, 290);
    assert!(released > 0, "nothing released before a late failure");
    f.restore();
    f.env.cmd().arg("verify").arg(&f.path).assert().success();
}

#[test]
fn truncation_at_every_chunk_boundary_and_one_byte_either_side() {
    for streamed in [false, true] {
        let f = Fixture::new("t.bin", 2, 5 * C + 77, streamed);
        for i in 0..=f.chunks {
            let boundary = if i == f.chunks {
                f.original.len()
            } else {
                f.chunk(i)
            };
            for cut in [boundary - 1, boundary, boundary + 1] {
                if cut >= f.original.len() {
                    continue; // the whole file, or past it
                }
                let what = format!("streamed={streamed}, cut at {cut} (chunk {i})");
                // The chunk holding the last byte kept is incomplete, or
                // (cut at a boundary of a streamed file) lacks its final
                // flag: it and everything after it must stay unreleased.
                let bad =
                    ((cut.max(f.header_len + 1) - 1 - f.header_len) / (C + TAG)).min(f.chunks - 1);
                let err = f.rejects(&what, &f.original[..cut], bad);
                assert!(
                    err.contains("truncated") || err.contains("failed authentication"),
                    "{what}: {err}"
                );
            }
        }
    }
}

impl Fixture {
    /// The file with its chunks rearranged: `order` lists source chunk
    /// indices (repeats and omissions allowed).
    fn rearranged(&self, order: &[usize]) -> Vec<u8> {
        let mut bytes = self.original[..self.header_len].to_vec();
        for &i in order {
            bytes.extend_from_slice(self.chunk_bytes(i));
        }
        bytes
    }
}

#[test]
fn dropped_duplicated_and_reordered_chunks() {
    for streamed in [false, true] {
        let f = Fixture::new("r.bin", 3, 5 * C + 9, streamed);
        let last = f.chunks - 1; // 5: the short final chunk
        let cases: Vec<(&str, Vec<usize>, usize)> = vec![
            ("chunk 1 dropped", vec![0, 2, 3, 4, last], 1),
            (
                "chunk 1 duplicated in place of 2",
                vec![0, 1, 1, 3, 4, last],
                2,
            ),
            ("chunk 2 inserted twice", vec![0, 1, 2, 2, 3, 4, last], 3),
            ("chunks 1..4 rotated", vec![0, 2, 3, 4, 1, last], 1),
            ("first two swapped", vec![1, 0, 2, 3, 4, last], 0),
            ("final chunk moved first", vec![last, 0, 1, 2, 3, 4], 0),
            // Chunk 4 now ends the file without the final flag.
            ("final chunk dropped", vec![0, 1, 2, 3, 4], last - 1),
            (
                "chunk 0 repeated at the end",
                vec![0, 1, 2, 3, 4, last, 0],
                last,
            ),
        ];
        for (what, order, bad) in cases {
            let what = format!("streamed={streamed}: {what}");
            f.rejects(&what, &f.rearranged(&order), bad);
        }
    }
}

#[test]
fn splices_between_two_files_of_the_same_key() {
    let a = Fixture::new("a.bin", 4, 3 * C + 50, false);
    let b_path = a.env.path("b.mvlt");
    let b_data = pattern(5, 3 * C + 50);
    let b_in = a.env.write("b.bin", &b_data);
    a.env
        .cmd()
        .args(["seal", "--chunk-size", "64K", "-o"])
        .arg(&b_path)
        .arg(&b_in)
        .assert()
        .success();
    let b = fs::read(&b_path).unwrap();
    let b_header = a.env.inspect(&b_path)["header_bytes"].as_u64().unwrap() as usize;

    // A's header (valid MAC, same recipients) on B's payload: the payload
    // key comes from A's file id, so chunk 0 fails.
    let mut bytes = a.original[..a.header_len].to_vec();
    bytes.extend_from_slice(&b[b_header..]);
    let err = a.rejects("A's header on B's payload", &bytes, 0);
    assert!(err.contains("chunk 0 failed authentication"), "{err}");

    // B's final chunk (same length, same index, last flag set) in A.
    let mut bytes = a.original.clone();
    let tail = b.len() - (50 + TAG);
    bytes[a.chunk(3)..].copy_from_slice(&b[tail..]);
    let err = a.rejects("B's final chunk in A", &bytes, 3);
    assert!(err.contains("chunk 3 failed authentication"), "{err}");

    // B's stanzas in A's header: the header MAC (keyed from A's file key,
    // which B's stanzas do not wrap) fails.
    let mut bytes = a.original[..62].to_vec();
    bytes.extend_from_slice(&b[62..b_header]);
    bytes.extend_from_slice(&a.original[a.header_len..]);
    fs::write(&a.path, &bytes).unwrap();
    let out = a
        .env
        .cmd()
        .args(["open", "-o", "-"])
        .arg(&a.path)
        .assert()
        .failure()
        .stdout("");
    let code = out.get_output().status.code();
    assert!(
        matches!(code, Some(EXIT_INTEGRITY | EXIT_KEY)),
        "B's stanzas under A's header: exit {code:?}"
    );
}

#[test]
fn an_older_version_of_the_same_file_is_valid_unless_its_hash_is_pinned() {
    // Documented limit (docs/SECURITY.md): a single sealed file carries no
    // version counter, so someone with write access can put back an older
    // file sealed to the same recipients and it opens. Pinning the
    // plaintext BLAKE3 (verify --expect-blake3) catches the rollback.
    let env = Env::new();
    env.keygen();
    let input = env.path("ckpt.bin");
    let sealed = sealed_name(&input);
    fs::write(&input, pattern(6, 2 * C + 1)).unwrap();
    env.seal_small_chunks(&input);
    let old = fs::read(&sealed).unwrap();
    let v2 = pattern(7, 2 * C + 1);
    fs::write(&input, &v2).unwrap();
    env.cmd()
        .args(["seal", "--force", "--chunk-size", "64K"])
        .arg(&input)
        .assert()
        .success();
    let v2_hash = blake3::hash(&v2).to_hex().to_string();
    env.cmd()
        .args(["verify", "--expect-blake3", &v2_hash])
        .arg(&sealed)
        .assert()
        .success();

    fs::write(&sealed, &old).unwrap(); // the rollback
    env.cmd().arg("verify").arg(&sealed).assert().success();
    let out = env
        .cmd()
        .args(["verify", "--expect-blake3", &v2_hash])
        .arg(&sealed)
        .assert()
        .code(EXIT_INTEGRITY);
    assert!(stderr_of(&out).contains("expected"), "{}", stderr_of(&out));
}

// ---------------------------------------------------------------------
// Directory vaults: objects tampered, truncated, swapped and spliced from
// another vault of the same key; the index rolled back. (`vault_cli.rs`
// covers flipped bytes in `verify`, missing/extra objects, a foreign
// signature and hostile manifests; they are not repeated here.)

const EXIT_BAD_SIGNATURE: i32 = 9;

/// Every object file of a vault, largest first.
fn objects_by_size(vault: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in fs::read_dir(vault.join("objects")).unwrap() {
        for f in fs::read_dir(dir.unwrap().path()).unwrap() {
            out.push(f.unwrap().path());
        }
    }
    out.sort_by_key(|p| std::cmp::Reverse(fs::metadata(p).unwrap().len()));
    out
}

/// A signed vault holding two files over the pack limit (one object each) and a
/// small one, with 64 KiB chunks.
struct VaultFixture {
    env: Env,
    big: Vec<u8>,
    pubkey: PathBuf,
    key: PathBuf,
}

impl VaultFixture {
    fn new() -> VaultFixture {
        let env = Env::new();
        env.keygen();
        fs::create_dir_all(env.path("ckpt")).unwrap();
        let big = pattern(10, 72 * C + 5); // over the 4 MiB pack limit
        fs::write(env.path("ckpt/big.bin"), &big).unwrap();
        fs::write(env.path("ckpt/other.bin"), pattern(11, 66 * C + 9)).unwrap();
        fs::write(env.path("ckpt/config.json"), b"{\"layers\": 2}").unwrap();
        env.cmd()
            .args(["-q", "sign-keygen", "-o", "sign.key"])
            .assert()
            .success();
        let f = VaultFixture {
            pubkey: env.path("sign.key.pub"),
            key: env.path("sign.key"),
            env,
            big,
        };
        f.seal("ckpt.vault");
        f
    }

    fn seal(&self, out: &str) {
        self.env
            .cmd()
            .args([
                "-q",
                "seal",
                "ckpt",
                "--chunk-size",
                "64K",
                "-o",
                out,
                "--sign",
            ])
            .arg(&self.key)
            .assert()
            .success();
    }

    fn vault(&self) -> PathBuf {
        self.env.path("ckpt.vault")
    }

    /// With the vault tampered: public verify, `cat` of big.bin and `open`
    /// all fail with exit 4; `cat` releases at most `limit` bytes, an exact
    /// prefix on a chunk boundary; `open` leaves no big.bin behind.
    fn rejects(&self, what: &str, limit: usize) {
        self.env
            .cmd()
            .args(["verify", "ckpt.vault", "--pubkey"])
            .arg(&self.pubkey)
            .assert()
            .code(EXIT_INTEGRITY);
        let out = self
            .env
            .cmd()
            .args(["cat", "ckpt.vault:big.bin"])
            .assert()
            .code(EXIT_INTEGRITY);
        let stdout = &out.get_output().stdout;
        let stderr = stderr_of(&out);
        assert!(!stderr.contains("panicked"), "{what}: {stderr}");
        assert!(self.big.starts_with(stdout), "{what}: not a prefix");
        assert_eq!(stdout.len() % C, 0, "{what}: ends mid-chunk");
        assert!(
            stdout.len() <= limit,
            "{what}: {} bytes released",
            stdout.len()
        );
        let dest = self.env.path("restored");
        let _ = fs::remove_dir_all(&dest);
        self.env
            .cmd()
            .args(["open", "ckpt.vault", "-o"])
            .arg(&dest)
            .assert()
            .code(EXIT_INTEGRITY);
        if let Ok(bytes) = fs::read(dest.join("big.bin")) {
            panic!("{what}: open left big.bin ({} bytes)", bytes.len());
        }
    }
}

#[test]
fn vault_objects_flipped_truncated_swapped_and_spliced() {
    let f = VaultFixture::new();
    let objects = objects_by_size(&f.vault());
    let (big_obj, other_obj) = (objects[0].clone(), objects[1].clone());
    let original = fs::read(&big_obj).unwrap();
    let header_len = f.env.inspect(&big_obj)["header_bytes"].as_u64().unwrap() as usize;
    let chunk = |i: usize| header_len + i * (C + TAG);

    let mut bytes = original.clone();
    bytes[chunk(30) + 100] ^= 0x04;
    fs::write(&big_obj, &bytes).unwrap();
    f.rejects("bit flip in chunk 30", 30 * C);

    fs::write(&big_obj, &original[..chunk(20)]).unwrap();
    f.rejects("truncated at chunk 20", 20 * C);

    fs::write(&big_obj, &original[..chunk(20) + 1]).unwrap();
    f.rejects("truncated one byte past chunk 20", 20 * C);

    // Chunks 5 and 6 swapped inside the object.
    let mut bytes = original.clone();
    let (a, b) = (
        original[chunk(5)..chunk(6)].to_vec(),
        original[chunk(6)..chunk(7)].to_vec(),
    );
    bytes[chunk(5)..chunk(6)].copy_from_slice(&b);
    bytes[chunk(6)..chunk(7)].copy_from_slice(&a);
    fs::write(&big_obj, &bytes).unwrap();
    f.rejects("chunks 5 and 6 swapped", 5 * C);

    // The two objects exchanged under each other's names.
    let other = fs::read(&other_obj).unwrap();
    fs::write(&big_obj, &other).unwrap();
    fs::write(&other_obj, &original).unwrap();
    f.rejects("objects swapped", 0);
    fs::write(&other_obj, &other).unwrap();

    // The same file from another vault sealed to the same key.
    f.seal("second.vault");
    let foreign = objects_by_size(&f.env.path("second.vault"))[0].clone();
    fs::copy(&foreign, &big_obj).unwrap();
    f.rejects("object from another vault of the same key", 0);

    fs::write(&big_obj, &original).unwrap();
    f.env
        .cmd()
        .args(["verify", "ckpt.vault", "-i", "identity.txt", "--pubkey"])
        .arg(&f.pubkey)
        .assert()
        .success();
}

#[test]
fn vault_keyring_and_index_rollback() {
    // What a writer to the vault's storage can and cannot do with older
    // index bytes (docs/SECURITY.md, "Rollback"):
    // - an old keyring spliced into the current index breaks the index's
    //   signature, and key holders find it is not the keyring the manifest
    //   was written with: detected either way;
    // - the whole index of an older generation, signed, is still a valid
    //   vault the removed recipient opens again; `verify --min-generation`
    //   with the generation CI last saw catches it.
    use vault_core::vault::Index;
    let f = VaultFixture::new();
    let stranger_id = f.env.path("stranger.txt");
    let stranger = f.env.keygen_at(&stranger_id);
    let index_path = f.vault().join("index");
    f.env
        .cmd()
        .args([
            "-q",
            "rekey",
            "ckpt.vault",
            "--add-recipient",
            &stranger,
            "--sign",
        ])
        .arg(&f.key)
        .assert()
        .success();
    let with_stranger = fs::read(&index_path).unwrap();
    f.env
        .cmd()
        .args([
            "-q",
            "rekey",
            "ckpt.vault",
            "--remove-recipient",
            &stranger,
            "--sign",
        ])
        .arg(&f.key)
        .assert()
        .success();
    f.env
        .cmd()
        .args(["cat", "ckpt.vault:config.json", "-i"])
        .arg(&stranger_id)
        .assert()
        .code(EXIT_KEY);
    fs::write(f.env.path("late.txt"), b"added after the removal").unwrap();
    f.env
        .cmd()
        .args(["-q", "add", "ckpt.vault", "late.txt", "--sign"])
        .arg(&f.key)
        .assert()
        .success();
    let current = fs::read(&index_path).unwrap();
    let (old, new) = (
        Index::parse(&with_stranger).unwrap(),
        Index::parse(&current).unwrap(),
    );

    // The old keyring spliced in, the index re-encoded around it: the
    // signature no longer verifies.
    let spliced = Index::encode(new.public.clone(), &old.keyring, &new.manifest, None);
    fs::write(&index_path, &spliced).unwrap();
    f.env
        .cmd()
        .args(["verify", "ckpt.vault", "--pubkey"])
        .arg(&f.pubkey)
        .assert()
        .code(EXIT_BAD_SIGNATURE);
    // Without a signature check, the manifest (bound to its keyring's
    // BLAKE3) refuses it: the removed recipient gets no plaintext.
    let out = f
        .env
        .cmd()
        .args(["cat", "ckpt.vault:late.txt", "-i"])
        .arg(&stranger_id)
        .assert()
        .code(EXIT_INTEGRITY)
        .stdout("");
    assert!(stderr_of(&out).contains("keyring"), "{}", stderr_of(&out));
    fs::write(&index_path, &current).unwrap();

    // The whole older index, with its valid signature: a consistent, older
    // vault. Only the generation tells.
    let generation = |f: &VaultFixture| -> u64 {
        let out = f
            .env
            .cmd()
            .args(["verify", "ckpt.vault", "--json", "--pubkey"])
            .arg(&f.pubkey)
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["items"][0]["generation"].as_u64().unwrap()
    };
    let now = generation(&f);
    fs::write(&index_path, &with_stranger).unwrap();
    let then = generation(&f);
    assert!(then < now, "generation {then} after rollback, {now} before");
    f.env
        .cmd()
        .args(["cat", "ckpt.vault:config.json", "-i"])
        .arg(&stranger_id)
        .assert()
        .success();
    // Pinning the generation CI last saw catches it.
    f.env
        .cmd()
        .args([
            "verify",
            "ckpt.vault",
            "--min-generation",
            &now.to_string(),
            "--pubkey",
        ])
        .arg(&f.pubkey)
        .assert()
        .code(EXIT_INTEGRITY);
    fs::write(&index_path, &current).unwrap();
    f.env
        .cmd()
        .args([
            "verify",
            "ckpt.vault",
            "--min-generation",
            &now.to_string(),
            "--pubkey",
        ])
        .arg(&f.pubkey)
        .assert()
        .success();
}

#[test]
fn vault_index_bytes_flipped() {
    // Every 7th byte of the index (fixed part, public integrity list,
    // keyring, sealed manifest, signature): `verify --pubkey` fails with 4
    // (integrity) or 9 (signature), or 5 for the magic and version; `ls`
    // with the key (which does not check signatures) fails for every byte
    // before the signer's key and signature; nothing panics.
    let f = VaultFixture::new();
    let index_path = f.vault().join("index");
    let index = fs::read(&index_path).unwrap();
    let mut codes = std::collections::BTreeMap::new();
    let signature_at = index.len() - (32 + 64);
    for offset in (0..index.len()).step_by(7).chain([index.len() - 1]) {
        let mut bytes = index.clone();
        bytes[offset] ^= 0x10;
        fs::write(&index_path, &bytes).unwrap();
        let out = f
            .env
            .cmd()
            .args(["verify", "ckpt.vault", "--pubkey"])
            .arg(&f.pubkey)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "byte {offset}: {err}");
        let code = out.status.code();
        assert!(
            matches!(
                code,
                Some(EXIT_INTEGRITY | EXIT_FORMAT | EXIT_BAD_SIGNATURE)
            ),
            "byte {offset}: exit {code:?}: {err}"
        );
        *codes.entry(code.unwrap()).or_insert(0) += 1;
        if offset % 5 == 0 && offset < signature_at {
            let out = f.env.cmd().args(["ls", "ckpt.vault"]).output().unwrap();
            assert!(!out.status.success(), "byte {offset}: ls succeeded");
            assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
        }
    }
    eprintln!("exit codes: {codes:?}");
    fs::write(&index_path, &index).unwrap();
    f.env
        .cmd()
        .args(["verify", "ckpt.vault", "--pubkey"])
        .arg(&f.pubkey)
        .assert()
        .success();
}

#[test]
fn vault_tampered_object_under_a_mount_reads_as_eio_never_wrong_bytes() {
    let fuse = Path::new("/dev/fuse").exists()
        && std::process::Command::new("fusermount3")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success());
    if !fuse {
        eprintln!("skipping: no FUSE here");
        return;
    }
    let f = VaultFixture::new();
    let big_obj = objects_by_size(&f.vault())[0].clone();
    let header_len = f.env.inspect(&big_obj)["header_bytes"].as_u64().unwrap() as usize;
    let mut bytes = fs::read(&big_obj).unwrap();
    bytes[header_len + 30 * (C + TAG) + 9] ^= 0x01;
    fs::write(&big_obj, &bytes).unwrap();
    // Through the mount: the 30 chunks before the bad one read exactly;
    // the bad chunk is EIO (dd fails), never other bytes.
    let script = format!(
        "cmp <(head -c {good} \"$1/big.bin\") <(head -c {good} \"$2\") || exit 10; \
         dd if=\"$1/big.bin\" of=/dev/null bs={c} skip=30 count=1 status=none 2>/dev/null && exit 11; \
         cmp -s \"$1/config.json\" \"$3\" || exit 12; exit 0",
        good = 30 * C,
        c = C
    );
    f.env
        .cmd()
        .args(["-q", "run", "--mount"])
        .arg(format!(
            "{}:{}",
            f.vault().display(),
            f.env.path("mnt").display()
        ))
        .args(["--", "bash", "-c", &script, "probe"])
        .arg(f.env.path("mnt"))
        .arg(f.env.path("ckpt/big.bin"))
        .arg(f.env.path("ckpt/config.json"))
        .assert()
        .success();
}
