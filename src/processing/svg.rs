//! SVG input, rasterized by resvg (pure Rust). The document has already passed the upload's
//! allowlist (no scripts, no external references); here nothing is loaded either way: no
//! resource folder, no fonts (text is not drawn), and `<image>` resolves `data:` URLs only.
//! The first step's size is rendered directly — a vector has no pixels to shrink.
//!
//! SECURITY: a render cannot be interrupted from inside resvg, so its cost is bounded before it
//! starts and checked as it goes. Filters are what make a small document expensive
//! (`feTurbulence numOctaves="1e9"` is linear in its octaves, `feMorphology` and
//! `feConvolveMatrix` in their kernel's area): their work at the size asked for is estimated
//! from the parsed tree and a document over [`MAX_FILTER_WORK`] is refused (422) without
//! rendering. The top-level elements are then rendered one at a time, with the job's budget
//! checked between them.

use resvg::{tiny_skia, usvg};

use super::{
    budget::Budget,
    decoded::{Decoded, ShrinkHint},
    error::ProcessError,
};

/// SECURITY: the filter work a render may cost, in pixel visits weighted by what each visit
/// costs (see [`primitive_work`]). What it means in seconds on a machine is what the ignored
/// `calibrate` test below prints (not yet recorded for this one: a job over its time is stopped by
/// `processing.job_timeout` in any case). A blur or a colour matrix over a 50-megapixel canvas
/// stays well within it.
pub(crate) const MAX_FILTER_WORK: f64 = 4e9;

/// resvg lets a filter region reach 5 × 5 canvases (its `max_filter_bbox`).
const MAX_REGION_CANVASES: f64 = 25.0;

/// The document parsed with nothing to load.
fn parse(bytes: &[u8]) -> Result<(usvg::Tree, u32, u32), ProcessError> {
    let mut options = usvg::Options {
        resources_dir: None,
        ..usvg::Options::default()
    };
    options.image_href_resolver.resolve_string = Box::new(|_, _| None);
    let tree = usvg::Tree::from_data(bytes, &options).map_err(|e| ProcessError::Undecodable(e.to_string()))?;
    let size = tree.size();
    let side = |s: f32| (s.ceil() as u32).max(1);
    let (width, height) = (side(size.width()), side(size.height()));
    Ok((tree, width, height))
}

/// The document's own size in pixels (`extract/metadata`).
pub(super) fn size(bytes: &[u8]) -> Result<(u32, u32), ProcessError> {
    parse(bytes).map(|(_, w, h)| (w, h))
}

/// Renders `bytes` at the size `hint` asks for (or the document's own), within `max_pixels`
/// and the filter work bound, checking `budget` between top-level elements.
pub(super) fn rasterize(
    bytes: &[u8],
    max_pixels: u64,
    hint: ShrinkHint<'_>,
    budget: &Budget,
) -> Result<Decoded, ProcessError> {
    let (tree, width, height) = parse(bytes)?;
    let size = tree.size();
    let (w, h) = hint(width, height).unwrap_or((width, height));
    let pixels = u64::from(w) * u64::from(h);
    if pixels > max_pixels {
        return Err(ProcessError::TooLarge(format!(
            "the SVG would render at {w}×{h} = {pixels} pixels, over processing.max_input_pixels ({max_pixels}); \
             ask for a smaller size with thumbnail or resize"
        )));
    }
    let scale = tiny_skia::Transform::from_scale(w as f32 / size.width(), h as f32 / size.height());
    let work = filter_work(tree.root(), scale, pixels as f64);
    if work > MAX_FILTER_WORK {
        return Err(ProcessError::Unsupported(format!(
            "the SVG's filters would cost {work:.1e} pixel operations at {w}×{h}, over the limit of \
             {MAX_FILTER_WORK:.0e}; render it smaller, or lower feTurbulence's numOctaves, feMorphology's radius \
             or feConvolveMatrix's order"
        )));
    }
    let mut pixmap = tiny_skia::Pixmap::new(w, h).ok_or_else(|| ProcessError::Failed(format!("no {w}×{h} canvas")))?;
    for node in tree.root().children() {
        budget.check()?;
        // render_node draws a node into a pixmap of its own bounding box; translated back, it
        // draws in place, as resvg::render does for each of the root's children.
        if let Some(bbox) = node.abs_layer_bounding_box() {
            resvg::render_node(node, scale.pre_translate(bbox.x(), bbox.y()), &mut pixmap.as_mut());
        }
    }
    budget.check()?;
    let rgba: Vec<u8> = pixmap
        .pixels()
        .iter()
        .flat_map(|p| {
            let c = p.demultiply();
            [c.red(), c.green(), c.blue(), c.alpha()]
        })
        .collect();
    let image = image::RgbaImage::from_raw(w, h, rgba)
        .ok_or_else(|| ProcessError::Failed("the canvas has fewer pixels than its size".into()))?;
    let image = image::DynamicImage::ImageRgba8(image);
    Ok(Decoded {
        extent: super::decoded::Extent {
            full: (width, height),
            covered: super::decoded::whole(&image),
        },
        image,
        exif: None,
    })
}

