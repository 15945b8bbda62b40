//! Command-line definitions.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::exit::EXIT_CODES_HELP;
use crate::key_args::RecipientArgs;

/// Keep ML checkpoints and datasets encrypted at rest.
#[derive(Debug, Parser)]
#[command(name = "mvault", version, after_long_help = EXIT_CODES_HELP, after_help = "Run `mvault --help` for exit codes and environment variables.")]
pub struct Cli {
    /// Worker threads for encryption and hashing (default: $MVAULT_THREADS, else all cores).
    // MVAULT_THREADS is read in main, not with clap's `env`: clap counts an
    // environment value as given and shows `--threads <N>` in usage lines.
    #[arg(long, global = true, value_name = "N")]
    pub threads: Option<usize>,

    /// No progress bars or informational messages.
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// Read passphrases (for -p, passphrase-sealed files and vaults, rekey --add-passphrase)
    /// from the first line of FILE, which must be 0600 and yours, instead of a prompt.
    #[arg(long, global = true, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,

    #[command(flatten)]
    pub remote: RemoteReadArgs,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create an identity (0600) and print its recipient.
    Keygen(KeygenArgs),
    /// Encrypt files (FILE becomes FILE.mvlt) or a folder (DIR becomes the vault DIR.vault/).
    Seal(SealArgs),
    /// Decrypt sealed files (FILE.mvlt becomes FILE) or a vault (DIR.vault/ becomes DIR/).
    Open(OpenArgs),
    /// Show a sealed file's header or a vault's public facts without decrypting.
    Inspect(InspectArgs),
    /// Authenticate sealed files or vaults (a vault with --pubkey needs no key: CI).
    Verify(VerifyArgs),
    /// Serve decrypted files read-only through FUSE, only to permitted processes.
    Mount(MountArgs),
    /// Unmount a mount made by `mvault mount` (exit 10 if nothing is mounted there).
    Umount(UmountArgs),
    /// Mount sealed data, run a command that alone may read it, unmount when it exits.
    ///
    /// The command's process tree may read, including processes it leaves behind while it
    /// runs. Once it exits, files still open stay readable for --grace, then their reads fail
    /// and run exits. SIGTERM is passed to the command (SIGKILL --grace later).
    Run(RunArgs),
    /// Check this host against the practices mvault relies on, with a fix for each.
    Doctor(DoctorArgs),
    /// Measure memcpy, file copy, seal, open and verify on this machine (GB/s and ratios).
    Bench(BenchArgs),
    /// List the files in a directory vault.
    Ls(LsArgs),
    /// Write one file of a directory vault to standard output.
    Cat(CatArgs),
    /// Add files or folders to a directory vault (only changed files are sealed).
    Add(AddArgs),
    /// Change who can open a directory vault (rewrites only its keyring).
    Rekey(RekeyArgs),
    /// Remove files or folders from a directory vault.
    Rm(RmArgs),
    /// Create an Ed25519 signing key (0600) and KEY.pub for signed vaults.
    SignKeygen(SignKeygenArgs),
    /// List who can open a sealed file or a vault (with -i, a vault's recorded recipients).
    Recipients(RecipientsArgs),
    /// List the writer lock objects of a vault at a URL; --remove-stale deletes stale ones.
    Locks(LocksArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(CompletionsArgs),
    /// Write man pages: mvault.1 to stdout, or every page into DIR.
    Man(ManArgs),
}

impl Command {
    /// The command's name in `--json` reports, when it was asked for one
    /// and standard output is not the data channel (`-o -`).
    pub fn json_report(&self) -> Option<&'static str> {
        let to_stdout = |o: &Option<PathBuf>| o.as_deref() == Some(std::path::Path::new("-"));
        let (name, json) = match self {
            Command::Keygen(a) => ("keygen", a.json),
            Command::Seal(a) => ("seal", a.json && !to_stdout(&a.output)),
            Command::Open(a) => ("open", a.json && !to_stdout(&a.output)),
            Command::Inspect(a) => ("inspect", a.json),
            Command::Verify(a) => ("verify", a.json),
            Command::Doctor(a) => ("doctor", a.json),
            Command::Bench(a) => ("bench", a.json),
            Command::Ls(a) => ("ls", a.json),
            Command::Add(a) => ("add", a.json),
            Command::Rm(a) => ("rm", a.json),
            Command::Recipients(a) => ("recipients", a.json),
            Command::SignKeygen(a) => ("sign-keygen", a.json),
            _ => return None,
        };
        json.then_some(name)
    }
}

