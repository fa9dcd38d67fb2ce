//! The key ring file: changes under the lock, from many threads at once (each with its own
//! open file, as separate processes have), agree on every key.

use std::sync::Barrier;
use std::time::Duration;

use oc_crypto::{CryptoError, KeyRing, KeyRingFile, MasterKey, WrappedKeyRing};

fn master() -> MasterKey {
    MasterKey::from_bytes([9; 32])
}

fn on_file(file: &KeyRingFile) -> WrappedKeyRing {
    WrappedKeyRing::from_json(&std::fs::read_to_string(file.path()).unwrap()).unwrap()
}

fn names(tenants: &[&str]) -> Vec<String> {
    tenants.iter().map(|tenant| (*tenant).to_owned()).collect()
}

#[test]
fn tenants_added_at_once_get_one_key_each() {
    let dir = tempfile::tempdir().unwrap();
    let file = KeyRingFile::new(dir.path().join("keyring.json"));
    let template = KeyRing::new(&master());
    let tenants = names(&["acme", "globex", "initech"]);
    let starting = Barrier::new(12);
    let outcomes: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..12)
            .map(|_| {
                scope.spawn(|| {
                    starting.wait();
                    file.add_missing_tenants(&template, &tenants, Duration::from_secs(30))
                        .unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let stored = on_file(&file);
    assert_eq!(stored.keys.len(), 3);
    let mut created: Vec<String> = Vec::new();
    for outcome in outcomes {
        assert_eq!(
            outcome.ring.export(),
            stored,
            "every caller holds the file's keys"
        );
        created.extend(outcome.created);
    }
    created.sort();
    assert_eq!(created, tenants, "each tenant created exactly once");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn existing_keys_are_kept_and_a_complete_file_is_only_read() {
    let dir = tempfile::tempdir().unwrap();
    let file = KeyRingFile::new(dir.path().join("keyring.json"));
    let template = KeyRing::new(&master());
    let first = file
        .add_missing_tenants(&template, &names(&["acme"]), Duration::from_secs(1))
        .unwrap();
    assert_eq!(first.created, names(&["acme"]));
    let acme = on_file(&file).keys[0].clone();
    let second = file
        .add_missing_tenants(
            &template,
            &names(&["acme", "globex"]),
            Duration::from_secs(1),
        )
        .unwrap();
    assert_eq!(second.created, names(&["globex"]));
    assert!(
        on_file(&file).keys.contains(&acme),
        "acme's key is unchanged"
    );

    // everything present: no lock is taken (a held lock does not matter) and nothing written
    let held = file.lock(Duration::from_secs(1)).unwrap();
    let before = std::fs::metadata(file.path()).unwrap().modified().unwrap();
    let third = file
        .add_missing_tenants(&template, &names(&["globex"]), Duration::ZERO)
        .unwrap();
    assert!(third.created.is_empty());
    assert_eq!(
        std::fs::metadata(file.path()).unwrap().modified().unwrap(),
        before
    );
    // a missing tenant needs the lock: refused while another holder has it, named clearly
    let refused = file
        .add_missing_tenants(&template, &names(&["initech"]), Duration::from_millis(100))
        .unwrap_err();
    assert!(
        matches!(&refused, CryptoError::KeyRingFile(message) if message.contains("still held")),
        "{refused}"
    );
    drop(held);
    let fourth = file
        .add_missing_tenants(&template, &names(&["initech"]), Duration::from_millis(100))
        .unwrap();
    assert_eq!(fourth.created, names(&["initech"]));
}

#[test]
fn the_lock_is_exclusive_and_released_on_drop() {
    let dir = tempfile::tempdir().unwrap();
    let file = KeyRingFile::new(dir.path().join("keyring.json"));
    let held = file.lock(Duration::ZERO).unwrap();
    assert_eq!(held.path(), dir.path().join("keyring.lock"));
    assert!(file.lock(Duration::from_millis(50)).is_err());
    drop(held);
    assert!(file.lock(Duration::ZERO).is_ok());
}

#[test]
fn a_file_of_another_master_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = KeyRingFile::new(dir.path().join("keyring.json"));
    file.add_missing_tenants(
        &KeyRing::new(&master()),
        &names(&["acme"]),
        Duration::from_secs(1),
    )
    .unwrap();
    let other = KeyRing::new(&MasterKey::from_bytes([8; 32]));
    assert!(matches!(
        file.read(&other),
        Err(CryptoError::MasterKeyMismatch { .. })
    ));
    assert!(
        file.read(&KeyRing::new(&master()))
            .unwrap()
            .unwrap()
            .has_tenant("acme")
    );
    assert!(
        KeyRingFile::new(dir.path().join("none.json"))
            .read(&other)
            .unwrap()
            .is_none()
    );
}

#[cfg(unix)]
#[test]
fn the_file_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let file = KeyRingFile::new(dir.path().join("keyring.json"));
    file.add_missing_tenants(
        &KeyRing::new(&master()),
        &names(&["acme"]),
        Duration::from_secs(1),
    )
    .unwrap();
    let mode = std::fs::metadata(file.path()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}