/// The filter work of every filter applied under `group` (clip paths, masks, patterns and
/// filter images included), rendered with `canvas` (the scale to the output) on
/// `canvas_pixels`. Each application is counted: a filter used by 1,000 elements costs 1,000
/// times. Saturates rather than overflows.
fn filter_work(group: &usvg::Group, canvas: tiny_skia::Transform, canvas_pixels: f64) -> f64 {
    let ts = canvas.pre_concat(group.abs_transform());
    let mut work = 0.0;
    for filter in group.filters() {
        // The region resvg allocates: the filter's rectangle on the canvas, at most 25 canvases.
        let region = filter
            .rect()
            .transform(ts)
            .map_or(0.0, |r| f64::from(r.width()) * f64::from(r.height()))
            .min(canvas_pixels * MAX_REGION_CANVASES);
        for primitive in filter.primitives() {
            work += primitive_work(primitive.kind(), ts, region);
        }
    }
    for child in group.children() {
        if let usvg::Node::Group(sub) = child {
            work += filter_work(sub, canvas, canvas_pixels);
        }
        // What the child draws besides itself: its clip path, mask, pattern or filter image.
        child.subroots(|sub| work += filter_work(sub, canvas, canvas_pixels));
    }
    work
}

/// One primitive's work on `region` pixels under `ts`: pixel visits, weighted by the cost of a
/// visit relative to a plain copy (a turbulence octave computes four noise values).
fn primitive_work(kind: &usvg::filter::Kind, ts: tiny_skia::Transform, region: f64) -> f64 {
    use usvg::filter::Kind;
    let (sx, sy) = ts.get_scale();
    // resvg rounds a scaled radius and clamps it to the region.
    let side = region.sqrt();
    let kernel = |r: f32, scale: f32| (2.0 * (f64::from(r) * f64::from(scale)).round().min(side) + 1.0).max(1.0);
    match kind {
        Kind::Turbulence(fe) => region * f64::from(fe.num_octaves()).max(1.0) * 16.0,
        Kind::Morphology(fe) => region * kernel(fe.radius_x().get(), sx) * kernel(fe.radius_y().get(), sy),
        Kind::ConvolveMatrix(fe) => region * f64::from(fe.matrix().columns()) * f64::from(fe.matrix().rows()),
        Kind::DiffuseLighting(_) | Kind::SpecularLighting(_) => region * 16.0,
        Kind::GaussianBlur(_) | Kind::DropShadow(_) => region * 8.0,
        _ => region,
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    fn render(svg: &str, budget: &Budget) -> Result<Decoded, ProcessError> {
        rasterize(svg.as_bytes(), 50_000_000, &|_, _| None, budget)
    }

    fn minute() -> Budget {
        Budget::detached(Duration::from_secs(60))
    }

    fn filtered(primitive: &str) -> String {
        format!(
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="256" height="256"><filter id="f">{primitive}</filter><rect width="256" height="256" fill="red" filter="url(#f)"/></svg>"#
        )
    }

    #[test]
    fn costly_filters_are_refused_before_rendering() {
        let order = 300;
        let kernel = "1 ".repeat(order * order);
        let convolve = format!(r#"<feConvolveMatrix order="{order}" kernelMatrix="{kernel}"/>"#);
        for primitive in [
            r#"<feTurbulence baseFrequency="0.05" numOctaves="10000000000"/>"#,
            r#"<feTurbulence baseFrequency="0.05" numOctaves="100000"/>"#,
            r#"<feMorphology operator="dilate" radius="200"/>"#,
            &convolve,
        ] {
            let started = Instant::now();
            let refused = render(&filtered(primitive), &minute());
            let shown = &primitive[..primitive.len().min(60)];
            assert!(
                matches!(&refused, Err(ProcessError::Unsupported(why)) if why.contains("filters would cost")),
                "{shown}: {:?}",
                refused.as_ref().map(|d| d.image.width())
            );
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{shown} was rendered before refusal"
            );
        }
    }

    #[test]
    fn ordinary_filters_render() {
        for primitive in [
            r#"<feTurbulence baseFrequency="0.05" numOctaves="4"/>"#,
            r#"<feMorphology operator="dilate" radius="3"/>"#,
            r#"<feGaussianBlur stdDeviation="20"/>"#,
            r#"<feConvolveMatrix order="3" kernelMatrix="0 1 0 1 1 1 0 1 0"/>"#,
        ] {
            let decoded = render(&filtered(primitive), &minute()).unwrap();
            assert_eq!(decoded.image.width(), 256, "{primitive}");
        }
    }

    #[test]
    fn the_filter_work_grows_with_the_size_asked_for() {
        // Radius 40 at 256² is ordinary; the same document rendered at 4096² scales the radius too.
        let svg = filtered(r#"<feMorphology operator="dilate" radius="40"/>"#);
        assert!(render(&svg, &minute()).is_ok());
        let big = rasterize(svg.as_bytes(), 50_000_000, &|_, _| Some((4096, 4096)), &minute());
        assert!(
            matches!(big, Err(ProcessError::Unsupported(_))),
            "{:?}",
            big.map(|d| d.image.width())
        );
    }

    #[test]
    fn a_filter_used_by_many_elements_counts_each_use() {
        let rects: String = (0..64)
            .map(|_| r#"<rect width="256" height="256" filter="url(#f)"/>"#)
            .collect();
        let svg = format!(
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="256" height="256"><filter id="f"><feMorphology radius="10"/></filter>{rects}</svg>"#
        );
        let (tree, ..) = parse(svg.as_bytes()).unwrap();
        let one = filter_work(tree.root(), tiny_skia::Transform::identity(), 65536.0);
        let single = filtered(r#"<feMorphology radius="10"/>"#);
        let (tree, ..) = parse(single.as_bytes()).unwrap();
        let single = filter_work(tree.root(), tiny_skia::Transform::identity(), 65536.0);
        assert!(one >= 60.0 * single, "{one} vs {single}");
    }

    #[test]
    fn an_abandoned_render_stops_between_elements() {
        let (flag, guard) = Budget::guard();
        let budget = Budget::start(Duration::from_secs(60), flag);
        drop(guard);
        let svg = filtered("<feFlood/>");
        assert!(matches!(render(&svg, &budget), Err(ProcessError::Abandoned)));
    }

    /// Not a limit test: prints what MAX_FILTER_WORK means in time on this machine
    /// (`cargo test --release -- --ignored --nocapture calibrate`).
    #[test]
    #[ignore = "calibration, run by hand"]
    fn calibrate() {
        for primitive in [
            r#"<feTurbulence baseFrequency="0.05" numOctaves="100"/>"#,
            r#"<feMorphology radius="20"/>"#,
            r#"<feConvolveMatrix order="21" kernelMatrix="1"/>"#,
        ] {
            let svg = filtered(primitive);
            let (tree, ..) = parse(svg.as_bytes()).unwrap();
            let work = filter_work(tree.root(), tiny_skia::Transform::identity(), 65536.0);
            let started = Instant::now();
            render(&svg, &minute()).unwrap();
            let ns = started.elapsed().as_nanos() as f64;
            println!(
                "{primitive}: {work:.2e} work in {ns:.2e} ns: the limit is {:.1} s",
                MAX_FILTER_WORK * ns / work / 1e9
            );
        }
    }
}
