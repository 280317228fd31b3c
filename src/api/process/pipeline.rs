//! `POST /v1/image/pipeline`: `{"source": "<object_name>", "steps": [{"op": "resize", …}, …],
//! "format": …, "quality": …}` — several steps on one decode and one encode, no intermediate
//! objects. Each step takes the parameters of the operation of its name, checked by the same
//! code as the query string's. A `pad` or `rotate` step takes its own `background` (what it
//! fills), and without one, the pipeline's (which is also what the encoder flattens alpha onto).

use std::collections::HashMap;

use serde_json::Value;

use super::params::{COMMON, Operation, Params};
use crate::{http::error::ApiError, processing::Op};

/// The most steps a pipeline may have (each is bounded by the pixel limits; this bounds their sum).
pub(crate) const MAX_STEPS: usize = 16;

/// The largest pipeline body accepted, in bytes.
pub(crate) const MAX_BODY: u64 = 64 * 1024;

/// A parsed pipeline: its top-level parameters (as a query's) and its steps.
pub(crate) struct Pipeline {
    /// `source`, `format`, `quality`, `background`, `keep_metadata`.
    pub params: Params,
    /// The image steps, in order.
    pub steps: Vec<Op>,
}

/// Parses a pipeline body; every mistake is a 400 naming where it is.
pub(crate) fn parse(body: &[u8]) -> Result<Pipeline, ApiError> {
    let bad = |why: String| ApiError::parameter(why);
    let json: Value = serde_json::from_slice(body).map_err(|e| bad(format!("the body is not JSON: {e}")))?;
    let Value::Object(mut top) = json else {
        return Err(bad("the body must be a JSON object with `source` and `steps`".into()));
    };
    let Some(Value::Array(steps)) = top.remove("steps") else {
        return Err(bad("`steps` is required: an array of {\"op\": …} objects".into()));
    };
    if steps.is_empty() || steps.len() > MAX_STEPS {
        return Err(bad(format!(
            "`steps` must hold 1 to {MAX_STEPS} steps, not {}",
            steps.len()
        )));
    }
    if !top.contains_key("source") {
        return Err(bad("`source` is required: the object_name of a stored image".into()));
    }
    let params = Params::checked(Operation::Pipeline, strings(top, "")?, &COMMON, "")?;
    let background = params.get("background").cloned();
    let steps = steps
        .into_iter()
        .enumerate()
        .map(|(i, step)| {
            let at = format!("steps[{i}]: ");
            let Value::Object(mut step) = step else {
                return Err(bad(format!(
                    "{at}a step is an object like {{\"op\": \"resize\", \"width\": 512}}"
                )));
            };
            let name = match step.remove("op") {
                Some(Value::String(name)) => name,
                _ => {
                    return Err(bad(format!(
                        "{at}`op` is required: the operation's name, e.g. \"resize\""
                    )));
                }
            };
            let operation = Operation::parse(&name).filter(|op| is_step(*op)).ok_or_else(|| {
                bad(format!(
                    "{at}`{name}` is not a pipeline step; steps are resize, thumbnail, crop, trim, pad, rotate, \
                         flip, filter/* and adjust/* (format and quality are the pipeline's own)"
                ))
            })?;
            let fills = matches!(operation, Operation::Pad | Operation::Rotate);
            let mut step = strings(step, &at)?;
            if fills && let Some(background) = &background {
                step.entry("background".into()).or_insert_with(|| background.clone());
            }
            let own: &[&str] = if fills { &["background"] } else { &[] };
            Params::checked(operation, step, own, &at)?
                .step(operation)
                .map_err(|e| match e {
                    ApiError::BadRequest(why) => bad(format!("{at}{why}")),
                    other => other,
                })
        })
        .collect::<Result<Vec<Op>, ApiError>>()?;
    Ok(Pipeline { params, steps })
}

/// Whether `operation` changes pixels (and so may be a step).
fn is_step(operation: Operation) -> bool {
    !matches!(
        operation,
        Operation::Convert
            | Operation::Compress
            | Operation::StripExif
            | Operation::ExtractMetadata
            | Operation::ExtractColors
            | Operation::Pipeline
    )
}

