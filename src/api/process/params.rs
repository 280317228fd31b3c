//! The operations served under `/v1/image/` and their parameters: each parameter checked and
//! named when wrong, unknown ones refused. A `pipeline` step is parsed by the same code.

use std::collections::HashMap;

use crate::{
    http::error::ApiError,
    processing::{Background, Crop, Fit, Flip, Op, OutputFormat, Padding, Resize, Rotation},
};

/// The operations served under `/v1/image/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    /// `resize`: `width`, `height`, `fit`, `maintain_aspect`, `enlarge`.
    Resize,
    /// `thumbnail`: fit within `width`×`height`, never enlarged; JPEGs shrink on load.
    Thumbnail,
    /// `convert`: `to_format` (or `format`).
    Convert,
    /// `compress`: `quality`, `max_bytes`.
    Compress,
    /// `strip-exif`: a re-encode without metadata.
    StripExif,
    /// `rotate`: `angle` (degrees clockwise), `background` for angles off the right angles.
    Rotate,
    /// `flip`: `direction`.
    Flip,
    /// `crop`: `mode` = `coordinates` (`x`, `y`, `width`, `height`), `square`, `smart`.
    Crop,
    /// `trim`: `threshold`.
    Trim,
    /// `pad`: `top`, `right`, `bottom`, `left` (or `all`), `background`.
    Pad,
    /// `filter/grayscale`.
    Grayscale,
    /// `filter/blur`: `sigma`.
    Blur,
    /// `filter/sharpen`: `sigma`, `amount` (strength), `threshold`.
    Sharpen,
    /// `filter/sepia`.
    Sepia,
    /// `adjust/brightness`: `value` (−255…255).
    Brightness,
    /// `adjust/contrast`: `value` (−100…100, percent).
    Contrast,
    /// `adjust/saturation`: `value` (0…4, a factor).
    Saturation,
    /// `extract/metadata`: format, size, alpha, frames, an EXIF summary with GPS flagged (JSON).
    ExtractMetadata,
    /// `extract/colors`: `count` dominant colours with their shares (JSON).
    ExtractColors,
    /// `pipeline`: a JSON body of steps, one decode and one encode.
    Pipeline,
}

/// Every operation with its path name, in the order the API description lists them.
const NAMES: [(Operation, &str); 20] = [
    (Operation::Resize, "resize"),
    (Operation::Thumbnail, "thumbnail"),
    (Operation::Convert, "convert"),
    (Operation::Compress, "compress"),
    (Operation::StripExif, "strip-exif"),
    (Operation::Rotate, "rotate"),
    (Operation::Flip, "flip"),
    (Operation::Crop, "crop"),
    (Operation::Trim, "trim"),
    (Operation::Pad, "pad"),
    (Operation::Grayscale, "filter/grayscale"),
    (Operation::Blur, "filter/blur"),
    (Operation::Sharpen, "filter/sharpen"),
    (Operation::Sepia, "filter/sepia"),
    (Operation::Brightness, "adjust/brightness"),
    (Operation::Contrast, "adjust/contrast"),
    (Operation::Saturation, "adjust/saturation"),
    (Operation::ExtractMetadata, "extract/metadata"),
    (Operation::ExtractColors, "extract/colors"),
    (Operation::Pipeline, "pipeline"),
];

/// Parameters every image-producing operation takes (about the input and the output).
pub(super) const COMMON: [&str; 5] = ["source", "format", "quality", "background", "keep_metadata"];

impl Operation {
    /// The operation named by the path after `/v1/image/`.
    pub(crate) fn parse(name: &str) -> Option<Operation> {
        NAMES.iter().find(|(_, n)| *n == name).map(|(op, _)| *op)
    }

    /// Its name, as in the path and the metrics.
    pub(crate) fn name(self) -> &'static str {
        NAMES.iter().find(|(op, _)| *op == self).map_or("unknown", |(_, n)| n)
    }

    /// The parameters of this operation besides [`COMMON`].
    pub(super) fn parameters(self) -> &'static [&'static str] {
        match self {
            Operation::Resize => &["width", "height", "fit", "maintain_aspect", "enlarge", "linear"],
            Operation::Thumbnail => &["width", "height", "linear"],
            Operation::Convert => &["to_format"],
            Operation::Compress => &["max_bytes"],
            Operation::StripExif
            | Operation::Grayscale
            | Operation::Sepia
            | Operation::ExtractMetadata
            | Operation::Pipeline => &[],
            Operation::Sharpen => &["sigma", "amount", "threshold"],
            Operation::Brightness | Operation::Contrast | Operation::Saturation => &["value"],
            Operation::ExtractColors => &["count"],
            Operation::Rotate => &["angle"],
            Operation::Flip => &["direction"],
            Operation::Crop => &["mode", "x", "y", "width", "height"],
            Operation::Trim => &["threshold"],
            Operation::Pad => &["top", "right", "bottom", "left", "all"],
            Operation::Blur => &["sigma"],
        }
    }
}

