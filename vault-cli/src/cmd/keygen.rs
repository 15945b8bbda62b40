//! `mvault keygen`

use anyhow::Result;

use crate::cli::KeygenArgs;
use crate::exit::{Exit, fail};
use crate::keys::{default_identity_path, generate_identity};

pub fn run(args: KeygenArgs, quiet: bool) -> Result<Exit> {
    let path = args
        .output
        .or_else(default_identity_path)
        .ok_or_else(|| fail(Exit::Usage, "no HOME to put the identity in; pass -o FILE"))?;
    let recipient = generate_identity(&path, args.force)?;
    if args.json {
        crate::report::print_json(&serde_json::json!({
            "identity": path.display().to_string(),
            "recipient": recipient,
        }));
    } else {
        if !quiet {
            eprintln!(
                "mvault: identity written to {} (mode 600); its recipient:",
                path.display()
            );
        }
        println!("{recipient}");
    }
    Ok(Exit::Ok)
}