#[derive(Debug, clap::Args)]
pub struct RecipientsArgs {
    /// Sealed files (FILE.mvlt) or directory vaults.
    #[arg(required = true, value_name = "FILE|VAULT")]
    pub inputs: Vec<PathBuf>,
    /// Identity file(s): unlock a vault's keyring to list its recorded recipient strings.
    #[arg(short = 'i', long = "identity", value_name = "IDENTITY")]
    pub identities: Vec<PathBuf>,
    /// Print a JSON report on stdout (schema mvault/1, see docs/JSON.md).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct LocksArgs {
    /// A directory vault at a URL (s3://…, gs://…, az://…, file://…).
    #[arg(value_name = "URL")]
    pub vault: PathBuf,
    /// Delete the locks not refreshed for the stale timeout
    /// ($MVAULT_REMOTE_LOCK_STALE_SECS, default 1800 s): their writers are gone.
    #[arg(long)]
    pub remove_stale: bool,
}

#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell, e.g. `mvault completions bash > ~/.local/share/bash-completion/completions/mvault`.
    #[arg(value_name = "SHELL")]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, clap::Args)]
pub struct ManArgs {
    /// Folder for mvault.1 and mvault-COMMAND.1 (e.g. ~/.local/share/man/man1).
    #[arg(value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// Who may read through a mount. Rules of different kinds must all match;
/// repeated rules of one kind match if any does. With none, only the
/// mounting user may read.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct PolicyArgs {
    /// Allow processes running as this uid. Repeatable.
    #[arg(long, value_name = "UID")]
    pub allow_uid: Vec<u32>,
    /// Allow processes in this group (primary or supplementary). Repeatable.
    #[arg(long, value_name = "GID")]
    pub allow_gid: Vec<u32>,
    /// Allow processes running this executable (as /proc/PID/exe resolves it); with no other
    /// rule, only the mounting user's. Refused anyway: a process with LD_PRELOAD,
    /// LD_LIBRARY_PATH or LD_AUDIT set, or in another mount or user namespace. Not a boundary
    /// against other processes of the same user (they can ptrace it): combine with --allow-uid
    /// of a dedicated user. Repeatable.
    #[arg(long, value_name = "PATH")]
    pub allow_exe: Vec<PathBuf>,
    /// Allow this process and all its descendants. Repeatable.
    #[arg(long, value_name = "PID")]
    pub allow_pid_tree: Vec<i32>,
    /// Allow processes in this cgroup v2 or below it (e.g. /system.slice/train.service); v1
    /// hierarchies are ignored. Repeatable.
    #[arg(long, value_name = "PATH")]
    pub allow_cgroup: Vec<String>,
}

/// The decrypted-chunk cache of a mount (`--cache-size`) when not given.
pub const DEFAULT_CACHE_SIZE: u64 = 256 << 20;
/// The same for a mount of a vault at a URL: the back end already keeps
/// up to 64 MiB of fetched ciphertext blocks (which a re-read decrypts
/// again without a GET), so the two stay under 256 MiB together with the
/// process.
pub const DEFAULT_REMOTE_CACHE_SIZE: u64 = 64 << 20;

