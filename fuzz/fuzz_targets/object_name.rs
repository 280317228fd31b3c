//! The object-name parser: never panics; whatever it accepts is a bare, canonical name.
#![no_main]

use image_gateway::object_name::ObjectName;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    for parsed in [ObjectName::parse_encoded(text), ObjectName::parse(text)] {
        if let Ok(name) = parsed {
            let name = name.as_str();
            // SECURITY: a name that reaches storage can never leave its folder or prefix.
            assert!(
                !name.contains('/') && !name.contains('\\') && !name.contains(".."),
                "{name:?}"
            );
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.'),
                "{name:?}"
            );
            assert_eq!(ObjectName::parse(name).expect("canonical names parse").as_str(), name);
        }
    }
});
