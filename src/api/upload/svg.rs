//! SVG uploads: well-formed UTF-8 XML without a DTD, an `<svg>` root, and nothing active.
//!
//! SECURITY: we reject (never rewrite) an SVG that contains script, event-handler attributes,
//! `foreignObject` or other embedding elements, `javascript:` URLs, animations that set links
//! or handlers, external references (`href` other than `#fragment` or an embedded raster
//! `data:` image, `url()` to anything but `#fragment`, `@import`, `xml-stylesheet`). A stored SVG
//! is therefore inert even when served from an origin without our CSP. Rejecting keeps the
//! bytes we store exactly the bytes we were given.

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

/// Elements that run script or embed other documents.
const FORBIDDEN_ELEMENTS: [&str; 7] = [
    "script",
    "foreignobject",
    "iframe",
    "embed",
    "object",
    "handler",
    "listener",
];

/// Raster images an SVG may embed inline.
const INLINE_IMAGES: [&str; 4] = ["data:image/png", "data:image/jpeg", "data:image/gif", "data:image/webp"];

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
    #[error("it contains a <{0}> element")]
    Element(String),
    #[error("it has an event-handler attribute `{0}`")]
    EventHandler(String),
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
}

/// `Ok` when `bytes` is a well-formed, inert SVG; otherwise why not, for the client.
pub fn check(bytes: &[u8]) -> Result<(), SvgError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).map_err(|_| SvgError::NotUtf8)?;
    count_attributes(text)?;
    let options = ParsingOptions {
        allow_dtd: false,
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
        // A start tag: count `=` outside quoted values until its `>`.
        let (mut in_element, mut quote) = (0usize, None::<u8>);
        at += 1;
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
        NodeType::Text
            if node
                .parent_element()
                .is_some_and(|p| p.tag_name().name().eq_ignore_ascii_case("style")) =>
        {
            check_css(node.text().unwrap_or_default())
        }
        NodeType::Element => check_element(node),
        _ => Ok(()),
    }
}

fn check_element(node: Node<'_, '_>) -> Result<(), Active> {
    let name = node.tag_name().name().to_ascii_lowercase();
    if FORBIDDEN_ELEMENTS.contains(&name.as_str()) {
        return Err(Active::Element(node.tag_name().name().to_owned()));
    }
    for attribute in node.attributes() {
        let attr = attribute.name().to_ascii_lowercase();
        let value = attribute.value();
        if attr.starts_with("on") {
            return Err(Active::EventHandler(attribute.name().to_owned()));
        }
        if compact(value).contains("javascript:") {
            return Err(Active::JavascriptUrl(attribute.name().to_owned()));
        }
        if attr == "href" && !(value.trim_start().starts_with('#') || is_inline_image(value)) {
            return Err(Active::ExternalReference(node.tag_name().name().to_owned()));
        }
        if attr == "style" || compact(value).contains("url(") {
            check_css(value)?;
        }
        // <set attributeName="href" to="javascript:..."> and friends.
        if attr == "attributename" {
            let target = compact(value);
            if target.starts_with("on") || target.ends_with("href") {
                return Err(Active::AnimatedLink);
            }
        }
    }
    Ok(())
}

/// CSS in a `<style>` element or attribute: only `url(#fragment)`, never `@import`.
fn check_css(css: &str) -> Result<(), Active> {
    let css = compact(css);
    if css.contains("@import") {
        return Err(Active::CssImport);
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

fn is_inline_image(value: &str) -> bool {
    let value = compact(value);
    INLINE_IMAGES.iter().any(|prefix| value.starts_with(prefix))
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
            "<style>rect { background: url(//evil.example/x) }</style>",
            "<set attributeName=\"href\" to=\"javascript:alert(1)\"/>",
            "<animate attributeName=\"xlink:href\" values=\"x\"/>",
            "<set attributeName=\"onclick\" to=\"alert(1)\"/>",
        ] {
            let err = check(svg(inner).as_bytes()).unwrap_err().to_string();
            assert!(err.contains("not inert"), "{inner}: {err}");
        }
        let pi = "<?xml-stylesheet href=\"https://evil.example/x.css\"?><svg xmlns=\"http://www.w3.org/2000/svg\"/>";
        assert!(check(pi.as_bytes()).is_err());
    }

    #[test]
    fn refuses_malformed_documents() {
        assert!(check(b"<svg>").unwrap_err().to_string().contains("well-formed"));
        assert!(check(b"<html/>").unwrap_err().to_string().contains("root"));
        assert!(check(b"<svg xmlns=\"urn:x\"/>").is_err());
        let entities = b"<!DOCTYPE svg [<!ENTITY a \"aaaa\">]><svg>&a;</svg>";
        assert!(check(entities).is_err(), "DTDs are refused");
        assert!(check(b"\xff\xfe<svg/>").is_err());
    }

    #[test]
    fn attributes_are_bounded_before_parsing() {
        let element = |n: usize| {
            let attributes: String = (0..n).map(|i| format!(" a{i}=\"{i}\"")).collect();
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
        let group: String = (0..200).map(|i| format!(" a{i}=\"{i}\"")).collect();
        let groups = format!("<g{group}/>").repeat(MAX_ATTRIBUTES / 200 + 1);
        let many = format!("<svg xmlns=\"http://www.w3.org/2000/svg\">{groups}</svg>");
        assert_eq!(check(many.as_bytes()), Err(SvgError::TooManyAttributes));
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
