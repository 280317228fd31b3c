//! SVG uploads: well-formed UTF-8 XML, an `<svg>` root, and only what is on an allowlist.
//!
//! SECURITY: an SVG is accepted only when every element is an allowed SVG element (or sits in a
//! metadata namespace editors write: RDF, Dublin Core, Creative Commons, Inkscape, Sodipodi,
//! Adobe), every attribute is an allowed SVG attribute (presentation, geometry, gradients,
//! filters, animation, `id`/`class`/`style`, `data-*`, `aria-*`), every reference (`href`,
//! `url()`) is a local `#fragment` or an embedded PNG/JPEG/GIF/WebP `data:` image of at most
//! 2 MiB, and CSS — after its escapes and comments are resolved — imports and loads nothing.
//! A DTD is accepted only without entity declarations, and with no external identifier but the
//! W3C's own SVG ones (editors write `<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" …>`; a
//! `SYSTEM "http://…"` identifier names something to fetch).
//! `<use>` copies and attributes are bounded. The first construct off the list is named in the
//! 415. We reject rather than rewrite: the bytes stored are exactly the bytes received, and a
//! stored SVG is inert when served from any origin, without our CSP (which stays, in depth).

use roxmltree::{Document, Node, NodeId, NodeType, ParsingOptions};

/// SECURITY: an upper bound on XML nodes, so a pathological SVG cannot exhaust memory.
const MAX_NODES: u32 = 1_000_000;

/// SECURITY: the XML parser checks each attribute against the earlier ones of its element
/// (quadratic in attributes per element), so attributes are bounded before it runs, per element
/// and in all: the parse then costs at most about `MAX_ATTRIBUTES_PER_ELEMENT × MAX_ATTRIBUTES`
/// comparisons (~25 M, tens of milliseconds), however the 25 MiB are arranged.
const MAX_ATTRIBUTES_PER_ELEMENT: usize = 256;
const MAX_ATTRIBUTES: usize = 100_000;

/// SECURITY: elements that `<use>` references copy into the rendering, at most (beyond the
/// document's own elements, which `MAX_NODES` bounds).
const MAX_USE_COPIES: u64 = 20_000;

const SVG_NS: &str = "http://www.w3.org/2000/svg";

/// SVG elements accepted (SVG 1.1 and 2, static and animated; no script, no embedding, no
/// fonts or cursors that load, no `foreignObject`).
const SVG_ELEMENTS: &[&str] = &[
    "a",
    "animate",
    "animateMotion",
    "animateTransform",
    "circle",
    "clipPath",
    "defs",
    "desc",
    "ellipse",
    "feBlend",
    "feColorMatrix",
    "feComponentTransfer",
    "feComposite",
    "feConvolveMatrix",
    "feDiffuseLighting",
    "feDisplacementMap",
    "feDistantLight",
    "feDropShadow",
    "feFlood",
    "feFuncA",
    "feFuncB",
    "feFuncG",
    "feFuncR",
    "feGaussianBlur",
    "feImage",
    "feMerge",
    "feMergeNode",
    "feMorphology",
    "feOffset",
    "fePointLight",
    "feSpecularLighting",
    "feSpotLight",
    "feTile",
    "feTurbulence",
    "filter",
    "g",
    "image",
    "line",
    "linearGradient",
    "marker",
    "mask",
    "metadata",
    "mpath",
    "path",
    "pattern",
    "polygon",
    "polyline",
    "radialGradient",
    "rect",
    "set",
    "stop",
    "style",
    "svg",
    "switch",
    "symbol",
    "text",
    "textPath",
    "title",
    "tspan",
    "use",
    "view",
];

