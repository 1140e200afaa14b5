//! Product categories: names, URL slugs and descriptions.

use serde::Deserialize;
use time::OffsetDateTime;

ulid_id! {
    /// A category's id (a ULID).
    CategoryId
}

text_value!(
    /// A category name: at most 60 characters as sent, not blank once trimmed, no
    /// control characters.
    CategoryName, 60, false, true, "Trimmed; no control characters."
);

/// A URL slug: 1 to 60 of `a-z`, `0-9` and single `-` between them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Slug(String);

domain_value!(Slug, String, |raw| Slug::parse(&raw), {
    let mut schema = super::string_schema("Lower-case letters, digits and single hyphens.", 1, Slug::MAX_CHARS);
    schema.pattern = Some(Slug::PATTERN.into());
    schema.examples = vec![serde_json::json!("leafy-greens")];
    schema
});

impl Slug {
    pub const MAX_CHARS: usize = 60;
    /// The rule of `parse`, as a regular expression for the API document.
    pub const PATTERN: &'static str = "^[a-z0-9]+(-[a-z0-9]+)*$";

    pub fn parse(raw: &str) -> Result<Self, String> {
        let ok = !raw.is_empty()
            && raw.len() <= Self::MAX_CHARS
            && raw.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !raw.starts_with('-')
            && !raw.ends_with('-')
            && !raw.contains("--");
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err("must be 1 to 60 lowercase letters, digits and single hyphens, like \"leafy-greens\"".into())
        }
    }

    /// Derives a slug from a name: ASCII letters and digits kept (lower-cased),
    /// every other run of characters becomes one hyphen.
    pub fn from_name(name: &CategoryName) -> Result<Self, String> {
        let mut slug = String::new();
        for c in name.as_str().chars() {
            if c.is_ascii_alphanumeric() {
                slug.push(c.to_ascii_lowercase());
            } else if !slug.is_empty() && !slug.ends_with('-') {
                slug.push('-');
            }
        }
        let slug: String = slug.trim_end_matches('-').chars().take(60).collect();
        Self::parse(slug.trim_end_matches('-'))
            .map_err(|_| "cannot derive a slug from the name; give one explicitly".to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A category description: at most 500 characters as sent.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct CategoryDescription(String);

domain_value!(
    CategoryDescription,
    String,
    |raw| CategoryDescription::parse(&raw),
    super::string_schema("Trimmed.", 0, CategoryDescription::MAX_CHARS)
);

impl CategoryDescription {
    pub const MAX_CHARS: usize = 500;

    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.chars().count() > Self::MAX_CHARS {
            return Err(format!("must be at most {} characters", Self::MAX_CHARS));
        }
        let text = raw.trim();
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A stored category.
#[derive(Debug, Clone)]
pub struct Category {
    pub id: CategoryId,
    pub name: CategoryName,
    pub slug: Slug,
    pub description: Option<CategoryDescription>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub version: i64,
    /// Listed products in this category, kept in the same transactions that list
    /// and unlist them, so a delete can check it atomically.
    pub product_count: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slug_rules() {
        assert!(Slug::parse("leafy-greens").is_ok());
        for bad in ["", "Leafy", "-a", "a-", "a--b", "a b", "é"] {
            assert!(Slug::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn slug_from_name() {
        let name = CategoryName::parse("  Fruit & Veg!! ").unwrap();
        assert_eq!(Slug::from_name(&name).unwrap().as_str(), "fruit-veg");
        assert!(Slug::from_name(&CategoryName::parse("éé").unwrap()).is_err());
    }
}
