//! Checklist "files": plaintext checkpoints and datasets under `--path`
//! (`.pt`, `.safetensors`, `.parquet`, ...) that others can read or write,
//! or that another user owns. The checklist's mode is 640 (owner writes,
//! the training group reads); sealing them is better still.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::{Check, Status, check};

/// Extensions of model weights, checkpoints and dataset shards.
pub const MODEL_EXTENSIONS: &[&str] = &[
    "pt",
    "pth",
    "bin",
    "safetensors",
    "ckpt",
    "npy",
    "npz",
    "parquet",
    "arrow",
    "h5",
    "hdf5",
    "onnx",
    "pkl",
    "pickle",
    "gguf",
    "ggml",
    "msgpack",
    "tfrecord",
    "joblib",
];

/// Files looked at per path at most, so a huge tree cannot stall doctor.
const MAX_ENTRIES: usize = 200_000;

/// One file that falls short.
#[derive(Debug, PartialEq, Eq)]
pub struct Exposed {
    pub path: PathBuf,
    pub mode: u32,
    pub uid: u32,
}

/// What a file's mode and owner mean for a user `me`.
pub fn exposure(mode: u32, uid: u32, me: u32) -> (bool, bool) {
    // World-readable or -writable, or group-writable: beyond 640.
    let too_open = mode & 0o026 != 0 || mode & 0o004 != 0;
    (too_open, uid != me)
}

fn is_model_file(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| MODEL_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Walks `root` (not following symlinks) for model files beyond 640 or
/// owned by someone other than `me`; the bool says the walk was cut short.
pub fn scan(root: &Path, me: u32) -> (Vec<Exposed>, bool) {
    let mut found = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    let mut seen = 0usize;
    while let Some(dir) = todo.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            seen += 1;
            if seen > MAX_ENTRIES {
                return (found, true);
            }
            let Ok(meta) = entry.metadata() else { continue };
            let path = entry.path();
            if meta.is_dir() {
                todo.push(path);
            } else if meta.is_file() && is_model_file(&path) {
                let mode = meta.mode() & 0o7777;
                let (open, foreign) = exposure(mode, meta.uid(), me);
                if open || foreign {
                    found.push(Exposed {
                        path,
                        mode,
                        uid: meta.uid(),
                    });
                }
            }
        }
    }
    found.sort_by(|a, b| a.path.cmp(&b.path));
    (found, false)
}