/// Attributes without a namespace accepted on SVG elements (besides `data-*` and `aria-*`).
const SVG_ATTRIBUTES: &[&str] = &[
    // Core, styling, conditional processing.
    "id",
    "class",
    "style",
    "lang",
    "tabindex",
    "role",
    "focusable",
    "version",
    "baseProfile",
    "requiredFeatures",
    "requiredExtensions",
    "systemLanguage",
    "zoomAndPan",
    "href",
    // Presentation.
    "alignment-baseline",
    "baseline-shift",
    "clip",
    "clip-path",
    "clip-rule",
    "color",
    "color-interpolation",
    "color-interpolation-filters",
    "color-rendering",
    "direction",
    "display",
    "dominant-baseline",
    "enable-background",
    "fill",
    "fill-opacity",
    "fill-rule",
    "filter",
    "flood-color",
    "flood-opacity",
    "font",
    "font-family",
    "font-size",
    "font-size-adjust",
    "font-stretch",
    "font-style",
    "font-variant",
    "font-weight",
    "glyph-orientation-horizontal",
    "glyph-orientation-vertical",
    "image-rendering",
    "isolation",
    "kerning",
    "letter-spacing",
    "lighting-color",
    "marker",
    "marker-end",
    "marker-mid",
    "marker-start",
    "mask",
    "mask-type",
    "mix-blend-mode",
    "opacity",
    "overflow",
    "paint-order",
    "pointer-events",
    "shape-rendering",
    "stop-color",
    "stop-opacity",
    "stroke",
    "stroke-dasharray",
    "stroke-dashoffset",
    "stroke-linecap",
    "stroke-linejoin",
    "stroke-miterlimit",
    "stroke-opacity",
    "stroke-width",
    "text-anchor",
    "text-decoration",
    "text-rendering",
    "transform",
    "transform-origin",
    "unicode-bidi",
    "vector-effect",
    "visibility",
    "white-space",
    "word-spacing",
    "writing-mode",
    // Geometry and coordinate systems.
    "x",
    "y",
    "x1",
    "y1",
    "x2",
    "y2",
    "cx",
    "cy",
    "r",
    "rx",
    "ry",
    "fx",
    "fy",
    "fr",
    "width",
    "height",
    "d",
    "points",
    "pathLength",
    "viewBox",
    "preserveAspectRatio",
    // Gradients, patterns, clipping, masking, markers.
    "gradientUnits",
    "gradientTransform",
    "spreadMethod",
    "offset",
    "patternUnits",
    "patternContentUnits",
    "patternTransform",
    "clipPathUnits",
    "maskUnits",
    "maskContentUnits",
    "markerUnits",
    "markerWidth",
    "markerHeight",
    "refX",
    "refY",
    "orient",
    // Text.
    "dx",
    "dy",
    "rotate",
    "textLength",
    "lengthAdjust",
    "startOffset",
    "method",
    "spacing",
    "side",
    // Filters.
    "filterUnits",
    "primitiveUnits",
    "filterRes",
    "in",
    "in2",
    "result",
    "stdDeviation",
    "mode",
    "operator",
    "k1",
    "k2",
    "k3",
    "k4",
    "values",
    "type",
    "tableValues",
    "slope",
    "intercept",
    "amplitude",
    "exponent",
    "kernelMatrix",
    "order",
    "divisor",
    "bias",
    "targetX",
    "targetY",
    "edgeMode",
    "preserveAlpha",
    "kernelUnitLength",
    "surfaceScale",
    "diffuseConstant",
    "specularConstant",
    "specularExponent",
    "azimuth",
    "elevation",
    "z",
    "pointsAtX",
    "pointsAtY",
    "pointsAtZ",
    "limitingConeAngle",
    "scale",
    "xChannelSelector",
    "yChannelSelector",
    "radius",
    "baseFrequency",
    "numOctaves",
    "seed",
    "stitchTiles",
    // Animation (the target attribute is checked on its own).
    "attributeName",
    "attributeType",
    "begin",
    "dur",
    "end",
    "min",
    "max",
    "restart",
    "repeatCount",
    "repeatDur",
    "calcMode",
    "keyTimes",
    "keySplines",
    "keyPoints",
    "from",
    "to",
    "by",
    "additive",
    "accumulate",
    "path",
    // <style>, <a>, <view>.
    "media",
    "title",
    "target",
    "viewTarget",
];

/// Namespaces whose elements and attributes editors write as metadata; no renderer acts on them.
const METADATA_NAMESPACES: &[&str] = &[
    "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "http://purl.org/dc/elements/1.1/",
    "http://creativecommons.org/ns#",
    "http://web.resource.org/cc/",
    "http://www.inkscape.org/namespaces/inkscape",
    "http://sodipodi.sourceforge.net/DTD/sodipodi-0.dtd",
    "http://ns.adobe.com/AdobeIllustrator/10.0/",
    "http://ns.adobe.com/AdobeSVGViewerExtensions/3.0/",
    "http://ns.adobe.com/Extensibility/1.0/",
    "http://ns.adobe.com/Graphs/1.0/",
    "http://ns.adobe.com/SaveForWeb/1.0/",
    "http://ns.adobe.com/Variables/1.0/",
    "http://ns.adobe.com/ImageReplacement/1.0/",
    "http://ns.adobe.com/GenericCustomNamespace/1.0/",
    "http://ns.adobe.com/XPath/1.0/",
];

const XLINK_NS: &str = "http://www.w3.org/1999/xlink";
const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";

/// Raster images an SVG may embed inline, and how large such a `data:` URL may be.
const INLINE_IMAGES: [&str; 4] = ["data:image/png", "data:image/jpeg", "data:image/gif", "data:image/webp"];
const MAX_INLINE_IMAGE: usize = 2 << 20;

/// CSS functions and at-rules that load or reference something (checked after the CSS is
/// unescaped, stripped of comments and of whitespace, and lowercased).
const CSS_LOADERS: [&str; 9] = [
    "@import",
    "@font-face",
    "image-set(",
    "image(",
    "cross-fade(",
    "element(",
    "src(",
    "expression(",
    "-moz-binding",
];

/// Why an SVG upload is refused (415), in words for the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SvgError {
    #[error("the SVG is not UTF-8 text")]
    NotUtf8,
    #[error("the SVG is not well-formed XML: {0}")]
    NotXml(String),
    #[error("the XML document's root element is not <svg>")]
    NotSvg,
    #[error("an element of the SVG has more than {MAX_ATTRIBUTES_PER_ELEMENT} attributes")]
    TooManyAttributesOnOneElement,
    #[error("the SVG has more than {MAX_ATTRIBUTES} attributes")]
    TooManyAttributes,
    #[error("the SVG's <use> references copy more than {MAX_USE_COPIES} elements")]
    TooLargeWhenRendered,
    #[error("the SVG's <use> references form a cycle")]
    UseCycle,
    #[error("the SVG is not inert: {0}")]
    NotInert(Active),
}

