//! Stamps the binary with the commit it was built from (`build_info{git_sha}`), unless
//! `IG_GIT_SHA` is already set (e.g. by a Docker build without `.git`).

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=IG_GIT_SHA");
    // Only paths that exist: cargo reruns a script watching a missing one at every build, and
    // then compiles the crate again (twice per mutant in a cargo-mutants copy, which has no
    // `.git`).
    for path in [".git/HEAD", ".git/refs/heads"] {
        if std::path::Path::new(path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    if std::env::var_os("IG_GIT_SHA").is_some() {
        return;
    }
    let sha = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit()));
    if let Some(sha) = sha {
        println!("cargo:rustc-env=IG_GIT_SHA={sha}");
    }
}
