//! Object names: the only form in which client input ever reaches storage.
//!
//! SECURITY: a storage key or file path is built from an [`ObjectName`] and nothing else.
//! The type can only be made by [`ObjectName::parse`] (or [`ObjectName::generate`]), which
//! accepts exactly 32 lowercase hex digits, a dot and a known lowercase extension, so no
//! separator, dot-segment, NUL or other surprise can reach a path or an S3 key.

use std::fmt;

/// Longest percent-encoded name we even try to decode; a valid one is at most 37 bytes.
const MAX_ENCODED_LEN: usize = 256;
const ID_LEN: usize = 32;

/// The path an object is served under: this prefix, then its name (signed URLs sign it).
pub const DOWNLOAD_PREFIX: &str = "/v1/image/download/";

/// What a valid object name looks like, for error messages.
pub const NAME_FORMAT: &str = "32 lowercase hex characters, a dot and one of the extensions \
png, jpg, jpeg, webp, gif, bmp, tiff, tif, svg (e.g. a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6.png)";

/// The image formats we serve, with the single content type each one is served as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ImageFormat {
    /// PNG (`.png`, `image/png`).
    Png,
    /// JPEG (`.jpg` or `.jpeg`, `image/jpeg`).
    Jpeg,
    /// WebP (`.webp`, `image/webp`).
    Webp,
    /// GIF (`.gif`, `image/gif`).
    Gif,
    /// BMP (`.bmp`, `image/bmp`).
    Bmp,
    /// TIFF (`.tiff` or `.tif`, `image/tiff`).
    Tiff,
    /// SVG (`.svg`, `image/svg+xml`).
    Svg,
    /// AVIF (`.avif`, `image/avif`): stored, served and made; not decoded as an input.
    Avif,
}

impl ImageFormat {
    /// Every format, in declaration order.
    pub const ALL: [ImageFormat; 8] = [
        Self::Png,
        Self::Jpeg,
        Self::Webp,
        Self::Gif,
        Self::Bmp,
        Self::Tiff,
        Self::Svg,
        Self::Avif,
    ];

    /// The format an extension (lowercase, without the dot) stands for.
    pub fn from_extension(ext: &str) -> Option<Self> {
        Some(match ext {
            "png" => Self::Png,
            "jpg" | "jpeg" => Self::Jpeg,
            "webp" => Self::Webp,
            "gif" => Self::Gif,
            "bmp" => Self::Bmp,
            "tiff" | "tif" => Self::Tiff,
            "svg" => Self::Svg,
            "avif" => Self::Avif,
            _ => return None,
        })
    }

    /// The format a `Content-Type` names (parameters and case ignored, common aliases accepted).
    pub fn from_content_type(value: &str) -> Option<Self> {
        let essence = value.split(';').next().unwrap_or("").trim();
        let essence = essence.to_ascii_lowercase();
        Some(match essence.as_str() {
            "image/png" => Self::Png,
            "image/jpeg" | "image/jpg" | "image/pjpeg" => Self::Jpeg,
            "image/webp" => Self::Webp,
            "image/gif" => Self::Gif,
            "image/bmp" | "image/x-bmp" | "image/x-ms-bmp" => Self::Bmp,
            "image/tiff" => Self::Tiff,
            "image/svg+xml" => Self::Svg,
            "image/avif" => Self::Avif,
            _ => return None,
        })
    }

