//! Opening a sealed stream that cannot seek (a pipe, standard input): the
//! chunks are read in order and each is authenticated before any of its
//! bytes are written. Which chunk is the final one is known only at the end
//! of the stream, so one chunk is read ahead; a stream cut at a chunk
//! boundary fails because its last chunk was not sealed as the final one.

use std::io::{Read, Write};

use zeroize::Zeroizing;

use crate::chunk::{ChunkCipher, TAG_LEN};
use crate::error::{Error, Result};
use crate::header::Header;
use crate::open::OpenSummary;
use crate::pipeline::Progress;
use crate::wrap::Identities;

/// Decrypts the payload that follows `header` in `input` (positioned just
/// after the header, e.g. by [`Header::read_from`]) to `output`, in order.
/// Recovers the file key with `identities` and verifies the header MAC
/// first. Every chunk is authenticated before it is written, so after an
/// error `output` holds an exact prefix of the plaintext: whole chunks,
/// never an unauthenticated byte. Also computes the plaintext BLAKE3.
pub fn decrypt_stream<R: Read, W: Write>(
    header: &Header,
    mut input: R,
    identities: &Identities,
    mut output: W,
    progress: Progress<'_>,
) -> Result<(W, OpenSummary)> {
    let (_, schedule) = identities.unlock_schedule(header)?;
    let cipher = ChunkCipher::new(&schedule.payload_key);
    let record = header.chunk_size.bytes() + TAG_LEN;
    let mut current = Zeroizing::new(vec![0u8; record]);
    let mut ahead = Zeroizing::new(vec![0u8; record]);
    let mut filled = fill(&mut input, &mut current)?;
    let mut hasher = blake3::Hasher::new();
    let mut total = 0u64;
    let mut index = 0u64;
    loop {
        if filled < TAG_LEN {
            return Err(Error::Truncated(format!(
                "the stream ends inside chunk {index}"
            )));
        }
        let next = if filled == record {
            fill(&mut input, &mut ahead)?
        } else {
            0
        };
        let last = next == 0;
        let (text, tag) = current[..filled].split_at_mut(filled - TAG_LEN);
        if let Err(e) = cipher.open_in_place(index, last, text, tag) {
            // Sealed as a middle chunk: the stream was cut after it.
            if last && filled == record {
                return Err(Error::Truncated(format!(
                    "the stream ends after chunk {index}, which is not the final chunk"
                )));
            }
            return Err(e);
        }
        hasher.update(text);
        output.write_all(text)?;
        total += text.len() as u64;
        progress(text.len() as u64);
        if last {
            break;
        }
        std::mem::swap(&mut current, &mut ahead);
        filled = next;
        index += 1;
    }
    if let Some(expected) = header.plaintext_len
        && expected != total
    {
        return Err(Error::Truncated(format!(
            "the header records {expected} plaintext bytes but the stream holds {total}"
        )));
    }
    output.flush()?;
    Ok((
        output,
        OpenSummary {
            plaintext_len: total,
            blake3: Some(hasher.finalize()),
        },
    ))
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn fill(input: &mut impl Read, buf: &mut [u8]) -> Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match input.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::decrypt_stream;
    use crate::{ChunkSize, Error, Header, Identities, Recipients, SealOptions, Sealer};

    fn sealed(len: usize) -> (Vec<u8>, Vec<u8>, Identities) {
        let identity = age::x25519::Identity::generate();
        let mut recipients = Recipients::new();
        recipients.add_age(Box::new(identity.to_public()));
        let mut identities = Identities::new();
        identities.extend_age([Box::new(identity) as Box<dyn age::Identity>]);
        let options = SealOptions {
            chunk_size: ChunkSize::from_bytes(64 << 10).unwrap(),
            ..SealOptions::default()
        };
        let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        let mut sealer = Sealer::new(Vec::new(), &recipients, options).unwrap();
        sealer.write_all(&data).unwrap();
        (sealer.finish().unwrap().0, data, identities)
    }

    fn open(stream: &[u8], ids: &Identities) -> (Vec<u8>, crate::Result<u64>) {
        let mut reader = stream;
        let header = Header::read_from(&mut reader).unwrap();
        let mut out = Vec::new();
        let r =
            decrypt_stream(&header, reader, ids, &mut out, &|_| {}).map(|(_, s)| s.plaintext_len);
        (out, r)
    }

    #[test]
    fn streams_open_at_every_size_around_chunk_boundaries() {
        for len in [0, 1, 65_535, 65_536, 65_537, 3 * 65_536, 200_000] {
            let (stream, data, ids) = sealed(len);
            let (out, r) = open(&stream, &ids);
            assert_eq!(r.unwrap(), len as u64);
            assert_eq!(out, data, "len {len}");
        }
    }

    #[test]
    fn cut_or_flipped_streams_release_only_authenticated_chunks() {
        let (stream, data, ids) = sealed(3 * 65_536 + 10);
        let header_len = stream.len() - (data.len() + 4 * 16);
        // Cut exactly after the second chunk: a chunk boundary.
        let cut = header_len + 2 * (65_536 + 16);
        let (out, r) = open(&stream[..cut], &ids);
        assert!(matches!(r, Err(Error::Truncated(_))), "{r:?}");
        assert_eq!(out, data[..65_536]);
        // Cut inside the last chunk.
        let (_, r) = open(&stream[..stream.len() - 3], &ids);
        assert!(r.is_err());
        // A flipped bit in chunk 2.
        let mut bad = stream.clone();
        bad[header_len + 2 * (65_536 + 16) + 5] ^= 1;
        let (out, r) = open(&bad, &ids);
        assert!(matches!(r, Err(Error::ChunkTampered { index: 2 })), "{r:?}");
        assert_eq!(out, data[..2 * 65_536]);
        // Trailing bytes make the real final chunk a middle one.
        let mut long = stream.clone();
        long.extend_from_slice(&[0u8; 40]);
        assert!(open(&long, &ids).1.is_err());
    }
}
