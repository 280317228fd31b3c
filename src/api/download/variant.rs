//! Variants at the download URL: `GET /v1/image/download/{name}?w=400&format=webp` asks for the
//! stored image resized and re-encoded. The options take the short names the leading image
//! servers converged on (`w`, `h`, `fit`, `q`, `format`, `dpr`) or the processing parameters'
//! (`width`, `height`, `quality`), or come from a named preset (`?preset=card`, `[variants]
//! presets`), and are parsed once into a normalized `Variant`: sides are multiplied by `dpr`
//! and snapped up to the next of `variants.sides` (at most the largest), so a client cannot
//! make a distinct render for every pixel, and two URLs asking the same thing are the same
//! variant.
//! `format=auto` is settled per request from `Accept` (`Variant::negotiate`). The canonical
//! form names the variant in its `ETag` and its file name.

use std::collections::{HashMap, HashSet};

use crate::{
    config::{DEFAULT_VARIANT_SIDES, VariantsAllowed, VariantsSettings},
    http::error::ApiError,
    object_name::ImageFormat,
    processing::{Background, Fit, Op, Output, OutputFormat, Resize},
};

/// The largest side a variant may have (`variants.sides` may not go past it).
const MAX_SIDE: u32 = 8192;

/// Each option with the names it may be given under.
const OPTIONS: [(&str, &[&str]); 6] = [
    ("w", &["w", "width"]),
    ("h", &["h", "height"]),
    ("fit", &["fit"]),
    ("q", &["q", "quality"]),
    ("format", &["format", "f"]),
    ("dpr", &["dpr"]),
];

/// The parameter naming a preset.
const PRESET: &str = "preset";

/// The options a query or a preset gives, as written, one slot per option of [`OPTIONS`].
#[derive(Debug, Clone, Default, PartialEq)]
struct Given([Option<String>; OPTIONS.len()]);

impl Given {
    /// The options `query` gives and the preset it names. Other parameters are ignored, as
    /// they always were on downloads (a signed URL's `expires` and `signature`, the cache
    /// busters clients add); an option given twice, under any of its names, is refused.
    fn from_query(query: &str) -> Result<(Given, Option<String>), ApiError> {
        let mut given = Given::default();
        let mut preset = None;
        let mut seen = HashSet::new();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            let slot = if key == PRESET {
                None
            } else {
                match OPTIONS.iter().position(|(_, names)| names.contains(&key.as_ref())) {
                    Some(slot) => Some(slot),
                    None => continue,
                }
            };
            if !seen.insert(slot) {
                let name = slot.map_or(PRESET, |slot| OPTIONS[slot].0);
                return Err(ApiError::parameter(format!("`{name}` is given twice")));
            }
            match slot {
                Some(slot) => given.0[slot] = Some(value.into_owned()),
                None => preset = Some(value.into_owned()),
            }
        }
        Ok((given, preset))
    }

    /// The first option given, by its short name.
    fn first(&self) -> Option<&'static str> {
        self.0.iter().position(Option::is_some).map(|slot| OPTIONS[slot].0)
    }

    /// These options over `base`'s: what is given here wins.
    fn over(self, base: &Given) -> Given {
        let mut merged = base.clone();
        for (slot, value) in self.0.into_iter().enumerate() {
            if value.is_some() {
                merged.0[slot] = value;
            }
        }
        merged
    }

    /// The variant these options make, its sides snapped up to `sides` (ascending); a value
    /// out of range is refused (400), named.
    fn parse(self, sides: &[u32]) -> Result<Variant, ApiError> {
        let largest = sides.last().copied().unwrap_or(MAX_SIDE);
        let [w, h, fit, q, format, dpr] = self.0;
        let dpr = match dpr {
            None => 1.0,
            Some(v) => v
                .parse::<f64>()
                .ok()
                .filter(|d| (1.0..=4.0).contains(d))
                .ok_or_else(|| ApiError::parameter(format!("`dpr`: `{v}` is not a number from 1 to 4")))?,
        };
        let side = |name: &str, value: Option<String>| -> Result<Option<u32>, ApiError> {
            value
                .map(|v| {
                    let wanted = v.parse::<u32>().ok().filter(|n| (1..=largest).contains(n));
                    let wanted = wanted.ok_or_else(|| {
                        ApiError::parameter(format!("`{name}`: `{v}` is not a whole number from 1 to {largest}"))
                    })?;
                    Ok(snap(sides, (f64::from(wanted) * dpr).ceil()))
                })
                .transpose()
        };
        let quality = q
            .map(|v| {
                v.parse::<u8>()
                    .ok()
                    .filter(|q| (1..=100).contains(q))
                    .ok_or_else(|| ApiError::parameter(format!("`q`: `{v}` is not a whole number from 1 to 100")))
            })
            .transpose()?;
        let format = match format.as_deref() {
            None => Format::Source,
            Some(v) if v.eq_ignore_ascii_case("auto") => Format::Auto,
            Some(v) => Format::Fixed(OutputFormat::parse(v).map_err(|_| {
                ApiError::parameter(format!(
                    "`format`: `{v}` is not one of auto, png, jpeg, webp, avif, gif, bmp, tiff"
                ))
            })?),
        };
        Ok(Variant {
            width: side("w", w)?,
            height: side("h", h)?,
            fit: fit
                .map_or(Ok(Fit::Contain), |f| Fit::parse(&f))
                .map_err(ApiError::from)?,
            quality,
            format,
        })
    }
}

