//! End-to-end behaviour of the public API: round trips, misplaced ciphertexts, tampering,
//! hostile input, rotation, key ring persistence and blind indexes.

use std::sync::Arc;

use oc_crypto::{
    BlindIndexer, CryptoError, FieldCipher, FieldContext, KeyRing, MasterKey, Normalizer,
    WrappedKeyRing, parse_header,
};
use proptest::prelude::*;

fn master() -> MasterKey {
    MasterKey::from_bytes([7; 32])
}

fn cipher_with_tenants(tenants: &[&str]) -> FieldCipher {
    let ring = KeyRing::new(&master());
    for tenant in tenants {
        ring.create_tenant(tenant).unwrap();
    }
    FieldCipher::new(Arc::new(ring))
}

const ORDER_PHONE: FieldContext<'static> = FieldContext {
    tenant: "acme",
    table: "orders",
    record_id: "1001",
    field: "receiver_phone",
};

#[test]
fn round_trip_bytes_and_text() {
    let cipher = cipher_with_tenants(&["acme"]);
    let ciphertext = cipher.encrypt(&ORDER_PHONE, b"13812345678").unwrap();
    assert_eq!(ciphertext.len(), 33 + 11);
    assert_eq!(ciphertext[0], 0x01);
    assert_eq!(parse_header(&ciphertext).unwrap().key_version, 1);
    assert_eq!(
        cipher
            .decrypt(&ORDER_PHONE, &ciphertext)
            .unwrap()
            .as_slice(),
        b"13812345678"
    );

    let text = cipher.encrypt_str(&ORDER_PHONE, "张三丰").unwrap();
    assert!(
        text.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
    assert_eq!(
        cipher.decrypt_str(&ORDER_PHONE, &text).unwrap().as_str(),
        "张三丰"
    );

    let empty = cipher.encrypt(&ORDER_PHONE, b"").unwrap();
    assert_eq!(empty.len(), 33);
    assert!(cipher.decrypt(&ORDER_PHONE, &empty).unwrap().is_empty());
}

#[test]
fn nonces_are_fresh_per_encryption() {
    let cipher = cipher_with_tenants(&["acme"]);
    let first = cipher.encrypt(&ORDER_PHONE, b"same").unwrap();
    let second = cipher.encrypt(&ORDER_PHONE, b"same").unwrap();
    assert_ne!(first[5..17], second[5..17]);
    assert_ne!(first, second);
}

#[test]
fn swapped_ciphertexts_fail_to_decrypt() {
    let cipher = cipher_with_tenants(&["acme", "globex"]);
    let ciphertext = cipher.encrypt(&ORDER_PHONE, b"13812345678").unwrap();
    let elsewhere = [
        FieldContext {
            tenant: "globex",
            ..ORDER_PHONE
        },
        FieldContext {
            table: "customers",
            ..ORDER_PHONE
        },
        FieldContext {
            record_id: "1002",
            ..ORDER_PHONE
        },
        FieldContext {
            field: "receiver_name",
            ..ORDER_PHONE
        },
        // Boundary shifts between parts must not collide either.
        FieldContext {
            table: "orders1",
            record_id: "001",
            ..ORDER_PHONE
        },
    ];
    for context in elsewhere {
        assert_eq!(
            cipher.decrypt(&context, &ciphertext).unwrap_err(),
            CryptoError::DecryptFailed,
            "{context:?}"
        );
    }
    // A tenant without keys at all.
    let unknown = FieldContext {
        tenant: "initech",
        ..ORDER_PHONE
    };
    assert!(matches!(
        cipher.decrypt(&unknown, &ciphertext),
        Err(CryptoError::UnknownTenant { .. })
    ));
    assert!(matches!(
        cipher.encrypt(&unknown, b"x"),
        Err(CryptoError::UnknownTenant { .. })
    ));
}

#[test]
fn same_data_key_in_two_tenants_is_not_enough() {
    // Even an attacker who could copy a key ring entry across tenants is stopped: the wrapped
    // key's AAD names the tenant (see keyring tests), and the field AAD names it again.
    let cipher = cipher_with_tenants(&["a|b", "a"]);
    let context = FieldContext {
        tenant: "a|b",
        table: "c",
        record_id: "r",
        field: "f",
    };
    let ciphertext = cipher.encrypt(&context, b"secret").unwrap();
    let shifted = FieldContext {
        tenant: "a",
        table: "b|c",
        record_id: "r",
        field: "f",
    };
    assert!(cipher.decrypt(&shifted, &ciphertext).is_err());
}

#[test]
fn every_single_byte_change_is_detected() {
    let cipher = cipher_with_tenants(&["acme"]);
    let ciphertext = cipher.encrypt(&ORDER_PHONE, b"13812345678").unwrap();
    for index in 0..ciphertext.len() {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut tampered = ciphertext.clone();
            tampered[index] ^= flip;
            assert!(
                cipher.decrypt(&ORDER_PHONE, &tampered).is_err(),
                "byte {index} ^ {flip:#x}"
            );
        }
    }
    // Version bumped to one that exists: still fails (the version is in the AAD).
    cipher.keyring().rotate("acme").unwrap();
    let mut relabelled = ciphertext.clone();
    relabelled[1..5].copy_from_slice(&2u32.to_be_bytes());
    assert_eq!(
        cipher.decrypt(&ORDER_PHONE, &relabelled).unwrap_err(),
        CryptoError::DecryptFailed
    );
    assert_eq!(
        cipher.reencrypt(&ORDER_PHONE, &relabelled).unwrap_err(),
        CryptoError::DecryptFailed
    );
}