/// What would make a stored SVG active (run script, load or navigate).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Active {
    #[error("it references an external style sheet")]
    ExternalStyleSheet,
    #[error("it contains a <{0}> element, which is not on the list of SVG elements accepted")]
    Element(String),
    #[error("it contains an element in namespace {0}, which is not accepted")]
    ForeignElement(String),
    #[error("it has an event-handler attribute `{0}`")]
    EventHandler(String),
    #[error("attribute `{0}` of <{1}> is not on the list of SVG attributes accepted")]
    Attribute(String, String),
    #[error("attribute `{0}` holds a javascript: URL")]
    JavascriptUrl(String),
    #[error("<{0}> references an external resource")]
    ExternalReference(String),
    #[error("an animation changes a link or an event handler")]
    AnimatedLink,
    #[error("its CSS imports an external style sheet")]
    CssImport,
    #[error("its CSS references an external resource with url()")]
    CssUrl,
    #[error("its CSS loads or references something with `{0}`")]
    CssLoader(&'static str),
    #[error("its DTD declares entities")]
    Entities,
    #[error("its DOCTYPE names a DTD other than the W3C's SVG ones")]
    ExternalDtd,
}

/// `Ok` when `bytes` is a well-formed, inert SVG; otherwise why not, for the client.
pub fn check(bytes: &[u8]) -> Result<(), SvgError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).map_err(|_| SvgError::NotUtf8)?;
    count_attributes(text)?;
    // Editors write `<!DOCTYPE svg PUBLIC …>`; entity declarations (expansion bombs, external
    // entities) are refused before the parser sees them, and no DTD is ever fetched.
    if text.contains("<!ENTITY") {
        return Err(SvgError::NotInert(Active::Entities));
    }
    check_doctype(text).map_err(SvgError::NotInert)?;
    let options = ParsingOptions {
        allow_dtd: true,
        nodes_limit: MAX_NODES,
        ..Default::default()
    };
    let doc = Document::parse_with_options(text, options).map_err(|e| SvgError::NotXml(e.to_string()))?;
    let root = doc.root_element().tag_name();
    if root.name() != "svg" || root.namespace().is_some_and(|ns| ns != SVG_NS) {
        return Err(SvgError::NotSvg);
    }
    doc.descendants().try_for_each(check_node).map_err(SvgError::NotInert)?;
    check_rendered_size(&doc)
}

/// SECURITY: `<use>` copies the element it references, which may hold more `<use>`s: 6 levels
/// of 10 references each make a million elements for the renderer from a 1.2 KB file (a
/// browser hangs for minutes). The copies are bounded — the document as rendered, each `<use>`
/// counting what it copies, may exceed the document by at most `MAX_USE_COPIES` elements — and
/// a reference cycle is refused. Iterative, so a deep document cannot exhaust the stack.
fn check_rendered_size(doc: &Document<'_>) -> Result<(), SvgError> {
    use std::collections::HashMap;
    let ids: HashMap<&str, NodeId> = doc
        .descendants()
        .filter(Node::is_element)
        .filter_map(|n| n.attribute("id").map(|id| (id, n.id())))
        .collect();
    let referenced = |node: Node<'_, '_>| -> Option<NodeId> {
        if !node.tag_name().name().eq_ignore_ascii_case("use") {
            return None;
        }
        let href = node
            .attributes()
            .find(|a| a.name() == "href")
            .map(|a| a.value().trim())?;
        ids.get(href.strip_prefix('#')?).copied()
    };
    let elements = doc.descendants().filter(Node::is_element).count() as u64;
    let limit = elements.saturating_add(MAX_USE_COPIES);
    // Rendered size per element, computed children (and referenced elements) first.
    let mut size: HashMap<NodeId, u64> = HashMap::new();
    let mut stack = vec![(doc.root_element().id(), false)];
    let mut open = std::collections::HashSet::new();
    while let Some((id, expanded)) = stack.pop() {
        let node = doc.get_node(id).ok_or(SvgError::TooLargeWhenRendered)?;
        let parts = node
            .children()
            .filter(Node::is_element)
            .map(|c| c.id())
            .chain(referenced(node));
        if expanded {
            let total = parts.fold(1u64, |sum, part| {
                sum.saturating_add(size.get(&part).copied().unwrap_or(0))
            });
            if total > limit {
                return Err(SvgError::TooLargeWhenRendered);
            }
            size.insert(id, total);
            open.remove(&id);
            continue;
        }
        if size.contains_key(&id) {
            continue;
        }
        if !open.insert(id) {
            return Err(SvgError::UseCycle);
        }
        stack.push((id, true));
        for part in parts {
            if open.contains(&part) {
                return Err(SvgError::UseCycle);
            }
            if !size.contains_key(&part) {
                stack.push((part, false));
            }
        }
    }
    Ok(())
}