    /// The `Content-Type` this format is served as.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Png => "image/png",
            Self::Jpeg => "image/jpeg",
            Self::Webp => "image/webp",
            Self::Gif => "image/gif",
            Self::Bmp => "image/bmp",
            Self::Tiff => "image/tiff",
            Self::Svg => "image/svg+xml",
            Self::Avif => "image/avif",
        }
    }

    /// The extension given to names we generate for this format.
    pub fn canonical_extension(self) -> &'static str {
        match self {
            Self::Png => "png",
            Self::Jpeg => "jpg",
            Self::Webp => "webp",
            Self::Gif => "gif",
            Self::Bmp => "bmp",
            Self::Tiff => "tiff",
            Self::Svg => "svg",
            Self::Avif => "avif",
        }
    }

    /// A short name for logs and messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Png => "PNG",
            Self::Jpeg => "JPEG",
            Self::Webp => "WebP",
            Self::Gif => "GIF",
            Self::Bmp => "BMP",
            Self::Tiff => "TIFF",
            Self::Svg => "SVG",
            Self::Avif => "AVIF",
        }
    }
}

/// Why a name was refused; each variant's message tells the client what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name is empty.
    #[error("the object name is empty")]
    Empty,
    /// The name, encoded or decoded, is longer than 256 bytes.
    #[error("the object name is too long")]
    TooLong,
    /// The percent-decoded segment is not UTF-8.
    #[error("the object name is not valid percent-encoded UTF-8")]
    BadEncoding,
    /// The name has no dot.
    #[error("the object name has no extension")]
    MissingExtension,
    /// The part before the dot is not 32 lowercase hex digits.
    #[error("the id must be exactly 32 lowercase hex characters")]
    BadId,
    /// The part after the dot is not a supported lowercase extension.
    #[error("the extension is not a supported lowercase image extension")]
    BadExtension,
}

/// A validated object name such as `a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6.png`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectName {
    name: String,
    format: ImageFormat,
}

impl ObjectName {
    /// Validates a path segment as sent by a client: percent-decoded exactly once, then checked.
    pub fn parse_encoded(segment: &str) -> Result<Self, NameError> {
        if segment.len() > MAX_ENCODED_LEN {
            return Err(NameError::TooLong);
        }
        let decoded = percent_encoding::percent_decode_str(segment)
            .decode_utf8()
            .map_err(|_| NameError::BadEncoding)?;
        Self::parse(&decoded)
    }

    /// Validates an already-decoded name (a stored key, a file name).
    pub fn parse(name: &str) -> Result<Self, NameError> {
        if name.is_empty() {
            return Err(NameError::Empty);
        }
        if name.len() > MAX_ENCODED_LEN {
            return Err(NameError::TooLong);
        }
        let (id, ext) = name.split_once('.').ok_or(NameError::MissingExtension)?;
        if id.len() != ID_LEN || !id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(NameError::BadId);
        }
        let format = ImageFormat::from_extension(ext).ok_or(NameError::BadExtension)?;
        Ok(Self {
            name: name.to_owned(),
            format,
        })
    }

    /// A fresh random name (UUID v4, simple form) for a stored image of `format`.
    pub fn generate(format: ImageFormat) -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        Self {
            name: format!("{id}.{}", format.canonical_extension()),
            format,
        }
    }

    /// The name itself, from which storage keys and file paths are made.
    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// The image format its extension stands for.
    pub fn format(&self) -> ImageFormat {
        self.format
    }
}

