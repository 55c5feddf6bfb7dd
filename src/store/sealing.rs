//! OAuth tokens sealed at rest: whoever reads the mirror database (a
//! backup, a replica, a support dump) must not be able to act as the GHL app.
//!
//! Each token column is encrypted on its own with XChaCha20-Poly1305 under
//! `database.token_key`, with a fresh random 24-byte nonce per value (random
//! nonces of that size never realistically repeat). The associated data binds
//! a ciphertext to its row's subject and its column, so a sealed value copied
//! into another row, or the refresh token swapped into the access token
//! column, fails authentication instead of being used.
//!
//! Stored form: `xc1:` + base64(nonce ‖ ciphertext ‖ tag). The prefix
//! versions the scheme (a future key rotation or cipher gets `xc2:`) and
//! tells sealed values from rows written in plain text before a key was
//! configured, which still load. GHL tokens are JWTs (`eyJ...`), so no plain
//! token starts with the prefix.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use secrecy::{ExposeSecret, SecretString};

use crate::config::database::TokenKey;

/// Prefix of a value sealed by this version of the scheme.
const PREFIX: &str = "xc1:";
/// XChaCha20's extended nonce.
const NONCE_LEN: usize = 24;

/// A token column; its name is part of the associated data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenColumn {
    Access,
    Refresh,
}

impl TokenColumn {
    fn as_str(self) -> &'static str {
        match self {
            TokenColumn::Access => "access_token",
            TokenColumn::Refresh => "refresh_token",
        }
    }
}

/// Why a stored value could not be opened. Carries no token material.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unsealable {
    /// The value is sealed but no key is configured.
    NoKey,
    /// Authentication failed: another key, another row or column, or the
    /// stored text was altered.
    WrongKeyOrAltered,
}

/// Seals and opens token columns with the configured key. Cheap to clone.
#[derive(Clone)]
pub(crate) struct TokenSealer {
    cipher: XChaCha20Poly1305,
}

impl TokenSealer {
    pub fn new(key: &TokenKey) -> Self {
        Self {
            cipher: XChaCha20Poly1305::new(key.expose_bytes().into()),
        }
    }

    /// The stored form of `plain` for `column` of the row of `subject`.
    pub fn seal(&self, subject: &str, column: TokenColumn, plain: &SecretString) -> String {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let aad = associated_data(subject, column);
        let sealed = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plain.expose_secret().as_bytes(),
                    aad: &aad,
                },
            )
            // Only fails for messages beyond 256 GiB.
            .expect("XChaCha20-Poly1305 seals any token");
        let mut blob = Vec::with_capacity(NONCE_LEN + sealed.len());
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&sealed);
        format!("{PREFIX}{}", BASE64.encode(blob))
    }
}

/// Whether a stored value is sealed (as opposed to a legacy plain one).
pub(crate) fn is_sealed(stored: &str) -> bool {
    stored.starts_with(PREFIX)
}

/// The token in a stored value: plain values are returned as they are,
/// sealed ones are opened with `sealer`.
pub(crate) fn open(
    sealer: Option<&TokenSealer>,
    subject: &str,
    column: TokenColumn,
    stored: String,
) -> Result<SecretString, Unsealable> {
    let Some(encoded) = stored.strip_prefix(PREFIX) else {
        return Ok(SecretString::from(stored));
    };
    let sealer = sealer.ok_or(Unsealable::NoKey)?;
    let blob = BASE64
        .decode(encoded)
        .map_err(|_| Unsealable::WrongKeyOrAltered)?;
    if blob.len() < NONCE_LEN {
        return Err(Unsealable::WrongKeyOrAltered);
    }
    let (nonce, sealed) = blob.split_at(NONCE_LEN);
    let aad = associated_data(subject, column);
    let plain = sealer
        .cipher
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: sealed,
                aad: &aad,
            },
        )
        .map_err(|_| Unsealable::WrongKeyOrAltered)?;
    String::from_utf8(plain)
        .map(SecretString::from)
        .map_err(|_| Unsealable::WrongKeyOrAltered)
}

/// Binds a value to its table, row and column. NUL cannot occur in a
/// subject (`location:<id>`), so the parts cannot run into each other.
fn associated_data(subject: &str, column: TokenColumn) -> Vec<u8> {
    format!("ghlsync/oauth_tokens/xc1\0{subject}\0{}", column.as_str()).into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SecretSource;

    fn sealer(byte: u8) -> TokenSealer {
        let key = SecretString::from(BASE64.encode([byte; 32]));
        TokenSealer::new(&TokenKey::from_base64(&key, SecretSource::ConfigFile).unwrap())
    }

    #[test]
    fn seals_with_a_fresh_nonce_and_opens_only_in_place() {
        let s = sealer(7);
        let token = SecretString::from("eyJ-access");
        let a = s.seal("location:a", TokenColumn::Access, &token);
        let b = s.seal("location:a", TokenColumn::Access, &token);
        assert!(is_sealed(&a) && a != b, "{a} {b}");
        assert!(!a.contains("eyJ-access"));
        let opened = open(Some(&s), "location:a", TokenColumn::Access, a.clone()).unwrap();
        assert_eq!(opened.expose_secret(), "eyJ-access");
        for (subject, column) in [
            ("location:b", TokenColumn::Access),
            ("location:a", TokenColumn::Refresh),
        ] {
            assert_eq!(
                open(Some(&s), subject, column, a.clone()).unwrap_err(),
                Unsealable::WrongKeyOrAltered
            );
        }
        assert_eq!(
            open(
                Some(&sealer(8)),
                "location:a",
                TokenColumn::Access,
                a.clone()
            )
            .unwrap_err(),
            Unsealable::WrongKeyOrAltered
        );
        assert_eq!(
            open(None, "location:a", TokenColumn::Access, a).unwrap_err(),
            Unsealable::NoKey
        );
    }

    #[test]
    fn plain_values_pass_through_and_garbage_is_refused() {
        let s = sealer(1);
        let plain = open(Some(&s), "x", TokenColumn::Refresh, "eyJ-plain".into()).unwrap();
        assert_eq!(plain.expose_secret(), "eyJ-plain");
        for bad in ["xc1:", "xc1:!!!", "xc1:AAAA"] {
            assert_eq!(
                open(Some(&s), "x", TokenColumn::Refresh, bad.into()).unwrap_err(),
                Unsealable::WrongKeyOrAltered
            );
        }
    }
}
