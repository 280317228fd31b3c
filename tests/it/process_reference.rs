//! Processing results measured against independent references on a small corpus of real
//! photographs, so that quality cannot silently regress: photos from Debian's
//! `mate-backgrounds` (progressive and baseline JPEGs, 1280-2560 px), scikit-image's sample
//! photographs (one tagged Adobe RGB), and files made here with libvips: a Display P3 JPEG, a
//! CMYK JPEG with its profile embedded and a JPEG stored sideways (EXIF orientation 6).
//!
//! Every result is scored by `scripts/image_quality.py` (the benchmark's definition of SSIM and
//! PSNR) against a full decode converted by LittleCMS and resampled by Pillow's Lanczos3
//! (`full`), and against libvips's `thumbnail` (`vips`, pyvips from PyPI with its own libvips
//! 8.18). The floors sit just under what was measured (the lower of the two JPEG decoders):
//! what a change may not lose.

use std::path::{Path, PathBuf};

use crate::support::{Backend, Fixture, TestServer, detail, post, python, scratch_dir};

/// Where Debian's `mate-backgrounds` puts its photographs (the test command installs it).
const MATE: &str = "/usr/share/backgrounds/mate";

/// The corpus files made for the test: scikit-image's photographs copied from its wheel (no
/// import, so none of its dependencies), and three made with libvips's LittleCMS.
const MAKE_CORPUS: &str = r#"
import importlib.util, os, shutil, sys
import pyvips
from PIL import Image
out = sys.argv[1]
data = os.path.join(importlib.util.find_spec("skimage").submodule_search_locations[0], "data")
for name in ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg"):
    shutil.copy(os.path.join(data, name), out)
coffee = pyvips.Image.new_from_file(os.path.join(out, "coffee.png"))
coffee.icc_transform("p3", intent="perceptual").write_to_file(os.path.join(out, "coffee-p3.jpg"), Q=95)
astronaut = pyvips.Image.new_from_file(os.path.join(out, "astronaut.png"))
astronaut.icc_transform(sys.argv[2], intent="perceptual").write_to_file(os.path.join(out, "astronaut-cmyk.jpg"), Q=95)
wood = Image.open(sys.argv[3])
exif = wood.getexif()
exif[0x0112] = 6
wood.transpose(Image.Transpose.ROTATE_90).save(os.path.join(out, "wood-o6.jpg"), quality=92, exif=exif.tobytes())
"#;

/// Ghostscript's CMYK profile (Debian's `libgs-common`, installed by the test command).
const CMYK_PROFILE: &str = "/usr/share/color/icc/ghostscript/default_cmyk.icc";

