//! SVG safety. An SVG is a document that can act (scripts, external loads, markup made to keep a
//! parser or a renderer busy), and a stored one may later be served without the gateway's
//! headers, so what the gateway accepts must be inert wherever it is served, and what is built
//! to exhaust it must be refused before storage without stalling the server.
//!
//! Inert from any origin, checked by a real browser: every SVG of a corpus (known attack
//! vectors and a few drawings) is uploaded to the gateway; each one it accepts is downloaded and
//! served again from a plain server, *without* the gateway's headers (as a bucket, a presigned
//! URL or a CDN would serve it), and rendered by headless Chromium as a document and as an
//! `<img>`. A beacon server on loopback counts every request a rendering makes: zero for every
//! accepted SVG. A control SVG that does load the beacon, rendered the same way, shows the count
//! works. Exhaustion: attribute bombs (the XML parser) and `<use>` fan-outs (the renderer).
//!
//! Elsewhere: the allowlist's unit tests in `src/content/svg.rs`; malformed SVGs refused in
//! `upload.rs`; SVG filters costed before processing in `process_budget.rs`; the CSP an SVG is
//! served with in `download.rs`.

use std::{
    collections::HashMap,
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

use crate::support::{Fixture, TestServer, client, raw_request, within};

/// Path → (Content-Type, body).
type Files = Arc<Mutex<HashMap<String, (&'static str, Vec<u8>)>>>;

/// A loopback HTTP server that answers every request with `files[path]` (or 404) and records
/// the paths it was asked for.
struct Plain {
    addr: SocketAddr,
    files: Files,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Plain {
    async fn start() -> Plain {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let files: Files = Arc::default();
        let requests: Arc<Mutex<Vec<String>>> = Arc::default();
        let (served, seen) = (files.clone(), requests.clone());
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let (served, seen) = (served.clone(), seen.clone());
                tokio::spawn(async move {
                    let mut head = vec![0u8; 8192];
                    let n = stream.read(&mut head).await.unwrap_or(0);
                    let text = String::from_utf8_lossy(&head[..n]);
                    let path = text.split_whitespace().nth(1).unwrap_or("").to_owned();
                    seen.lock().unwrap().push(path.clone());
                    let file = served.lock().unwrap().get(&path).cloned();
                    let (status, content_type, body) = match file {
                        Some((content_type, body)) => ("200 OK", content_type, body),
                        None => ("404 Not Found", "text/plain", Vec::new()),
                    };
                    let head = format!(
                        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = stream.write_all(head.as_bytes()).await;
                    let _ = stream.write_all(&body).await;
                });
            }
        });
        Plain { addr, files, requests }
    }

    fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn serve(&self, path: &str, content_type: &'static str, body: Vec<u8>) {
        self.files.lock().unwrap().insert(path.to_owned(), (content_type, body));
    }

    fn take_requests(&self) -> Vec<String> {
        std::mem::take(&mut *self.requests.lock().unwrap())
    }
}

fn chromium() -> PathBuf {
    let path = std::env::var_os("IG_CHROMIUM_BIN").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    assert!(
        path.is_file(),
        "Chromium is needed at {} (IG_CHROMIUM_BIN): install it with `bash scripts/install-chromium.sh` \
         (the test command does)",
        path.display()
    );
    path
}

/// Loads `url` in headless Chromium and lets it run (timers, loads) for a few seconds of
/// virtual time.
async fn render(url: &str) {
    let profile = crate::support::scratch_dir();
    let mut command = tokio::process::Command::new(chromium());
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--virtual-time-budget=3000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    let status = within(&format!("chromium renders {url}"), command.status())
        .await
        .unwrap();
    assert!(status.success(), "chromium failed on {url}: {status}");
}

/// The corpus: each SVG points every reference it can at `beacon`.
fn corpus(beacon: &str) -> Vec<(&'static str, String)> {
    let doc = |inner: &str| {
        format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" xmlns:xlink=\"http://www.w3.org/1999/xlink\" \
             xmlns:h=\"http://www.w3.org/1999/xhtml\" width=\"100\" height=\"100\">{inner}</svg>"
        )
    };
    let nested = format!("<svg xmlns='http://www.w3.org/2000/svg'><image href='{beacon}/nested'/></svg>");
    let nested_b64 = base64_encode(nested.as_bytes());
    vec![
        (
            "image href",
            doc(&format!("<image href=\"{beacon}/image\" width=\"10\" height=\"10\"/>")),
        ),
        (
            "xlink image",
            doc(&format!(
                "<image xlink:href=\"{beacon}/xlink\" width=\"10\" height=\"10\"/>"
            )),
        ),
        ("external use", doc(&format!("<use href=\"{beacon}/use.svg#x\"/>"))),
        (
            "@import",
            doc(&format!("<style>@import url({beacon}/import.css);</style>")),
        ),
        (
            "escaped @import",
            doc(&format!("<style>@\\69mport url({beacon}/escaped.css);</style>")),
        ),
        (
            "comment-split @import",
            doc(&format!("<style>@imp<!---->ort url({beacon}/split.css);</style>")),
        ),
        (
            "css url",
            doc(&format!(
                "<rect width=\"10\" height=\"10\" style=\"fill: url({beacon}/url)\"/>"
            )),
        ),
        (
            "escaped url(",
            doc(&format!(
                "<rect width=\"10\" height=\"10\" style=\"fill: u\\72l({beacon}/eurl)\"/>"
            )),
        ),
        (
            "comment-split url(",
            doc(&format!(
                "<style>rect {{ fill: ur<!---->l({beacon}/surl) }}</style><rect width=\"9\" height=\"9\"/>"
            )),
        ),
        (
            "image-set",
            doc(&format!(
                "<style>svg {{ background-image: image-set(\"{beacon}/set\" 1x) }}</style>"
            )),
        ),
        (
            "font-face",
            doc(&format!(
                "<style>@font-face {{ font-family: x; src: url({beacon}/font) }} text {{ font-family: x }}</style><text y=\"20\">x</text>"
            )),
        ),
        (
            "cursor",
            doc(&format!(
                "<rect width=\"10\" height=\"10\" style=\"cursor: url({beacon}/cursor), auto\"/>"
            )),
        ),
        (
            "foreignObject",
            doc(&format!(
                "<foreignObject width=\"50\" height=\"50\"><h:img src=\"{beacon}/fo\"/></foreignObject>"
            )),
        ),
        ("xhtml img", doc(&format!("<h:img src=\"{beacon}/himg\"/>"))),
        ("xhtml iframe", doc(&format!("<h:iframe src=\"{beacon}/hiframe\"/>"))),
        (
            "xhtml input image",
            doc(&format!("<h:input type=\"image\" src=\"{beacon}/hinput\"/>")),
        ),
        (
            "xhtml video poster",
            doc(&format!("<h:video poster=\"{beacon}/hposter\"/>")),
        ),
        (
            "xhtml meta refresh",
            doc(&format!(
                "<h:meta http-equiv=\"refresh\" content=\"0;url={beacon}/refresh\"/>"
            )),
        ),
        (
            "xhtml link",
            doc(&format!("<h:link rel=\"stylesheet\" href=\"{beacon}/hlink.css\"/>")),
        ),
        ("script", doc(&format!("<script>fetch('{beacon}/script')</script>"))),
        ("script src", doc(&format!("<script href=\"{beacon}/script.js\"/>"))),
        (
            "onload",
            format!("<svg xmlns=\"http://www.w3.org/2000/svg\" onload=\"fetch('{beacon}/onload')\"/>"),
        ),
        (
            "feImage",
            doc(&format!(
                "<filter id=\"f\"><feImage href=\"{beacon}/feimage\"/></filter><rect width=\"10\" height=\"10\" filter=\"url(#f)\"/>"
            )),
        ),
        (
            "pattern image",
            doc(&format!(
                "<pattern id=\"p\" width=\"10\" height=\"10\"><image href=\"{beacon}/pattern\" width=\"10\" height=\"10\"/></pattern><rect width=\"10\" height=\"10\" fill=\"url(#p)\"/>"
            )),
        ),
        (
            "mask image",
            doc(&format!(
                "<mask id=\"m\"><image href=\"{beacon}/mask\" width=\"10\" height=\"10\"/></mask><rect width=\"10\" height=\"10\" mask=\"url(#m)\"/>"
            )),
        ),
        (
            "animated href",
            doc(&format!(
                "<image width=\"10\" height=\"10\"><set attributeName=\"href\" to=\"{beacon}/set-href\"/></image>"
            )),
        ),
        (
            "nested svg data URL",
            doc(&format!(
                "<image width=\"10\" height=\"10\" href=\"data:image/svg+xml;base64,{nested_b64}\"/>"
            )),
        ),
        (
            "xml-stylesheet",
            format!("<?xml-stylesheet href=\"{beacon}/pi.css\"?><svg xmlns=\"http://www.w3.org/2000/svg\"/>"),
        ),
        (
            "external entity",
            format!(
                "<!DOCTYPE svg [<!ENTITY x SYSTEM \"{beacon}/entity\">]><svg xmlns=\"http://www.w3.org/2000/svg\"><text>&x;</text></svg>"
            ),
        ),
        // Drawings that must be accepted (and, rendered, load nothing).
        (
            "drawing",
            doc(
                "<defs><linearGradient id=\"g\"><stop offset=\"0\" stop-color=\"red\"/></linearGradient></defs><rect width=\"50\" height=\"50\" fill=\"url(#g)\"/><text x=\"5\" y=\"60\">hello</text>",
            ),
        ),
        (
            "local use",
            doc("<defs><circle id=\"c\" r=\"5\"/></defs><use href=\"#c\" x=\"10\" y=\"10\"/>"),
        ),
        (
            "inline png",
            doc(
                "<image width=\"1\" height=\"1\" href=\"data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==\"/>",
            ),
        ),
        (
            "sample",
            String::from_utf8(include_bytes!("../fixtures/sample.svg").to_vec()).unwrap(),
        ),
    ]
}

fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            out.push(if i <= chunk.len() {
                ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char
            } else {
                '='
            });
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_svgs_load_nothing_when_rendered_without_our_headers() {
    let beacon = Plain::start().await;
    let plain = Plain::start().await;
    let fx = Fixture::new(crate::support::Backend::Fs).await;
    let server = TestServer::start(&fx).await;

    // The control: served straight, an SVG with an external image does reach the beacon.
    let control = corpus(&beacon.base()).remove(0).1;
    plain.serve("/control.svg", "image/svg+xml", control.into_bytes());
    render(&format!("{}/control.svg", plain.base())).await;
    let control_hits = beacon.take_requests();
    assert!(
        !control_hits.is_empty(),
        "the control must load the beacon, or the count proves nothing"
    );

    let mut accepted = Vec::new();
    let mut refused = 0;
    for (i, (what, svg)) in corpus(&beacon.base()).into_iter().enumerate() {
        let response = within(
            "upload",
            client()
                .post(server.url("/v1/image/upload"))
                .header("content-type", "image/svg+xml")
                .body(svg)
                .send(),
        )
        .await
        .unwrap();
        let status = response.status().as_u16();
        let json: serde_json::Value = within("json", response.json()).await.unwrap();
        if status != 201 {
            assert_eq!(status, 415, "{what}: {json}");
            refused += 1;
            continue;
        }
        // What is served is what the gateway stored, byte for byte.
        let stored = within("download", client().get(json["upload_url"].as_str().unwrap()).send())
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        plain.serve(&format!("/{i}.svg"), "image/svg+xml", stored.to_vec());
        plain.serve(
            &format!("/{i}.html"),
            "text/html",
            format!("<!doctype html><html><body><img src=\"/{i}.svg\"></body></html>").into_bytes(),
        );
        accepted.push((i, what));
    }
    for (i, what) in &accepted {
        render(&format!("{}/{i}.svg", plain.base())).await;
        render(&format!("{}/{i}.html", plain.base())).await;
        let hits = beacon.take_requests();
        assert!(
            hits.is_empty(),
            "accepted SVG `{what}` made the browser request {hits:?}"
        );
    }
    let names: Vec<&str> = accepted.iter().map(|(_, what)| *what).collect();
    eprintln!(
        "svg inertness: {} accepted ({names:?}), {refused} refused, 0 beacon requests; control: {control_hits:?}",
        accepted.len()
    );
    assert!(
        names.contains(&"drawing") && names.contains(&"sample") && names.contains(&"inline png"),
        "plain drawings are accepted: {names:?}"
    );
}

