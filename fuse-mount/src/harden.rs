//! Process hardening for key holders: every mvault command disables core
//! dumps and ptrace ([`disable_core_dumps`]); long-running ones (`mount`,
//! `run`) also lock their memory ([`harden_process`]).

use rustix::process::{DumpableBehavior, Resource, Rlimit, set_dumpable_behavior, setrlimit};

/// Makes the process undumpable (no ptrace attach or /proc/PID/mem access
/// by same-uid processes, no core dumps) and sets RLIMIT_CORE to 0, soft
/// and hard. Returns what could not be done, as warnings; none of it is
/// fatal.
pub fn disable_core_dumps() -> Vec<String> {
    let mut warnings = Vec::new();
    if let Err(e) = set_dumpable_behavior(DumpableBehavior::NotDumpable) {
        warnings.push(format!(
            "cannot disable core dumps and ptrace (PR_SET_DUMPABLE): {e}"
        ));
    }
    if let Err(e) = setrlimit(
        Resource::Core,
        Rlimit {
            current: Some(0),
            maximum: Some(0),
        },
    ) {
        warnings.push(format!("cannot set RLIMIT_CORE to 0: {e}"));
    }
    warnings
}

/// [`disable_core_dumps`], then locks current memory (keys included) so it
/// is not swapped out. Returns what could not be done, as warnings; none
/// of it is fatal.
pub fn harden_process() -> Vec<String> {
    let mut warnings = disable_core_dumps();
    if let Err(e) = rustix::mm::mlockall(rustix::mm::MlockAllFlags::CURRENT) {
        warnings.push(format!(
            "cannot lock key material in memory (mlockall: {e}); raise `ulimit -l` or keep swap encrypted"
        ));
    }
    warnings
}
