//! Key rotation across processes: multi-version key rings, re-encryption to the current
//! version, retiring, reloading a key ring file when a ciphertext names an unknown version,
//! and hostile input against a ring that holds several versions.

use std::sync::Arc;
use std::time::Duration;

use oc_crypto::{
    CryptoError, FieldCipher, FieldContext, KeyRing, MasterKey, Refresh, WrappedKeyRing,
    parse_header,
};
use proptest::prelude::*;

fn master() -> MasterKey {
    MasterKey::from_bytes([9; 32])
}

fn context(record_id: &str) -> FieldContext<'_> {
    FieldContext::new("acme", "orders", record_id, "receiver.phone")
}

fn write_ring(path: &std::path::Path, ring: &KeyRing) {
    std::fs::write(path, ring.export().to_json().unwrap()).unwrap();
}

#[test]
fn a_reader_reloads_the_file_once_for_an_unknown_version() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("keyring.json");
    let writer = KeyRing::new(&master());
    writer.create_tenant("acme").unwrap();
    write_ring(&path, &writer);

    let reader = Arc::new(KeyRing::new(&master()));
    reader.merge_file(&path).unwrap();
    reader.watch_file(&path, Duration::from_secs(3600));
    let reading = FieldCipher::new(Arc::clone(&reader));

    // another process rotates and writes the file; its v2 ciphertext opens here
    writer.rotate("acme").unwrap();
    write_ring(&path, &writer);
    let written = FieldCipher::new(Arc::new(
        KeyRing::import(&master(), &writer.export()).unwrap(),
    ))
    .encrypt(&context("1"), b"13900001111")
    .unwrap();
    assert_eq!(parse_header(&written).unwrap().key_version, 2);
    assert_eq!(
        reading.decrypt(&context("1"), &written).unwrap().as_slice(),
        b"13900001111"
    );
    // and new writes of the reader use v2 now
    let own = reading.encrypt(&context("2"), b"x").unwrap();
    assert_eq!(parse_header(&own).unwrap().key_version, 2);

    // rate limit: a third version within the interval is not looked for again
    writer.rotate("acme").unwrap();
    write_ring(&path, &writer);
    assert_eq!(reader.refresh_for("acme", Some(3)), Refresh::Missing);
    assert_eq!(reader.tenant("acme").unwrap().versions(), vec![1, 2]);
    // a held key needs no reload, whatever the limit
    assert_eq!(reader.refresh_for("acme", Some(2)), Refresh::Found);
    // an explicit reload (SIGHUP) ignores the limit
    assert_eq!(reader.reload().unwrap(), 1);
    assert_eq!(reader.current_version("acme").unwrap(), 3);

    // a retired version disappears from the file, not from a running reader
    writer.retire("acme", 1).unwrap();
    write_ring(&path, &writer);
    assert_eq!(reader.reload().unwrap(), 0);
    assert_eq!(reader.tenant("acme").unwrap().versions(), vec![1, 2, 3]);
}

#[test]
fn reload_failures_leave_the_ring_as_it_was() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("keyring.json");
    let ring = KeyRing::new(&master());
    ring.create_tenant("acme").unwrap();
    assert!(matches!(
        ring.reload(),
        Err(CryptoError::InvalidKeyRing(message)) if message.contains("no key ring file")
    ));
    assert_eq!(ring.refresh_for("acme", Some(2)), Refresh::NoSource);

    ring.watch_file(&path, Duration::ZERO);
    // missing file
    assert!(matches!(
        ring.refresh_for("acme", Some(2)),
        Refresh::Failed(CryptoError::InvalidKeyRing(_))
    ));
    // garbage
    std::fs::write(&path, b"{ not json").unwrap();
    assert!(ring.reload().is_err());
    // a ring of another master key
    let other = KeyRing::new(&MasterKey::from_bytes([1; 32]));
    other.create_tenant("acme").unwrap();
    write_ring(&path, &other);
    assert!(matches!(
        ring.reload(),
        Err(CryptoError::MasterKeyMismatch { .. })
    ));
    // the same version with other key material (two rotations raced)
    let forked = KeyRing::import(&master(), &ring.export()).unwrap();
    forked.rotate("acme").unwrap();
    ring.rotate("acme").unwrap();
    write_ring(&path, &forked);
    assert!(matches!(
        ring.reload(),
        Err(CryptoError::KeyConflict { version: 2, .. })
    ));
    assert_eq!(ring.tenant("acme").unwrap().versions(), vec![1, 2]);
    // an unknown tenant is looked for in the file too
    let fresh = KeyRing::import(&master(), &ring.export()).unwrap();
    fresh.create_tenant("newco").unwrap();
    write_ring(&path, &fresh);
    assert_eq!(ring.refresh_for("newco", None), Refresh::Found);
    assert_eq!(ring.current_version("newco").unwrap(), 1);
}