/// A request's parameters by name.
pub(crate) struct Params(pub(super) HashMap<String, String>);

impl Params {
    /// The query's parameters for `operation`; unknown ones are refused, naming them.
    pub(super) fn from_query(operation: Operation, query: Option<&str>) -> Result<Params, ApiError> {
        let params = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
        Params::checked(operation, params, &COMMON, "")
    }

    /// `params` with every name known to `operation` (or in `common`); `context` prefixes the
    /// error (e.g. `steps[2]: `).
    pub(super) fn checked(
        operation: Operation,
        params: HashMap<String, String>,
        common: &[&str],
        context: &str,
    ) -> Result<Params, ApiError> {
        let mut unknown: Vec<&str> = params
            .keys()
            .map(String::as_str)
            .filter(|k| !operation.parameters().contains(k) && !common.contains(k))
            .collect();
        if !unknown.is_empty() {
            unknown.sort_unstable();
            let known: Vec<&str> = operation.parameters().iter().chain(common).copied().collect();
            return Err(ApiError::parameter(format!(
                "{context}unknown parameter(s) for {}: {}; it takes {}",
                operation.name(),
                unknown.join(", "),
                if known.is_empty() {
                    "none".into()
                } else {
                    known.join(", ")
                }
            )));
        }
        Ok(Params(params))
    }

    pub(super) fn get(&self, key: &str) -> Option<&String> {
        self.0.get(key)
    }

    /// A whole number within `min..=max`, or `None` when absent.
    pub(super) fn whole(&self, key: &str, min: u64, max: u64) -> Result<Option<u64>, ApiError> {
        self.get(key)
            .map(|v| {
                v.parse::<u64>()
                    .ok()
                    .filter(|n| (min..=max).contains(n))
                    .ok_or_else(|| {
                        ApiError::parameter(format!("`{key}`: `{v}` is not a whole number from {min} to {max}"))
                    })
            })
            .transpose()
    }

    /// A side in pixels (1…65535), or `None` when absent.
    fn side(&self, key: &str) -> Result<Option<u32>, ApiError> {
        Ok(self.whole(key, 1, 65_535)?.map(|n| n as u32))
    }

    /// An offset or margin in pixels (0…65535), 0 when absent.
    fn offset(&self, key: &str) -> Result<u32, ApiError> {
        Ok(self.whole(key, 0, 65_535)?.unwrap_or(0) as u32)
    }

    /// A number within `min..=max`; `default` when absent, or required without one.
    fn decimal(&self, key: &str, min: f64, max: f64, default: Option<f64>) -> Result<f64, ApiError> {
        match (self.get(key), default) {
            (None, Some(default)) => Ok(default),
            (None, None) => Err(ApiError::parameter(format!("`{key}` is required"))),
            (Some(v), _) => v
                .parse::<f64>()
                .ok()
                .filter(|n| (min..=max).contains(n))
                .ok_or_else(|| ApiError::parameter(format!("`{key}`: `{v}` is not a number from {min} to {max}"))),
        }
    }

    /// `true`/`1` or `false`/`0`; `default` when absent.
    pub(super) fn flag(&self, key: &str, default: bool) -> Result<bool, ApiError> {
        match self.get(key).map(String::as_str) {
            None => Ok(default),
            Some("true" | "1") => Ok(true),
            Some("false" | "0") => Ok(false),
            Some(other) => Err(ApiError::parameter(format!("`{key}`: `{other}` is not true or false"))),
        }
    }

    /// `background`, transparent white when absent.
    pub(super) fn background(&self) -> Result<Background, ApiError> {
        self.get("background")
            .map_or(Ok(Background::default()), |v| Background::parse(v))
            .map_err(ApiError::from)
    }

    /// `quality` (1…100), if given.
    pub(super) fn quality(&self) -> Result<Option<u8>, ApiError> {
        Ok(self.whole("quality", 1, 100)?.map(|q| q as u8))
    }

    /// The output format asked for (`to_format` or `format`), if any.
    pub(super) fn format(&self) -> Result<Option<OutputFormat>, ApiError> {
        self.get("to_format")
            .or_else(|| self.get("format"))
            .map(|f| OutputFormat::parse(f).map_err(ApiError::from))
            .transpose()
    }

