//! Access tokens: EdDSA (Ed25519) JWTs. Only `auth` holds the private key and signs;
//! every function verifies with the public key, so no other function needs a secret.
//! Each token names its key in the `kid` header (`key_id`), and verifiers accept
//! the current key and, during a rotation, the previous one, so rotating the
//! signing key signs nobody out.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::domain::{Role, UserId};

/// Issuer and audience every token carries and every verifier requires.
pub const ISSUER: &str = "marketplace-auth";
pub const AUDIENCE: &str = "marketplace-api";

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user's id.
    pub sub: String,
    pub role: Role,
    /// The refresh session the token was issued for.
    pub sid: String,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
    pub aud: String,
}

impl Claims {
    pub fn user_id(&self) -> Option<UserId> {
        UserId::parse(&self.sub)
    }
}

/// Token failures. Each variant's doc names the HTTP status it becomes.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// 401: expired, tampered, wrongly signed, wrong algorithm or malformed.
    #[error("invalid access token: {0}")]
    Invalid(#[from] jsonwebtoken::errors::Error),
    /// 500: this process holds no signing key (only `auth` does).
    #[error("this function holds no signing key")]
    NoSigningKey,
    /// Start-up error: the configured key material is not a valid Ed25519 key.
    #[error("invalid key material: {0}")]
    BadKey(String),
}

/// The `kid` of an Ed25519 public key (raw 32 bytes): the first 8 bytes of its
/// SHA-256, in hex.
pub fn key_id(public_key: &[u8]) -> String {
    hex::encode(&sha2::Sha256::digest(public_key)[..8])
}

/// A public key that verifies tokens, and its `kid`.
struct VerifyingKey {
    kid: String,
    key: DecodingKey,
}

impl VerifyingKey {
    fn new(public_key: &[u8]) -> Result<Self, TokenError> {
        if public_key.len() != 32 {
            return Err(TokenError::BadKey(format!("an Ed25519 public key has 32 bytes, got {}", public_key.len())));
        }
        Ok(Self { kid: key_id(public_key), key: DecodingKey::from_ed_der(public_key) })
    }

    fn from_b64(b64: &str) -> Result<(Self, Vec<u8>), TokenError> {
        let raw =
            STANDARD.decode(b64.trim()).map_err(|e| TokenError::BadKey(format!("public key is not base64: {e}")))?;
        Ok((Self::new(&raw)?, raw))
    }
}

/// Verification keys (the current one, then the previous one during a
/// rotation), plus the signing key where this process may sign.
pub struct TokenKeys {
    verify: Vec<VerifyingKey>,
    sign: Option<EncodingKey>,
    public_key_b64: String,
    validation: Validation,
}

