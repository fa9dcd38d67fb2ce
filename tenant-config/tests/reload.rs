//! Hot reload: a good change is swapped in; an unsafe or broken one leaves the live config.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use oc_tenant_config::{ConfigHandle, ConfigSet, ReloadError};

fn temp_copy_of_examples() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&examples_dir(), dir.path());
    dir
}

fn rewrite(dir: &Path, file: &str, from: &str, to: &str) {
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, edit(&text, from, to)).unwrap();
}

const ADD_FIELD: (&str, &str) = (
    "        retired_slots: [order.ext_06]\n",
    "          - name: ice_pack_brand\n            type: string\n            slot: order.ext_07\n        retired_slots: [order.ext_06]\n",
);

fn has_ice_pack_brand(set: &ConfigSet) -> bool {
    order_type(tenant(set, "express"), "cold-chain", "standard")
        .field("ice_pack_brand")
        .is_some()
}

#[test]
fn a_good_change_is_swapped_in() {
    let dir = temp_copy_of_examples();
    let handle = ConfigHandle::new(ConfigSet::load_dir(dir.path()).unwrap());
    let before = handle.current();
    rewrite(dir.path(), "express.yaml", ADD_FIELD.0, ADD_FIELD.1);
    let plan = handle.reload_from(dir.path()).unwrap();
    assert!(plan.is_safe());
    assert_eq!(plan.changes.len(), 1, "{plan}");
    let after = handle.current();
    assert!(!Arc::ptr_eq(&before, &after));
    assert!(has_ice_pack_brand(&after));
    assert!(
        !has_ice_pack_brand(&before),
        "a snapshot taken earlier never changes"
    );
}

#[test]
fn an_unsafe_change_is_refused_and_the_old_config_stays() {
    let dir = temp_copy_of_examples();
    let handle = ConfigHandle::new(ConfigSet::load_dir(dir.path()).unwrap());
    let before = handle.current();
    rewrite(
        dir.path(),
        "express.yaml",
        "name: temperature_max",
        "name: box_count",
    );
    match handle.reload_from(dir.path()) {
        Err(ReloadError::Unsafe(plan)) => {
            assert!(
                plan.to_string().contains("holds field `temperature_max`"),
                "{plan}"
            );
        }
        other => panic!("expected an unsafe refusal, got {other:?}"),
    }
    assert!(Arc::ptr_eq(&before, &handle.current()));
}

#[test]
fn a_broken_file_is_refused_and_the_old_config_stays() {
    let dir = temp_copy_of_examples();
    let handle = ConfigHandle::new(ConfigSet::load_dir(dir.path()).unwrap());
    let before = handle.current();
    rewrite(
        dir.path(),
        "retail.yaml",
        "tenant: retail\n",
        "tenant: [retail\n",
    );
    match handle.reload_from(dir.path()) {
        Err(ReloadError::Invalid(errors)) => {
            let shown = errors.to_string();
            assert!(
                shown.contains("retail.yaml") && shown.contains("invalid YAML"),
                "{shown}"
            );
        }
        other => panic!("expected an invalid-config refusal, got {other:?}"),
    }
    assert!(Arc::ptr_eq(&before, &handle.current()));
    // fixing the file makes the next reload succeed
    rewrite(
        dir.path(),
        "retail.yaml",
        "tenant: [retail\n",
        "tenant: retail\n",
    );
    assert!(handle.reload_from(dir.path()).unwrap().is_empty());
}

#[cfg(unix)]
#[tokio::test(flavor = "current_thread")]
async fn sighup_reloads() {
    let dir = temp_copy_of_examples();
    let handle = Arc::new(ConfigHandle::new(ConfigSet::load_dir(dir.path()).unwrap()));
    let task = Arc::clone(&handle)
        .spawn_sighup_reloader(dir.path().to_path_buf())
        .unwrap();
    rewrite(dir.path(), "express.yaml", ADD_FIELD.0, ADD_FIELD.1);
    let status = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut reloaded = false;
    for _ in 0..200 {
        if has_ice_pack_brand(&handle.current()) {
            reloaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    task.abort();
    assert!(reloaded, "SIGHUP did not reload the config within 5 s");
}

#[test]
fn the_gate_refuses_or_admits_a_new_config_and_subscribers_see_what_went_live() {
    let dir = temp_copy_of_examples();
    let handle = ConfigHandle::new(ConfigSet::load_dir(dir.path()).unwrap());
    let mut changes = handle.subscribe();
    assert!(
        !changes.has_changed().unwrap(),
        "the current config counts as seen"
    );
    let admit = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let gate_admits = Arc::clone(&admit);
    handle.set_gate(Box::new(move |new: &ConfigSet| {
        if gate_admits.load(std::sync::atomic::Ordering::SeqCst) {
            Ok(())
        } else {
            Err(format!("{} tenants, no keys", new.tenants().count()))
        }
    }));
    let before = handle.current();
    rewrite(dir.path(), "express.yaml", ADD_FIELD.0, ADD_FIELD.1);
    match handle.reload_from(dir.path()) {
        Err(ReloadError::Refused(reason)) => assert_eq!(reason, "2 tenants, no keys"),
        other => panic!("expected the gate's refusal, got {other:?}"),
    }
    assert!(
        Arc::ptr_eq(&before, &handle.current()),
        "the live config stays"
    );
    assert!(!changes.has_changed().unwrap(), "nothing went live");

    admit.store(true, std::sync::atomic::Ordering::SeqCst);
    handle.reload_from(dir.path()).unwrap();
    assert!(has_ice_pack_brand(&handle.current()));
    assert!(changes.has_changed().unwrap());
    let live = changes.borrow_and_update().clone();
    assert!(Arc::ptr_eq(&live, &handle.current()));
}