/// One result to score: its source, the request, and per reference the SSIM and PSNR it must
/// reach.
struct Case {
    source: &'static str,
    target: &'static str,
    floors: [(&'static str, f64, f64); 2],
}

const THUMBNAIL: &str = "/v1/image/thumbnail?width=256&height=256&format=png";
const TO_PNG: &str = "/v1/image/convert?format=png";

/// The corpus and its floors: `mate:` names a `mate-backgrounds` photo, other names a file of
/// [`MAKE_CORPUS`].
const CASES: &[Case] = &[
    // Shrink-on-load (1/2 to 1/4) plus Lanczos3, baseline JPEGs.
    Case {
        source: "mate:nature/Dune.jpg",
        target: THUMBNAIL,
        floors: [("full", 0.999, 46.5), ("vips", 0.9988, 50.5)],
    },
    // Progressive, 1600x1203: neither side is a multiple of 8 (partial blocks at the edges).
    Case {
        source: "mate:nature/FreshFlower.jpg",
        target: THUMBNAIL,
        floors: [("full", 0.9988, 52.5), ("vips", 0.9977, 45.5)],
    },
    Case {
        source: "mate:abstract/Elephants.jpg",
        target: THUMBNAIL,
        floors: [("full", 0.9991, 52.0), ("vips", 0.9991, 51.0)],
    },
    // The benchmark's request (fit inside 512x512) on a 2560x1600 photo.
    Case {
        source: "mate:nature/TwoWings.jpg",
        target: "/v1/image/resize?width=512&height=512&fit=inside&format=png",
        floors: [("full", 0.9981, 51.0), ("vips", 0.9982, 50.5)],
    },
    // ... and its JPEG at quality 90: the encoder's loss on top of the resampler's.
    Case {
        source: "mate:nature/TwoWings.jpg",
        target: "/v1/image/resize?width=512&height=512&fit=inside&format=jpeg&quality=90",
        floors: [("full", 0.9916, 41.0), ("vips", 0.9916, 40.5)],
    },
    // ... and at quality 80, where chroma is subsampled: averaged over 2x2 as libjpeg does
    // (37.25-37.34 dB). A floor 0.15 dB under that, on purpose: taking each block's top-left
    // chroma, the encoder's default, gives 36.90.
    Case {
        source: "mate:nature/TwoWings.jpg",
        target: "/v1/image/resize?width=512&height=512&fit=inside&format=jpeg&quality=80",
        floors: [("full", 0.987, 37.1), ("vips", 0.987, 37.0)],
    },
    // Stored sideways: turned upright on decode, the shrink's covered region turned with it.
    Case {
        source: "wood-o6.jpg",
        target: THUMBNAIL,
        floors: [("full", 0.9983, 50.0), ("vips", 0.9981, 49.0)],
    },
    // PNG sources: a full decode, then Lanczos3.
    Case {
        source: "astronaut.png",
        target: THUMBNAIL,
        floors: [("full", 0.999, 53.5), ("vips", 0.9994, 65.5)],
    },
    Case {
        source: "coffee.png",
        target: THUMBNAIL,
        floors: [("full", 0.9989, 53.5), ("vips", 0.9992, 56.0)],
    },
    Case {
        source: "chelsea.png",
        target: THUMBNAIL,
        floors: [("full", 0.999, 54.0), ("vips", 0.9992, 56.0)],
    },
    // Colour-managed sources, converted alone and thumbnailed: Adobe RGB (1998) ...
    Case {
        source: "rocket.jpg",
        target: TO_PNG,
        floors: [("full", 0.9991, 55.5), ("vips", 0.9991, 55.5)],
    },
    Case {
        source: "rocket.jpg",
        target: THUMBNAIL,
        floors: [("full", 0.9986, 53.5), ("vips", 0.9979, 48.5)],
    },
    // ... Display P3 ...
    Case {
        source: "coffee-p3.jpg",
        target: TO_PNG,
        floors: [("full", 0.9991, 56.0), ("vips", 0.9991, 56.0)],
    },
    Case {
        source: "coffee-p3.jpg",
        target: THUMBNAIL,
        floors: [("full", 0.9989, 53.0), ("vips", 0.9987, 50.0)],
    },
    // ... and CMYK through Ghostscript's profile (Adobe-inverted ink, as libvips writes it).
    Case {
        source: "astronaut-cmyk.jpg",
        target: TO_PNG,
        floors: [("full", 0.9982, 50.0), ("vips", 0.9982, 50.0)],
    },
    Case {
        source: "astronaut-cmyk.jpg",
        target: THUMBNAIL,
        floors: [("full", 0.9987, 50.5), ("vips", 0.9979, 42.0)],
    },
];

/// `scripts/image_quality.py score`: `{"full": {"ssim": …, "psnr": …}, "vips": {…}}`.
fn score(result: &Path, source: &Path) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/image_quality.py");
    let args = [
        script.as_os_str(),
        "score".as_ref(),
        "--against".as_ref(),
        "full,vips".as_ref(),
    ];
    serde_json::from_slice(&python(
        args.into_iter().chain([result.as_os_str(), source.as_os_str()]),
    ))
    .unwrap()
}

/// Makes the corpus files in `dir` (pyvips, Pillow).
fn make_corpus(dir: &Path) {
    for path in [MATE, CMYK_PROFILE] {
        assert!(
            Path::new(path).exists(),
            "{path} is missing; the test command installs it (Debian's mate-backgrounds, libgs-common)"
        );
    }
    let wood = format!("{MATE}/nature/Wood.jpg");
    python(["-c", MAKE_CORPUS, &dir.to_string_lossy(), CMYK_PROFILE, &wood]);
}

/// Every corpus result reaches its SSIM and PSNR floors against both references; all results
/// are scored before failing, and the table of every figure is printed.
#[tokio::test]
async fn corpus_results_stay_as_close_to_libvips_and_a_full_decode_as_measured() {
    let dir = scratch_dir();
    make_corpus(dir.path());
    let fx = Fixture::new(Backend::Fs).await;
    let server = TestServer::start(&fx).await;
    let mut table = String::from("source | request | reference: SSIM / PSNR (floor)\n");
    let mut failures = Vec::new();
    for (i, case) in CASES.iter().enumerate() {
        let source = match case.source.strip_prefix("mate:") {
            Some(name) => PathBuf::from(MATE).join(name),
            None => dir.path().join(case.source),
        };
        let bytes = std::fs::read(&source).unwrap();
        let content_type = if case.source.ends_with(".png") {
            "image/png"
        } else {
            "image/jpeg"
        };
        let (status, body) = post(&server, case.target, content_type, &bytes, "image/*").await;
        assert_eq!(status, 200, "{} {}: {}", case.source, case.target, detail(&body));
        let result = dir.path().join(format!("result-{i}"));
        std::fs::write(&result, &body).unwrap();
        let scores = score(&result, &source);
        table.push_str(&format!("{} | {}", case.source, case.target));
        for (reference, min_ssim, min_psnr) in case.floors {
            let ssim = scores[reference]["ssim"].as_f64().unwrap();
            let psnr = scores[reference]["psnr"].as_f64().unwrap();
            table.push_str(&format!(
                " | {reference}: {ssim:.5} / {psnr:.2} dB ({min_ssim} / {min_psnr})"
            ));
            if ssim < min_ssim || psnr < min_psnr {
                failures.push(format!(
                    "{} {}: against {reference}, SSIM {ssim:.5} / PSNR {psnr:.2} dB, below {min_ssim} / {min_psnr}",
                    case.source, case.target
                ));
            }
        }
        table.push('\n');
    }
    eprintln!("{table}");
    assert!(failures.is_empty(), "{}\n\n{table}", failures.join("\n"));
}
