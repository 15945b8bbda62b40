//! Command-line definitions.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::exit::EXIT_CODES_HELP;
use crate::keys::RecipientArgs;

/// Keep ML checkpoints and datasets encrypted at rest.
#[derive(Debug, Parser)]
#[command(name = "mvault", version, after_long_help = EXIT_CODES_HELP, after_help = "Run `mvault --help` for exit codes and environment variables.")]
pub struct Cli {
    /// Worker threads for encryption and hashing (default: all cores).
    #[arg(long, global = true, env = "MVAULT_THREADS", value_name = "N")]
    pub threads: Option<usize>,

    /// No progress bars or informational messages.
    #[arg(short, long, global = true)]
    pub quiet: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create an identity (0600) and print its recipient.
    Keygen(KeygenArgs),
    /// Encrypt files: FILE becomes FILE.mvlt.
    Seal(SealArgs),
    /// Decrypt sealed files: FILE.mvlt becomes FILE.
    Open(OpenArgs),
    /// Show a sealed file's header without decrypting it.
    Inspect(InspectArgs),
    /// Authenticate every byte of sealed files and print the plaintext BLAKE3.
    Verify(VerifyArgs),
}

#[derive(Debug, clap::Args)]
pub struct KeygenArgs {
    /// Where to write the identity (default: $MVAULT_IDENTITY or ~/.config/mvault/identity.txt).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Overwrite an existing identity file (the old key is lost).
    #[arg(long)]
    pub force: bool,
    /// Print {"identity": ..., "recipient": ...} as JSON.
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
    /// Plaintext bytes per authenticated chunk: a power of two from 64K to 16M.
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
    /// Print a JSON report on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct OpenArgs {
    /// Sealed files to decrypt.
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
    /// Permission bits of decrypted outputs.
    #[arg(long, default_value = "600", value_parser = crate::output::parse_mode, value_name = "OCTAL")]
    pub mode: u32,
    /// Print a JSON report on stdout (not with -o -).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// Sealed files to describe.
    #[arg(required = true, value_name = "FILE.mvlt")]
    pub inputs: Vec<PathBuf>,
    /// Print JSON.
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
    /// Print a JSON report on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Parses sizes such as `1M`, `64K`, `16MiB` or `1048576`.
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
