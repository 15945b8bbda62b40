//! Sealing a stream: the exact byte count is reported, so a producer that
//! died early shows as a short count (README: `set -o pipefail`).

use crate::util::*;

#[test]
fn a_stream_reports_the_exact_bytes_it_sealed() {
    let env = Env::new();
    env.keygen();
    for output in ["stream.mvlt", "-"] {
        let out = env
            .cmd()
            .args(["seal", "-", "-o", output])
            .write_stdin(pattern(5, 123_457))
            .assert()
            .success();
        let stderr = stderr_of(&out);
        assert!(
            stderr.contains("sealed 123457 bytes from standard input"),
            "-o {output}: {stderr}"
        );
    }
    let quiet = env
        .cmd()
        .args(["-q", "seal", "-", "-o", "quiet.mvlt"])
        .write_stdin(&b"abc"[..])
        .assert()
        .success();
    assert_eq!(stderr_of(&quiet), "");
}
