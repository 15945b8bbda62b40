//! Every `--json` report, for success and failure, for sealed files and
//! vaults, validates against docs/mvault.schema.json (JSON Schema draft
//! 2020-12, checked with the `jsonschema` crate), and docs/JSON.md
//! describes every command the schema knows.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs;
use std::path::Path;

use serde_json::Value;

use crate::util::vaults::checkpoint;
use crate::util::*;

fn workspace_file(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(name)
}

fn schema() -> Value {
    let text = fs::read_to_string(workspace_file("docs/mvault.schema.json")).unwrap();
    serde_json::from_str(&text).expect("docs/mvault.schema.json is JSON")
}

/// Runs commands and checks each report against the schema, remembering
/// which commands (and which failure and item kinds) were seen.
struct Checker {
    env: Env,
    validator: jsonschema::Validator,
    commands: BTreeSet<String>,
    item_kinds: BTreeSet<String>,
    failures: usize,
}

impl Checker {
    fn new() -> Self {
        let validator = jsonschema::draft202012::new(&schema()).expect("the schema compiles");
        Checker {
            env: Env::new(),
            validator,
            commands: BTreeSet::new(),
            item_kinds: BTreeSet::new(),
            failures: 0,
        }
    }

    /// `mvault ARGS`, which must exit `code`; returns its report after
    /// checking it against the schema and the exit code.
    fn run<S: Into<OsString> + Clone>(&mut self, args: &[S], code: i32) -> Value {
        let args: Vec<OsString> = args.iter().cloned().map(Into::into).collect();
        let out = self.env.cmd().args(&args).output().unwrap();
        let shown = format!("mvault {args:?}");
        assert_eq!(
            out.status.code(),
            Some(code),
            "{shown}: stderr {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{shown}: stdout is not one JSON value: {e}"));
        let errors: Vec<String> = self
            .validator
            .iter_errors(&report)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{shown}: {errors:#?}\n{report:#}");
        assert_eq!(report["schema"], "mvault/1", "{shown}");
        assert_eq!(report["ok"], code == 0, "{shown}: {report:#}");
        if let Some(error) = report.get("error") {
            assert_eq!(error["exit_code"], code, "{shown}: {report:#}");
        }
        for item in report["items"].as_array().unwrap() {
            if let Some(kind) = item["kind"].as_str() {
                self.item_kinds.insert(kind.to_string());
            }
            if item["ok"] == false {
                self.failures += 1;
                assert!(
                    item["error"]["exit_code"].as_i64() > Some(0),
                    "{shown}: {item}"
                );
            }
        }
        self.commands
            .insert(report["command"].as_str().unwrap().to_string());
        report
    }
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn every_json_report_matches_the_schema() {
    let mut c = Checker::new();
    let dir = c.env.dir.path().to_path_buf();
    let path = |name: &str| s(&dir.join(name));

    // keygen, keygen -y, sign-keygen; a refused keygen.
    let r = c.run(&["keygen", "--json"], 0);
    assert!(
        r["items"][0]["recipient"]
            .as_str()
            .unwrap()
            .starts_with("age1")
    );
    c.run(&["keygen", "--json"], EXIT_REFUSED);
    c.run(&["keygen", "--json", "-y", &path("identity.txt")], 0);
    c.run(&["sign-keygen", "--json", "-o", &path("signing.key")], 0);

    // seal: files, a stream, --remove-source, a missing input, a folder.
    c.env.write("a.bin", &pattern(1, 100_000));
    c.env.write("b.bin", &pattern(2, 10));
    c.env.write("gone.bin", &pattern(3, 1000));
    c.run(&["seal", "--json", "a.bin", "b.bin"], 0);
    c.run(&["seal", "--json", "--remove-source", "gone.bin"], 0);
    c.run(&["seal", "--json", "-f", "a.bin", "missing.bin"], EXIT_IO);
    c.run(&["seal", "--json", "-o", "x", "a.bin", "b.bin"], EXIT_USAGE);
    checkpoint(&c.env, "ckpt");
    c.run(&["seal", "--json", "ckpt"], 0);
    fs::write(dir.join("ckpt/new.txt"), b"new").unwrap();
    let r = c.run(&["seal", "--json", "-n", "ckpt"], 0);
    assert_eq!(r["items"][0]["added"][0], "new.txt");
    let mut stream = c.env.cmd();
    stream
        .args(["seal", "--json", "-", "-o", "stream.mvlt"])
        .write_stdin("streamed")
        .assert()
        .success();

    // inspect: a file, a stream-sealed file, a vault, a missing file.
    c.run(
        &[
            "inspect",
            "--json",
            "a.bin.mvlt",
            "stream.mvlt",
            "ckpt.vault",
        ],
        0,
    );
    c.run(
        &["inspect", "--json", "a.bin.mvlt", "missing.mvlt"],
        EXIT_IO,
    );

    // verify: files, a tampered file, a vault, a failing vault check.
    c.run(&["verify", "--json", "a.bin.mvlt", "b.bin.mvlt"], 0);
    fs::copy(dir.join("b.bin.mvlt"), dir.join("bad.mvlt")).unwrap();
    let len = fs::metadata(dir.join("bad.mvlt")).unwrap().len() as usize;
    flip_byte(&dir.join("bad.mvlt"), len - 1);
    c.run(
        &["verify", "--json", "a.bin.mvlt", "bad.mvlt"],
        EXIT_INTEGRITY,
    );
    c.run(&["verify", "--json", "ckpt.vault"], 0);
    c.run(
        &["verify", "--json", "ckpt.vault", "--min-generation", "9"],
        EXIT_INTEGRITY,
    );
    c.run(
        &["verify", "--json", "--expect-blake3", "00", "a.bin.mvlt"],
        EXIT_USAGE,
    );

    // open: a file, a vault, a folder of sealed files, a failure.
    fs::create_dir(dir.join("sealed")).unwrap();
    fs::copy(dir.join("a.bin.mvlt"), dir.join("sealed/a.bin.mvlt")).unwrap();
    c.run(&["open", "--json", "-f", "a.bin.mvlt", "b.bin.mvlt"], 0);
    c.run(
        &["open", "--json", "ckpt.vault", "-o", &path("ckpt-out")],
        0,
    );
    c.run(&["open", "--json", "sealed", "-o", &path("opened")], 0);
    c.run(&["open", "--json", "bad.mvlt"], EXIT_INTEGRITY);
    c.run(
        &["open", "--json", "-o", "x", "a.bin.mvlt", "b.bin.mvlt"],
        EXIT_USAGE,
    );

    // ls, add, rm, recipients.
    let r = c.run(&["ls", "--json", "ckpt.vault"], 0);
    assert!(!r["items"][0]["entries"].as_array().unwrap().is_empty());
    c.run(&["ls", "--json", "nowhere.vault"], EXIT_IO);
    c.run(&["add", "--json", "ckpt.vault", "b.bin"], 0);
    c.run(&["add", "--json", "-n", "ckpt.vault", "a.bin"], 0);
    c.run(&["rm", "--json", "ckpt.vault", "b.bin"], 0);
    c.run(&["rm", "--json", "ckpt.vault", "/"], EXIT_USAGE);
    c.run(&["recipients", "--json", "a.bin.mvlt", "ckpt.vault"], 0);
    c.run(
        &[
            "recipients",
            "--json",
            "-i",
            &path("identity.txt"),
            "ckpt.vault",
        ],
        0,
    );
    c.run(&["recipients", "--json", "missing.mvlt"], EXIT_IO);

    // doctor (its verdict depends on the host) and bench.
    let out = c.env.cmd().args(["doctor", "--json"]).output().unwrap();
    c.run(&["doctor", "--json"], out.status.code().unwrap());
    let profile = [
        "doctor",
        "--json",
        "--profile",
        "pytorch-host",
        "--python",
        "/bin/true",
    ];
    let out = c.env.cmd().args(profile).output().unwrap();
    c.run(&profile, out.status.code().unwrap());
    fs::create_dir(dir.join("benchdir")).unwrap();
    c.run(
        &[
            "bench",
            "--json",
            "--size",
            "1M",
            "--repeat",
            "1",
            "--dir",
            &path("benchdir"),
        ],
        0,
    );

    let schema = schema();
    let known: BTreeSet<String> = schema["properties"]["command"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    assert_eq!(c.commands, known, "every command with --json was checked");
    for kind in ["file", "vault", "folder", "identity", "signing key"] {
        assert!(c.item_kinds.contains(kind), "no {kind} item checked");
    }
    assert!(c.failures >= 4, "failed items checked: {}", c.failures);
}

#[test]
fn json_md_describes_every_command_of_the_schema() {
    let doc = fs::read_to_string(workspace_file("docs/JSON.md")).unwrap();
    let schema = schema();
    assert!(
        doc.contains("mvault/1"),
        "docs/JSON.md names the schema version"
    );
    for command in schema["properties"]["command"]["enum"].as_array().unwrap() {
        let heading = format!("## `{}`", command.as_str().unwrap());
        assert!(doc.contains(&heading), "docs/JSON.md lacks {heading}");
    }
    for def in schema["$defs"].as_object().unwrap().keys() {
        for (field, _) in schema["$defs"][def]["properties"]
            .as_object()
            .into_iter()
            .flatten()
        {
            assert!(
                doc.contains(&format!("`{field}`")),
                "docs/JSON.md does not describe `{field}` ({def})"
            );
        }
    }
}

#[test]
fn help_points_to_the_json_doc() {
    let env = Env::new();
    for command in ["seal", "verify", "ls", "doctor", "bench", "keygen"] {
        env.cmd()
            .args([command, "--help"])
            .assert()
            .success()
            .stdout(predicates::str::contains("docs/JSON.md"));
    }
}

#[test]
fn the_schema_rejects_old_names_and_unknown_fields() {
    let validator = jsonschema::draft202012::new(&schema()).unwrap();
    let good = serde_json::json!({
        "schema": "mvault/1", "command": "verify", "ok": true, "warnings": [],
        "items": [{
            "input": "a.mvlt", "kind": "file", "ok": true, "plaintext_bytes": 1,
            "blake3": "0".repeat(64), "seconds": 0.1, "gb_per_s": 0.0,
        }],
    });
    assert!(validator.is_valid(&good));
    let mut renamed = good.clone();
    renamed["items"][0]["plaintext_len"] = 1.into();
    assert!(!validator.is_valid(&renamed), "an old key name is refused");
    let mut extra = good.clone();
    extra["files"] = serde_json::json!([]);
    assert!(
        !validator.is_valid(&extra),
        "an unknown top-level field is refused"
    );
    let mut failed = good.clone();
    failed["items"][0]["ok"] = false.into();
    assert!(
        !validator.is_valid(&failed),
        "a failed item needs its error"
    );
    let mut no_schema = good;
    no_schema.as_object_mut().unwrap().remove("schema");
    assert!(!validator.is_valid(&no_schema));
}
