//! Stamps the binary with the commit it was built from (`build_info{git_sha}`), unless
//! `IG_GIT_SHA` is already set (e.g. by a Docker build without `.git`).

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=IG_GIT_SHA");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
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
