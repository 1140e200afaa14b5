//! Users: ids, emails, passwords (argon2id), display names and roles.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

ulid_id! {
    /// A user's id (a ULID).
    UserId
}

/// An email address, trimmed and lower-cased so uniqueness ignores letter case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct Email(String);

domain_value!(
    Email,
    String,
    |raw| Email::parse(&raw),
    super::string_schema(
        "An email address like name@example.com; stored lower-cased, unique in any letter case.",
        3,
        Email::MAX_CHARS
    )
);

impl Email {
    pub const MAX_CHARS: usize = 254;

    /// Accepts `local@domain.tld` shapes of at most 254 characters as sent.
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.chars().count() > Self::MAX_CHARS {
            return Err(format!("must be at most {} characters", Self::MAX_CHARS));
        }
        let email = raw.trim().to_lowercase();
        if email.is_empty() {
            return Err("must not be empty".into());
        }
        let Some((local, domain)) = email.split_once('@') else {
            return Err("must be an email address like name@example.com".into());
        };
        let domain_ok = domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..")
            && domain.chars().all(|c| c.is_alphanumeric() || c == '.' || c == '-');
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.chars().any(|c| c.is_whitespace() || c.is_control() || c == '@');
        if !domain_ok || !local_ok {
            return Err("must be an email address like name@example.com".into());
        }
        Ok(Self(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A plaintext password. Its `Debug` never shows the secret. Deserialized (and
/// documented) with the rules for new passwords.
#[derive(Clone, Deserialize)]
#[serde(try_from = "String")]
pub struct Password(String);

domain_value!(Password, String, Password::parse, {
    let mut schema = super::string_schema("Any characters.", Password::MIN_CHARS, Password::MAX_CHARS);
    schema.write_only = Some(true);
    schema
});

impl Password {
    pub const MIN_CHARS: usize = 10;
    pub const MAX_CHARS: usize = 128;

    /// Length rules only (NIST SP 800-63B): 10 to 128 characters.
    pub fn parse(raw: String) -> Result<Self, String> {
        let chars = raw.chars().count();
        if chars < Self::MIN_CHARS {
            return Err(format!("must be at least {} characters", Self::MIN_CHARS));
        }
        if chars > Self::MAX_CHARS {
            return Err(format!("must be at most {} characters", Self::MAX_CHARS));
        }
        Ok(Self(raw))
    }

    /// A password from a login form: any length up to the maximum is accepted,
    /// so that a too-short guess is answered like any wrong password.
    pub fn for_login(raw: String) -> Result<Self, String> {
        if raw.chars().count() > Self::MAX_CHARS {
            return Err(format!("must be at most {} characters", Self::MAX_CHARS));
        }
        Ok(Self(raw))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// An argon2id PHC string (the parameters and the hashing machinery are in
/// `crate::passwords`). Hashing is CPU-bound: call it off the async threads.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl PasswordHash {
    pub fn create(password: &Password) -> Self {
        Self(crate::passwords::hash(password.expose()))
    }

    pub fn from_stored(phc: String) -> Self {
        Self(phc)
    }

    /// Constant-time verification; a malformed stored hash never verifies.
    pub fn verify(&self, password: &Password) -> bool {
        crate::passwords::verify(password.expose(), &self.0)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(<redacted>)")
    }
}

text_value!(
    /// A display name: at most 80 characters as sent, not blank once trimmed, no
    /// control characters.
    DisplayName, 80, false, true, "Trimmed; no control characters."
);

/// What a user may do. Nobody registers as `Admin`: admins are created by the
/// `marketplace-admin` command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Customer,
    Farmer,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Customer => "customer",
            Role::Farmer => "farmer",
            Role::Admin => "admin",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "customer" => Some(Role::Customer),
            "farmer" => Some(Role::Farmer),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// A stored user account.
#[derive(Debug, Clone)]
pub struct User {
    pub id: UserId,
    pub email: Email,
    pub display_name: DisplayName,
    pub role: Role,
    pub password_hash: PasswordHash,
    pub created_at: OffsetDateTime,
    /// Set once the owner followed a verification (or password reset) link.
    pub email_verified: bool,
    /// Set by an admin: no sign-in, no refresh, products hidden.
    pub disabled: bool,
    /// Sessions started under an older epoch are revoked (bumped by a password
    /// change or reset and by disabling the account).
    pub session_epoch: i64,
    /// Bumped by every change; writes are conditional on it.
    pub version: i64,
}

impl User {
    /// A new, unverified, enabled account.
    pub fn new(
        email: Email,
        display_name: DisplayName,
        role: Role,
        password_hash: PasswordHash,
        created_at: OffsetDateTime,
    ) -> Self {
        Self {
            id: UserId::new(),
            email,
            display_name,
            role,
            password_hash,
            created_at,
            email_verified: false,
            disabled: false,
            session_epoch: 0,
            version: 1,
        }
    }

    /// Whether this account's products may appear in public: a verified,
    /// enabled farmer.
    pub fn sells_in_public(&self) -> bool {
        self.role == Role::Farmer && self.email_verified && !self.disabled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_is_lowercased_and_trimmed() {
        assert_eq!(Email::parse("  Ada@Example.COM ").unwrap().as_str(), "ada@example.com");
    }

    #[test]
    fn email_rejects_bad_shapes() {
        for bad in ["", "ada", "ada@", "@example.com", "ada@example", "ada@.com", "a da@example.com", "ada@exa..com"] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn password_length_rules() {
        assert!(Password::parse("short".into()).is_err());
        assert!(Password::parse("x".repeat(129)).is_err());
        assert!(Password::parse("long enough pass".into()).is_ok());
    }

    #[test]
    fn password_debug_is_redacted() {
        let password = Password::parse("correct horse battery".into()).unwrap();
        assert!(!format!("{password:?}").contains("horse"));
    }

    #[test]
    fn password_hash_verifies_only_the_right_password() {
        let password = Password::parse("correct horse battery".into()).unwrap();
        let hash = PasswordHash::create(&password);
        assert!(hash.as_str().starts_with("$argon2id$v=19$m=12288,t=3,p=1$"));
        assert!(hash.verify(&password));
        assert!(!hash.verify(&Password::parse("wrong horse battery".into()).unwrap()));
        assert!(!PasswordHash::from_stored("garbage".into()).verify(&password));
    }

    #[test]
    fn display_name_rules() {
        assert_eq!(DisplayName::parse("  Ada  ").unwrap().as_str(), "Ada");
        assert!(DisplayName::parse("   ").is_err());
        assert!(DisplayName::parse(&"x".repeat(81)).is_err());
        assert!(DisplayName::parse("a\u{0007}b").is_err());
    }
}
