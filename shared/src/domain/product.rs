//! Products farmers list: names, prices in integer minor units, units of sale,
//! stock, harvest dates, and the images attached to them.

use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};

use super::{CategoryId, UserId};

ulid_id! {
    /// A product's id (a ULID, so ids sort by creation time).
    ProductId
}

ulid_id! {
    /// An image's id (a ULID), fixed when its upload ticket is issued.
    ImageId
}

text_value!(
    /// A product name: at most 120 characters as sent, not blank once trimmed, no
    /// control characters.
    ProductName, 120, false, true, "Trimmed; no control characters."
);

impl ProductName {
    /// The name's words, lower-cased: what a search `q` matches.
    pub fn words(&self) -> Vec<String> {
        search_words(&self.0)
    }
}

/// Splits text into lower-cased words of letters and digits.
pub fn search_words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect()
}

/// A product description: at most 2000 characters as sent (may be empty).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(try_from = "String")]
pub struct ProductDescription(String);

domain_value!(
    ProductDescription,
    String,
    |raw| ProductDescription::parse(&raw),
    super::string_schema(
        "Trimmed; line breaks and tabs are the only control characters allowed.",
        0,
        ProductDescription::MAX_CHARS
    )
);

impl ProductDescription {
    pub const MAX_CHARS: usize = 2000;

    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.chars().count() > Self::MAX_CHARS {
            return Err(format!("must be at most {} characters", Self::MAX_CHARS));
        }
        let text = raw.trim();
        if text.chars().any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t') {
            return Err("must not contain control characters other than line breaks and tabs".into());
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A price in integer minor units (cents): 1 to `MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "i64")]
pub struct Price(i64);

domain_value!(
    Price,
    i64,
    Price::parse,
    super::integer_schema("Price per `unit` in minor currency units (cents): 450 is 4.50.", 1, Price::MAX)
);

impl Price {
    /// 100 000.00 in major units.
    pub const MAX: i64 = 10_000_000;

    pub fn parse(raw: i64) -> Result<Self, String> {
        if (1..=Self::MAX).contains(&raw) {
            Ok(Self(raw))
        } else {
            Err(format!("must be an integer number of minor units (cents) from 1 to {}", Self::MAX))
        }
    }

    pub fn minor_units(self) -> i64 {
        self.0
    }
}

/// Units a product is sold in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum Unit {
    Kg,
    G,
    Piece,
    Bunch,
    Litre,
    Dozen,
}

domain_value!(
    Unit,
    String,
    |raw| Unit::parse(&raw),
    super::enum_schema("The unit `price` and `stock` count in.", Unit::ALL.map(Unit::as_str))
);

impl Unit {
    pub const ALL: [Unit; 6] = [Unit::Kg, Unit::G, Unit::Piece, Unit::Bunch, Unit::Litre, Unit::Dozen];

    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Kg => "kg",
            Unit::G => "g",
            Unit::Piece => "piece",
            Unit::Bunch => "bunch",
            Unit::Litre => "litre",
            Unit::Dozen => "dozen",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, String> {
        Self::ALL.into_iter().find(|u| u.as_str() == raw).ok_or_else(|| {
            let names: Vec<&str> = Self::ALL.iter().map(|u| u.as_str()).collect();
            format!("must be one of {}", names.join(", "))
        })
    }
}

/// Units in stock: 0 to `MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "i64")]
pub struct Stock(i64);

domain_value!(Stock, i64, Stock::parse, super::integer_schema("How many `unit`s are for sale.", 0, Stock::MAX));

impl Stock {
    pub const MAX: i64 = 1_000_000;

    pub fn parse(raw: i64) -> Result<Self, String> {
        if (0..=Self::MAX).contains(&raw) {
            Ok(Self(raw))
        } else {
            Err(format!("must be an integer from 0 to {}", Self::MAX))
        }
    }

    pub fn count(self) -> i64 {
        self.0
    }
}

/// A price bound of a browse filter: 0 to `Price::MAX` minor units, inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "i64")]
pub struct PriceBound(i64);

domain_value!(
    PriceBound,
    i64,
    PriceBound::parse,
    super::integer_schema("A price in minor currency units (cents), inclusive.", 0, Price::MAX)
);

impl PriceBound {
    pub fn parse(raw: i64) -> Result<Self, String> {
        if (0..=Price::MAX).contains(&raw) {
            Ok(Self(raw))
        } else {
            Err(format!("must be an integer number of minor units from 0 to {}", Price::MAX))
        }
    }

    pub fn minor_units(self) -> i64 {
        self.0
    }
}

/// Browse search text: at most 100 characters, matched as lower-cased words.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct SearchText(Vec<String>);

domain_value!(
    SearchText,
    String,
    |raw| SearchText::parse(&raw),
    super::string_schema(
        "Every word must appear as a whole word of the product name, ignoring case.",
        0,
        SearchText::MAX_CHARS
    )
);

impl SearchText {
    pub const MAX_CHARS: usize = 100;

    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.chars().count() > Self::MAX_CHARS {
            return Err(format!("must be at most {} characters", Self::MAX_CHARS));
        }
        Ok(Self(search_words(raw)))
    }

    pub fn into_words(self) -> Vec<String> {
        self.0
    }
}

/// Parses a harvest date `YYYY-MM-DD` between 2000-01-01 and a year from `today`.
pub fn parse_harvest_date(raw: &str, today: Date) -> Result<Date, String> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let date = Date::parse(raw, format).map_err(|_| "must be a date like 2026-06-30".to_owned())?;
    let earliest = time::macros::date!(2000 - 01 - 01);
    let latest = today.saturating_add(time::Duration::days(366));
    if date < earliest || date > latest {
        return Err("must be between 2000-01-01 and a year from today".into());
    }
    Ok(date)
}

