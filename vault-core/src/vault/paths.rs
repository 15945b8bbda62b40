//! Names inside a vault: single path components, never `.`, `..`, empty,
//! or containing `/` or NUL. A manifest is built from such names and a
//! parent index, so a path in a vault can never leave the vault.

use crate::error::{Error, Result};

/// Longest name accepted (Linux's NAME_MAX).
pub const MAX_NAME_LEN: usize = 255;

/// Whether `name` is a safe single path component.
pub fn valid_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name != b"."
        && name != b".."
        && !name.contains(&b'/')
        && !name.contains(&0)
}

/// Splits a path given by a user (`--path`, `VAULT:path`) into components,
/// relative to the vault root: empty components and `.` are dropped, a
/// leading `/` means the vault root, `..` is refused.
pub fn parse_user_path(path: &[u8]) -> Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    for part in path.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                return Err(Error::InvalidArgument(
                    "paths inside a vault cannot contain `..`".into(),
                ));
            }
            name if valid_name(name) => out.push(name.to_vec()),
            _ => {
                return Err(Error::InvalidArgument(format!(
                    "{:?} is not a valid name",
                    String::from_utf8_lossy(part)
                )));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_name(b"config.json"));
        assert!(valid_name(b"..."));
        assert!(valid_name(&[0xff, 0xfe]));
        for bad in [&b""[..], b".", b"..", b"a/b", b"/", b"a\0b"] {
            assert!(!valid_name(bad), "{bad:?}");
        }
        assert!(!valid_name(&[b'a'; 256]));
    }

    #[test]
    fn user_paths() {
        assert_eq!(
            parse_user_path(b"/a//./b/").unwrap(),
            vec![b"a".to_vec(), b"b".to_vec()]
        );
        assert!(parse_user_path(b"a/../b").is_err());
        assert!(parse_user_path(b"").unwrap().is_empty());
    }
}