impl TokenKeys {
    /// Keys from a PKCS#8 (DER) Ed25519 private key: can sign and verify.
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, TokenError> {
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8).map_err(|e| TokenError::BadKey(format!("Ed25519 PKCS#8: {e}")))?;
        let mut keys = Self::verifier(pair.public_key().as_ref())?;
        keys.sign = Some(EncodingKey::from_ed_der(pkcs8));
        Ok(keys)
    }

    /// A verify-only key set from the base64 of the raw 32-byte public key.
    pub fn from_public_key_b64(b64: &str) -> Result<Self, TokenError> {
        let (_, raw) = VerifyingKey::from_b64(b64)?;
        Self::verifier(&raw)
    }

    /// Also accepts tokens signed by the key whose public half `b64` is (the
    /// `TOKEN_PREVIOUS_PUBLIC_KEY` setting); empty means none.
    pub fn with_previous_public_key_b64(mut self, b64: &str) -> Result<Self, TokenError> {
        if b64.trim().is_empty() {
            return Ok(self);
        }
        let (previous, _) = VerifyingKey::from_b64(b64)?;
        if self.verify.iter().all(|known| known.kid != previous.kid) {
            self.verify.push(previous);
        }
        Ok(self)
    }

    fn verifier(public_key: &[u8]) -> Result<Self, TokenError> {
        let current = VerifyingKey::new(public_key)?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        Ok(Self { verify: vec![current], sign: None, public_key_b64: STANDARD.encode(public_key), validation })
    }

    /// Generates a new Ed25519 key pair as PKCS#8 DER.
    pub fn generate_pkcs8() -> Vec<u8> {
        let rng = ring::rand::SystemRandom::new();
        Ed25519KeyPair::generate_pkcs8(&rng).expect("the system random source is available").as_ref().to_vec()
    }

    /// Base64 of the raw public key: the `TOKEN_PUBLIC_KEY` setting of the other functions.
    pub fn public_key_b64(&self) -> &str {
        &self.public_key_b64
    }

    pub fn can_sign(&self) -> bool {
        self.sign.is_some()
    }

    /// The `kid` of the current key, which `sign` puts in every token's header.
    pub fn key_id(&self) -> &str {
        &self.verify[0].kid
    }

    pub fn sign(&self, claims: &Claims) -> Result<String, TokenError> {
        let key = self.sign.as_ref().ok_or(TokenError::NoSigningKey)?;
        let header = Header { kid: Some(self.key_id().to_owned()), ..Header::new(Algorithm::EdDSA) };
        Ok(jsonwebtoken::encode(&header, claims, key)?)
    }

    /// Verifies signature (with the key its `kid` names; a token without one,
    /// signed before keys had ids, with each key), algorithm (EdDSA only, so
    /// `alg: none` fails), expiry, issuer and audience.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let kid = jsonwebtoken::decode_header(token)?.kid;
        let mut outcome = Err(jsonwebtoken::errors::ErrorKind::InvalidSignature.into());
        for key in self.verify.iter().filter(|key| kid.as_deref().is_none_or(|kid| kid == key.kid)) {
            outcome = jsonwebtoken::decode::<Claims>(token, &key.key, &self.validation);
            if outcome.is_ok() {
                break;
            }
        }
        Ok(outcome?.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp_offset: i64) -> Claims {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        Claims {
            sub: UserId::new().to_string(),
            role: Role::Customer,
            sid: "s".into(),
            iat: now,
            exp: now + exp_offset,
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
        }
    }

    #[test]
    fn signed_token_verifies_with_the_public_key_only() {
        let signer = TokenKeys::from_pkcs8(&TokenKeys::generate_pkcs8()).unwrap();
        let verifier = TokenKeys::from_public_key_b64(signer.public_key_b64()).unwrap();
        assert!(!verifier.can_sign());
        let token = signer.sign(&claims(60)).unwrap();
        assert_eq!(verifier.verify(&token).unwrap().role, Role::Customer);
    }

    #[test]
    fn expired_and_foreign_tokens_fail() {
        let signer = TokenKeys::from_pkcs8(&TokenKeys::generate_pkcs8()).unwrap();
        let other = TokenKeys::from_pkcs8(&TokenKeys::generate_pkcs8()).unwrap();
        assert!(signer.verify(&signer.sign(&claims(-60)).unwrap()).is_err());
        assert!(signer.verify(&other.sign(&claims(60)).unwrap()).is_err());
    }

    /// The `kid` header of a token.
    fn kid(token: &str) -> Option<String> {
        jsonwebtoken::decode_header(token).unwrap().kid
    }

    #[test]
    fn tokens_name_their_key_in_the_kid_header() {
        let signer = TokenKeys::from_pkcs8(&TokenKeys::generate_pkcs8()).unwrap();
        let raw_public = STANDARD.decode(signer.public_key_b64()).unwrap();
        let token = signer.sign(&claims(60)).unwrap();
        assert_eq!(kid(&token).as_deref(), Some(key_id(&raw_public).as_str()));
        assert_eq!(signer.key_id().len(), 16);
    }

    #[test]
    fn a_token_of_the_previous_key_verifies_only_where_that_key_is_configured() {
        let previous = TokenKeys::from_pkcs8(&TokenKeys::generate_pkcs8()).unwrap();
        let current = TokenKeys::from_pkcs8(&TokenKeys::generate_pkcs8()).unwrap();
        let old_token = previous.sign(&claims(60)).unwrap();
        let new_token = current.sign(&claims(60)).unwrap();

        let without = TokenKeys::from_public_key_b64(current.public_key_b64()).unwrap();
        assert!(without.verify(&old_token).is_err());
        let with = TokenKeys::from_public_key_b64(current.public_key_b64())
            .unwrap()
            .with_previous_public_key_b64(previous.public_key_b64())
            .unwrap();
        assert_eq!(with.verify(&old_token).unwrap().role, Role::Customer);
        assert!(with.verify(&new_token).is_ok());
        // The signer (auth) accepts the previous key too, and still signs with its own.
        let signer = current.with_previous_public_key_b64(previous.public_key_b64()).unwrap();
        assert!(signer.verify(&old_token).is_ok());
        assert_eq!(kid(&signer.sign(&claims(60)).unwrap()), kid(&new_token));
        // Empty means no previous key.
        let empty = without.with_previous_public_key_b64(" ").unwrap();
        assert!(empty.verify(&old_token).is_err());
    }

    #[test]
    fn a_token_naming_an_unknown_kid_fails_and_one_without_a_kid_is_tried_with_each_key() {
        let previous = TokenKeys::from_pkcs8(&TokenKeys::generate_pkcs8()).unwrap();
        let current = TokenKeys::from_pkcs8(&TokenKeys::generate_pkcs8()).unwrap();
        let verifier = TokenKeys::from_public_key_b64(current.public_key_b64())
            .unwrap()
            .with_previous_public_key_b64(previous.public_key_b64())
            .unwrap();
        let pkcs8 = TokenKeys::generate_pkcs8();
        let stranger_der = EncodingKey::from_ed_der(&pkcs8);
        let stranger = TokenKeys::from_pkcs8(&pkcs8).unwrap();
        // The previous key's kid on a stranger's signature: refused.
        let header = Header { kid: Some(previous.key_id().to_owned()), ..Header::new(Algorithm::EdDSA) };
        let forged = jsonwebtoken::encode(&header, &claims(60), &stranger_der).unwrap();
        assert!(verifier.verify(&forged).is_err());
        assert!(verifier.verify(&stranger.sign(&claims(60)).unwrap()).is_err());
        // No kid: each configured key is tried.
        let plain = |keys: &TokenKeys| {
            let der = keys.sign.as_ref().unwrap();
            jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims(60), der).unwrap()
        };
        assert!(verifier.verify(&plain(&previous)).is_ok());
        assert!(verifier.verify(&plain(&current)).is_ok());
        assert!(verifier.verify(&plain(&stranger)).is_err());
    }

    #[test]
    fn bad_public_keys_are_rejected() {
        assert!(TokenKeys::from_public_key_b64("not base64!").is_err());
        assert!(TokenKeys::from_public_key_b64(&STANDARD.encode([1u8; 31])).is_err());
        let keys = TokenKeys::from_pkcs8(&TokenKeys::generate_pkcs8()).unwrap();
        assert!(keys.with_previous_public_key_b64("not base64!").is_err());
    }
}
