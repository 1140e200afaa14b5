//! A farmer's public farm profile: farm name, description, town and region,
//! optional coordinates, pickup and delivery notes. Coordinates are kept in
//! whole microdegrees (the store holds integers only; a microdegree is about
//! 11 cm).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

text_value!(
    /// The farm's name.
    FarmName, 100, false, true, "Trimmed; no control characters."
);
text_value!(
    /// A short text about the farm.
    FarmDescription, 2000, true, false, "Trimmed; line breaks allowed."
);
text_value!(
    /// A town or a region.
    Place, 100, false, true, "Trimmed; no control characters."
);
text_value!(
    /// How pickup or delivery works.
    FarmNote, 500, true, false, "Trimmed; line breaks allowed."
);

/// A point on the map (WGS 84 degrees).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize, ToSchema)]
#[serde(try_from = "RawCoordinates")]
pub struct Coordinates {
    #[schema(minimum = -90.0, maximum = 90.0)]
    pub latitude: f64,
    #[schema(minimum = -180.0, maximum = 180.0)]
    pub longitude: f64,
}

#[derive(Deserialize)]
struct RawCoordinates {
    latitude: f64,
    longitude: f64,
}

impl TryFrom<RawCoordinates> for Coordinates {
    type Error = String;

    fn try_from(raw: RawCoordinates) -> Result<Self, String> {
        Coordinates { latitude: raw.latitude, longitude: raw.longitude }.check()
    }
}

impl Coordinates {
    /// In range and finite.
    pub fn check(self) -> Result<Self, String> {
        let ok = self.latitude.is_finite()
            && self.longitude.is_finite()
            && (-90.0..=90.0).contains(&self.latitude)
            && (-180.0..=180.0).contains(&self.longitude);
        ok.then_some(self).ok_or_else(|| "latitude must be within -90..90 and longitude within -180..180".into())
    }

    /// Whole microdegrees, as stored.
    pub fn to_micro(self) -> (i64, i64) {
        ((self.latitude * 1e6).round() as i64, (self.longitude * 1e6).round() as i64)
    }

    pub fn from_micro(latitude: i64, longitude: i64) -> Self {
        Self { latitude: latitude as f64 / 1e6, longitude: longitude as f64 / 1e6 }
    }
}

/// A farm profile as stored and shown.
#[derive(Debug, Clone, PartialEq)]
pub struct FarmProfile {
    pub farm_name: FarmName,
    pub description: FarmDescription,
    pub town: Place,
    pub region: Place,
    pub coordinates: Option<Coordinates>,
    pub pickup_notes: FarmNote,
    /// Whether the farm delivers (checkout offers delivery only then).
    pub offers_delivery: bool,
    pub delivery_notes: FarmNote,
}

/// A region as compared by the `region` filter: trimmed, lower-cased, `#`
/// replaced (it separates index key parts).
pub fn region_key(region: &str) -> String {
    region.trim().to_lowercase().replace('#', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_trimmed_and_bounded() {
        assert_eq!(FarmName::parse("  Green Acres ").unwrap().as_str(), "Green Acres");
        assert!(FarmName::parse("   ").is_err());
        assert!(FarmName::parse(&"x".repeat(101)).is_err());
        assert!(FarmName::parse("a\nb").is_err());
        assert_eq!(FarmDescription::parse("line\nline").unwrap().as_str(), "line\nline");
        assert_eq!(FarmNote::parse("").unwrap().as_str(), "");
    }

    #[test]
    fn coordinates_round_trip_in_microdegrees() {
        let point = Coordinates { latitude: 48.856613, longitude: 2.352222 }.check().unwrap();
        let (lat, lon) = point.to_micro();
        assert_eq!(Coordinates::from_micro(lat, lon), point);
        assert!(Coordinates { latitude: 91.0, longitude: 0.0 }.check().is_err());
        assert!(Coordinates { latitude: f64::NAN, longitude: 0.0 }.check().is_err());
    }

    #[test]
    fn region_keys_ignore_case_and_space() {
        assert_eq!(region_key("  Île-de-France "), "île-de-france");
        assert_eq!(region_key("A#B"), "a b");
    }
}
