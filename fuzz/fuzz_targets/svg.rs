//! SVG uploads: the check never panics, and every SVG it accepts passes an inertness oracle
//! written independently of the checker (a deny-list over the parsed document, where the
//! checker is an allow-list): no script or embedding element, no XHTML or MathML element, no
//! event handler, no `javascript:` anywhere, every `href` local or an embedded raster image,
//! no style sheet processing instruction, no entity declaration.
#![no_main]

use image_gateway::{content::sniff, object_name::ImageFormat};
use libfuzzer_sys::fuzz_target;

const ACTIVE_ELEMENTS: [&str; 9] = [
    "script", "foreignobject", "iframe", "embed", "object", "handler", "listener", "img", "meta",
];
const ACTIVE_NAMESPACES: [&str; 2] = ["http://www.w3.org/1999/xhtml", "http://www.w3.org/1998/Math/MathML"];

fn squeezed(value: &str) -> String {
    value
        .chars()
        .filter(|c| !c.is_whitespace() && !c.is_control())
        .flat_map(char::to_lowercase)
        .collect()
}

fuzz_target!(|data: &[u8]| {
    if sniff::check(ImageFormat::Svg, data, u64::MAX).is_err() {
        return;
    }
    let text = std::str::from_utf8(data.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(data)).expect("accepted: UTF-8");
    assert!(!text.contains("<!ENTITY"), "accepted an entity declaration");
    let options = roxmltree::ParsingOptions {
        allow_dtd: true,
        nodes_limit: 1_000_000,
        ..Default::default()
    };
    let doc = roxmltree::Document::parse_with_options(text, options).expect("accepted: well-formed");
    for node in doc.descendants() {
        if let Some(pi) = node.pi() {
            assert!(!pi.target.eq_ignore_ascii_case("xml-stylesheet"), "accepted xml-stylesheet");
        }
        if !node.is_element() {
            continue;
        }
        let tag = node.tag_name();
        let name = tag.name().to_ascii_lowercase();
        assert!(!ACTIVE_ELEMENTS.contains(&name.as_str()), "accepted <{name}>");
        assert!(
            !tag.namespace().is_some_and(|ns| ACTIVE_NAMESPACES.contains(&ns)),
            "accepted an element in {:?}",
            tag.namespace()
        );
        for attribute in node.attributes() {
            let value = squeezed(attribute.value());
            assert!(!attribute.name().to_ascii_lowercase().starts_with("on"), "accepted {}", attribute.name());
            assert!(!value.contains("javascript:"), "accepted a javascript: URL");
            if attribute.name() == "href" {
                assert!(
                    value.starts_with('#') || value.starts_with("data:image/"),
                    "accepted href {value}"
                );
            }
        }
    }
});
