//! Variants at the download URL: `GET /v1/image/download/{name}?w=400&format=webp` asks for the
//! stored image resized and re-encoded. The options take the short names the leading image
//! servers converged on (`w`, `h`, `fit`, `q`, `format`, `dpr`) or the processing parameters'
//! (`width`, `height`, `quality`), and are parsed once into a normalized `Variant`: sides are
//! multiplied by `dpr` and snapped up to the next of `SIDES` (at most the largest), so a client cannot make a
//! distinct render for every pixel, and two URLs asking the same thing are the same variant.
//! The canonical form names the variant in its `ETag` and its file name.

use std::collections::HashSet;

use crate::{
    http::error::ApiError,
    object_name::ImageFormat,
    processing::{Background, Fit, Op, Output, OutputFormat, Resize},
};

/// The sides (pixels) a variant's width and height snap up to: the steps `srcset` widths are
/// picked from, up to 4K.
pub(crate) const SIDES: [u32; 26] = [
    16, 32, 48, 64, 96, 128, 160, 200, 240, 320, 400, 480, 560, 640, 720, 800, 960, 1080, 1200, 1440, 1600, 1920, 2048,
    2560, 3200, 3840,
];

/// Each option with the names it may be given under.
const OPTIONS: [(&str, &[&str]); 6] = [
    ("w", &["w", "width"]),
    ("h", &["h", "height"]),
    ("fit", &["fit"]),
    ("q", &["q", "quality"]),
    ("format", &["format", "f"]),
    ("dpr", &["dpr"]),
];

/// A variant of a stored image, normalized: equal options make equal variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Variant {
    /// The width asked for, times `dpr`, snapped up to [`SIDES`].
    pub width: Option<u32>,
    /// The height asked for, times `dpr`, snapped up to [`SIDES`].
    pub height: Option<u32>,
    /// How the image meets a box of both sides (`contain` when absent).
    pub fit: Fit,
    /// 1–100 for JPEG and WebP; the encoder's default when absent.
    pub quality: Option<u8>,
    /// The output format; the source's when absent (PNG for an SVG).
    pub format: Option<OutputFormat>,
}

