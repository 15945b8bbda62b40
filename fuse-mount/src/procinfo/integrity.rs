//! Whether a process that runs an allowed executable (`--allow-exe`) runs
//! it as installed: refused are processes whose environment sets a
//! dynamic-loader variable (another library would run inside the program)
//! and processes in a mount or user namespace other than the daemon's
//! (where the program's path may be a bind mount over something else).
//!
//! These checks stop the easy ways round `--allow-exe`, not a determined
//! process of the same uid (it can ptrace the program, or scrub its own
//! environment block after loading): docs/SECURITY.md says so.

use std::path::Path;
use std::sync::OnceLock;

/// Loader variables that make an executable run code it does not ship.
const LOADER_VARIABLES: [&str; 3] = ["LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT"];

/// What the checks found about one process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Integrity {
    /// Nothing suspicious.
    Clean,
    /// Refused, and why.
    Tainted(String),
    /// Could not be checked (its /proc entries are not readable by the
    /// daemon: another user's process in a mount by a non-root user, or a
    /// process that made itself undumpable), and why.
    Unknown(String),
}

/// The namespaces a process lives in, as `/proc/PID/ns/*` name them
/// (e.g. `mnt:[4026531841]`).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Namespaces {
    mnt: String,
    user: String,
}

impl Namespaces {
    fn of(proc_dir: &Path) -> std::io::Result<Namespaces> {
        let read = |name: &str| {
            std::fs::read_link(proc_dir.join("ns").join(name))
                .map(|target| target.display().to_string())
        };
        Ok(Namespaces {
            mnt: read("mnt")?,
            user: read("user")?,
        })
    }
}

/// The daemon's own namespaces, read once.
fn own_namespaces() -> Option<&'static Namespaces> {
    static OWN: OnceLock<Option<Namespaces>> = OnceLock::new();
    OWN.get_or_init(|| Namespaces::of(Path::new("/proc/self")).ok())
        .as_ref()
}

/// Checks process `pid`.
pub fn inspect(pid: i32) -> Integrity {
    let dir = Path::new("/proc").join(pid.to_string());
    let environ = match std::fs::read(dir.join("environ")) {
        Ok(environ) => environ,
        Err(e) => {
            return Integrity::Unknown(format!(
                "cannot read /proc/{pid}/environ to check for LD_PRELOAD ({e})"
            ));
        }
    };
    if let Some(name) = loader_variable(&environ) {
        return Integrity::Tainted(format!(
            "{name} is set in its environment (a library other than the program's own could \
             run inside it); unset it, or admit a dedicated user with --allow-uid"
        ));
    }
    let theirs = match Namespaces::of(&dir) {
        Ok(ns) => ns,
        Err(e) => {
            return Integrity::Unknown(format!(
                "cannot read /proc/{pid}/ns to compare namespaces ({e})"
            ));
        }
    };
    let Some(ours) = own_namespaces() else {
        return Integrity::Unknown("cannot read the daemon's own /proc/self/ns".into());
    };
    compare_namespaces(ours, &theirs)
}

fn compare_namespaces(ours: &Namespaces, theirs: &Namespaces) -> Integrity {
    if theirs.user != ours.user {
        Integrity::Tainted(format!(
            "runs in another user namespace ({}, the mount's is {}): its executable's path may \
             be a bind mount over another program",
            theirs.user, ours.user
        ))
    } else if theirs.mnt != ours.mnt {
        Integrity::Tainted(format!(
            "runs in another mount namespace ({}, the mount's is {}): its executable's path may \
             be a bind mount over another program",
            theirs.mnt, ours.mnt
        ))
    } else {
        Integrity::Clean
    }
}

/// The first loader variable set (to a non-empty value) in `environ`, the
/// NUL-separated contents of `/proc/PID/environ`.
fn loader_variable(environ: &[u8]) -> Option<&'static str> {
    environ.split(|b| *b == 0).find_map(|entry| {
        LOADER_VARIABLES.into_iter().find(|name| {
            entry
                .strip_prefix(name.as_bytes())
                .and_then(|rest| rest.strip_prefix(b"="))
                .is_some_and(|value| !value.is_empty())
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loader_variables_are_found_by_exact_name() {
        assert_eq!(loader_variable(b"HOME=/root\0PATH=/bin\0"), None);
        assert_eq!(
            loader_variable(b"HOME=/root\0LD_PRELOAD=/x.so\0"),
            Some("LD_PRELOAD")
        );
        assert_eq!(
            loader_variable(b"LD_LIBRARY_PATH=/opt/lib"),
            Some("LD_LIBRARY_PATH")
        );
        assert_eq!(loader_variable(b"LD_AUDIT=a.so\0"), Some("LD_AUDIT"));
        assert_eq!(
            loader_variable(b"LD_PRELOAD=\0"),
            None,
            "empty does nothing"
        );
        assert_eq!(loader_variable(b"MY_LD_PRELOAD=x\0LD_PRELOADX=y\0"), None);
    }

    #[test]
    fn other_namespaces_are_tainted() {
        let ours = Namespaces {
            mnt: "mnt:[1]".into(),
            user: "user:[2]".into(),
        };
        assert_eq!(compare_namespaces(&ours, &ours.clone()), Integrity::Clean);
        let mut theirs = ours.clone();
        theirs.mnt = "mnt:[3]".into();
        assert!(
            matches!(compare_namespaces(&ours, &theirs), Integrity::Tainted(why) if why.contains("mount namespace"))
        );
        theirs.user = "user:[4]".into();
        assert!(
            matches!(compare_namespaces(&ours, &theirs), Integrity::Tainted(why) if why.contains("user namespace"))
        );
    }

    #[test]
    fn this_process_is_clean_unless_its_environment_says_otherwise() {
        let me = inspect(std::process::id() as i32);
        let preloaded = std::env::vars_os()
            .any(|(k, v)| LOADER_VARIABLES.iter().any(|n| k == *n) && !v.is_empty());
        assert_eq!(matches!(me, Integrity::Tainted(_)), preloaded, "{me:?}");
        assert!(!matches!(me, Integrity::Unknown(_)), "{me:?}");
    }
}