/// Formats a date as `YYYY-MM-DD`.
pub fn format_date(date: Date) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    date.format(format).unwrap_or_default()
}

/// Image formats accepted for product photos.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    Jpeg,
    Png,
    WebP,
}

impl ImageFormat {
    pub const ALL: [ImageFormat; 3] = [ImageFormat::Jpeg, ImageFormat::Png, ImageFormat::WebP];
    /// Largest accepted upload: 5 MiB.
    pub const MAX_BYTES: u64 = 5 * 1024 * 1024;

    pub fn content_type(self) -> &'static str {
        match self {
            ImageFormat::Jpeg => "image/jpeg",
            ImageFormat::Png => "image/png",
            ImageFormat::WebP => "image/webp",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            ImageFormat::Jpeg => "jpg",
            ImageFormat::Png => "png",
            ImageFormat::WebP => "webp",
        }
    }

    /// The format of a MIME type (parameters and letter case ignored).
    pub fn from_content_type(raw: &str) -> Option<Self> {
        let essence = raw.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        Self::ALL.into_iter().find(|f| f.content_type() == essence)
    }

    /// The format the file's first bytes announce.
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(ImageFormat::Jpeg)
        } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(ImageFormat::Png)
        } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
            Some(ImageFormat::WebP)
        } else {
            None
        }
    }
}

/// An image attached to a product: the original and its thumbnail, both under
/// the public prefix with content-addressed (immutable) keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProductImage {
    pub id: ImageId,
    pub key: String,
    pub thumbnail_key: String,
    pub width: u32,
    pub height: u32,
    pub content_type: String,
}

/// Most images a product may carry.
pub const MAX_IMAGES_PER_PRODUCT: usize = 8;

/// Whether a product shows in browse and can be ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListingStatus {
    Listed,
    Unlisted,
}

impl ListingStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ListingStatus::Listed => "listed",
            ListingStatus::Unlisted => "unlisted",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "listed" => Some(ListingStatus::Listed),
            "unlisted" => Some(ListingStatus::Unlisted),
            _ => None,
        }
    }
}

/// A stored product.
#[derive(Debug, Clone)]
pub struct Product {
    pub id: ProductId,
    pub farmer_id: UserId,
    pub category_id: CategoryId,
    pub name: ProductName,
    pub description: ProductDescription,
    pub price: Price,
    pub unit: Unit,
    pub stock: Stock,
    pub harvest_date: Option<Date>,
    pub images: Vec<ProductImage>,
    pub status: ListingStatus,
    /// Set while its farmer may not sell in public (not verified, disabled, or
    /// no longer a farmer): a listed product then stays out of public browse
    /// and reads, but keeps its listing for when the farmer may sell again.
    pub farmer_hidden: bool,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub version: i64,
}

impl Product {
    pub fn is_listed(&self) -> bool {
        self.status == ListingStatus::Listed
    }

    /// Listed and shown in public (browse, reads).
    pub fn is_public(&self) -> bool {
        self.is_listed() && !self.farmer_hidden
    }

    /// Whether every word of `query_words` is a word of the name.
    pub fn name_has_words(&self, query_words: &[String]) -> bool {
        let words = self.name.words();
        query_words.iter().all(|q| words.contains(q))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_of_prices_stock_and_names() {
        assert!(Price::parse(0).is_err());
        assert!(Price::parse(-5).is_err());
        assert!(Price::parse(Price::MAX + 1).is_err());
        assert_eq!(Price::parse(250).unwrap().minor_units(), 250);
        assert!(Stock::parse(-1).is_err());
        assert!(Stock::parse(Stock::MAX + 1).is_err());
        assert!(Stock::parse(0).is_ok());
        assert!(ProductName::parse(&"x".repeat(10_000)).is_err());
        assert!(ProductName::parse("  ").is_err());
        assert!(ProductName::parse("a\u{0}b").is_err());
        assert!(Unit::parse("ton").is_err());
        assert_eq!(Unit::parse("litre").unwrap(), Unit::Litre);
    }

    #[test]
    fn search_words_ignore_case_and_punctuation() {
        let name = ProductName::parse("Heirloom Tomatoes (Cherry, 500g)").unwrap();
        assert_eq!(name.words(), ["heirloom", "tomatoes", "cherry", "500g"]);
        assert_eq!(search_words("  CHERRY-tomatoes "), ["cherry", "tomatoes"]);
    }

    #[test]
    fn image_formats_sniff_their_magic_bytes() {
        assert_eq!(ImageFormat::sniff(&[0xFF, 0xD8, 0xFF, 0xE0]), Some(ImageFormat::Jpeg));
        assert_eq!(ImageFormat::sniff(b"\x89PNG\r\n\x1a\n...."), Some(ImageFormat::Png));
        assert_eq!(ImageFormat::sniff(b"RIFF\0\0\0\0WEBPVP8 "), Some(ImageFormat::WebP));
        assert_eq!(ImageFormat::sniff(b"hello, I am text"), None);
        assert_eq!(ImageFormat::from_content_type("IMAGE/JPEG; q=1"), Some(ImageFormat::Jpeg));
        assert_eq!(ImageFormat::from_content_type("image/gif"), None);
    }

    #[test]
    fn harvest_dates_are_real_dates_in_a_sane_range() {
        let today = time::macros::date!(2026 - 11 - 26);
        assert!(parse_harvest_date("2026-11-20", today).is_ok());
        assert!(parse_harvest_date("2026-02-30", today).is_err());
        assert!(parse_harvest_date("1999-12-31", today).is_err());
        assert!(parse_harvest_date("2030-01-01", today).is_err());
        assert!(parse_harvest_date("yesterday", today).is_err());
    }
}
