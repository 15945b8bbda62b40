//! Headers built to make a reader work for days (issue 10 item 7): many
//! passphrase stanzas, each with Argon2id costs inside the format's bounds
//! but far beyond what a reader should spend.

use std::time::{Duration, Instant};

use crate::util::*;
use vault_core::{
    Argon2Params, ChunkSize, DEFAULT_OPEN_LIMIT, Error, FILE_ID_LEN, FileKey, Header,
    MAX_PASSPHRASE_TRIES, OPEN_LIMIT_ENV, PassphraseStanza, Stanza, read_header,
};

const CHEAP: Argon2Params = Argon2Params {
    memory_kib: 64,
    time_cost: 1,
    parallelism: 1,
};

fn header(stanzas: Vec<Stanza>) -> Header {
    Header {
        chunk_size: ChunkSize::default(),
        file_id: [1; FILE_ID_LEN],
        plaintext_len: None,
        stanzas,
        mac: [0; 32],
    }
}

fn stanza(key: &FileKey, pass: &str, params: Argon2Params) -> Stanza {
    Stanza::Passphrase(PassphraseStanza::wrap(key, &secret(pass), params).unwrap())
}

/// Only the first MAX_PASSPHRASE_TRIES passphrase stanzas are tried: a
/// right one after them is never reached (before: every one of up to
/// 1,024 was tried, the match found, then the forged MAC refused).
#[test]
fn only_the_first_few_passphrase_stanzas_are_tried() {
    let key = FileKey::from_bytes([9; 32]);
    let mut stanzas: Vec<Stanza> = (0..MAX_PASSPHRASE_TRIES)
        .map(|_| stanza(&key, "not it", CHEAP))
        .collect();
    stanzas.push(stanza(&key, "right", CHEAP));
    match with_passphrase("right").unlock(&header(stanzas)) {
        Err(Error::WrongPassphrase) => {}
        other => panic!("expected WrongPassphrase, got {:?}", other.map(|_| ())),
    }
}

/// A stanza asking for 2 GiB (or 64 MiB x 64 passes) is inside the
/// format's bounds but over the default limit: refused before any Argon2
/// work, with the way to raise the limit in the message.
#[test]
fn argon2_costs_over_the_limit_are_refused_before_work() {
    for params in [
        Argon2Params {
            memory_kib: 2 << 20,
            time_cost: 1,
            parallelism: 1,
        },
        Argon2Params {
            memory_kib: 64 << 10,
            time_cost: 64,
            parallelism: 1,
        },
    ] {
        assert!(!params.within(&DEFAULT_OPEN_LIMIT));
        // Built with cheap costs, then relabelled: what a hostile header
        // would say (its wrapped key no longer matches, which does not
        // matter: it is refused before that is found out).
        let Stanza::Passphrase(mut s) = stanza(&FileKey::from_bytes([9; 32]), "pw", CHEAP) else {
            unreachable!()
        };
        s.params = params;
        let started = Instant::now();
        match with_passphrase("pw").unlock(&header(vec![Stanza::Passphrase(s)])) {
            Err(Error::KeyWrap(why)) => assert!(why.contains(OPEN_LIMIT_ENV), "{why}"),
            other => panic!("expected KeyWrap, got {:?}", other.map(|_| ())),
        }
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}

/// The limit can be set explicitly: a file sealed with costs over it is
/// refused, and opens once the limit is raised.
#[test]
fn argon2_limit_is_explicit() {
    let params = Argon2Params {
        memory_kib: 256,
        time_cost: 2,
        parallelism: 1,
    };
    let mut recipients = vault_core::Recipients::new();
    recipients.set_passphrase(secret("pw"), params);
    let sealed = seal_vec(b"hello", &recipients);
    let (header, _) = read_header(&sealed.as_slice()).unwrap();
    let mut ids = with_passphrase("pw");
    ids.set_argon2_limit(Argon2Params {
        memory_kib: 256,
        time_cost: 1,
        parallelism: 1,
    });
    assert!(matches!(ids.unlock(&header), Err(Error::KeyWrap(_))));
    ids.set_argon2_limit(params);
    assert!(ids.unlock(&header).is_ok());
}