impl Variant {
    /// The variant a download's query asks for; `None` when it asks for none. Other parameters
    /// are ignored, as they always were on downloads (a signed URL's `expires` and `signature`,
    /// the cache busters clients add); a repeated option and a value out of range are refused
    /// (400), each named.
    pub(crate) fn from_query(query: Option<&str>) -> Result<Option<Variant>, ApiError> {
        let Some(query) = query else { return Ok(None) };
        let mut values: [Option<String>; OPTIONS.len()] = Default::default();
        let mut seen = HashSet::new();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            let Some(slot) = OPTIONS.iter().position(|(_, names)| names.contains(&key.as_ref())) else {
                continue;
            };
            if !seen.insert(slot) {
                return Err(ApiError::BadRequest(format!("`{}` is given twice", OPTIONS[slot].0)));
            }
            values[slot] = Some(value.into_owned());
        }
        if seen.is_empty() {
            return Ok(None);
        }
        let [w, h, fit, q, format, dpr] = values;
        let dpr = match dpr {
            None => 1.0,
            Some(v) => v
                .parse::<f64>()
                .ok()
                .filter(|d| (1.0..=4.0).contains(d))
                .ok_or_else(|| ApiError::BadRequest(format!("`dpr`: `{v}` is not a number from 1 to 4")))?,
        };
        let side = |name: &str, value: Option<String>| -> Result<Option<u32>, ApiError> {
            value
                .map(|v| {
                    let wanted = v
                        .parse::<u32>()
                        .ok()
                        .filter(|n| (1..=SIDES[SIDES.len() - 1]).contains(n));
                    let wanted = wanted.ok_or_else(|| {
                        ApiError::BadRequest(format!("`{name}`: `{v}` is not a whole number from 1 to 3840"))
                    })?;
                    Ok(snap((f64::from(wanted) * dpr).ceil()))
                })
                .transpose()
        };
        let quality = q
            .map(|v| {
                v.parse::<u8>()
                    .ok()
                    .filter(|q| (1..=100).contains(q))
                    .ok_or_else(|| ApiError::BadRequest(format!("`q`: `{v}` is not a whole number from 1 to 100")))
            })
            .transpose()?;
        Ok(Some(Variant {
            width: side("w", w)?,
            height: side("h", h)?,
            fit: fit
                .map_or(Ok(Fit::Contain), |f| Fit::parse(&f))
                .map_err(ApiError::from)?,
            quality,
            format: format
                .map(|f| OutputFormat::parse(&f))
                .transpose()
                .map_err(ApiError::from)?,
        }))
    }

    /// The one step a variant applies (a resize, or none when it only re-encodes).
    pub(crate) fn step(&self) -> Op {
        if self.width.is_none() && self.height.is_none() {
            return Op::Keep;
        }
        Op::Resize(Resize {
            width: self.width,
            height: self.height,
            fit: self.fit,
            enlarge: false,
            linear: false,
        })
    }

    /// How the variant of a `source` image is encoded.
    pub(crate) fn output(&self, source: ImageFormat) -> Output {
        Output {
            format: self.format.unwrap_or_else(|| OutputFormat::like(source)),
            quality: self.quality,
            background: Background::default(),
            keep_metadata: false,
            max_bytes: None,
        }
    }

    /// The variant's key: its canonical form and its format's extension (`w400-q80.webp`;
    /// `webp` for a re-encode only). A signed URL signs it; the file name ends with it.
    pub(crate) fn key(&self, source: ImageFormat) -> String {
        let extension = self.output(source).format.format().canonical_extension();
        match self.canonical(source).as_str() {
            "" => extension.to_owned(),
            canonical => format!("{canonical}.{extension}"),
        }
    }

    /// The canonical form of the variant of a `source` image, in a fixed order, the defaults
    /// and what does not change the result left out (`q` where the output is not lossy):
    /// `w400-h320-cover-q80` (the format is the file's extension). Empty for a re-encode only.
    pub(crate) fn canonical(&self, source: ImageFormat) -> String {
        let mut parts = Vec::new();
        if let Some(w) = self.width {
            parts.push(format!("w{w}"));
        }
        if let Some(h) = self.height {
            parts.push(format!("h{h}"));
        }
        if self.fit != Fit::Contain && (self.width.is_some() || self.height.is_some()) {
            parts.push(fit_name(self.fit).to_owned());
        }
        if let Some(q) = self.quality.filter(|_| self.output(source).format.is_lossy()) {
            parts.push(format!("q{q}"));
        }
        parts.join("-")
    }
}

/// The key of the variant `query` asks of `name` (`w400.webp`, what a signed URL signs), for
/// `image-gateway sign --variant`; `Ok(None)` when it asks for none, the reason when it is
/// refused.
pub fn key_of(name: &crate::object_name::ObjectName, query: &str) -> Result<Option<String>, String> {
    match Variant::from_query(Some(query)) {
        Ok(variant) => Ok(variant.map(|v| v.key(name.format()))),
        Err(e) => Err(e.to_string()),
    }
}

/// The smallest of [`SIDES`] at least `side`, and the largest above it (`dpr` may take a side
/// past it: the answer is the largest variant, as a CDN's would be).
fn snap(side: f64) -> u32 {
    let largest = SIDES[SIDES.len() - 1];
    SIDES.iter().copied().find(|&s| f64::from(s) >= side).unwrap_or(largest)
}

