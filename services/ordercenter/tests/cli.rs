//! Runs the built `ordercenter` binary as a CI pipeline would.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tenant-config/examples")
}

fn ordercenter(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ordercenter"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn copy_examples() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(examples_dir()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    dir
}

fn rewrite(path: &Path, from: &str, to: &str) {
    let content = std::fs::read_to_string(path).unwrap();
    assert!(
        content.contains(from),
        "test setup: {from:?} not in {}",
        path.display()
    );
    std::fs::write(path, content.replacen(from, to, 1)).unwrap();
}

#[test]
fn validate_examples_exits_0_with_a_summary() {
    let dir = examples_dir();
    let out = ordercenter(&["config", "validate", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).trim(),
        "ok: 2 tenants, 5 order types, 30 fields"
    );
}

#[test]
fn plan_refuses_a_slot_reused_by_another_field_with_exit_2() {
    let new = copy_examples();
    rewrite(
        &new.path().join("express.yaml"),
        "name: temperature_max",
        "name: box_count",
    );
    let old = examples_dir();
    let out = ordercenter(&[
        "config",
        "plan",
        old.to_str().unwrap(),
        new.path().to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "stdout: {}\nstderr: {}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    for needle in [
        "order.ext_02",
        "`temperature_max`",
        "`box_count`",
        "REFUSED",
    ] {
        assert!(all.contains(needle), "{needle} missing from:\n{all}");
    }
}

#[test]
fn plan_of_a_safe_change_exits_0() {
    let new = copy_examples();
    rewrite(
        &new.path().join("retail.yaml"),
        "hot_days: 180",
        "hot_days: 365",
    );
    let old = examples_dir();
    let out = ordercenter(&[
        "config",
        "plan",
        old.to_str().unwrap(),
        new.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    assert!(text(&out.stdout).contains("hot retention 180 → 365 days"));
}

#[test]
fn validate_a_broken_dir_exits_1_with_file_and_path() {
    let dir = copy_examples();
    let express = dir.path().join("express.yaml");
    rewrite(&express, "slot: order.ext_05\n", "slot: order.ext_25\n");
    let out = ordercenter(&["config", "validate", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    let expected = format!(
        "{}:/business_identities/cold-chain/order_types/standard/fields/4/slot: ",
        express.display()
    );
    assert!(
        stderr.contains(&expected),
        "{expected} missing from:\n{stderr}"
    );
    assert!(stderr.contains("ext_25"), "{stderr}");

    // plan with an invalid side is exit 1 too
    let out = ordercenter(&[
        "config",
        "plan",
        examples_dir().to_str().unwrap(),
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn schema_prints_the_committed_json_schema() {
    let out = ordercenter(&["config", "schema"]);
    assert_eq!(out.status.code(), Some(0));
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let committed: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../tenant-config/schema/tenant-config.v1.schema.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(printed, committed);
}

#[test]
fn help_lists_serve_and_config() {
    let out = ordercenter(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out.stdout);
    assert!(help.contains("serve") && help.contains("config"), "{help}");
}

#[test]
fn serve_refuses_an_invalid_tenant_config_before_listening() {
    let broken = tempfile::tempdir().unwrap();
    std::fs::write(
        broken.path().join("bad.yaml"),
        "version: 1\ntenant: Not Valid\n",
    )
    .unwrap();
    let data = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ordercenter"))
        .arg("serve")
        .env("OC_TENANT_CONFIG_DIR", broken.path())
        .env("OC_DATA_DIR", data.path())
        // a port nothing else uses: the command must fail before binding anyway
        .env("OC_LISTEN", "127.0.0.1:1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("tenant config") && stderr.contains("bad.yaml"),
        "{stderr}"
    );
}
