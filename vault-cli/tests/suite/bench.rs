//! `mvault bench` runs end to end on a tiny file, reports every row, leaves
//! nothing behind, and refuses a size its folder cannot hold. (Speed itself
//! is never asserted in tests: see docs/PERFORMANCE.md.)

use std::fs;

use crate::util::*;

#[test]
fn bench_reports_every_operation_and_cleans_up() {
    let env = Env::new();
    let dir = env.path("benchdir");
    fs::create_dir(&dir).unwrap();
    let out = env
        .cmd()
        .args([
            "--threads",
            "2",
            "bench",
            "--size",
            "3M",
            "--repeat",
            "1",
            "--json",
        ])
        .arg("--dir")
        .arg(&dir)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let report: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(report["plaintext_bytes"], 3 << 20);
    assert_eq!(report["threads"], 2);
    let results = report["items"].as_array().unwrap();
    let names: Vec<&str> = results
        .iter()
        .map(|r| r["operation"].as_str().unwrap())
        .collect();
    for wanted in [
        "memcpy, 1 thread",
        "file copy (cp)",
        "mvault seal",
        "mvault open",
        "mvault verify (keyed)",
    ] {
        assert!(names.contains(&wanted), "{wanted} missing from {names:?}");
    }
    for r in results {
        let name = r["operation"].as_str().unwrap();
        if r["error"].is_null() {
            assert!(r["gb_per_s"].as_f64().unwrap() > 0.0, "{name}: {r}");
        }
        if name.starts_with("mvault seal") || name.starts_with("mvault open") {
            assert!(r["error"].is_null(), "{name}: {r}");
            assert!(r["peak_rss_bytes"].as_u64().unwrap() > 0, "{name}: {r}");
        }
    }
    assert_eq!(
        fs::read_dir(&dir).unwrap().count(),
        0,
        "bench left files in its folder"
    );
}

#[test]
fn bench_refuses_a_size_the_folder_cannot_hold() {
    let env = Env::new();
    env.cmd()
        .args(["bench", "--size", "1000T", "--repeat", "1", "--dir"])
        .arg(env.dir.path())
        .assert()
        .code(EXIT_REFUSED)
        .stderr(predicates::str::contains("--size"));
}
