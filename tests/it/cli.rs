//! The binary itself: `check-config` and start-up failures.

use std::process::Command;

fn gateway() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_image-gateway"));
    for (key, _) in std::env::vars() {
        if key.starts_with("IMAGE_GATEWAY_") {
            command.env_remove(key);
        }
    }
    command
}

#[test]
fn check_config_prints_the_effective_config_with_secrets_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gw.toml");
    std::fs::write(
        &file,
        "[storage]\nbackend = \"s3\"\n[storage.s3]\nendpoint = \"http://127.0.0.1:3900\"\nbucket = \"images\"\naccess_key_id = \"GK1\"\n",
    )
    .unwrap();
    let out = gateway()
        .args(["check-config", "--config"])
        .arg(&file)
        .env(
            "IMAGE_GATEWAY_STORAGE__S3__SECRET_ACCESS_KEY",
            "very-secret-value",
        )
        .env("IMAGE_GATEWAY_STORAGE__TIMEOUT", "3s")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("backend = \"s3\""), "{stdout}");
    assert!(stdout.contains("timeout = \"3s\""), "{stdout}");
    assert!(
        stdout.contains("secret_access_key = \"[redacted]\""),
        "{stdout}"
    );
    assert!(!stdout.contains("very-secret-value"));
    let parsed: toml::Value = toml::from_str(&stdout).expect("check-config prints valid TOML");
    assert_eq!(parsed["public_url"].as_str(), Some("http://127.0.0.1:8080"));
}

#[test]
fn bad_values_exit_64_with_one_line_naming_the_key() {
    for (key, value, named) in [
        ("IMAGE_GATEWAY_STORAGE__TIMEOUT", "soon", "storage.timeout"),
        ("IMAGE_GATEWAY_UPLOAD__MAX_BYTES", "-3", "upload.max_bytes"),
        ("IMAGE_GATEWAY_LISTEN", "not-an-address", "listen"),
        ("IMAGE_GATEWAY_STORAGE__BACKEND", "s3", "storage.s3.bucket"),
    ] {
        for command in ["check-config", "serve"] {
            let out = gateway().arg(command).env(key, value).output().unwrap();
            assert_eq!(out.status.code(), Some(64), "{command} with {key}={value}");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
            assert!(
                stderr.contains(&format!("`{named}`")),
                "{stderr} names {named}"
            );
        }
    }
    let out = gateway()
        .args(["--config", "/nonexistent/gw.toml", "check-config"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/gw.toml"));
}