/// Quotes a path for a shell command line when it needs it.
pub fn shell_quote(path: &Path) -> String {
    let s = path.display().to_string();
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+:@,".contains(&b))
    {
        s
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The row for `root`, given what [`scan`] found and who we are.
pub fn model_files(
    root: &Path,
    found: &[Exposed],
    truncated: bool,
    me: u32,
    my_name: &str,
) -> Check {
    let name = format!("model files {}", root.display());
    let cut = if truncated {
        format!(" (stopped after {MAX_ENTRIES} entries)")
    } else {
        String::new()
    };
    if found.is_empty() {
        return check(
            name,
            Status::Ok,
            format!(
                "no checkpoint or dataset file readable by others or owned by another user{cut}"
            ),
        );
    }
    let open: Vec<&Exposed> = found
        .iter()
        .filter(|e| exposure(e.mode, e.uid, me).0)
        .collect();
    let foreign: Vec<&Exposed> = found.iter().filter(|e| e.uid != me).collect();
    let mut detail = Vec::new();
    let mut fix = Vec::new();
    if !open.is_empty() {
        detail.push(format!(
            "{} plaintext file(s) readable or writable by others: {}",
            open.len(),
            examples(&open, |e| format!(
                "{} (mode {:03o})",
                e.path.display(),
                e.mode
            ))
        ));
        fix.push(command(root, &open, "-perm /026", "chmod 640"));
    }
    if !foreign.is_empty() {
        detail.push(format!(
            "{} owned by another user: {}",
            foreign.len(),
            examples(&foreign, |e| format!(
                "{} (uid {})",
                e.path.display(),
                e.uid
            ))
        ));
        fix.push(command(
            root,
            &foreign,
            &format!("! -user {me}"),
            &format!("chown {my_name}"),
        ));
    }
    fix.push(format!(
        "better, seal them: mvault seal FILE --remove-source, or the folder into a vault: mvault seal {}/",
        shell_quote(root)
    ));
    check(name, Status::Warn, format!("{}{cut}", detail.join("; "))).fix(fix.join("; "))
}

/// The first few files, described by `show`, and how many more there are.
fn examples(files: &[&Exposed], show: impl Fn(&Exposed) -> String) -> String {
    const SHOWN: usize = 3;
    let mut v: Vec<String> = files.iter().take(SHOWN).map(|e| show(e)).collect();
    if files.len() > SHOWN {
        v.push(format!("... ({} more)", files.len() - SHOWN));
    }
    v.join(", ")
}

/// `COMMAND FILE...` for up to ten files; for more, a `find` over `root`
/// selecting them by `test` and the model extensions.
fn command(root: &Path, files: &[&Exposed], test: &str, command: &str) -> String {
    if files.len() <= 10 {
        let names: Vec<String> = files.iter().map(|e| shell_quote(&e.path)).collect();
        return format!("{command} {}", names.join(" "));
    }
    let names: Vec<String> = MODEL_EXTENSIONS
        .iter()
        .map(|e| format!("-name '*.{e}'"))
        .collect();
    format!(
        "find {} -type f {test} \\( {} \\) -exec {command} {{}} +",
        shell_quote(root),
        names.join(" -o ")
    )
}

/// The user name of `uid` from an /etc/passwd text (else the number).
pub fn user_name(passwd: &str, uid: u32) -> String {
    passwd
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.get(2)?.parse::<u32>().ok()? == uid).then(|| f[0].to_string())
        })
        .unwrap_or_else(|| uid.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn modes_beyond_640_and_foreign_owners() {
        assert_eq!(exposure(0o640, 5, 5), (false, false));
        assert_eq!(exposure(0o600, 5, 5), (false, false));
        assert_eq!(exposure(0o644, 5, 5), (true, false));
        assert_eq!(exposure(0o660, 5, 5), (true, false));
        assert_eq!(exposure(0o600, 6, 5), (false, true));
    }

    #[test]
    fn a_world_readable_checkpoint_is_named_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("run 1");
        fs::create_dir_all(&sub).unwrap();
        for (name, mode) in [
            ("model.pt", 0o644),
            ("data.parquet", 0o640),
            ("notes.txt", 0o666),
            ("w.safetensors", 0o606),
        ] {
            let p = sub.join(name);
            fs::write(&p, b"x").unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
        }
        let me = rustix::process::geteuid().as_raw();
        let (found, cut) = scan(dir.path(), me);
        assert!(!cut);
        let names: Vec<_> = found
            .iter()
            .map(|e| e.path.file_name().unwrap().to_str().unwrap())
            .collect();
        assert_eq!(names, ["model.pt", "w.safetensors"]);
        let c = model_files(dir.path(), &found, false, me, "trainer");
        assert_eq!(c.status, Status::Warn);
        assert!(c.detail.contains("model.pt (mode 644)"), "{c:?}");
        let fix = c.fix.unwrap();
        let quoted = shell_quote(&sub.join("model.pt"));
        assert!(quoted.starts_with('\''), "a space is quoted: {quoted}");
        assert!(fix.starts_with(&format!("chmod 640 {quoted}")), "{fix}");
        assert!(fix.contains("mvault seal"), "{fix}");

        let foreign = [Exposed {
            path: "/d/a.ckpt".into(),
            mode: 0o600,
            uid: 1001,
        }];
        let c = model_files(Path::new("/d"), &foreign, false, 0, "root");
        assert!(c.detail.contains("uid 1001"), "{c:?}");
        assert!(c.fix.unwrap().starts_with("chown root /d/a.ckpt"));
        assert_eq!(
            model_files(Path::new("/d"), &[], false, 0, "root").status,
            Status::Ok
        );
    }

    #[test]
    fn many_files_get_a_find_command() {
        let many: Vec<Exposed> = (0..11)
            .map(|i| Exposed {
                path: format!("/d/{i}.pt").into(),
                mode: 0o644,
                uid: 0,
            })
            .collect();
        let c = model_files(Path::new("/d"), &many, false, 0, "root");
        assert!(c.detail.contains("... (8 more)"), "{c:?}");
        let fix = c.fix.unwrap();
        assert!(
            fix.starts_with("find /d -type f -perm /026 \\( -name '*.pt' -o"),
            "{fix}"
        );
        assert!(fix.contains("-exec chmod 640 {} +"), "{fix}");
    }

    #[test]
    fn passwd_names() {
        let passwd =
            "root:x:0:0:root:/root:/bin/bash\ntrainer:x:1000:1000::/home/trainer:/bin/sh\n";
        assert_eq!(user_name(passwd, 1000), "trainer");
        assert_eq!(user_name(passwd, 7), "7");
    }
}