/// Options shared by `mount` and `run`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Identity file(s) (default: $MVAULT_IDENTITY or ~/.config/mvault/identity.txt).
    #[arg(short = 'i', long = "identity", value_name = "IDENTITY")]
    pub identities: Vec<PathBuf>,
    /// Append a JSON line per open, denial and release to this file (0600; must not be a
    /// symlink or another user's file). Repeated denials of one process are counted in a
    /// deny_summary line. An open whose line cannot be written (disk full) is refused with EIO.
    /// `journal` sends the records to journald (structured fields, a MESSAGE_ID per kind),
    /// `syslog` to /dev/log (RFC 5424 structured data); write ./journal for a file so named.
    #[arg(long, value_name = "FILE|journal|syslog")]
    pub audit_log: Option<PathBuf>,
    /// Serve allowed opens even when their --audit-log line cannot be written (unaudited reads;
    /// the failure is still reported on stderr and syslog).
    #[arg(long, requires = "audit_log")]
    pub audit_fail_open: bool,
    /// Memory for decrypted chunks (default 256M; 64M when a mounted vault is at a URL,
    /// whose fetched ciphertext blocks are kept in 64M more: see --remote-readahead).
    #[arg(long, value_parser = parse_size, value_name = "SIZE")]
    pub cache_size: Option<u64>,
    /// FUSE worker threads (default: twice the cores, 4..16).
    #[arg(long, value_name = "N")]
    pub fuse_threads: Option<usize>,
    /// Mount on a directory that has files (hidden while mounted). Refused by default.
    #[arg(long)]
    pub nonempty: bool,
    /// After the command exits (run) or a signal or unmount (mount), how long files still
    /// open stay readable before the FUSE connection is aborted (their reads then fail); also
    /// how long run's command has after SIGTERM before SIGKILL. E.g. 5s, 500ms, 1m.
    #[arg(long, default_value = "5s", value_parser = parse_duration, value_name = "DURATION")]
    pub grace: std::time::Duration,
}

#[derive(Debug, clap::Args)]
pub struct MountArgs {
    /// A sealed file, a folder of sealed files, or a directory vault.
    pub source: PathBuf,
    /// An existing empty directory that only you (or root) can change: not a symlink.
    pub mountpoint: PathBuf,
    #[command(flatten)]
    pub serve: ServeArgs,
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// Stay in the foreground until unmounted (Ctrl-C unmounts). No -f: that is --force elsewhere.
    #[arg(long)]
    pub foreground: bool,
    #[arg(long, hide = true)]
    pub ready_fd: Option<i32>,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Writable mounts (`mount --writable`, `run --output`).
#[derive(Debug, Default, clap::Args)]
pub struct OutputArgs {
    /// Mount a directory vault writable: files created there are sealed into the vault as
    /// they are written and committed (a new generation) after close, fsync, rename and at
    /// unmount; policy and audit log apply to writers as to readers.
    #[arg(long)]
    pub writable: bool,
    /// Writable mounts of a signed vault: its Ed25519 signing key (default
    /// $MVAULT_SIGNING_KEY); without it the mount is refused.
    #[arg(long, value_name = "KEY")]
    pub sign: Option<PathBuf>,
    /// Where files written out of order are spilled, encrypted under a key that never
    /// leaves memory (default: $TMPDIR or /tmp).
    #[arg(long, value_name = "DIR")]
    pub spill_dir: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct UmountArgs {
    /// Where the vault is mounted.
    pub mountpoint: PathBuf,
    /// Detach now even if files are open (they stay readable until closed).
    #[arg(short = 'z', long)]
    pub lazy: bool,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// SOURCE:MOUNTPOINT to serve to the command (mountpoint created if missing). Repeatable.
    #[arg(
        long = "mount",
        value_name = "SRC:MOUNTPOINT",
        required_unless_present = "outputs"
    )]
    pub mounts: Vec<String>,
    /// VAULT:MOUNTPOINT: a writable folder for the command whose files are sealed into
    /// directory vault VAULT (see `mount --writable`; --sign, --spill-dir apply). Repeatable.
    #[arg(long = "output", value_name = "VAULT:MOUNTPOINT")]
    pub outputs: Vec<String>,
    /// Signing key of the --output vaults that are signed (default $MVAULT_SIGNING_KEY).
    #[arg(long, value_name = "KEY")]
    pub sign: Option<PathBuf>,
    /// Where --output files written out of order are spilled, encrypted (default: $TMPDIR).
    #[arg(long, value_name = "DIR")]
    pub spill_dir: Option<PathBuf>,
    #[command(flatten)]
    pub serve: ServeArgs,
    /// Further rules; the command's process tree is always required.
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Size of the generated test file.
    #[arg(long, default_value = "2G", value_parser = parse_size, value_name = "SIZE")]
    pub size: u64,
    /// Folder for the test files (default: /dev/shm, which takes the disk out).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Runs of each operation; the best counts.
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub repeat: u32,
    /// Print a JSON report on stdout (schema mvault/1, see docs/JSON.md).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    /// Also check this identity file (the default identity is always checked). Repeatable.
    #[arg(short = 'i', long = "identity", value_name = "IDENTITY")]
    pub identities: Vec<PathBuf>,
    /// Check the storage under this folder (default: the identity's folder and the current one). Repeatable.
    #[arg(long = "path", value_name = "DIR")]
    pub paths: Vec<PathBuf>,
    /// Print a JSON report on stdout, one item {check, status, detail, fix} per check
    /// (schema mvault/1, see docs/JSON.md).
    #[arg(long)]
    pub json: bool,
    /// Group the checks under a checklist's headings; `pytorch-host`: the Debian hardening
    /// checklist for PyTorch hosts (updates, SSH, firewall/ports, not root, files &
    /// monitoring/audit, confinement & disk encryption), and count pending security updates.
    #[arg(long, value_name = "PROFILE")]
    pub profile: Option<DoctorProfile>,
    /// A training node allowed to reach the torch.distributed ports (IP or CIDR); fills the
    /// firewall rule template of an open port. Repeatable.
    #[arg(long = "peer", value_name = "ADDR", value_parser = parse_peer)]
    pub peers: Vec<String>,
    /// Check whether this Python (the one that runs training) is in a virtual environment.
    #[arg(long, value_name = "PATH")]
    pub python: Option<PathBuf>,
}