/// The values of a JSON object as parameter strings (strings, numbers, booleans).
fn strings(object: serde_json::Map<String, Value>, at: &str) -> Result<HashMap<String, String>, ApiError> {
    object
        .into_iter()
        .map(|(key, value)| {
            let text = match value {
                Value::String(s) => s,
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => {
                    return Err(ApiError::parameter(format!(
                        "{at}`{key}` must be a string, a number or a boolean"
                    )));
                }
            };
            Ok((key, text))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(body: &str) -> String {
        match parse(body.as_bytes()) {
            Err(ApiError::BadRequest(why)) => why.to_string(),
            Err(other) => panic!("{body}: not a 400: {other:?}"),
            Ok(_) => panic!("{body}: accepted"),
        }
    }

    #[test]
    fn steps_parse_like_queries() {
        let pipeline = parse(
            br#"{"source": "0123456789abcdef0123456789abcdef.png", "format": "webp", "quality": 70,
                 "steps": [{"op": "resize", "width": 100}, {"op": "filter/grayscale"}, {"op": "rotate", "angle": 90}]}"#,
        )
        .unwrap();
        assert_eq!(pipeline.steps.len(), 3);
        assert_eq!(pipeline.params.quality().unwrap(), Some(70));
        assert!(matches!(pipeline.steps[0], Op::Resize(r) if r.width == Some(100)));
    }

    #[test]
    fn mistakes_name_the_step_and_the_parameter() {
        let src = r#""source": "0123456789abcdef0123456789abcdef.png""#;
        assert!(error("[]").contains("JSON object"));
        assert!(error(&format!("{{{src}}}")).contains("`steps` is required"));
        assert!(error(&format!("{{{src}, \"steps\": []}}")).contains("1 to 16"));
        assert!(error(r#"{"steps": [{"op": "flip", "direction": "vertical"}]}"#).contains("`source` is required"));
        let step = |s: &str| {
            error(&format!(
                "{{{src}, \"steps\": [{{\"op\": \"flip\", \"direction\": \"vertical\"}}, {s}]}}"
            ))
        };
        assert!(step(r#"{"op": "resize", "width": 0}"#).starts_with("steps[1]: `width`"));
        assert!(step(r#"{"op": "resize", "colour": 1}"#).contains("steps[1]: unknown parameter(s) for resize: colour"));
        assert!(step(r#"{"op": "extract/colors"}"#).contains("not a pipeline step"));
        assert!(step(r#"{"op": "resize", "width": [1]}"#).contains("must be a string"));
        assert!(step(r#"{"width": 1}"#).contains("`op` is required"));
        assert!(step(r#"{"op": "resize", "quality": 50}"#).contains("unknown parameter"));
        assert!(error(&format!("{{{src}, \"steps\": [{{\"op\": \"trim\"}}], \"colour\": 1}}")).contains("colour"));
        assert!(
            step(r#"{"op": "resize", "width": 9, "background": "red"}"#).contains("unknown parameter(s) for resize")
        );
    }

    #[test]
    fn pad_and_rotate_steps_take_a_background_or_the_pipelines() {
        // The README's own example.
        let pipeline = parse(
            br##"{"source": "0123456789abcdef0123456789abcdef.png",
                 "steps": [{"op": "pad", "all": 8, "background": "#ffffff"}, {"op": "rotate", "angle": 10}]}"##,
        )
        .unwrap();
        let white = crate::processing::Background::parse("#ffffff").unwrap();
        assert!(
            matches!(pipeline.steps[0], Op::Pad(_, b) if b == white),
            "{:?}",
            pipeline.steps[0]
        );
        assert!(matches!(pipeline.steps[1], Op::RotateBy(_, b) if b == crate::processing::Background::default()));
        let inherited = parse(
            br##"{"source": "0123456789abcdef0123456789abcdef.png", "background": "#ff0000",
                 "steps": [{"op": "pad", "all": 8}, {"op": "rotate", "angle": 10, "background": "#ffffff"}]}"##,
        )
        .unwrap();
        let red = crate::processing::Background::parse("#ff0000").unwrap();
        assert!(
            matches!(inherited.steps[0], Op::Pad(_, b) if b == red),
            "{:?}",
            inherited.steps[0]
        );
        assert!(
            matches!(inherited.steps[1], Op::RotateBy(_, b) if b == white),
            "{:?}",
            inherited.steps[1]
        );
    }
}