/// What variants this server serves (`[variants]`): the sides they snap to, the named presets,
/// and whether only those.
#[derive(Debug)]
pub struct Rules {
    sides: Vec<u32>,
    presets: HashMap<String, Given>,
    presets_only: bool,
}

impl Default for Rules {
    /// The defaults of `[variants]`: every option, no preset.
    fn default() -> Rules {
        Rules {
            sides: DEFAULT_VARIANT_SIDES.to_vec(),
            presets: HashMap::new(),
            presets_only: false,
        }
    }
}

/// A `[variants]` setting that cannot be used, with its key.
#[derive(Debug, thiserror::Error)]
#[error("`variants.{key}`: {reason}")]
pub struct RulesError {
    key: String,
    reason: String,
}

impl Rules {
    /// The rules `[variants]` sets: the sides ascending within 1–8192, each preset a valid
    /// variant on its own (only variant options, each valid), and `allow = "presets"` with at
    /// least one preset.
    pub fn new(config: &VariantsSettings) -> Result<Rules, RulesError> {
        let sides = config.sides.clone();
        let ascending = sides.windows(2).all(|pair| pair[0] < pair[1]);
        if sides.is_empty() || !ascending || sides[0] == 0 || sides[sides.len() - 1] > MAX_SIDE {
            return Err(RulesError {
                key: "sides".to_owned(),
                reason: format!("needs one or more sides in ascending order, each from 1 to {MAX_SIDE}"),
            });
        }
        let mut presets = HashMap::new();
        for (name, options) in &config.presets {
            let refuse = |reason: String| RulesError {
                key: format!("presets.{name}"),
                reason,
            };
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(refuse("a preset's name is letters, digits, `-` and `_`".to_owned()));
            }
            let (given, preset) = Given::from_query(options).map_err(|e| refuse(e.to_string()))?;
            let known: usize = form_urlencoded::parse(options.as_bytes()).count();
            if preset.is_some() || known != given.0.iter().flatten().count() {
                return Err(refuse(format!(
                    "`{options}` holds something other than w, h, fit, q, format and dpr"
                )));
            }
            if given.first().is_none() {
                return Err(refuse("a preset needs at least one option".to_owned()));
            }
            given.clone().parse(&sides).map_err(|e| refuse(e.to_string()))?;
            presets.insert(name.clone(), given);
        }
        let presets_only = config.allow == VariantsAllowed::Presets;
        if presets_only && presets.is_empty() {
            return Err(RulesError {
                key: "allow".to_owned(),
                reason: "`presets` serves only named presets, and none is defined (`variants.presets`)".to_owned(),
            });
        }
        Ok(Rules {
            sides,
            presets,
            presets_only,
        })
    }

    /// The presets' names, sorted.
    pub(crate) fn preset_names(&self) -> impl Iterator<Item = &str> {
        let mut names: Vec<&str> = self.presets.keys().map(String::as_str).collect();
        names.sort_unstable();
        names.into_iter()
    }
}

/// The format a variant is encoded as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// The source's (PNG for an SVG).
    Source,
    /// The best the client names in `Accept`, settled per request ([`Variant::negotiate`]).
    Auto,
    /// The one asked for.
    Fixed(OutputFormat),
}

