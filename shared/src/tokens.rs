//! Access tokens: EdDSA (Ed25519) JWTs. Only `auth` holds the private key and signs;
//! every function verifies with the public key, so no other function needs a secret.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde::{Deserialize, Serialize};

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

/// Verification key, plus the signing key where this process may sign.
pub struct TokenKeys {
    verify: DecodingKey,
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
        let raw =
            STANDARD.decode(b64.trim()).map_err(|e| TokenError::BadKey(format!("public key is not base64: {e}")))?;
        Self::verifier(&raw)
    }

    fn verifier(public_key: &[u8]) -> Result<Self, TokenError> {
        if public_key.len() != 32 {
            return Err(TokenError::BadKey(format!("an Ed25519 public key has 32 bytes, got {}", public_key.len())));
        }
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        Ok(Self {
            verify: DecodingKey::from_ed_der(public_key),
            sign: None,
            public_key_b64: STANDARD.encode(public_key),
            validation,
        })
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

    pub fn sign(&self, claims: &Claims) -> Result<String, TokenError> {
        let key = self.sign.as_ref().ok_or(TokenError::NoSigningKey)?;
        Ok(jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), claims, key)?)
    }

    /// Verifies signature, algorithm (EdDSA only, so `alg: none` fails), expiry,
    /// issuer and audience.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        Ok(jsonwebtoken::decode::<Claims>(token, &self.verify, &self.validation)?.claims)
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

    #[test]
    fn bad_public_keys_are_rejected() {
        assert!(TokenKeys::from_public_key_b64("not base64!").is_err());
        assert!(TokenKeys::from_public_key_b64(&STANDARD.encode([1u8; 31])).is_err());
    }
}