/// A fit's parameter value.
fn fit_name(fit: Fit) -> &'static str {
    match fit {
        Fit::Contain => "contain",
        Fit::Cover => "cover",
        Fit::Fill => "fill",
        Fit::Inside => "inside",
        Fit::Outside => "outside",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn variant(query: &str) -> Variant {
        Variant::from_query(Some(query)).unwrap().unwrap()
    }

    fn refused(query: &str) -> String {
        match Variant::from_query(Some(query)) {
            Err(ApiError::BadRequest(why)) => why,
            other => panic!("{query}: expected a 400, got {other:?}"),
        }
    }

    #[test]
    fn no_options_is_the_original() {
        assert_eq!(Variant::from_query(None).unwrap(), None);
        assert_eq!(Variant::from_query(Some("")).unwrap(), None);
        assert_eq!(Variant::from_query(Some("expires=1&signature=ab")).unwrap(), None);
        assert_eq!(
            Variant::from_query(Some("v=3&utm_source=x")).unwrap(),
            None,
            "cache busters"
        );
        assert_eq!(variant("w=400&v=3"), variant("w=400"));
    }

    #[test]
    fn sides_snap_up_to_the_next_bucket_after_dpr() {
        assert_eq!(variant("w=400").width, Some(400));
        assert_eq!(variant("w=401").width, Some(480));
        assert_eq!(variant("w=1").width, Some(16));
        assert_eq!(variant("w=200&dpr=2").width, Some(400));
        assert_eq!(variant("w=201&dpr=1.5").width, Some(320));
        assert_eq!(variant("h=3840").height, Some(3840));
        assert_eq!(variant("w=3000&dpr=2").width, Some(3840), "at most the largest side");
        assert_eq!(variant("h=1330&dpr=3.825").height, Some(3840));
        assert!(refused("w=0").contains("`w`"));
        assert!(refused("h=3841").contains("`h`"));
        assert!(refused("w=400&dpr=5").contains("`dpr`"));
        assert!(refused("w=400&dpr=0.5").contains("`dpr`"));
    }

    #[test]
    fn long_and_short_names_make_the_same_variant() {
        assert_eq!(
            variant("w=400&q=80&format=webp"),
            variant("width=400&quality=80&f=webp")
        );
        assert_eq!(variant("w=390"), variant("w=400"));
        assert!(refused("w=400&width=400").contains("twice"));
        assert!(refused("w=400&w=480").contains("twice"));
    }

    #[test]
    fn bad_values_are_named() {
        assert!(refused("q=0").contains("`q`"));
        assert!(refused("q=101").contains("`q`"));
        assert!(refused("format=svg").contains("`format`"));
        assert!(refused("fit=stretch").contains("stretch"));
    }

    #[test]
    fn the_canonical_form_leaves_defaults_out() {
        let jpeg = ImageFormat::Jpeg;
        assert_eq!(variant("w=400").canonical(jpeg), "w400");
        assert_eq!(variant("w=400&fit=contain").canonical(jpeg), "w400");
        assert_eq!(
            variant("h=300&w=400&fit=cover&q=80").canonical(jpeg),
            "w400-h320-cover-q80"
        );
        assert_eq!(variant("format=webp").canonical(jpeg), "");
        // A quality changes nothing in a PNG: the same variant with or without it.
        assert_eq!(variant("w=400&q=80").canonical(ImageFormat::Png), "w400");
        assert_eq!(variant("w=400&q=80&format=png").key(jpeg), "w400.png");
        assert_eq!(variant("format=webp").step(), Op::Keep);
    }

    #[test]
    fn the_key_names_the_options_and_the_format() {
        assert_eq!(variant("w=390&format=webp").key(ImageFormat::Png), "w400.webp");
        assert_eq!(variant("w=400").key(ImageFormat::Jpeg), "w400.jpg");
        assert_eq!(variant("format=png").key(ImageFormat::Jpeg), "png");
        assert_eq!(variant("w=400").key(ImageFormat::Svg), "w400.png");
    }

    #[test]
    fn the_output_keeps_the_source_format_unless_asked() {
        assert_eq!(
            variant("w=400").output(ImageFormat::Jpeg).format,
            OutputFormat::like(ImageFormat::Jpeg)
        );
        assert_eq!(
            variant("w=400").output(ImageFormat::Svg).format.format(),
            ImageFormat::Png
        );
        let webp = variant("w=400&format=webp&q=70").output(ImageFormat::Png);
        assert_eq!((webp.format.format(), webp.quality), (ImageFormat::Webp, Some(70)));
    }
}