/// A variant of a stored image, normalized: equal options make equal variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Variant {
    /// The width asked for, times `dpr`, snapped up to `variants.sides`.
    pub width: Option<u32>,
    /// The height asked for, times `dpr`, snapped up to `variants.sides`.
    pub height: Option<u32>,
    /// How the image meets a box of both sides (`contain` when absent).
    pub fit: Fit,
    /// 1–100 for JPEG and WebP; the encoder's default when absent.
    pub quality: Option<u8>,
    /// The output format.
    pub format: Format,
}

impl Variant {
    /// The variant a download's query asks for under `rules`; `None` when it asks for none.
    /// A preset's options come first and those given beside it override them; a server that
    /// serves presets only refuses any other option (400), as it refuses an unknown preset.
    pub(crate) fn from_query(query: Option<&str>, rules: &Rules) -> Result<Option<Variant>, ApiError> {
        let Some(query) = query else { return Ok(None) };
        let (given, preset) = Given::from_query(query)?;
        let only_presets = |option: &str| {
            ApiError::parameter(format!(
                "`{option}`: this server serves named presets only (`{PRESET}=NAME`), with no other option"
            ))
        };
        let given = match preset {
            None => match given.first() {
                None => return Ok(None),
                Some(option) if rules.presets_only => return Err(only_presets(option)),
                Some(_) => given,
            },
            Some(name) => {
                let base = rules
                    .presets
                    .get(&name)
                    .ok_or_else(|| ApiError::parameter(format!("`{PRESET}`: no preset is named `{name}`")))?;
                if let Some(option) = given.first().filter(|_| rules.presets_only) {
                    return Err(only_presets(option));
                }
                given.over(base)
            }
        };
        given.parse(&rules.sides).map(Some)
    }

    /// The variant as rendered for a request that accepts `accept`: `format=auto` becomes AVIF
    /// when the client names `image/avif`, else WebP when it names `image/webp`, else the
    /// source's format (so the answer varies with `Accept`, [`Variant::varies`]); any other
    /// variant is itself.
    pub(crate) fn negotiate(self, accept: Option<&str>) -> Variant {
        match self.format {
            Format::Auto if accepts(accept, "image/avif") => Variant {
                format: Format::Fixed(OutputFormat::like(ImageFormat::Avif)),
                ..self
            },
            Format::Auto if accepts(accept, "image/webp") => Variant {
                format: Format::Fixed(OutputFormat::like(ImageFormat::Webp)),
                ..self
            },
            Format::Auto => Variant {
                format: Format::Source,
                ..self
            },
            _ => self,
        }
    }

    /// Whether the answer depends on the request's `Accept` (`format=auto`).
    pub(crate) fn varies(&self) -> bool {
        self.format == Format::Auto
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

    /// How the variant of a `source` image is encoded (`format=auto` is negotiated first:
    /// un-negotiated, it is the source's format).
    pub(crate) fn output(&self, source: ImageFormat) -> Output {
        Output {
            format: match self.format {
                Format::Fixed(format) => format,
                Format::Source | Format::Auto => OutputFormat::like(source),
            },
            quality: self.quality,
            background: Background::default(),
            keep_metadata: false,
            max_bytes: None,
        }
    }

    /// The variant's key: its canonical form and its format's extension (`w400-q80.webp`;
    /// `webp` for a re-encode only; `w400.auto` before negotiation). A signed URL signs it
    /// (one signature covers every format `auto` may become); the file name ends with it.
    pub(crate) fn key(&self, source: ImageFormat) -> String {
        let extension = match self.format {
            Format::Auto => "auto",
            _ => self.output(source).format.format().canonical_extension(),
        };
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
        let lossy = self.format == Format::Auto || self.output(source).format.is_lossy();
        if let Some(q) = self.quality.filter(|_| lossy) {
            parts.push(format!("q{q}"));
        }
        parts.join("-")
    }
}

/// The key of the variant `query` asks of `name` (`w400.webp`, what a signed URL signs), for
/// `image-gateway sign --variant`; `Ok(None)` when it asks for none, the reason when it is
/// refused.
pub fn key_of(name: &crate::object_name::ObjectName, query: &str, rules: &Rules) -> Result<Option<String>, String> {
    match Variant::from_query(Some(query), rules) {
        Ok(variant) => Ok(variant.map(|v| v.key(name.format()))),
        Err(e) => Err(e.to_string()),
    }
}

/// Whether an `Accept` header names `media_type` with a quality above zero. `image/*` and
/// `*/*` do not count: a client that names no format may not decode this one.
fn accepts(accept: Option<&str>, media_type: &str) -> bool {
    let Some(accept) = accept else { return false };
    accept.split(',').any(|range| {
        let mut parts = range.split(';');
        let named = parts.next().is_some_and(|t| t.trim().eq_ignore_ascii_case(media_type));
        named
            && parts.all(|param| match param.split_once('=') {
                Some((key, value)) if key.trim().eq_ignore_ascii_case("q") => {
                    value.trim().parse::<f32>().is_ok_and(|q| q > 0.0)
                }
                _ => true,
            })
    })
}

/// The smallest of `sides` (ascending) at least `side`, and the largest above it (`dpr` may
/// take a side past it: the answer is the largest variant, as a CDN's would be).
fn snap(sides: &[u32], side: f64) -> u32 {
    let largest = sides.last().copied().unwrap_or(MAX_SIDE);
    sides.iter().copied().find(|&s| f64::from(s) >= side).unwrap_or(largest)
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
        Variant::from_query(Some(query), &Rules::default()).unwrap().unwrap()
    }