    /// The image step of `operation` (`Keep` for those that only re-encode or describe).
    pub(super) fn step(&self, operation: Operation) -> Result<Op, ApiError> {
        Ok(match operation {
            Operation::Resize => Op::Resize(self.resize()?),
            Operation::Thumbnail => {
                let (width, height) = (self.side("width")?, self.side("height")?);
                if width.is_none() && height.is_none() {
                    return Err(ApiError::parameter("`width` or `height` is required"));
                }
                Op::Resize(Resize {
                    width,
                    height,
                    fit: Fit::Inside,
                    enlarge: false,
                    linear: self.flag("linear", false)?,
                })
            }
            Operation::Convert => {
                if self.format()?.is_none() {
                    return Err(ApiError::parameter("`to_format` is required"));
                }
                Op::Keep
            }
            Operation::Rotate => Rotation::step(self.decimal("angle", -360.0, 360.0, None)?, self.background()?),
            Operation::Flip => {
                Op::Flip(Flip::parse(self.get("direction").map_or("", String::as_str)).map_err(ApiError::from)?)
            }
            Operation::Crop => Op::Crop(self.crop()?),
            Operation::Trim => Op::Trim(self.whole("threshold", 0, 255)?.unwrap_or(10) as u8),
            Operation::Pad => {
                let all = self.offset("all")?;
                let side = |key: &str| -> Result<u32, ApiError> {
                    Ok(if self.get(key).is_some() {
                        self.offset(key)?
                    } else {
                        all
                    })
                };
                let sides = Padding {
                    top: side("top")?,
                    right: side("right")?,
                    bottom: side("bottom")?,
                    left: side("left")?,
                };
                if sides == Padding::default() {
                    return Err(ApiError::parameter(
                        "`all` or one of `top`, `right`, `bottom`, `left` is required",
                    ));
                }
                Op::Pad(sides, self.background()?)
            }
            Operation::Grayscale => Op::Grayscale,
            Operation::Blur => Op::Blur(self.decimal("sigma", 0.1, 50.0, Some(2.0))? as f32),
            Operation::Sharpen => Op::Sharpen {
                sigma: self.decimal("sigma", 0.1, 10.0, Some(1.0))? as f32,
                amount: self.decimal("amount", 0.0, 10.0, Some(1.0))? as f32,
                threshold: self.whole("threshold", 0, 255)?.unwrap_or(0) as u8,
            },
            Operation::Sepia => Op::Sepia,
            Operation::Brightness => Op::Brightness(self.decimal("value", -255.0, 255.0, None)? as i32),
            Operation::Contrast => Op::Contrast(self.decimal("value", -100.0, 100.0, None)? as f32),
            Operation::Saturation => Op::Saturation(self.decimal("value", 0.0, 4.0, None)? as f32),
            Operation::Compress
            | Operation::StripExif
            | Operation::ExtractMetadata
            | Operation::ExtractColors
            | Operation::Pipeline => Op::Keep,
        })
    }

    fn resize(&self) -> Result<Resize, ApiError> {
        let mut fit = match self.get("fit") {
            Some(f) => Fit::parse(f).map_err(ApiError::from)?,
            None => Fit::Contain,
        };
        if !self.flag("maintain_aspect", true)? {
            fit = Fit::Fill;
        }
        Ok(Resize {
            width: self.side("width")?,
            height: self.side("height")?,
            fit,
            enlarge: self.flag("enlarge", false)?,
            linear: self.flag("linear", false)?,
        })
    }

    fn crop(&self) -> Result<Crop, ApiError> {
        let mode = self.get("mode").map_or("coordinates", String::as_str);
        Ok(match mode {
            "coordinates" => Crop::Rect {
                x: self.offset("x")?,
                y: self.offset("y")?,
                width: self
                    .side("width")?
                    .ok_or_else(|| ApiError::parameter("`width` is required"))?,
                height: self
                    .side("height")?
                    .ok_or_else(|| ApiError::parameter("`height` is required"))?,
            },
            "square" | "smart" if self.get("x").is_some() || self.get("y").is_some() => {
                return Err(ApiError::parameter(format!(
                    "`x` and `y` apply to mode=coordinates, not `{mode}`"
                )));
            }
            "square" if self.get("width").is_some() || self.get("height").is_some() => {
                return Err(ApiError::parameter(
                    "`width` and `height` do not apply to mode=square (the largest centred square); use mode=smart",
                ));
            }
            "square" => Crop::Square,
            "smart" => Crop::Smart {
                width: self.side("width")?,
                height: self.side("height")?,
            },
            other => {
                return Err(ApiError::parameter(format!(
                    "`mode`: `{other}` is not one of coordinates, square, smart"
                )));
            }
        })
    }
}
