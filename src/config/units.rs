//! Human-readable durations ("5s", "1m30s") and sizes ("25MiB", "512KB") for configuration.

use std::{fmt, str::FromStr, time::Duration};

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// A duration written as `humantime` text ("10s", "500ms") or as whole seconds.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct HumanDuration(pub Duration);

impl fmt::Debug for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(self.0).to_string())
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(DurationVisitor)
    }
}

struct DurationVisitor;

impl de::Visitor<'_> for DurationVisitor {
    type Value = HumanDuration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration such as \"5s\", \"500ms\" or \"2m\", or whole seconds")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(HumanDuration(Duration::from_secs(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        u64::try_from(v)
            .map(|v| HumanDuration(Duration::from_secs(v)))
            .map_err(|_| E::custom("a duration cannot be negative"))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        humantime::parse_duration(v.trim())
            .map(HumanDuration)
            .map_err(|e| E::custom(format!("`{v}` is not a duration ({e}); use e.g. \"5s\"")))
    }
}

/// A size that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    /// The unit is not one of B, k/KB, Ki/KiB, … TB, TiB (case-insensitive).
    #[error("`{0}` has an unknown size unit; use e.g. \"25MiB\"")]
    Unit(String),
    /// The part before the unit is not a number.
    #[error("`{0}` is not a size; use e.g. \"25MiB\"")]
    NotANumber(String),
    /// The size does not fit in 64 bits.
    #[error("`{0}` is out of range")]
    OutOfRange(String),
}

/// A byte count written as "25MiB", "512KB", "1GiB" or a plain integer of bytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl fmt::Debug for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(&str, u64); 4] = [("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
        for (unit, size) in UNITS {
            if self.0 >= size && self.0.is_multiple_of(size) {
                return write!(f, "{}{unit}", self.0 / size);
            }
        }
        write!(f, "{}B", self.0)
    }
}

impl FromStr for ByteSize {
    type Err = SizeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        let split = text
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(text.len());
        let (number, unit) = (text[..split].trim(), text[split..].trim());
        let multiplier: u64 = match unit.to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" => 1_000,
            "ki" | "kib" => 1 << 10,
            "m" | "mb" => 1_000_000,
            "mi" | "mib" => 1 << 20,
            "g" | "gb" => 1_000_000_000,
            "gi" | "gib" => 1 << 30,
            "t" | "tb" => 1_000_000_000_000,
            "ti" | "tib" => 1 << 40,
            _ => {
                return Err(SizeError::Unit(s.to_owned()));
            }
        };
        let value: f64 = number.parse().map_err(|_| SizeError::NotANumber(s.to_owned()))?;
        let bytes = value * multiplier as f64;
        if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
            return Err(SizeError::OutOfRange(s.to_owned()));
        }
        Ok(ByteSize(bytes.round() as u64))
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SizeVisitor)
    }
}

struct SizeVisitor;

impl de::Visitor<'_> for SizeVisitor {
    type Value = ByteSize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a size such as \"25MiB\" or a number of bytes")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(ByteSize(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        u64::try_from(v)
            .map(ByteSize)
            .map_err(|_| E::custom("a size cannot be negative"))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        v.parse().map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_print() {
        assert_eq!("25MiB".parse::<ByteSize>().unwrap(), ByteSize(25 << 20));
        assert_eq!("25 MB".parse::<ByteSize>().unwrap(), ByteSize(25_000_000));
        assert_eq!("1024".parse::<ByteSize>().unwrap(), ByteSize(1024));
        assert_eq!("1.5KiB".parse::<ByteSize>().unwrap(), ByteSize(1536));
        assert!("12 parsecs".parse::<ByteSize>().is_err());
        assert!("MiB".parse::<ByteSize>().is_err());
        assert_eq!(ByteSize(25 << 20).to_string(), "25MiB");
        assert_eq!(ByteSize(1000).to_string(), "1000B");
    }

    #[test]
    fn every_size_unit_parses_and_prints() {
        for (text, bytes) in [
            ("7", 7),
            ("7B", 7),
            ("7b", 7),
            ("2k", 2_000),
            ("2KB", 2_000),
            ("2Ki", 2_048),
            ("2KiB", 2_048),
            ("3M", 3_000_000),
            ("3mb", 3_000_000),
            ("3Mi", 3 << 20),
            ("4G", 4_000_000_000),
            ("4GB", 4_000_000_000),
            ("4Gi", 4 << 30),
            ("4GiB", 4 << 30),
            ("5T", 5_000_000_000_000),
            ("5TB", 5_000_000_000_000),
            ("5Ti", 5 << 40),
            ("5TiB", 5 << 40),
            (" 0.5 KiB ", 512),
            ("0.0004KB", 0),
            ("0.0006KB", 1),
        ] {
            assert_eq!(text.parse::<ByteSize>(), Ok(ByteSize(bytes)), "{text}");
        }
        for (bytes, text) in [
            (0, "0B"),
            (1023, "1023B"),
            (1024, "1KiB"),
            (1536, "1536B"),
            (3 << 20, "3MiB"),
            ((3 << 20) + 1024, "3073KiB"),
            (4 << 30, "4GiB"),
            (5 << 40, "5TiB"),
        ] {
            assert_eq!(ByteSize(bytes).to_string(), text);
            assert_eq!(format!("{:?}", ByteSize(bytes)), text, "Debug is Display");
            assert_eq!(text.parse::<ByteSize>(), Ok(ByteSize(bytes)), "prints what it parses");
        }
        for bad in ["-1", "1e3", "1..2KiB", "", "20000000TiB", "1 KiBs"] {
            assert!(bad.parse::<ByteSize>().is_err(), "{bad}");
        }
        // From configuration: numbers are bytes; negative numbers are refused.
        assert_eq!(serde_json::from_str::<ByteSize>("42").unwrap(), ByteSize(42));
        assert_eq!(serde_json::from_str::<ByteSize>("\"1KiB\"").unwrap(), ByteSize(1024));
        assert!(serde_json::from_str::<ByteSize>("-3").is_err());
        assert_eq!(serde_json::to_string(&ByteSize(2048)).unwrap(), "\"2KiB\"");
    }

    #[test]
    fn sizes_at_the_edge_of_u64_and_messages() {
        assert_eq!("18446744073709551615".parse::<ByteSize>(), Ok(ByteSize(u64::MAX)));
        assert!("18446744073709551616000".parse::<ByteSize>().is_err());
        assert!("9".repeat(400).parse::<ByteSize>().is_err(), "infinite as f64");
        let err = serde_json::from_str::<ByteSize>("true").unwrap_err().to_string();
        assert!(err.contains("a size such as \"25MiB\" or a number of bytes"), "{err}");
        let err = serde_json::from_str::<HumanDuration>("true").unwrap_err().to_string();
        assert!(err.contains("a duration"), "{err}");
        assert_eq!(format!("{:?}", HumanDuration(Duration::from_secs(90))), "1m 30s");
    }

    #[test]
    fn durations_parse() {
        let d: HumanDuration = serde_json::from_str("\"1m 30s\"").unwrap();
        assert_eq!(d.0, Duration::from_secs(90));
        let d: HumanDuration = serde_json::from_str("7").unwrap();
        assert_eq!(d.0, Duration::from_secs(7));
        assert!(serde_json::from_str::<HumanDuration>("\"soon\"").is_err());
        assert!(serde_json::from_str::<HumanDuration>("-1").is_err());
    }
}