/// Bounds the attributes before the XML parser sees them, in one linear pass: an attribute is an
/// `=` outside quotes inside a tag (comments, CDATA, processing instructions and declarations
/// are skipped). A malformed document may be counted loosely here; the parser refuses it after.
fn count_attributes(text: &str) -> Result<(), SvgError> {
    let bytes = text.as_bytes();
    let (mut total, mut at) = (0usize, 0usize);
    while let Some(offset) = memchr_lt(&bytes[at..]) {
        at += offset;
        let rest = &text[at..];
        let skip_to = |end: &str| rest.find(end).map_or(bytes.len(), |i| at + i + end.len());
        if rest.starts_with("<!--") {
            at = skip_to("-->");
            continue;
        }
        if rest.starts_with("<![CDATA[") {
            at = skip_to("]]>");
            continue;
        }
        if rest.starts_with("<?") || rest.starts_with("<!") || rest.starts_with("</") {
            at = skip_to(">");
            continue;
        }
        // A start tag: count `=` outside quoted values until its `>` (from its `<`, neither).
        let (mut in_element, mut quote) = (0usize, None::<u8>);
        while at < bytes.len() {
            let b = bytes[at];
            at += 1;
            match (quote, b) {
                (Some(q), _) if b == q => quote = None,
                (Some(_), _) => {}
                (None, b'"' | b'\'') => quote = Some(b),
                (None, b'=') => {
                    in_element += 1;
                    total += 1;
                    if in_element > MAX_ATTRIBUTES_PER_ELEMENT {
                        return Err(SvgError::TooManyAttributesOnOneElement);
                    }
                    if total > MAX_ATTRIBUTES {
                        return Err(SvgError::TooManyAttributes);
                    }
                }
                (None, b'>') => break,
                (None, _) => {}
            }
        }
    }
    Ok(())
}

fn memchr_lt(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == b'<')
}

fn check_node(node: Node<'_, '_>) -> Result<(), Active> {
    match node.node_type() {
        NodeType::PI => match node.pi() {
            Some(pi) if pi.target.eq_ignore_ascii_case("xml-stylesheet") => Err(Active::ExternalStyleSheet),
            _ => Ok(()),
        },
        NodeType::Element => check_element(node),
        _ => Ok(()),
    }
}

fn check_element(node: Node<'_, '_>) -> Result<(), Active> {
    let tag = node.tag_name();
    match tag.namespace() {
        // Unprefixed elements of a document without the SVG namespace are plain XML to a
        // browser; they must still be SVG elements by name.
        None | Some(SVG_NS) => {
            if !SVG_ELEMENTS.contains(&tag.name()) {
                return Err(Active::Element(tag.name().to_owned()));
            }
        }
        Some(ns) if METADATA_NAMESPACES.contains(&ns) => return check_metadata(node),
        Some(ns) => return Err(Active::ForeignElement(ns.to_owned())),
    }
    if tag.name() == "style" {
        // The whole sheet at once: a comment between two text nodes cannot split a keyword.
        let sheet: String = node.children().filter_map(|c| c.text()).collect();
        check_css(&sheet)?;
    }
    for attribute in node.attributes() {
        let (name, value) = (attribute.name(), attribute.value());
        match attribute.namespace() {
            None if name.to_ascii_lowercase().starts_with("on") => {
                return Err(Active::EventHandler(name.to_owned()));
            }
            None if SVG_ATTRIBUTES.contains(&name) || name.starts_with("data-") || name.starts_with("aria-") => {}
            Some(XLINK_NS)
                if matches!(
                    name,
                    "href" | "title" | "type" | "role" | "arcrole" | "show" | "actuate"
                ) => {}
            Some(XML_NS) if matches!(name, "space" | "lang") => {}
            Some(ns) if METADATA_NAMESPACES.contains(&ns) => {}
            _ => return Err(Active::Attribute(name.to_owned(), tag.name().to_owned())),
        }
        check_value(tag.name(), name, value)?;
    }
    Ok(())
}

/// Metadata elements: inert themselves, and so must be what they hold (checked as any other
/// element) and their attributes' values.
fn check_metadata(node: Node<'_, '_>) -> Result<(), Active> {
    for attribute in node.attributes() {
        check_value(node.tag_name().name(), attribute.name(), attribute.value())?;
    }
    Ok(())
}

/// What any attribute value may not hold: script URLs, references other than a local fragment
/// or a small embedded raster image, CSS that loads, animations that retarget links or handlers.
fn check_value(element: &str, name: &str, value: &str) -> Result<(), Active> {
    let compacted = compact(value);
    if compacted.contains("javascript:") || compacted.contains("vbscript:") {
        return Err(Active::JavascriptUrl(name.to_owned()));
    }
    if name == "href" && !(value.trim_start().starts_with('#') || is_inline_image(value)) {
        return Err(Active::ExternalReference(element.to_owned()));
    }
    // Any value may be read as CSS (presentation attributes are CSS properties).
    check_css(value)?;
    // <set attributeName="href" to="javascript:..."> and friends.
    if name == "attributeName" && (compacted.starts_with("on") || compacted.ends_with("href")) {
        return Err(Active::AnimatedLink);
    }
    Ok(())
}

