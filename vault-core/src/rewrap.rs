//! Re-wrapping a sealed file's key for new recipients without touching its
//! payload (`mvault rekey FILE.mvlt`).
//!
//! The payload key and the chunk nonces depend only on the file key, the
//! file id and the chunk index, never on the header's stanzas or length, so
//! a header with new stanzas and a MAC recomputed under the same file key
//! keeps every payload byte valid.

use crate::error::Result;
use crate::file_key::{FileKey, KeySchedule};
use crate::header::Header;
use crate::wrap::Recipients;

/// A header for the same payload as `header`, whose stanzas wrap `file_key`
/// for `recipients` only. The file id, chunk size and plaintext length are
/// kept and the MAC is recomputed under the same file key. Fails with
/// [`crate::Error::HeaderTampered`] when `file_key` does not authenticate
/// `header` (so a wrong key can never produce a header that verifies), and
/// with [`crate::Error::InvalidArgument`] when `recipients` is empty.
///
/// Whoever held the file key before still holds it: this changes who can
/// unwrap the key from now on, not who could already decrypt.
pub fn rewrap_header(
    header: &Header,
    file_key: &FileKey,
    recipients: &Recipients,
) -> Result<Header> {
    let schedule = KeySchedule::derive(file_key, &header.file_id);
    schedule.verify_header(header)?;
    let mut new = Header {
        stanzas: recipients.wrap(file_key)?,
        mac: [0; crate::header::MAC_LEN],
        ..header.clone()
    };
    new.mac = schedule.header_mac(&new);
    Ok(new)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::rewrap_header;
    use crate::{Error, FileKey, Identities, Opener, Recipients, SealOptions, Sealer};

    fn x25519() -> (age::x25519::Identity, Recipients, Identities) {
        let identity = age::x25519::Identity::generate();
        let mut recipients = Recipients::new();
        recipients.add_age(Box::new(identity.to_public()));
        let mut identities = Identities::new();
        identities.extend_age([Box::new(identity.clone()) as Box<dyn age::Identity>]);
        (identity, recipients, identities)
    }

    #[test]
    fn rewrapped_header_opens_the_same_payload_for_the_new_recipient_only() {
        let (_, old_recipients, old_ids) = x25519();
        let (_, new_recipients, new_ids) = x25519();
        let data = vec![7u8; 200_000];
        let mut sealer = Sealer::new(Vec::new(), &old_recipients, SealOptions::default()).unwrap();
        sealer.write_all(&data).unwrap();
        let (sealed, _) = sealer.finish().unwrap();
        let old = Opener::new(sealed.as_slice(), &old_ids).unwrap();
        let header_len = old.layout().header_len as usize;
        let key = old_ids.unlock(old.header()).unwrap();

        let header = rewrap_header(old.header(), &key, &new_recipients).unwrap();
        let mut rekeyed = header.encode();
        rekeyed.extend_from_slice(&sealed[header_len..]);

        let opener = Opener::new(rekeyed.as_slice(), &new_ids).unwrap();
        let mut out = vec![0u8; data.len()];
        opener.read_at(&mut out, 0).unwrap();
        assert_eq!(out, data);
        assert!(matches!(
            Opener::new(rekeyed.as_slice(), &old_ids),
            Err(Error::NoMatchingIdentity)
        ));
        // A key that is not this file's cannot produce a valid header.
        let wrong = FileKey::generate().unwrap();
        assert!(matches!(
            rewrap_header(old.header(), &wrong, &new_recipients),
            Err(Error::HeaderTampered)
        ));
    }
}