/// A `doctor --profile`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DoctorProfile {
    /// The Debian hardening checklist for hosts that run PyTorch.
    PytorchHost,
}

impl DoctorProfile {
    /// The name in `--json` reports.
    pub fn name(self) -> &'static str {
        match self {
            DoctorProfile::PytorchHost => "pytorch-host",
        }
    }
}

/// `--peer`: an IP address, optionally with a /prefix.
fn parse_peer(text: &str) -> Result<String, String> {
    let (addr, prefix) = text
        .split_once('/')
        .map_or((text, None), |(a, p)| (a, Some(p)));
    let ip: std::net::IpAddr = addr
        .parse()
        .map_err(|_| format!("{text:?} is not an IP address (e.g. 10.0.0.2 or 10.0.0.0/24)"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    match prefix.map(str::parse::<u8>) {
        None => Ok(text.to_string()),
        Some(Ok(p)) if p <= max => Ok(text.to_string()),
        Some(_) => Err(format!("{text:?}: the prefix length must be 0..={max}")),
    }
}

#[derive(Debug, clap::Args)]
pub struct KeygenArgs {
    /// Where to write the identity (default: $MVAULT_IDENTITY or ~/.config/mvault/identity.txt).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Overwrite an existing identity file (the old key is lost).
    #[arg(short, long)]
    pub force: bool,
    /// Print the recipient(s) of this existing identity file instead (as `age-keygen -y`).
    #[arg(short = 'y', value_name = "IDENTITY", conflicts_with_all = ["output", "force"])]
    pub recipients_of: Option<PathBuf>,
    /// Print a JSON report on stdout (schema mvault/1, see docs/JSON.md).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct SealArgs {
    /// Files to seal ("-" reads standard input and needs -o).
    #[arg(required = true, value_name = "FILE")]
    pub inputs: Vec<PathBuf>,
    #[command(flatten)]
    pub recipients: RecipientArgs,
    /// Output path (one input only; "-" writes to standard output). Default: FILE.mvlt.
    #[arg(short, long, value_name = "OUT")]
    pub output: Option<PathBuf>,
    /// Plaintext bytes per authenticated chunk: a power of two from 4K to 16M.
    /// Small chunks (4K-64K) suit files read in small random windows through a
    /// mount (token files, memmapped arrays); the default suits bulk reads.
    #[arg(long, default_value = "1M", value_parser = parse_chunk_size, value_name = "SIZE")]
    pub chunk_size: vault_core::ChunkSize,
    /// Overwrite existing outputs.
    #[arg(short, long)]
    pub force: bool,
    /// Delete each source after its sealed copy is written, fsynced and verified.
    #[arg(long)]
    pub remove_source: bool,
    /// Permission bits of sealed outputs.
    #[arg(long, default_value = "600", value_parser = crate::output::parse_mode, value_name = "OCTAL")]
    pub mode: u32,
    /// Print a JSON report on stdout (schema mvault/1, see docs/JSON.md).
    #[arg(long)]
    pub json: bool,
    /// Directory vaults: also remove the vault's files that the folder no longer has
    /// (without it, re-sealing adds and updates only). Removed files are always listed.
    #[arg(long)]
    pub delete: bool,
    #[command(flatten)]
    pub write: VaultWriteArgs,
}

/// Signing and planning of a write to a directory vault.
#[derive(Debug, clap::Args)]
pub struct VaultWriteArgs {
    /// Directory vaults: sign the new index with this Ed25519 key (from `mvault
    /// sign-keygen`; default $MVAULT_SIGNING_KEY). A signed vault refuses a write
    /// without a key, unless --unsigned.
    #[arg(long, value_name = "KEY")]
    pub sign: Option<PathBuf>,
    /// Directory vaults: let a signed vault's new index be unsigned (`verify --pubkey`
    /// then fails until a signed write).
    #[arg(long, conflicts_with = "sign")]
    pub unsigned: bool,
    /// Directory vaults: print what would be added, updated, kept and removed (files
    /// and bytes), and change nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
}

#[derive(Debug, clap::Args)]
pub struct OpenArgs {
    /// Sealed files, folders of them (each *.mvlt inside), or directory vaults
    /// ("-" reads one sealed stream from standard input and needs -o).
    #[arg(required = true, value_name = "FILE.mvlt")]
    pub inputs: Vec<PathBuf>,
    /// Identity file(s) (default: $MVAULT_IDENTITY or ~/.config/mvault/identity.txt).
    #[arg(short = 'i', long = "identity", value_name = "IDENTITY")]
    pub identities: Vec<PathBuf>,
    /// Output path (one input only; "-" writes to standard output). Default: FILE without .mvlt.
    #[arg(short, long, value_name = "OUT")]
    pub output: Option<PathBuf>,
    /// Overwrite existing outputs.
    #[arg(short, long)]
    pub force: bool,
    /// Permission bits of decrypted files; the folders a vault extraction
    /// creates get the matching search bits (600 gives 700 folders).
    #[arg(long, default_value = "600", value_parser = crate::output::parse_mode, value_name = "OCTAL")]
    pub mode: u32,
    /// Directory vaults: give files and created folders the modes recorded
    /// in the vault instead of --mode (they may be readable by others).
    #[arg(long, conflicts_with = "mode")]
    pub keep_modes: bool,
    /// Print a JSON report on stdout (schema mvault/1, see docs/JSON.md; not with -o -).
    #[arg(long)]
    pub json: bool,
    /// Directory vaults: extract only this path (a file or a folder). Repeatable.
    #[arg(long = "path", value_name = "PATH")]
    pub paths: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// Sealed files to describe.
    #[arg(required = true, value_name = "FILE.mvlt")]
    pub inputs: Vec<PathBuf>,
    /// Print a JSON report on stdout (schema mvault/1, see docs/JSON.md).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// Sealed files to verify.
    #[arg(required = true, value_name = "FILE.mvlt")]
    pub inputs: Vec<PathBuf>,
    /// Identity file(s) (default: $MVAULT_IDENTITY or ~/.config/mvault/identity.txt).
    #[arg(short = 'i', long = "identity", value_name = "IDENTITY")]
    pub identities: Vec<PathBuf>,
    /// Fail unless the plaintext BLAKE3 equals this hex digest (one input only).
    #[arg(long, value_name = "HEX")]
    pub expect_blake3: Option<String>,
    /// Print a JSON report on stdout (schema mvault/1, see docs/JSON.md).
    #[arg(long)]
    pub json: bool,
    /// Directory vaults: require a valid signature by this public key (KEY.pub).
    /// Without -i, checks only what needs no decryption key (for CI).
    #[arg(long, value_name = "PUB")]
    pub pubkey: Option<PathBuf>,
    /// Directory vaults: fail unless the index generation is at least N (catches a
    /// rollback to an older, validly signed vault).
    #[arg(long, value_name = "N")]
    pub min_generation: Option<u64>,
}

#[derive(Debug, clap::Args)]
pub struct LsArgs {
    /// The vault.
    #[arg(value_name = "VAULT")]
    pub vault: PathBuf,
    /// Identity file(s) (default: $MVAULT_IDENTITY or ~/.config/mvault/identity.txt).
    #[arg(short = 'i', long = "identity", value_name = "IDENTITY")]
    pub identities: Vec<PathBuf>,
    /// Print a JSON report on stdout (schema mvault/1, see docs/JSON.md).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct CatArgs {
    /// VAULT:PATH of the file to print.
    #[arg(value_name = "VAULT:PATH")]
    pub target: String,
    /// Identity file(s) (default: $MVAULT_IDENTITY or ~/.config/mvault/identity.txt).
    #[arg(short = 'i', long = "identity", value_name = "IDENTITY")]
    pub identities: Vec<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct AddArgs {
    /// The vault.
    #[arg(value_name = "VAULT")]
    pub vault: PathBuf,
    /// Files or folders to add; each goes under its own name (or under --to).
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Folder inside the vault to add into (default: the vault root).
    #[arg(long, value_name = "DIR")]
    pub to: Option<String>,
    /// Identity file(s) that open the vault.
    #[arg(short = 'i', long = "identity", value_name = "IDENTITY")]
    pub identities: Vec<PathBuf>,
    #[command(flatten)]
    pub write: VaultWriteArgs,
    /// Print a JSON report on stdout (schema mvault/1, see docs/JSON.md).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct RmArgs {
    /// The vault.
    #[arg(value_name = "VAULT")]
    pub vault: PathBuf,
    /// Paths inside the vault to remove (a file, or a folder with everything below).
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<String>,
    /// Identity file(s) that open the vault.
    #[arg(short = 'i', long = "identity", value_name = "IDENTITY")]
    pub identities: Vec<PathBuf>,
    #[command(flatten)]
    pub write: VaultWriteArgs,
    /// Print a JSON report on stdout (schema mvault/1, see docs/JSON.md).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct RekeyArgs {
    /// A directory vault (only its keyring is rewritten) or a sealed FILE.mvlt (only its
    /// header is rewritten; the payload bytes stay as they are).
    #[arg(value_name = "VAULT|FILE.mvlt")]
    pub vault: PathBuf,
    /// Identity file(s) that open it now.
    #[arg(short = 'i', long = "identity", value_name = "IDENTITY")]
    pub identities: Vec<PathBuf>,
    /// The new recipients, replacing the current ones, as in `seal -r`. Repeatable.
    #[arg(short = 'r', long = "recipient", value_name = "RECIPIENT")]
    pub recipients: Vec<String>,
    /// The new recipients from a file, one per line, as in `seal -R`. Repeatable.
    #[arg(short = 'R', long = "recipients-file", value_name = "FILE")]
    pub recipients_files: Vec<PathBuf>,
    /// Add this recipient (age1..., ssh-..., plugin). Repeatable.
    #[arg(long, value_name = "RECIPIENT")]
    pub add_recipient: Vec<String>,
    /// Remove this recipient. Repeatable. What they already decrypted stays theirs.
    #[arg(long, value_name = "RECIPIENT")]
    pub remove_recipient: Vec<String>,
    /// Add (or replace) a passphrase.
    #[arg(long)]
    pub add_passphrase: bool,
    /// Remove the passphrase.
    #[arg(long, conflicts_with = "add_passphrase")]
    pub remove_passphrase: bool,
    /// Argon2id costs for a new passphrase, as m=KiB,t=passes,p=lanes (default: $MVAULT_ARGON2).
    #[arg(long, value_name = "m=KIB,t=N,p=N")]
    pub argon2: Option<String>,
    #[command(flatten)]
    pub write: VaultWriteArgs,
    /// Also rotate the vault key: re-encrypt every object (reads and rewrites the whole
    /// vault), so a removed recipient who kept the old key can open none of the new objects.
    #[arg(long)]
    pub new_key: bool,
}

#[derive(Debug, clap::Args)]
pub struct SignKeygenArgs {
    /// Where to write the secret key (0600); the public key goes to KEY.pub
    /// (default: ~/.config/mvault/signing.key).
    #[arg(short, long, value_name = "KEY")]
    pub output: Option<PathBuf>,
    /// Overwrite existing key files (the old key is lost).
    #[arg(short, long)]
    pub force: bool,
    /// Print a JSON report on stdout (schema mvault/1, see docs/JSON.md).
    #[arg(long)]
    pub json: bool,
}

/// Parses sizes such as `1M`, `64K`, `16MiB` or `1048576`.
/// Parses `5s`, `500ms`, `2m` or a plain number of seconds.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?}: expected a duration such as 5s, 500ms or 1m"))?;
    let seconds = match unit {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" | "min" => value * 60.0,
        _ => return Err(format!("{text:?}: unknown unit {unit:?} (use ms, s or m)")),
    };
    std::time::Duration::try_from_secs_f64(seconds)
        .map_err(|_| format!("{text:?}: not a usable duration"))
}

pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a size like 1M"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        other => return Err(format!("unknown size unit {other:?}")),
    };
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("{text:?} is too large"))
}