/// CSS in a `<style>` element or an attribute, after escapes and comments are resolved: only
/// `url(#fragment)`, nothing that imports or loads.
fn check_css(css: &str) -> Result<(), Active> {
    let css = compact(&resolve_css(css));
    if css.contains("@import") {
        return Err(Active::CssImport);
    }
    if let Some(loader) = CSS_LOADERS.iter().find(|l| css.contains(**l)) {
        return Err(Active::CssLoader(loader));
    }
    let mut rest = css.as_str();
    while let Some(at) = rest.find("url(") {
        rest = &rest[at + 4..];
        let target = rest.trim_start_matches(['"', '\'']);
        if !target.starts_with('#') {
            return Err(Active::CssUrl);
        }
    }
    Ok(())
}

/// CSS as a browser reads it: comments removed and escapes decoded (`\69` or `\000069 ` is
/// `i`, `\r` is `r`), so `@\69mport`, `u\72l(` and `@imp/**/ort` are seen for what they are.
fn resolve_css(css: &str) -> String {
    let mut out = String::with_capacity(css.len());
    let mut chars = css.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut last = ' ';
                for c in chars.by_ref() {
                    if last == '*' && c == '/' {
                        break;
                    }
                    last = c;
                }
            }
            '\\' => {
                let mut hex = String::new();
                while hex.len() < 6 && chars.peek().is_some_and(char::is_ascii_hexdigit) {
                    hex.extend(chars.next());
                }
                if hex.is_empty() {
                    out.extend(chars.next());
                } else {
                    if chars.peek().is_some_and(|c| c.is_whitespace()) {
                        chars.next();
                    }
                    let code = u32::from_str_radix(&hex, 16).unwrap_or(0xFFFD);
                    out.push(char::from_u32(code).unwrap_or('\u{FFFD}'));
                }
            }
            c => out.push(c),
        }
    }
    out
}

fn is_inline_image(value: &str) -> bool {
    let value = compact(value);
    // The media type ends at `;` or `,`: `data:image/png+xml` is not a PNG.
    value.len() <= MAX_INLINE_IMAGE
        && INLINE_IMAGES.iter().any(|prefix| {
            value
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with(';') || rest.starts_with(','))
        })
}

/// The W3C's public identifiers of SVG DTDs, and where their system identifiers live.
const SVG_PUBLIC_IDS: [&str; 5] = [
    "-//W3C//DTD SVG 1.0//EN",
    "-//W3C//DTD SVG 1.1//EN",
    "-//W3C//DTD SVG 1.1 Basic//EN",
    "-//W3C//DTD SVG 1.1 Tiny//EN",
    "-//W3C//DTD SVG 20010904//EN",
];
const W3C_DTDS: &str = "http://www.w3.org/";

/// A document type declaration names no DTD but the W3C's own SVG ones: `SYSTEM` identifiers
/// and other public ones are refused (a validating parser, or an XML tool downstream, would
/// fetch them).
fn check_doctype(text: &str) -> Result<(), Active> {
    let Some(at) = text.find("<!DOCTYPE") else {
        return Ok(());
    };
    let declaration = &text[at + "<!DOCTYPE".len()..];
    let end = declaration.find(['[', '>']).unwrap_or(declaration.len());
    let words = quoted_words(&declaration[..end]);
    match words.as_slice() {
        [_name] => Ok(()),
        [_name, public, id] | [_name, public, id, _] if public == "PUBLIC" && SVG_PUBLIC_IDS.contains(&id.as_str()) => {
            match words.get(3) {
                Some(system) if !system.starts_with(W3C_DTDS) => Err(Active::ExternalDtd),
                _ => Ok(()),
            }
        }
        _ => Err(Active::ExternalDtd),
    }
}

/// The words of a declaration, a quoted string counting as one word (without its quotes).
fn quoted_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut rest = text.trim_start();
    while let Some(first) = rest.chars().next() {
        let (word, after) = if first == '"' || first == '\'' {
            let body = &rest[1..];
            let close = body.find(first).unwrap_or(body.len());
            (&body[..close], body.get(close + 1..).unwrap_or(""))
        } else {
            let close = rest.find(char::is_whitespace).unwrap_or(rest.len());
            (&rest[..close], &rest[close..])
        };
        words.push(word.to_owned());
        rest = after.trim_start();
    }
    words
}