impl fmt::Display for ObjectName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl fmt::Debug for ObjectName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectName({})", self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6";

    #[test]
    fn accepts_every_extension() {
        for ext in ["png", "jpg", "jpeg", "webp", "gif", "bmp", "tiff", "tif", "svg"] {
            let name = ObjectName::parse(&format!("{ID}.{ext}")).unwrap();
            assert_eq!(name.as_str(), format!("{ID}.{ext}"));
        }
        assert_eq!(
            ObjectName::parse(&format!("{ID}.tif")).unwrap().format(),
            ImageFormat::Tiff
        );
    }

    #[test]
    fn refuses_bad_names() {
        let upper = format!("{}.png", ID.to_uppercase());
        let cases: Vec<(String, NameError)> = vec![
            (String::new(), NameError::Empty),
            (upper, NameError::BadId),
            (format!("{}.png", &ID[..31]), NameError::BadId),
            (format!("{ID}0.png"), NameError::BadId),
            (format!("{ID}.PNG"), NameError::BadExtension),
            (format!("{ID}.exe"), NameError::BadExtension),
            (format!("{ID}.png.png"), NameError::BadExtension),
            (format!("{ID}.png/"), NameError::BadExtension),
            (ID.to_string(), NameError::MissingExtension),
            ("../etc/passwd".into(), NameError::BadId),
            (format!("{ID}.png\0"), NameError::BadExtension),
            ("x".repeat(8192), NameError::TooLong),
        ];
        for (input, want) in cases {
            assert_eq!(ObjectName::parse(&input).unwrap_err(), want, "{input:?}");
        }
    }

    /// 256 bytes is the longest name looked at, encoded or not; one more is refused unread.
    #[test]
    fn the_length_limit_is_inclusive() {
        let at_limit = "a".repeat(MAX_ENCODED_LEN);
        let over = "a".repeat(MAX_ENCODED_LEN + 1);
        assert_eq!(ObjectName::parse(&at_limit).unwrap_err(), NameError::MissingExtension);
        assert_eq!(ObjectName::parse(&over).unwrap_err(), NameError::TooLong);
        assert_eq!(
            ObjectName::parse_encoded(&at_limit).unwrap_err(),
            NameError::MissingExtension
        );
        assert_eq!(ObjectName::parse_encoded(&over).unwrap_err(), NameError::TooLong);
        // The encoded form is what counts: 86 × "%61" is 258 bytes, though it decodes to 86.
        assert_eq!(
            ObjectName::parse_encoded(&"%61".repeat(86)).unwrap_err(),
            NameError::TooLong
        );
    }

    #[test]
    fn debug_and_display() {
        let name = ObjectName::parse(&format!("{ID}.png")).unwrap();
        assert_eq!(format!("{name:?}"), format!("ObjectName({ID}.png)"));
        assert_eq!(name.to_string(), format!("{ID}.png"));
    }

    #[test]
    fn format_names_for_messages() {
        let names: Vec<_> = ImageFormat::ALL.iter().map(|f| f.name()).collect();
        assert_eq!(names, ["PNG", "JPEG", "WebP", "GIF", "BMP", "TIFF", "SVG", "AVIF"]);
    }

    #[test]
    fn decodes_exactly_once() {
        // %61 is 'a': one decode gives a valid name.
        let encoded = format!("%61{}.png", &ID[1..]);
        assert_eq!(
            ObjectName::parse_encoded(&encoded).unwrap().as_str(),
            format!("{ID}.png")
        );
        // %2561 decodes once to %61, which is not hex: a second decode never happens.
        let double = format!("%2561{}.png", &ID[1..]);
        assert_eq!(ObjectName::parse_encoded(&double).unwrap_err(), NameError::BadId);
        assert_eq!(ObjectName::parse_encoded("%2e%2e%2f").unwrap_err(), NameError::BadId);
        assert_eq!(
            ObjectName::parse_encoded("%ff.png").unwrap_err(),
            NameError::BadEncoding
        );
        assert_eq!(
            ObjectName::parse_encoded(&format!("{ID}%2Epng")).unwrap().format(),
            ImageFormat::Png
        );
    }

    #[test]
    fn generated_names_parse() {
        for format in ImageFormat::ALL {
            let name = ObjectName::generate(format);
            assert_eq!(ObjectName::parse(name.as_str()).unwrap(), name);
            assert_eq!(name.format(), format);
        }
    }

    #[test]
    fn content_types_round_trip() {
        for format in ImageFormat::ALL {
            assert_eq!(ImageFormat::from_content_type(format.content_type()), Some(format));
        }
        assert_eq!(
            ImageFormat::from_content_type("IMAGE/PNG; charset=binary"),
            Some(ImageFormat::Png)
        );
        assert_eq!(ImageFormat::from_content_type("text/html"), None);
    }
}