/// SVGs with 100,000 attributes on one element (1.1 MB; the XML parser's duplicate check is
/// quadratic: 13 s each in a release build before) are refused at once, and `/livez` keeps
/// answering while four clients send them. The content check runs off the I/O threads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attribute_bombs_neither_stall_the_server_nor_get_stored() {
    let fx = Fixture::new(crate::support::Backend::Fs).await;
    let server = TestServer::start(&fx).await;
    let attributes: String = (0..100_000).map(|i| format!(" a{i}=\"{i}\"")).collect();
    let bomb = format!("<svg xmlns=\"http://www.w3.org/2000/svg\"><g{attributes}/></svg>");
    let uploads: Vec<_> = (0..4)
        .map(|_| {
            let (url, body) = (server.url("/v1/image/upload"), bomb.clone());
            tokio::spawn(async move {
                let response = crate::support::client()
                    .post(url)
                    .header("content-type", "image/svg+xml")
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                (response.status().as_u16(), response.text().await.unwrap())
            })
        })
        .collect();
    let mut slowest = Duration::ZERO;
    while !uploads.iter().all(tokio::task::JoinHandle::is_finished) {
        let start = std::time::Instant::now();
        assert_eq!(raw_request(server.addr, "GET", "/livez", &[]).await.status, 200);
        slowest = slowest.max(start.elapsed());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for upload in uploads {
        let (status, body) = within("upload", upload).await.unwrap();
        assert_eq!(status, 415, "{body}");
        assert!(body.contains("more than 256 attributes"), "{body}");
    }
    eprintln!("slowest /livez during four attribute-bomb uploads: {slowest:?}");
    assert!(slowest < Duration::from_secs(1), "/livez waited {slowest:?}");
    let stored = std::fs::read_dir(&fx.config.storage.fs.root).unwrap().count();
    assert_eq!(stored, 0, "nothing was stored");
}

/// A 1.2 KB `<use>` fan-out (6 levels × 10: a million elements for the renderer; it hung
/// Chromium for over a minute) is refused with 415; before, it was accepted and stored.
#[tokio::test]
async fn use_fan_out_svgs_are_refused() {
    let fx = Fixture::new(crate::support::Backend::Fs).await;
    let server = TestServer::start(&fx).await;
    let mut defs = String::from("<rect id=\"l0\" width=\"1\" height=\"1\"/>");
    for level in 1..=6 {
        let uses: String = (0..10).map(|_| format!("<use href=\"#l{}\"/>", level - 1)).collect();
        defs.push_str(&format!("<g id=\"l{level}\">{uses}</g>"));
    }
    let bomb = format!("<svg xmlns=\"http://www.w3.org/2000/svg\"><defs>{defs}</defs><use href=\"#l6\"/></svg>");
    let response = crate::support::client()
        .post(server.url("/v1/image/upload"))
        .header("content-type", "image/svg+xml")
        .body(bomb)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);
    let body = response.text().await.unwrap();
    assert!(body.contains("<use> references copy more than"), "{body}");
    assert_eq!(std::fs::read_dir(&fx.config.storage.fs.root).unwrap().count(), 0);
}