fn parse_chunk_size(text: &str) -> Result<vault_core::ChunkSize, String> {
    vault_core::ChunkSize::from_bytes(parse_size(text)?).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::parse_duration;

    #[test]
    fn durations_take_ms_s_m_or_plain_seconds() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("5h").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("s").is_err());
    }
}

/// How vaults and sealed files at URLs are read (every command; defaults
/// from `MVAULT_REMOTE_*` and `MVAULT_CACHE_*`, see vault-remote's config).
#[derive(Debug, clap::Args)]
pub struct RemoteReadArgs {
    /// Ranged GETs in flight at once per remote vault or file, all its objects together (default:
    /// $MVAULT_REMOTE_CONCURRENCY, else 8).
    #[arg(long, global = true, value_name = "N")]
    pub remote_concurrency: Option<usize>,
    /// Blocks (about 4 MiB each) fetched ahead of a sequential reader (default:
    /// $MVAULT_REMOTE_READAHEAD, else 8); with the GETs in flight, bounds the memory of fetched
    /// blocks, all objects together, to (concurrency + readahead) blocks.
    #[arg(long, global = true, value_name = "N")]
    pub remote_readahead: Option<usize>,
    /// Keep a local cache of the (sealed, ciphertext) objects of remote vaults in DIR (0700),
    /// verified against the index's BLAKE3 on every use (default: $MVAULT_CACHE_DIR).
    #[arg(long, global = true, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Bound of --cache-dir; least recently used objects are removed first (default:
    /// $MVAULT_CACHE_SIZE, else 10G).
    #[arg(long, global = true, value_parser = parse_size, value_name = "SIZE", requires = "cache_dir")]
    pub cache_limit: Option<u64>,
}