/// One step of a random key-ring history.
#[derive(Debug, Clone)]
enum Step {
    Encrypt(Vec<u8>),
    Rotate,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => proptest::collection::vec(any::<u8>(), 0..40).prop_map(Step::Encrypt),
        1 => Just(Step::Rotate),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Whatever the interleaving of writes and rotations: every value opens under every later
    /// ring, re-encryption moves exactly the old ones to the current version without changing
    /// the plaintext, and once all are moved every older version can be retired.
    #[test]
    fn prop_multi_version_history(steps in proptest::collection::vec(step(), 1..30)) {
        let ring = Arc::new(KeyRing::new(&master()));
        ring.create_tenant("acme").unwrap();
        let cipher = FieldCipher::new(Arc::clone(&ring));
        let mut values = Vec::new();
        for step in steps {
            match step {
                Step::Encrypt(plaintext) => {
                    let record = values.len().to_string();
                    let ciphertext = cipher.encrypt(&context(&record), &plaintext).unwrap();
                    prop_assert_eq!(
                        parse_header(&ciphertext).unwrap().key_version,
                        ring.current_version("acme").unwrap()
                    );
                    values.push((record, plaintext, ciphertext));
                }
                Step::Rotate => {
                    ring.rotate("acme").unwrap();
                }
            }
        }
        let current = ring.current_version("acme").unwrap();
        // a second process importing the persisted ring reads everything
        let json = ring.export().to_json().unwrap();
        let imported = FieldCipher::new(Arc::new(
            KeyRing::import(&master(), &WrappedKeyRing::from_json(&json).unwrap()).unwrap(),
        ));
        let mut moved = Vec::new();
        for (record, plaintext, ciphertext) in &values {
            let at = context(record);
            prop_assert_eq!(cipher.decrypt(&at, ciphertext).unwrap().to_vec(), plaintext.to_vec());
            prop_assert_eq!(imported.decrypt(&at, ciphertext).unwrap().to_vec(), plaintext.to_vec());
            let version = parse_header(ciphertext).unwrap().key_version;
            match cipher.reencrypt(&at, ciphertext).unwrap() {
                None => {
                    prop_assert_eq!(version, current);
                    moved.push(ciphertext.clone());
                }
                Some(again) => {
                    prop_assert!(version < current);
                    prop_assert_eq!(parse_header(&again).unwrap().key_version, current);
                    prop_assert_eq!(cipher.decrypt(&at, &again).unwrap().to_vec(), plaintext.to_vec());
                    moved.push(again);
                }
            }
        }
        for version in 1..current {
            prop_assert!(ring.retire("acme", version).unwrap());
        }
        prop_assert_eq!(ring.tenant("acme").unwrap().versions(), vec![current]);
        for ((record, plaintext, old), new) in values.iter().zip(&moved) {
            let at = context(record);
            prop_assert_eq!(cipher.decrypt(&at, new).unwrap().to_vec(), plaintext.to_vec());
            let version = parse_header(old).unwrap().key_version;
            if version != current {
                prop_assert_eq!(
                    cipher.decrypt(&at, old).unwrap_err(),
                    CryptoError::UnknownKey { tenant: "acme".into(), version }
                );
            }
        }
    }

    /// Arbitrary bytes whose header names a version the ring really holds are still errors,
    /// never panics, for decrypt and re-encrypt alike.
    #[test]
    fn prop_arbitrary_bytes_against_a_multi_version_ring(
        bytes in proptest::collection::vec(any::<u8>(), 0..96),
        version in 0u32..5,
        force_header in any::<bool>(),
    ) {
        let ring = Arc::new(KeyRing::new(&master()));
        ring.create_tenant("acme").unwrap();
        ring.rotate("acme").unwrap();
        ring.rotate("acme").unwrap();
        let cipher = FieldCipher::new(ring);
        let mut bytes = bytes;
        if force_header && bytes.len() >= 5 {
            bytes[0] = 0x01;
            bytes[1..5].copy_from_slice(&version.to_be_bytes());
        }
        prop_assert!(cipher.decrypt(&context("1"), &bytes).is_err());
        prop_assert!(cipher.reencrypt(&context("1"), &bytes).is_err());
    }

    /// A damaged key ring file is an error on import and on merge, never a panic, and a failed
    /// merge changes nothing.
    #[test]
    fn prop_damaged_key_ring_files_are_errors(
        position in any::<prop::sample::Index>(),
        replacement in any::<u8>(),
        garbage in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let ring = KeyRing::new(&master());
        ring.create_tenant("acme").unwrap();
        ring.rotate("acme").unwrap();
        let json = ring.export().to_json().unwrap();
        let mut damaged = json.clone().into_bytes();
        let at = position.index(damaged.len());
        damaged[at] = replacement;
        let target = KeyRing::new(&master());
        target.create_tenant("other").unwrap();
        for input in [damaged, garbage] {
            let Ok(text) = String::from_utf8(input) else { continue };
            if text == json {
                continue;
            }
            if let Ok(parsed) = WrappedKeyRing::from_json(&text) {
                // some edits keep the JSON valid (whitespace, timestamps): then the keys must
                // be the same ones or be refused
                match KeyRing::import(&master(), &parsed) {
                    Ok(imported) => prop_assert!(imported.tenant("acme").unwrap().versions().len() <= 2),
                    Err(_) => {
                        prop_assert!(target.merge(&parsed).is_err());
                        prop_assert_eq!(target.tenants(), vec!["other".to_owned()]);
                    }
                }
            }
        }
    }
}