#[test]
fn truncated_empty_and_garbage_inputs_are_errors() {
    let cipher = cipher_with_tenants(&["acme"]);
    let ciphertext = cipher.encrypt(&ORDER_PHONE, b"13812345678").unwrap();
    for length in 0..ciphertext.len() {
        let error = cipher
            .decrypt(&ORDER_PHONE, &ciphertext[..length])
            .unwrap_err();
        assert!(
            matches!(
                error,
                CryptoError::Malformed(_) | CryptoError::DecryptFailed
            ),
            "length {length}: {error}"
        );
    }
    let mut extended = ciphertext.clone();
    extended.push(0);
    assert_eq!(
        cipher.decrypt(&ORDER_PHONE, &extended).unwrap_err(),
        CryptoError::DecryptFailed
    );

    assert_eq!(
        cipher.decrypt(&ORDER_PHONE, &[]).unwrap_err(),
        CryptoError::Malformed("empty input")
    );
    assert_eq!(
        cipher.decrypt(&ORDER_PHONE, &[0x02; 64]).unwrap_err(),
        CryptoError::UnknownFormat(2)
    );
    let mut unknown_version = ciphertext.clone();
    unknown_version[1..5].copy_from_slice(&99u32.to_be_bytes());
    assert_eq!(
        cipher.decrypt(&ORDER_PHONE, &unknown_version).unwrap_err(),
        CryptoError::UnknownKey {
            tenant: "acme".into(),
            version: 99
        }
    );
    for text in ["", "!!!!", "AQ", "not base64 at all", "AQAAAAE=", "☃"] {
        assert!(cipher.decrypt_str(&ORDER_PHONE, text).is_err(), "{text:?}");
    }
    // Bytes encrypted with the bytes API that are not UTF-8.
    let binary = cipher.encrypt(&ORDER_PHONE, &[0xff, 0xfe]).unwrap();
    let text = base64_url(&binary);
    assert_eq!(
        cipher.decrypt_str(&ORDER_PHONE, &text).unwrap_err(),
        CryptoError::InvalidUtf8
    );
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[test]
fn error_messages_do_not_leak() {
    let cipher = cipher_with_tenants(&["acme"]);
    let ciphertext = cipher.encrypt(&ORDER_PHONE, b"13812345678").unwrap();
    let other = FieldContext {
        record_id: "2",
        ..ORDER_PHONE
    };
    let error = cipher.decrypt(&other, &ciphertext).unwrap_err();
    assert_eq!(error.to_string(), "decryption failed");
}

#[test]
fn rotation_reencryption_and_persistence() {
    let ring = Arc::new(KeyRing::new(&master()));
    ring.create_tenant("acme").unwrap();
    let cipher = FieldCipher::new(Arc::clone(&ring));

    let old = cipher.encrypt(&ORDER_PHONE, b"13812345678").unwrap();
    let old_text = cipher
        .encrypt_str(&ORDER_PHONE, "alice@example.com")
        .unwrap();
    assert_eq!(parse_header(&old).unwrap().key_version, 1);
    assert_eq!(
        cipher.reencrypt(&ORDER_PHONE, &old).unwrap(),
        None,
        "already current"
    );

    assert_eq!(ring.rotate("acme").unwrap(), 2);
    assert_eq!(ring.current_version("acme").unwrap(), 2);

    let new = cipher.encrypt(&ORDER_PHONE, b"13900000000").unwrap();
    assert_eq!(parse_header(&new).unwrap().key_version, 2);
    assert_eq!(
        cipher.decrypt(&ORDER_PHONE, &old).unwrap().as_slice(),
        b"13812345678"
    );

    let moved = cipher
        .reencrypt(&ORDER_PHONE, &old)
        .unwrap()
        .expect("moved to v2");
    assert_eq!(parse_header(&moved).unwrap().key_version, 2);
    assert_eq!(
        cipher.decrypt(&ORDER_PHONE, &moved).unwrap().as_slice(),
        b"13812345678"
    );
    assert_eq!(cipher.reencrypt(&ORDER_PHONE, &moved).unwrap(), None);
    let moved_text = cipher
        .reencrypt_str(&ORDER_PHONE, &old_text)
        .unwrap()
        .expect("moved");
    assert_eq!(
        cipher
            .decrypt_str(&ORDER_PHONE, &moved_text)
            .unwrap()
            .as_str(),
        "alice@example.com"
    );
    // Re-encryption authenticates: a misplaced old ciphertext is not laundered into a new one.
    let other = FieldContext {
        record_id: "9",
        ..ORDER_PHONE
    };
    assert_eq!(
        cipher.reencrypt(&other, &old).unwrap_err(),
        CryptoError::DecryptFailed
    );

    // Persist the wrapped ring as JSON and load it in a "new process".
    let json = ring.export().to_json().unwrap();
    assert!(!json.contains("plaintext"));
    let restored = KeyRing::import(&master(), &WrappedKeyRing::from_json(&json).unwrap()).unwrap();
    let restored = FieldCipher::new(Arc::new(restored));
    assert_eq!(restored.keyring().current_version("acme").unwrap(), 2);
    assert_eq!(
        restored.decrypt(&ORDER_PHONE, &old).unwrap().as_slice(),
        b"13812345678"
    );
    assert_eq!(
        restored.decrypt(&ORDER_PHONE, &new).unwrap().as_slice(),
        b"13900000000"
    );
    assert_eq!(
        restored.decrypt(&ORDER_PHONE, &moved).unwrap().as_slice(),
        b"13812345678"
    );

    // Once everything is re-encrypted, v1 can be retired; v1 ciphertexts then name their key.
    assert!(ring.retire("acme", 1).unwrap());
    assert_eq!(
        cipher.decrypt(&ORDER_PHONE, &old).unwrap_err(),
        CryptoError::UnknownKey {
            tenant: "acme".into(),
            version: 1
        }
    );
    assert_eq!(
        cipher.decrypt(&ORDER_PHONE, &moved).unwrap().as_slice(),
        b"13812345678"
    );
}

#[test]
fn wrong_master_key_cannot_load_the_ring() {
    let ring = KeyRing::new(&master());
    ring.create_tenant("acme").unwrap();
    let exported = ring.export();
    let wrong = MasterKey::from_bytes([8; 32]);
    let error = KeyRing::import(&wrong, &exported).unwrap_err();
    assert!(
        matches!(error, CryptoError::MasterKeyMismatch { .. }),
        "{error}"
    );
    let mut forged = exported;
    forged.master_key_id = wrong.fingerprint();
    let error = KeyRing::import(&wrong, &forged).unwrap_err();
    assert_eq!(
        error,
        CryptoError::KeyUnwrapFailed {
            tenant: "acme".into(),
            version: 1
        }
    );
}

#[test]
fn another_instance_rotation_is_picked_up_by_merge() {
    let writer = KeyRing::new(&master());
    writer.create_tenant("acme").unwrap();
    let reader = Arc::new(KeyRing::import(&master(), &writer.export()).unwrap());
    writer.rotate("acme").unwrap();
    let written = FieldCipher::new(Arc::new(
        KeyRing::import(&master(), &writer.export()).unwrap(),
    ))
    .encrypt(&ORDER_PHONE, b"v2 value")
    .unwrap();
    let reading = FieldCipher::new(Arc::clone(&reader));
    assert_eq!(
        reading.decrypt(&ORDER_PHONE, &written).unwrap_err(),
        CryptoError::UnknownKey {
            tenant: "acme".into(),
            version: 2
        }
    );
    reader.merge(&writer.export()).unwrap();
    assert_eq!(
        reading.decrypt(&ORDER_PHONE, &written).unwrap().as_slice(),
        b"v2 value"
    );
}

#[test]
fn blind_index_equality_and_separation() {
    let indexer = BlindIndexer::new(&master());
    let phone = Normalizer::phone_cn();
    let canonical = indexer.index("acme", "receiver_phone", &phone, "13812345678");
    assert_eq!(canonical.len(), 32);
    assert!(canonical.bytes().all(|b| b.is_ascii_hexdigit()));
    for spelling in [
        "+86 138-1234-5678",
        "(138) 1234 5678",
        "0086 13812345678",
        " 138 1234 5678 ",
    ] {
        assert_eq!(
            indexer.index("acme", "receiver_phone", &phone, spelling),
            canonical,
            "{spelling}"
        );
    }
    assert_eq!(
        indexer.blind_index("acme", "receiver_phone", "13812345678"),
        canonical
    );
    assert_ne!(
        indexer.index("globex", "receiver_phone", &phone, "13812345678"),
        canonical
    );
    assert_ne!(
        indexer.index("acme", "buyer_phone", &phone, "13812345678"),
        canonical
    );
    assert_ne!(
        indexer.index("acme", "receiver_phone", &phone, "13812345679"),
        canonical
    );
    // Field/value boundary is unambiguous.
    assert_ne!(
        indexer.blind_index("acme", "ab", "c"),
        indexer.blind_index("acme", "a", "bc")
    );
    // Another master key gives unrelated tokens; the same key is deterministic across instances.
    let other = BlindIndexer::new(&MasterKey::from_bytes([8; 32]));
    assert_ne!(
        other.blind_index("acme", "receiver_phone", "13812345678"),
        canonical
    );
    assert_eq!(
        BlindIndexer::new(&master()).blind_index("acme", "receiver_phone", "13812345678"),
        canonical
    );

    let email = Normalizer::Email;
    assert_eq!(
        indexer.index("acme", "email", &email, " Alice@Example.com"),
        indexer.index("acme", "email", &email, "alice@example.com")
    );
    assert!(!format!("{indexer:?}").contains('7'));
}

fn context_part() -> impl Strategy<Value = String> {
    // Unicode, separators and empty strings included.
    prop_oneof![Just(String::new()), "[a-z0-9|:/]{1,12}", "\\PC{0,12}",]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn prop_round_trip(
        plaintext in proptest::collection::vec(any::<u8>(), 0..512),
        tenant in context_part(),
        table in context_part(),
        record_id in context_part(),
        field in context_part(),
    ) {
        let cipher = cipher_with_tenants(&[tenant.as_str()]);
        let context = FieldContext::new(&tenant, &table, &record_id, &field);
        let ciphertext = cipher.encrypt(&context, &plaintext).unwrap();
        prop_assert_eq!(ciphertext.len(), 33 + plaintext.len());
        let decrypted = cipher.decrypt(&context, &ciphertext).unwrap();
        prop_assert_eq!(decrypted.as_slice(), plaintext.as_slice());
        let moved_field = format!("{field}x");
        let moved = FieldContext { field: &moved_field, ..context };
        prop_assert_eq!(cipher.decrypt(&moved, &ciphertext).unwrap_err(), CryptoError::DecryptFailed);
    }

    #[test]
    fn prop_round_trip_text(text in "\\PC{0,64}", record_id in context_part()) {
        let cipher = cipher_with_tenants(&["acme"]);
        let context = FieldContext { record_id: &record_id, ..ORDER_PHONE };
        let ciphertext = cipher.encrypt_str(&context, &text).unwrap();
        let decrypted = cipher.decrypt_str(&context, &ciphertext).unwrap();
        prop_assert_eq!(decrypted.as_str(), text.as_str());
    }

    #[test]
    fn prop_decrypt_never_panics_on_arbitrary_bytes(
        bytes in proptest::collection::vec(any::<u8>(), 0..96),
        force_v1 in any::<bool>(),
        version in 0u32..4,
    ) {
        let cipher = cipher_with_tenants(&["acme"]);
        let mut bytes = bytes;
        if force_v1 && bytes.len() >= 5 {
            bytes[0] = 0x01;
            bytes[1..5].copy_from_slice(&version.to_be_bytes());
        }
        prop_assert!(cipher.decrypt(&ORDER_PHONE, &bytes).is_err());
        prop_assert!(cipher.reencrypt(&ORDER_PHONE, &bytes).is_err());
        let _ = parse_header(&bytes);
    }

    #[test]
    fn prop_decrypt_str_never_panics(text in "\\PC{0,80}") {
        let cipher = cipher_with_tenants(&["acme"]);
        prop_assert!(cipher.decrypt_str(&ORDER_PHONE, &text).is_err());
    }
}