    fn refused(query: &str) -> String {
        refused_by(query, &Rules::default())
    }

    fn refused_by(query: &str, rules: &Rules) -> String {
        match Variant::from_query(Some(query), rules) {
            Err(ApiError::BadRequest(why)) => why.to_string(),
            other => panic!("{query}: expected a 400, got {other:?}"),
        }
    }

    /// One side given is a resize (with its fit in the key); `sign --variant` prints that key;
    /// an `Accept` parameter other than `q` does not refuse its type.
    #[test]
    fn one_side_resizes_and_its_key_is_what_sign_prints() {
        for query in ["w=400", "h=300"] {
            assert!(matches!(variant(query).step(), Op::Resize(_)), "{query}");
        }
        assert_eq!(variant("w=400&fit=cover").key(ImageFormat::Png), "w400-cover.png");
        let name = crate::object_name::ObjectName::parse("0123456789abcdef0123456789abcdef.png").unwrap();
        assert_eq!(
            key_of(&name, "w=400&format=webp", &Rules::default()),
            Ok(Some("w400.webp".to_owned()))
        );
        assert_eq!(key_of(&name, "", &Rules::default()), Ok(None));
        assert!(accepts(Some("image/webp;level=0"), "image/webp"));
        assert!(!accepts(Some("image/webp;q=0"), "image/webp"));
    }

    fn rules(presets: &[(&str, &str)], allow: VariantsAllowed) -> Result<Rules, RulesError> {
        Rules::new(&VariantsSettings {
            presets: presets.iter().map(|(n, o)| (n.to_string(), o.to_string())).collect(),
            allow,
            ..VariantsSettings::default()
        })
    }