/// Lowercase without whitespace or escapes' padding, so `java script:` or `URL (` cannot hide.
fn compact(value: &str) -> String {
    value
        .chars()
        .filter(|c| !c.is_whitespace() && !c.is_control())
        .flat_map(char::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svg(inner: &str) -> String {
        format!("<svg xmlns=\"http://www.w3.org/2000/svg\" xmlns:xlink=\"http://www.w3.org/1999/xlink\">{inner}</svg>")
    }

    #[test]
    fn accepts_plain_drawings() {
        for inner in [
            "<rect width=\"10\" height=\"10\" fill=\"red\"/>",
            "<defs><linearGradient id=\"g\"/></defs><rect fill=\"url(#g)\" style=\"fill: url('#g')\"/>",
            "<use href=\"#shape\"/><use xlink:href=\"#shape\"/>",
            "<image href=\"data:image/png;base64,iVBORw0KGgo=\"/>",
            "<style>rect { fill: blue; }</style>",
            "<animate attributeName=\"opacity\" from=\"0\" to=\"1\" dur=\"1s\"/>",
            "<a href=\"#top\"><text>hello</text></a>",
            // Text that merely mentions CSS is text, not a style sheet.
            "<text>write url(https://example.com) or @import in CSS</text>",
            // Processing instructions other than xml-stylesheet do nothing.
            "<?render-hint fast?><rect/>",
        ] {
            assert_eq!(check(svg(inner).as_bytes()), Ok(()), "{inner}");
        }
        assert!(check(b"\xEF\xBB\xBF<?xml version=\"1.0\"?><svg/>").is_ok());
    }

    #[test]
    fn refuses_active_or_external_content() {
        for inner in [
            "<script>alert(1)</script>",
            "<SCRIPT>alert(1)</SCRIPT>",
            "<rect onload=\"alert(1)\"/>",
            "<rect ONCLICK=\"alert(1)\"/>",
            "<foreignObject><div xmlns=\"http://www.w3.org/1999/xhtml\"/></foreignObject>",
            "<iframe src=\"x\"/>",
            "<a href=\"javascript:alert(1)\"><text>x</text></a>",
            "<a xlink:href=\"java\tscript:alert(1)\"><text>x</text></a>",
            "<image href=\"https://evil.example/track.png\"/>",
            "<use xlink:href=\"other.svg#x\"/>",
            "<image href=\"data:image/svg+xml;base64,PHN2Zz4=\"/>",
            "<rect style=\"fill: url(https://evil.example/x)\"/>",
            "<rect fill=\"URL( 'http://evil.example/x' )\"/>",
            // Spaces are squeezed out before looking: `url (` and `java script:` do not hide.
            "<rect style=\"fill: url (https://evil.example/x)\"/>",
            "<a href=\"java script:alert(1)\"><text>x</text></a>",
            "<style>@import url(#x); rect { fill: red }</style>",
            // A style attribute is CSS even without url(: @import there is refused too.
            "<rect style=\"@import 'https://evil.example/a.css'\"/>",
            // A slash that opens no comment hides nothing after it.
            "<rect style=\"font: 12px/1.5 serif; fill: url(https://evil.example/x)\"/>",
            "<style>rect { background: url(//evil.example/x) }</style>",
            "<set attributeName=\"href\" to=\"javascript:alert(1)\"/>",
            "<animate attributeName=\"xlink:href\" values=\"x\"/>",
            "<set attributeName=\"onclick\" to=\"alert(1)\"/>",
            // The media type must end where the prefix does.
            "<image href=\"data:image/png+xml;base64,PHN2Zz4=\"/>",
            "<image href=\"data:image/pngx,AAAA\"/>",
        ] {
            let err = check(svg(inner).as_bytes()).unwrap_err().to_string();
            assert!(err.contains("not inert"), "{inner}: {err}");
        }
        // An `on…` attribute is named an event handler; an XLink attribute outside the seven
        // XLink defines is refused by name.
        assert_eq!(
            check(svg("<rect onload=\"alert(1)\"/>").as_bytes()),
            Err(SvgError::NotInert(Active::EventHandler("onload".into())))
        );
        assert_eq!(
            check(svg("<a xlink:onset=\"x\"/>").as_bytes()),
            Err(SvgError::NotInert(Active::Attribute("onset".into(), "a".into())))
        );
        let pi = "<?xml-stylesheet href=\"https://evil.example/x.css\"?><svg xmlns=\"http://www.w3.org/2000/svg\"/>";
        assert!(check(pi.as_bytes()).is_err());
        let root = "<svg xmlns=\"http://www.w3.org/2000/svg\"/>";
        for doctype in [
            "<!DOCTYPE svg SYSTEM \"http://evil.example/x.dtd\">",
            "<!DOCTYPE svg PUBLIC \"-//W3C//DTD SVG 1.1//EN\" \"http://evil.example/svg11.dtd\">",
            "<!DOCTYPE svg PUBLIC \"-//EVIL//DTD//EN\" \"http://www.w3.org/x.dtd\">",
        ] {
            let err = check(format!("{doctype}{root}").as_bytes()).unwrap_err().to_string();
            assert!(err.contains("DOCTYPE"), "{doctype}: {err}");
        }
        for doctype in [
            "<!DOCTYPE svg>",
            "<!DOCTYPE svg PUBLIC \"-//W3C//DTD SVG 1.1//EN\" \"http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd\">",
            "<!DOCTYPE svg PUBLIC '-//W3C//DTD SVG 1.0//EN' 'http://www.w3.org/TR/2001/REC-SVG-20010904/DTD/svg10.dtd'>",
        ] {
            assert_eq!(check(format!("{doctype}{root}").as_bytes()), Ok(()), "{doctype}");
        }
        let inline = "<image href=\"data:image/png;base64,iVBORw0KGgo=\"/>";
        assert_eq!(check(svg(inline).as_bytes()), Ok(()));
    }

    /// The bypasses found in issue 14: CSS escapes and comment splits, `image-set(`, and
    /// elements of the XHTML namespace, all accepted by the old deny-list.
    #[test]
    fn refuses_what_the_deny_list_let_through() {
        let xhtml = |element: &str| format!("<h:{element} xmlns:h=\"http://www.w3.org/1999/xhtml\"/>");
        for inner in [
            "<style>@\\69mport url(#x);</style>".to_owned(),
            "<style>@\\000069 mport 'x.css';</style>".to_owned(),
            "<rect style=\"fill: u\\72l(https://evil.example/x)\"/>".to_owned(),
            "<style>@imp<!---->ort 'https://evil.example/a.css';</style>".to_owned(),
            "<style>rect { fill: ur<!---->l(https://evil.example/x) }</style>".to_owned(),
            "<style>@imp/**/ort 'https://evil.example/a.css';</style>".to_owned(),
            "<rect style=\"background: image-set('https://evil.example/x' 1x)\"/>".to_owned(),
            // An escape ends after six hex digits, even before another (`e` here).
            "<rect style=\"background: ima\\000067e-set('https://evil.example/x' 1x)\"/>".to_owned(),
            "<style>@font-face { font-family: x; src: local(x) }</style>".to_owned(),
            xhtml("img src=\"https://evil.example/x\""),
            xhtml("frame src=\"https://evil.example/x\""),
            xhtml("input type=\"image\" src=\"https://evil.example/x\""),
            xhtml("source srcset=\"https://evil.example/x\""),
            xhtml("video poster=\"https://evil.example/x\""),
            xhtml("meta http-equiv=\"refresh\" content=\"0;url=https://evil.example/\""),
            "<m:math xmlns:m=\"http://www.w3.org/1998/Math/MathML\"/>".to_owned(),
            "<font-face-uri href=\"https://evil.example/f\"/>".to_owned(),
            "<cursor href=\"https://evil.example/c.png\"/>".to_owned(),
            "<rect unknownattr=\"1\"/>".to_owned(),
            "<rect xml:base=\"https://evil.example/\"/>".to_owned(),
            format!(
                "<image href=\"data:image/png;base64,{}\"/>",
                "A".repeat(MAX_INLINE_IMAGE)
            ),
            "<rdf:RDF xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\" rdf:about=\"javascript:alert(1)\"/>"
                .to_owned(),
        ] {
            let err = check(svg(&inner).as_bytes()).unwrap_err().to_string();
            assert!(err.contains("not inert"), "{inner}: {err}");
        }
    }

    /// What Inkscape and Illustrator write passes: a DOCTYPE without entities, metadata in
    /// their namespaces, `data-*` attributes.
    #[test]
    fn accepts_what_editors_write() {
        let inkscape = r##"<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">
<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"
  xmlns:inkscape="http://www.inkscape.org/namespaces/inkscape"
  xmlns:sodipodi="http://sodipodi.sourceforge.net/DTD/sodipodi-0.dtd"
  xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns:cc="http://creativecommons.org/ns#"
  xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:i="http://ns.adobe.com/AdobeIllustrator/10.0/"
  width="10mm" height="10mm" viewBox="0 0 10 10" version="1.1" inkscape:version="1.2" sodipodi:docname="x.svg" xml:space="preserve">
  <sodipodi:namedview id="base" pagecolor="#ffffff" inkscape:zoom="1"/>
  <metadata><rdf:RDF><cc:Work rdf:about=""><dc:format>image/svg+xml</dc:format></cc:Work></rdf:RDF></metadata>
  <i:pgf id="adobe_illustrator_pgf"/>
  <g inkscape:label="Layer 1" inkscape:groupmode="layer" data-name="layer">
    <path d="M0 0h10v10z" style="fill:#ff0000;stroke:none" aria-label="square"/>
    <text x="1" y="5" font-family="sans-serif"><tspan>hi</tspan></text>
  </g>
</svg>"##;
        assert_eq!(check(inkscape.as_bytes()), Ok(()));
    }

    #[test]
    fn refuses_malformed_documents() {
        assert!(check(b"<svg>").unwrap_err().to_string().contains("well-formed"));
        assert!(check(b"<html/>").unwrap_err().to_string().contains("root"));
        assert!(check(b"<svg xmlns=\"urn:x\"/>").is_err());
        let entities = b"<!DOCTYPE svg [<!ENTITY a \"aaaa\">]><svg>&a;</svg>";
        assert_eq!(
            check(entities),
            Err(SvgError::NotInert(Active::Entities)),
            "entity declarations are refused"
        );
        assert!(check(b"\xff\xfe<svg/>").is_err());
    }

    #[test]
    fn attributes_are_bounded_before_parsing() {
        let element = |n: usize| {
            let attributes: String = (0..n).map(|i| format!(" data-a{i}=\"{i}\"")).collect();
            format!("<svg xmlns=\"http://www.w3.org/2000/svg\"><g{attributes}/></svg>")
        };
        // The root's xmlns counts too.
        assert_eq!(check(element(MAX_ATTRIBUTES_PER_ELEMENT - 1).as_bytes()), Ok(()));
        assert_eq!(
            check(element(MAX_ATTRIBUTES_PER_ELEMENT + 1).as_bytes()),
            Err(SvgError::TooManyAttributesOnOneElement)
        );
        // Quoted `=` and `>`, comments and CDATA are not attributes.
        let quoted = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\"><!-- {} --><g id=\"{}\"/><style><![CDATA[{}]]></style></svg>",
            "a=1 ".repeat(300),
            "=>".repeat(300),
            "x=y ".repeat(300)
        );
        assert_eq!(check(quoted.as_bytes()), Ok(()));
        let group: String = (0..200).map(|i| format!(" data-a{i}=\"{i}\"")).collect();
        let groups = format!("<g{group}/>").repeat(MAX_ATTRIBUTES / 200 + 1);
        let many = format!("<svg xmlns=\"http://www.w3.org/2000/svg\">{groups}</svg>");
        assert_eq!(check(many.as_bytes()), Err(SvgError::TooManyAttributes));
        // The limits are inclusive, per element and in all.
        let tag = |n: usize| format!("<g {}>", "= ".repeat(n));
        assert_eq!(count_attributes(&tag(MAX_ATTRIBUTES_PER_ELEMENT)), Ok(()));
        let all = tag(200).repeat(MAX_ATTRIBUTES / 200);
        assert_eq!(count_attributes(&all), Ok(()));
        assert_eq!(
            count_attributes(&format!("{all}<g =>")),
            Err(SvgError::TooManyAttributes)
        );
    }

    /// The scan for attributes resumes after a comment's end (three bytes early, a `<'` in the
    /// comment would open a tag and a quote running on into the text), and skips processing
    /// instructions and declarations whole.
    #[test]
    fn comments_instructions_and_declarations_hold_no_attributes() {
        let text = "= ".repeat(MAX_ATTRIBUTES_PER_ELEMENT + 1);
        assert_eq!(check(svg(&format!("<!--<'x-->'{text}")).as_bytes()), Ok(()));
        assert_eq!(check(svg(&format!("<?note {text}?>")).as_bytes()), Ok(()));
        let doctype = format!("<!DOCTYPE svg {text}>{}", svg(""));
        assert_eq!(check(doctype.as_bytes()), Err(SvgError::NotInert(Active::ExternalDtd)));
        // A start tag the text ends in is scanned to the last byte, then refused by the parser.
        assert!(matches!(check(b"<svg a='1'"), Err(SvgError::NotXml(_))));
    }

    /// A CSS comment ends at `*/`, not at its first `*` or `/`.
    #[test]
    fn a_css_comment_ends_at_its_closing_star_slash() {
        let sheet = "<style>/* 2*3, a/b: url(https://evil.example/x) */ rect { fill: red }</style>";
        assert_eq!(check(svg(sheet).as_bytes()), Ok(()));
    }

    /// Exactly `MAX_USE_COPIES` elements copied by `<use>` are accepted, one more is not.
    #[test]
    fn the_use_copy_limit_is_inclusive() {
        let copies = |n: u64| svg(&format!("<rect id=\"r\"/>{}", "<use href=\"#r\"/>".repeat(n as usize)));
        assert_eq!(check(copies(MAX_USE_COPIES).as_bytes()), Ok(()));
        assert_eq!(
            check(copies(MAX_USE_COPIES + 1).as_bytes()),
            Err(SvgError::TooLargeWhenRendered)
        );
    }

    #[test]
    fn use_fan_out_and_cycles_are_refused() {
        // 6 levels of 10 references: 10^6 elements rendered from about a kilobyte.
        let mut defs = String::from("<rect id=\"l0\" width=\"1\" height=\"1\"/>");
        for level in 1..=6 {
            let uses: String = (0..10).map(|_| format!("<use href=\"#l{}\"/>", level - 1)).collect();
            defs.push_str(&format!("<g id=\"l{level}\">{uses}</g>"));
        }
        let bomb = svg(&format!("<defs>{defs}</defs><use href=\"#l6\"/>"));
        assert!(bomb.len() < 2_000);
        assert_eq!(check(bomb.as_bytes()), Err(SvgError::TooLargeWhenRendered));
        // Three levels (about 4,700 elements as rendered) are fine.
        let small = svg(&format!(
            "<defs>{}</defs><use href=\"#l3\"/>",
            defs.split("<g id=\"l4\"").next().unwrap()
        ));
        assert_eq!(check(small.as_bytes()), Ok(()));
        let cycle = svg("<g id=\"a\"><use href=\"#b\"/></g><g id=\"b\"><use href=\"#a\"/></g>");
        assert_eq!(check(cycle.as_bytes()), Err(SvgError::UseCycle));
        let itself = svg("<g id=\"a\"><use href=\"#a\"/></g>");
        assert_eq!(check(itself.as_bytes()), Err(SvgError::UseCycle));
    }

    /// The node limit bounds the work a document can ask for: at the limit it is checked, one
    /// node more is refused as not well-formed.
    #[test]
    fn documents_past_the_node_limit_are_refused() {
        let svg = |elements: u32| {
            let mut doc = String::from("<svg xmlns=\"http://www.w3.org/2000/svg\">");
            doc.push_str(&"<g/>".repeat(elements as usize));
            doc.push_str("</svg>");
            doc
        };
        // The root node and <svg> count too.
        assert_eq!(check(svg(MAX_NODES - 2).as_bytes()), Ok(()));
        let err = check(svg(MAX_NODES - 1).as_bytes()).unwrap_err().to_string();
        assert!(err.contains("well-formed") && err.contains("nodes limit"), "{err}");
        // A byte-order mark is allowed in front.
        assert_eq!(
            check(b"\xEF\xBB\xBF<svg xmlns=\"http://www.w3.org/2000/svg\"/>"),
            Ok(())
        );
    }
}
