//! Bad requests get a clear 4xx and change nothing: whatever a client sends (malformed HTTP,
//! invalid names and paths, wrong methods, keys, ranges and validators, oversized heads and
//! URLs, bodies that are not what they claim), the server answers it as the client's mistake
//! and keeps serving everyone else. One table of hundreds of crafted requests over HTTP/1.1
//! (raw TCP): never a 5xx; every 4xx the application answers carries a JSON `detail`; an invalid
//! name never reaches storage (counted by a storage wrapper and by the storage metrics); nothing
//! stored changes. The same over HTTP/2, with its own abuses: rapid resets, a window never
//! opened, more streams than the limit.
//!
//! The download route's own refusals (invalid names, methods, unknown paths) are checked on
//! every backend in `download.rs`; uploads refused for their content in `upload.rs`.

use std::sync::Arc;

use image_gateway::{
    config::{AuthMode, Config, Secret},
    object_name::ImageFormat,
};

use crate::support::*;

/// What a case may answer.
#[derive(Clone, Copy)]
enum Expect {
    /// A well-formed request: one of these statuses; 4xx (but 412) with a JSON `detail`.
    App(&'static [u16]),
    /// Malformed HTTP, refused by the protocol layer: a 4xx (any body) or a closed connection.
    Protocol,
}

struct Case {
    what: String,
    raw: Vec<u8>,
    expect: Expect,
}

fn request(method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut raw = format!("{method} {target} HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n");
    for (name, value) in headers {
        raw.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() {
        raw.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    raw.push_str("\r\n");
    let mut raw = raw.into_bytes();
    raw.extend_from_slice(body);
    raw
}

fn case(what: impl Into<String>, raw: Vec<u8>, expect: Expect) -> Case {
    Case {
        what: what.into(),
        raw,
        expect,
    }
}

/// Object names that must be refused before storage is asked (each sent as GET and HEAD).
fn invalid_names() -> Vec<String> {
    let id = "0123456789abcdef0123456789abcdef";
    let mut names: Vec<String> = [
        "",
        ".png",
        "png",
        "..",
        "../etc/passwd",
        "..%2f..%2fetc%2fpasswd",
        "%2e%2e%2f%2e%2e%2f",
        "%2e%2e",
        "..%5c..%5cwindows",
        "%252e%252e%252f",
        "%c0%ae%c0%ae%2f",
        "%C0%AF",
        "%e0%80%ae",
        "%00",
        "%00.png",
        "a%00b.png",
        "%ff%fe.png",
        "%",
        "%%",
        "%zz.png",
        "%2",
        "%2g",
        "0123456789ABCDEF0123456789ABCDEF.png",
        "0123456789abcdef0123456789abcde.png",
        "0123456789abcdef0123456789abcdef0.png",
        "0123456789abcdeg0123456789abcdef.png",
        "0123456789abcdef0123456789abcdef",
        "0123456789abcdef0123456789abcdef.",
        "0123456789abcdef0123456789abcdef.exe",
        "0123456789abcdef0123456789abcdef.PNG",
        "0123456789abcdef0123456789abcdef.png.exe",
        "0123456789abcdef0123456789abcdef.exe.png",
        "0123456789abcdef0123456789abcdef..png",
        "0123456789abcdef0123456789abcdef.pn",
        "0123456789abcdef0123456789abcdef.pngx",
        "0123456789abcdef0123456789abcdef.html",
        "0123456789abcdef0123456789abcdef.svgz",
        "0123456789abcdef0123456789abcdef.php",
        "0123456789abcdef0123456789abcdef.png;.html",
        "0123456789abcdef0123456789abcdef.png%3b.html",
        "0123456789abcdef0123456789abcdef.png%00.html",
        "0123456789abcdef0123456789abcdef.png%0d%0aSet-Cookie:x=1",
        "0123456789abcdef0123456789abcdef.png%20",
        "%200123456789abcdef0123456789abcdef.png",
        "0123456789abcdef0123456789abcdef.png/",
        "0123456789abcdef0123456789abcdef.png/..",
        "sub/0123456789abcdef0123456789abcdef.png",
        "..%2f0123456789abcdef0123456789abcdef.png",
        "%2f0123456789abcdef0123456789abcdef.png",
        "0123456789abcdef0123456789abcdef.png%2f",
        "0123456789abcdef0123456789abcdef.png%5c",
        "~0123456789abcdef0123456789abcdef.png",
        "0123456789abcdef0123456789abcdef.pNg",
        "0123456789abcdef0123456789abcdef.jpg%20",
        "０１２３456789abcdef0123456789abcdef.png",
        "%ef%bc%90123456789abcdef0123456789abcdef.png",
        "0x0123456789abcdef0123456789abcd.png",
        "-123456789abcdef0123456789abcdef.png",
        "+123456789abcdef0123456789abcdef.png",
        " 123456789abcdef0123456789abcdef.png",
        "0123456789abcdef0123456789abcdef.png.",
        "0123456789abcdef0123456789abcdef.tiff.png.svg",
        "con.png",
        "aux",
        "nul.png",
        "*",
        "*.png",
        "?.png",
        "[a-f].png",
        "{}.png",
        "$(id).png",
        "`id`.png",
        "'.png",
        "\".png",
        "<script>.png",
        "%3cscript%3e.png",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    names.push(format!("{}.png", "a".repeat(1000)));
    names.push(format!("{id}{}", ".png".repeat(200)));
    names.push("%2e".repeat(500));
    names
}

fn cases(name: &str) -> Vec<Case> {
    use Expect::*;
    let key = ("X-API-Key", READER);
    let write = ("X-API-Key", WRITER);
    let download = format!("/v1/image/download/{name}");
    let mut cases = Vec::new();

    // Phase 1 (must not touch storage): invalid names, as GET and HEAD, with a valid key.
    for bad in invalid_names() {
        for method in ["GET", "HEAD"] {
            // A raw space or control byte is not a valid request target: the protocol layer's.
            let expect = if bad
                .bytes()
                .any(|b| b <= b' ' || b == b'"' || b == b'<' || b == b'`' || b >= 0x7f)
            {
                Protocol
            } else {
                App(&[400, 404])
            };
            cases.push(case(
                format!("{method} name {bad:?}"),
                request(method, &format!("/v1/image/download/{bad}"), &[key], b""),
                expect,
            ));
        }
    }
    for path in [
        "/",
        "/v1",
        "/v1/image",
        "/v1/image/download",
        "/v1/image/download/",
        "/v1/image/download//",
        "/V1/IMAGE/DOWNLOAD/x.png",
        "//v1/image/download/x.png",
        "/v1/image/./download/x.png",
        "/v1/image/download/../upload",
        "/v1/image/upload/..",
        "/admin",
        "/metrics",
        "/.env",
        "/.git/config",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/v1/image/download%2fx.png",
        "/readyz/..",
        "/openapi.yaml/x",
    ] {
        cases.push(case(
            format!("GET path {path}"),
            request("GET", path, &[key], b""),
            App(&[400, 404]),
        ));
    }
    cases.push(case(
        "absolute-form target",
        request("GET", "http://evil/v1/image/download/x.png", &[key], b""),
        App(&[400, 404]),
    ));
    cases.push(case(
        "authority-form target",
        request("GET", "evil:80", &[key], b""),
        Protocol,
    ));
    cases.push(case(
        "asterisk target",
        request("GET", "*", &[key], b""),
        App(&[400, 404]),
    ));

    // Methods on the download route.
    for method in [
        "PUT", "DELETE", "PATCH", "POST", "TRACE", "FOO", "OPTIONS", "PROPFIND", "MKCOL",
    ] {
        cases.push(case(
            format!("{method} download"),
            request(method, &download, &[key], b""),
            App(&[405]),
        ));
    }
    for method in ["GET", "PUT", "DELETE", "PATCH"] {
        cases.push(case(
            format!("{method} upload"),
            request(method, "/v1/image/upload", &[write], b""),
            App(&[405]),
        ));
    }

    // Access.
    for (what, headers) in [
        ("no key", vec![]),
        ("wrong key", vec![("X-API-Key", "reader-0123456789abcdeX")]),
        ("empty key", vec![("X-API-Key", "")]),
        ("key with spaces", vec![("X-API-Key", " reader-0123456789abcdef ")]),
        ("key prefix", vec![("X-API-Key", "reader-0123")]),
        (
            "key in Authorization",
            vec![("Authorization", "Bearer reader-0123456789abcdef")],
        ),
        ("two keys, first wrong", vec![("X-API-Key", "nope"), key]),
        ("lower-case header name, wrong", vec![("x-api-key", "nope")]),
    ] {
        cases.push(case(
            format!("download, {what}"),
            request("GET", &download, &headers, b""),
            App(&[200, 401]),
        ));
    }
    let long_key = "k".repeat(8000);
    cases.push(case(
        "download, 8000-byte key",
        request("GET", &download, &[("X-API-Key", &long_key)], b""),
        App(&[401]),
    ));
    cases.push(case(
        "signed url, garbage",
        request("GET", &format!("{download}?expires=x&signature=y"), &[], b""),
        App(&[401, 403]),
    ));
    cases.push(case(
        "signed url, expired",
        request("GET", &format!("{download}?expires=1&signature=00"), &[], b""),
        App(&[401, 403]),
    ));
    cases.push(case(
        "upload with read key",
        request("POST", "/v1/image/upload", &[key, ("Content-Type", "image/png")], PNG),
        App(&[403]),
    ));

    // Ranges (GET and HEAD on a stored object).
    let huge = format!("bytes={}-", "9".repeat(40));
    let many: String = format!(
        "bytes={}",
        (0..500).map(|i| format!("{i}-{i}")).collect::<Vec<_>>().join(",")
    );
    for range in [
        "bytes=0-0",
        "bytes=0-",
        "bytes=-1",
        "bytes=-0",
        "bytes=5-1",
        "bytes=--1",
        "bytes=0--1",
        "bytes=-",
        "bytes=",
        "bytes",
        "bytes=a-b",
        "bytes=0-1,2-3",
        "bytes=0-1,,",
        "bytes= 0-1",
        "bytes=0 -1",
        "items=0-1",
        "BYTES=0-1",
        "bytes=1-0,0-1",
        "bytes=99999999-",
        "bytes=0-99999999",
        "bytes=-99999999",
        "bytes=18446744073709551615-",
        "bytes=18446744073709551616-",
        "bytes=0-18446744073709551616",
        huge.as_str(),
        many.as_str(),
        "bytes=0x10-0x20",
        "bytes=+1-2",
        "bytes=1.5-2",
        "bytes=0-1;x",
        "bytes=\u{7f}",
    ] {
        for method in ["GET", "HEAD"] {
            let expect = if range.bytes().any(|b| b == 0x7f) {
                Protocol
            } else {
                App(&[200, 206, 416])
            };
            cases.push(case(
                format!("{method} Range {range:.40}"),
                request(method, &download, &[key, ("Range", range)], b""),
                expect,
            ));
        }
    }

    // Validators.
    for (header, value) in [
        ("If-None-Match", "*"),
        ("If-None-Match", "\"nope\""),
        ("If-None-Match", "garbage"),
        ("If-None-Match", "W/"),
        ("If-None-Match", "\""),
        ("If-None-Match", ",,,,"),
        ("If-Match", "*"),
        ("If-Match", "\"nope\""),
        ("If-Match", "W/\"weak\""),
        ("If-Match", ""),
        ("If-Modified-Since", "yesterday"),
        ("If-Modified-Since", "Thu, 01 Jan 1970 00:00:00 GMT"),
        ("If-Modified-Since", "Fri, 31 Dec 9999 23:59:59 GMT"),
        ("If-Unmodified-Since", "Thu, 01 Jan 1970 00:00:00 GMT"),
        ("If-Unmodified-Since", "not a date"),
        ("If-Range", "\"nope\""),
        ("If-Range", "garbage"),
        ("If-Range", "Thu, 01 Jan 1970 00:00:00 GMT"),
    ] {
        for method in ["GET", "HEAD"] {
            cases.push(case(
                format!("{method} {header}: {value}"),
                request(method, &download, &[key, (header, value), ("Range", "bytes=0-9")], b""),
                App(&[200, 206, 304, 412]),
            ));
        }
    }
    let tags = (0..2000).map(|i| format!("\"{i}\"")).collect::<Vec<_>>().join(", ");
    cases.push(case(
        "If-None-Match with 2000 tags",
        request("GET", &download, &[key, ("If-None-Match", &tags)], b""),
        App(&[200, 431]),
    ));

    // Limits: header count, header bytes, URL length (defaults 64, 16 KiB, 4096).
    for count in [50, 63, 64, 65, 90, 150, 500] {
        let headers: Vec<(String, String)> = (0..count).map(|i| (format!("X-Filler-{i}"), "v".into())).collect();
        let mut all: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        all.push(key);
        let expect: Expect = if count + 3 <= 64 {
            App(&[200])
        } else if count + 3 <= 128 {
            App(&[431])
        } else {
            Protocol
        };
        cases.push(case(
            format!("{count} extra headers"),
            request("GET", &download, &all, b""),
            expect,
        ));
    }
    for size in [1000, 8000, 16_000, 17_000, 30_000, 60_000, 200_000] {
        let value = "v".repeat(size);
        let expect: Expect = if size <= 16_000 {
            App(&[200])
        } else if size <= 30_000 {
            App(&[431])
        } else {
            Protocol
        };
        cases.push(case(
            format!("{size}-byte header"),
            request("GET", &download, &[key, ("X-Big", &value)], b""),
            expect,
        ));
    }
    for len in [4000, 4097, 8000, 20_000, 100_000] {
        let target = format!("{download}?{}", "q".repeat(len));
        let expect: Expect = if len <= 4000 {
            App(&[200])
        } else if len <= 20_000 {
            App(&[414])
        } else {
            Protocol
        };
        cases.push(case(
            format!("{len}-byte query"),
            request("GET", &target, &[key], b""),
            expect,
        ));
    }

    // Upload bodies.
    let truncated = &PNG[..PNG.len() / 2];
    let mut bomb = PNG.to_vec();
    bomb[16..24].copy_from_slice(&[0, 1, 0, 0, 0, 1, 0, 0]); // 65536 × 65536 declared
    for (what, content_type, body) in [
        ("garbage as png", "image/png", b"not a png at all".to_vec()),
        ("png as jpeg", "image/jpeg", PNG.to_vec()),
        ("truncated png", "image/png", truncated.to_vec()),
        ("pixel bomb", "image/png", bomb),
        (
            "svg with script",
            "image/svg+xml",
            b"<svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(1)</script></svg>".to_vec(),
        ),
        (
            "svg with onload",
            "image/svg+xml",
            b"<svg xmlns=\"http://www.w3.org/2000/svg\" onload=\"alert(1)\"/>".to_vec(),
        ),
        (
            "svg with entity",
            "image/svg+xml",
            b"<!DOCTYPE svg [<!ENTITY x \"y\">]><svg xmlns=\"http://www.w3.org/2000/svg\">&x;</svg>".to_vec(),
        ),
        ("html as svg", "image/svg+xml", b"<html><body>hi</body></html>".to_vec()),
        ("text/html", "text/html", b"<html></html>".to_vec()),
        ("no subtype", "image", PNG.to_vec()),
        ("content type with junk", "image/png; charset=\u{1}", PNG.to_vec()),
        ("gif header only", "image/gif", b"GIF89a".to_vec()),
        ("bmp header only", "image/bmp", b"BM".to_vec()),
        ("tiff header only", "image/tiff", b"II*\0".to_vec()),
        ("webp header only", "image/webp", b"RIFF\0\0\0\0WEBP".to_vec()),
    ] {
        let expect = if content_type.bytes().any(|b| b < b' ') {
            Protocol
        } else {
            App(&[400, 413, 415])
        };
        cases.push(case(
            format!("upload {what}"),
            request(
                "POST",
                "/v1/image/upload",
                &[write, ("Content-Type", content_type)],
                &body,
            ),
            expect,
        ));
    }
    cases.push(case(
        "upload empty",
        request(
            "POST",
            "/v1/image/upload",
            &[write, ("Content-Type", "image/png"), ("Content-Length", "0")],
            b"",
        ),
        App(&[400]),
    ));
    cases.push(case(
        "upload declared too large",
        request(
            "POST",
            "/v1/image/upload",
            &[write, ("Content-Type", "image/png"), ("Content-Length", "999999999999")],
            b"",
        ),
        App(&[413]),
    ));
    cases.push(case("upload bad chunk", b"POST /v1/image/upload HTTP/1.1\r\nHost: g\r\nConnection: close\r\nX-API-Key: writer-0123456789abcdef\r\nContent-Type: image/png\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".to_vec(), Protocol));
    cases.push(case("upload two lengths", b"POST /v1/image/upload HTTP/1.1\r\nHost: g\r\nConnection: close\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab".to_vec(), Protocol));
    cases.push(case("upload length and chunked", b"POST /v1/image/upload HTTP/1.1\r\nHost: g\r\nConnection: close\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(), Protocol));

    // Protocol garbage.
    for (what, raw) in [
        ("no version", b"GET /\r\n\r\n".to_vec()),
        ("HTTP/9.9", b"GET / HTTP/9.9\r\nHost: g\r\n\r\n".to_vec()),
        ("lower-case version", b"GET / http/1.1\r\nHost: g\r\n\r\n".to_vec()),
        ("binary", vec![0, 1, 2, 3, 255, 254, b'\r', b'\n', b'\r', b'\n']),
        ("header without colon", b"GET / HTTP/1.1\r\nHost g\r\n\r\n".to_vec()),
        ("space before colon", b"GET / HTTP/1.1\r\nHost : g\r\n\r\n".to_vec()),
        (
            "obs-fold",
            b"GET / HTTP/1.1\r\nHost: g\r\nX-A: a\r\n b\r\n\r\n".to_vec(),
        ),
        ("bare LF", b"GET / HTTP/1.1\nHost: g\nConnection: close\n\n".to_vec()),
        (
            "NUL in header",
            b"GET / HTTP/1.1\r\nHost: g\r\nX-A: a\0b\r\n\r\n".to_vec(),
        ),
        (
            "CR in header",
            b"GET / HTTP/1.1\r\nHost: g\r\nX-A: a\rb\r\n\r\n".to_vec(),
        ),
        ("empty method", b" / HTTP/1.1\r\nHost: g\r\n\r\n".to_vec()),
        (
            "tab in target",
            b"GET /v1/image/download/\tx HTTP/1.1\r\nHost: g\r\n\r\n".to_vec(),
        ),
        (
            "h2 preface on h1 with junk",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\njunk".to_vec(),
        ),
        (
            "very long method",
            format!(
                "{} / HTTP/1.1\r\nHost: g\r\nConnection: close\r\n\r\n",
                "A".repeat(5000)
            )
            .into_bytes(),
        ),
        (
            "non-ascii header name",
            b"GET / HTTP/1.1\r\nHost: g\r\nX-\xc3\xa9: a\r\n\r\n".to_vec(),
        ),
    ] {
        cases.push(case(format!("protocol: {what}"), raw, Protocol));
    }
    cases
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_hostile_requests() {
    let fixture = Fixture::with(Backend::Fs, |config: &mut Config| {
        config.auth.mode = AuthMode::ApiKey;
        config.auth.api_keys = vec![Secret::new(READER), Secret::new(format!("write:{WRITER}"))];
        config.auth.url_signing_key = vec![Secret::new("signing-key-0123456789abcdef")];
    })
    .await;
    let stored = fixture.put(ImageFormat::Png, PNG).await;
    let counting = Counting::new(fixture.backend());
    let server = TestServer::start_with(fixture.config.clone(), counting.clone() as Arc<_>).await;
    let before = storage_calls(&server, None).await;

    let cases = cases(stored.as_str());
    let invalid = invalid_names().len() * 2;
    assert!(cases.len() >= 300, "only {} cases", cases.len());
    let mut failures = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let response = within(&case.what, raw_exchange(server.addr, &case.raw)).await;
        let verdict = match (case.expect, &response) {
            (_, Some(r)) if r.status >= 500 => Err(format!("{} {:?}", r.status, String::from_utf8_lossy(&r.body))),
            (Expect::App(allowed), Some(r)) if !allowed.contains(&r.status) => Err(format!(
                "status {} not in {allowed:?}: {:?}",
                r.status,
                String::from_utf8_lossy(&r.body)
            )),
            (Expect::App(_), Some(r)) if (400..500).contains(&r.status) && r.status != 412 => {
                let json: Option<serde_json::Value> = serde_json::from_slice(&r.body).ok();
                match json.as_ref().and_then(|j| j["detail"].as_str()) {
                    Some(detail) if !detail.is_empty() => Ok(()),
                    _ if case.raw.starts_with(b"HEAD ") => Ok(()), // HEAD answers carry no body
                    _ => Err(format!(
                        "{} without a JSON detail: {:?}",
                        r.status,
                        String::from_utf8_lossy(&r.body)
                    )),
                }
            }
            (Expect::App(_), None) => Err("no response".into()),
            (Expect::Protocol, Some(r)) if !(400..500).contains(&r.status) => {
                Err(format!("{} for malformed HTTP", r.status))
            }
            _ => Ok(()),
        };
        if let Err(why) = verdict {
            failures.push(format!("#{i} {}: {why}", case.what));
        }
        if i < invalid && counting.calls() > 0 {
            panic!("#{i} {}: an invalid name reached storage", case.what);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );

    // Storage saw only the valid-name cases, in the metrics as in the wrapper; the stored
    // object is unchanged and nothing else was stored.
    let after = storage_calls(&server, None).await;
    assert_eq!(after - before, counting.calls() as f64);
    let got = fixture.storage.get(&stored, None).await.unwrap();
    let bytes: Vec<bytes::Bytes> = futures_util::TryStreamExt::try_collect(got.body).await.unwrap();
    assert_eq!(bytes.concat(), PNG);
    let listed = fixture.storage.list(None, 100).await.unwrap();
    assert_eq!(listed.objects.len(), 1, "{:?}", listed.objects);
}

/// The hostile table over HTTP/2 (h2c with prior knowledge, the `h2` crate as the client):
/// header and URL limits, errors, rapid resets, a stalled flow-control window, many streams.
/// Every case: no 5xx, and the process keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_hostile_table() {
    use h2::client;
    use http::Request;

    let fx = Fixture::new(crate::support::Backend::Fs).await;
    let name = fx
        .put(
            image_gateway::object_name::ImageFormat::Png,
            crate::support::pattern(1 << 20),
        )
        .await;
    let server = TestServer::start(&fx).await;
    let connect = |window: u32| {
        let addr = server.addr;
        async move {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let (send, connection) = client::Builder::new()
                .initial_window_size(window)
                .handshake::<_, bytes::Bytes>(tcp)
                .await
                .unwrap();
            let driver = tokio::spawn(connection);
            (send, driver)
        }
    };
    let unharmed = || async {
        let r = raw_request(server.addr, "GET", "/livez", &[]).await;
        assert_eq!(r.status, 200, "the process keeps serving");
    };
    let request = |path: &str, headers: &[(String, String)]| {
        let mut builder = Request::get(format!("http://{}{path}", server.addr));
        for (k, v) in headers {
            builder = builder.header(k.as_str(), v.as_str());
        }
        builder.body(()).unwrap()
    };
    // One request per case on a fresh connection: the status, or how the stream ended.
    let status_of = |req: Request<()>| async {
        let (send, driver) = connect(65_535).await;
        let outcome = async {
            let mut send = send.ready().await?;
            let (response, _) = send.send_request(req, true)?;
            Ok::<_, h2::Error>(response.await?.status().as_u16())
        };
        let outcome = within("h2 request", outcome).await;
        driver.abort();
        outcome
    };
    let mut table = Vec::new();
    let cases: Vec<(&str, Request<()>, &[u16])> = vec![
        ("livez", request("/livez", &[]), &[200]),
        ("download", request(&format!("/v1/image/download/{name}"), &[]), &[200]),
        (
            "invalid name",
            request("/v1/image/download/..%2f..%2fetc%2fpasswd", &[]),
            &[400],
        ),
        ("missing object", request(crate::support::MISSING_OBJECT, &[]), &[404]),
        (
            "100 header fields",
            request(
                "/livez",
                &(0..100).map(|i| (format!("x-h{i}"), "v".into())).collect::<Vec<_>>(),
            ),
            &[431],
        ),
        (
            "20 KB header value",
            request("/livez", &[("x-big".into(), "v".repeat(20 << 10))]),
            &[431],
        ),
        (
            "8 KB URL",
            request(&format!("/livez?{}", "q".repeat(8 << 10)), &[]),
            &[414],
        ),
        ("unknown route", request("/nope", &[]), &[404]),
    ];
    for (what, req, expected) in cases {
        let outcome = status_of(req).await;
        match &outcome {
            Ok(status) => assert!(expected.contains(status), "{what}: {status}"),
            // hyper's own backstop may reset the stream instead: never a 5xx.
            Err(e) => assert!(e.is_reset() || e.is_go_away(), "{what}: {e}"),
        }
        table.push(format!("{what}: {outcome:?}"));
        unharmed().await;
    }

    // Rapid reset: 5,000 streams opened and cancelled at once (CVE-2023-44487's pattern).
    let (mut send, driver) = connect(65_535).await;
    let started = std::time::Instant::now();
    let (mut opened, mut ended) = (0, None);
    for _ in 0..5_000 {
        let attempt = match within("ready", send.clone().ready()).await {
            Ok(ready) => {
                send = ready;
                send.send_request(request("/livez", &[]), true).map(drop)
            }
            Err(e) => Err(e),
        };
        if let Err(e) = attempt {
            ended = Some(e.to_string());
            break;
        }
        opened += 1;
    }
    driver.abort();
    table.push(format!(
        "rapid reset: {opened} streams opened and cancelled in {:?}; connection: {}",
        started.elapsed(),
        ended.as_deref().unwrap_or("still open after 5,000")
    ));
    unharmed().await;

    // A client that never opens its window: a 1 MiB download stalls on its side, not ours.
    let (send, stalled) = connect(0).await;
    let mut send = send.ready().await.unwrap();
    let (response, _) = send
        .send_request(request(&format!("/v1/image/download/{name}"), &[]), true)
        .unwrap();
    let head = within("stalled download's head", response).await.unwrap();
    assert_eq!(head.status(), 200);
    for _ in 0..20 {
        unharmed().await;
    }
    table.push("zero window: the 1 MiB download's head arrives, the body waits; others served".into());
    stalled.abort();

    // 300 concurrent streams on one connection (more than the server's stream limit). One
    // request first: until the server's SETTINGS arrive the client assumes no stream limit,
    // and streams sent beyond the limit in that window are refused (a race a loaded machine
    // loses), which is the client's mistake, not what this checks.
    let (send, driver) = connect(65_535).await;
    let mut first = send.clone().ready().await.unwrap();
    let (response, _) = first.send_request(request("/livez", &[]), true).unwrap();
    assert_eq!(within("first stream", response).await.unwrap().status(), 200);
    let mut requests = Vec::new();
    for _ in 0..300 {
        let send = send.clone();
        let req = request("/livez", &[]);
        requests.push(tokio::spawn(async move {
            let mut send = send.ready().await?;
            let (response, _) = send.send_request(req, true)?;
            Ok::<_, h2::Error>(response.await?.status().as_u16())
        }));
    }
    let mut served = 0;
    for r in requests {
        if let Ok(Ok(200)) = within("stream", r).await {
            served += 1;
        }
    }
    driver.abort();
    assert_eq!(served, 300, "streams beyond the limit wait for a slot; all are served");
    table.push(format!("300 concurrent streams: {served} served"));
    unharmed().await;
    eprintln!("http/2 hostile table:\n  {}", table.join("\n  "));
}