    #[test]
    fn no_options_is_the_original() {
        let none = |query| Variant::from_query(query, &Rules::default()).unwrap();
        assert_eq!(none(None), None);
        assert_eq!(none(Some("")), None);
        assert_eq!(none(Some("expires=1&signature=ab")), None);
        assert_eq!(none(Some("v=3&utm_source=x")), None, "cache busters");
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
        assert!(refused("format=svg").contains("auto"), "the message lists auto");
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

    #[test]
    fn auto_becomes_avif_or_webp_only_for_clients_that_name_them() {
        let auto = variant("w=400&format=auto");
        assert!(auto.varies());
        assert!(!variant("w=400&format=webp").varies());
        let webp = Format::Fixed(OutputFormat::like(ImageFormat::Webp));
        let avif = Format::Fixed(OutputFormat::like(ImageFormat::Avif));
        let chrome = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8";
        assert_eq!(auto.negotiate(Some(chrome)).format, avif);
        assert_eq!(auto.negotiate(Some("image/avif;q=0, image/webp")).format, webp);
        // Safari 14-15: WebP, no AVIF.
        let safari = "image/webp,image/png,image/svg+xml,image/*;q=0.8,video/*;q=0.8,*/*;q=0.5";
        assert_eq!(auto.negotiate(Some(safari)).format, webp);
        assert_eq!(auto.negotiate(Some("image/WebP;q=0.5")).format, webp);
        for accept in [
            None,
            Some("*/*"),
            Some("image/*"),
            Some("image/webp;q=0"),
            Some("image/webpx"),
        ] {
            assert_eq!(auto.negotiate(accept).format, Format::Source, "{accept:?}");
        }
        assert_eq!(variant("format=png").negotiate(Some(chrome)), variant("format=png"));
    }

    #[test]
    fn auto_signs_one_key_and_renders_one_per_format() {
        let jpeg = ImageFormat::Jpeg;
        let auto = variant("w=400&q=70&format=auto");
        assert_eq!(auto.key(jpeg), "w400-q70.auto", "q kept: auto may become lossy");
        assert_eq!(auto.negotiate(Some("image/webp")).key(jpeg), "w400-q70.webp");
        assert_eq!(auto.negotiate(None).key(jpeg), "w400-q70.jpg");
        assert_eq!(auto.negotiate(None).key(ImageFormat::Png), "w400.png");
        assert_eq!(variant("format=AUTO").key(jpeg), "auto");
    }

    #[test]
    fn presets_expand_and_options_beside_them_override() {
        let rules = rules(&[("card", "w=400&h=300&fit=cover&format=auto")], VariantsAllowed::Any).unwrap();
        let from = |query| Variant::from_query(Some(query), &rules).unwrap().unwrap();
        assert_eq!(from("preset=card"), variant("w=400&h=300&fit=cover&format=auto"));
        assert_eq!(from("preset=card&w=480"), variant("w=480&h=300&fit=cover&format=auto"));
        assert_eq!(from("preset=card&dpr=2"), variant("w=800&h=600&fit=cover&format=auto"));
        assert_eq!(from("w=100"), variant("w=100"), "free options still served");
        assert!(refused_by("preset=hero", &rules).contains("no preset is named `hero`"));
        assert!(refused_by("preset=card&preset=card", &rules).contains("twice"));
    }

    #[test]
    fn presets_only_refuses_everything_else() {
        let rules = rules(&[("card", "w=400")], VariantsAllowed::Presets).unwrap();
        let from = |query| Variant::from_query(Some(query), &rules);
        assert_eq!(from("preset=card").unwrap(), Some(variant("w=400")));
        assert_eq!(from("v=2").unwrap(), None, "the original stays served");
        assert!(refused_by("w=400", &rules).contains("presets only"));
        assert!(refused_by("preset=card&dpr=2", &rules).contains("`dpr`"));
    }

    #[test]
    fn sides_are_configurable_and_checked() {
        let config = |sides: &[u32]| VariantsSettings {
            sides: sides.to_vec(),
            ..VariantsSettings::default()
        };
        let rules = Rules::new(&config(&[100, 300, 600])).unwrap();
        let from = |query| Variant::from_query(Some(query), &rules).unwrap().unwrap().width;
        assert_eq!(
            (from("w=1"), from("w=101"), from("w=600")),
            (Some(100), Some(300), Some(600))
        );
        assert_eq!(from("w=400&dpr=2"), Some(600), "past the largest: the largest");
        assert!(refused_by("w=601", &rules).contains("from 1 to 600"));
        for bad in [vec![], vec![300, 100], vec![100, 100], vec![0, 10], vec![8193]] {
            let refused = Rules::new(&config(&bad)).unwrap_err().to_string();
            assert!(refused.starts_with("`variants.sides`"), "{bad:?}: {refused}");
        }
    }

    #[test]
    fn bad_presets_are_refused_at_start_with_their_key() {
        let refused = |presets: &[(&str, &str)], allow| rules(presets, allow).unwrap_err().to_string();
        assert!(refused(&[("card", "w=0")], VariantsAllowed::Any).starts_with("`variants.presets.card`: `w`"));
        assert!(refused(&[("card", "w=400&size=9")], VariantsAllowed::Any).contains("other than"));
        assert!(refused(&[("card", "preset=x")], VariantsAllowed::Any).contains("other than"));
        assert!(refused(&[("card", "")], VariantsAllowed::Any).contains("at least one"));
        assert!(refused(&[("a b", "w=1")], VariantsAllowed::Any).contains("name"));
        assert!(refused(&[], VariantsAllowed::Presets).starts_with("`variants.allow`"));
        assert!(rules(&[], VariantsAllowed::Any).is_ok());
    }
}
