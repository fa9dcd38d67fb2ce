//! Wycheproof AES-GCM vectors against the `aes-gcm` implementation this crate uses.
//!
//! Every vector is run except those with an empty nonce (GCM requires a non-empty IV; this
//! crate always uses 96-bit nonces and `aes-gcm` cannot be instantiated with a zero-length
//! nonce type). Key sizes 128/192/256 and nonce sizes from 8 to 2056 bits are run through the
//! generic `AesGcm<Aes, NonceSize>` type. The test counts what it ran and skipped and fails if
//! the counts are not what the vector file promises, so it cannot pass vacuously.

use aes_gcm::AesGcm;
use aes_gcm::aead::consts::{U1, U2, U4, U6, U8, U10, U12, U15, U16, U20, U32, U64, U128, U257};
use aes_gcm::aead::generic_array::{ArrayLength, GenericArray};
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::aes::{Aes128, Aes192, Aes256};
use wycheproof::TestResult;
use wycheproof::aead::{Test, TestName, TestSet};

#[derive(Default, Debug)]
struct Counts {
    valid_run: usize,
    invalid_run: usize,
    nonce_96_run: usize,
    skipped_empty_nonce: usize,
}

/// Runs one vector with a concrete cipher type. Returns an error description on mismatch.
fn run_vector<C>(test: &Test) -> Result<(), String>
where
    C: KeyInit + Aead,
    C::NonceSize: ArrayLength<u8>,
{
    let cipher = C::new_from_slice(&test.key).map_err(|_| "key length rejected".to_owned())?;
    let nonce = GenericArray::<u8, C::NonceSize>::from_slice(&test.nonce);
    let mut sealed = test.ct.to_vec();
    sealed.extend_from_slice(&test.tag);
    let decrypted = cipher.decrypt(
        nonce,
        Payload {
            msg: &sealed,
            aad: &test.aad,
        },
    );
    match test.result {
        TestResult::Valid | TestResult::Acceptable => {
            let plaintext = decrypted.map_err(|_| "valid vector failed to decrypt".to_owned())?;
            if plaintext != test.pt.as_slice() {
                return Err("decrypted plaintext differs".into());
            }
            let encrypted = cipher
                .encrypt(
                    nonce,
                    Payload {
                        msg: &test.pt,
                        aad: &test.aad,
                    },
                )
                .map_err(|_| "encryption failed".to_owned())?;
            if encrypted != sealed {
                return Err("ciphertext+tag differs".into());
            }
        }
        TestResult::Invalid => {
            if decrypted.is_ok() {
                return Err("invalid vector decrypted".into());
            }
        }
    }
    Ok(())
}

fn run_for_key<Aes>(test: &Test) -> Option<Result<(), String>>
where
    Aes: aes_gcm::aes::cipher::BlockCipher
        + aes_gcm::aes::cipher::BlockSizeUser<BlockSize = aes_gcm::aead::consts::U16>
        + aes_gcm::aes::cipher::BlockEncrypt
        + KeyInit,
{
    Some(match test.nonce.len() {
        1 => run_vector::<AesGcm<Aes, U1>>(test),
        2 => run_vector::<AesGcm<Aes, U2>>(test),
        4 => run_vector::<AesGcm<Aes, U4>>(test),
        6 => run_vector::<AesGcm<Aes, U6>>(test),
        8 => run_vector::<AesGcm<Aes, U8>>(test),
        10 => run_vector::<AesGcm<Aes, U10>>(test),
        12 => run_vector::<AesGcm<Aes, U12>>(test),
        15 => run_vector::<AesGcm<Aes, U15>>(test),
        16 => run_vector::<AesGcm<Aes, U16>>(test),
        20 => run_vector::<AesGcm<Aes, U20>>(test),
        32 => run_vector::<AesGcm<Aes, U32>>(test),
        64 => run_vector::<AesGcm<Aes, U64>>(test),
        128 => run_vector::<AesGcm<Aes, U128>>(test),
        257 => run_vector::<AesGcm<Aes, U257>>(test),
        _ => return None,
    })
}

#[test]
fn wycheproof_aes_gcm_vectors() {
    let test_set = TestSet::load(TestName::AesGcm).expect("wycheproof aes_gcm vectors load");
    let mut counts = Counts::default();
    let mut failures = Vec::new();

    for group in &test_set.test_groups {
        assert_eq!(group.tag_size, 128, "unexpected tag size in group");
        for test in &group.tests {
            assert_eq!(test.key.len() * 8, group.key_size);
            assert_eq!(test.nonce.len() * 8, group.nonce_size);
            if test.nonce.is_empty() {
                assert_eq!(test.result, TestResult::Invalid, "tc {}", test.tc_id);
                counts.skipped_empty_nonce += 1;
                continue;
            }
            let outcome = match group.key_size {
                128 => run_for_key::<Aes128>(test),
                192 => run_for_key::<Aes192>(test),
                256 => run_for_key::<Aes256>(test),
                other => panic!("unexpected key size {other}"),
            };
            let Some(outcome) = outcome else {
                panic!(
                    "tc {}: nonce size {} bits not wired up",
                    test.tc_id, group.nonce_size
                );
            };
            if let Err(reason) = outcome {
                failures.push(format!("tc {} ({}): {reason}", test.tc_id, test.comment));
            }
            if test.result.must_fail() {
                counts.invalid_run += 1;
            } else {
                counts.valid_run += 1;
            }
            if test.nonce.len() == 12 {
                counts.nonce_96_run += 1;
            }
        }
    }

    println!(
        "wycheproof aes-gcm: {counts:?} of {} vectors",
        test_set.number_of_tests
    );
    assert!(failures.is_empty(), "failures:\n{}", failures.join("\n"));
    let run = counts.valid_run + counts.invalid_run;
    assert_eq!(run + counts.skipped_empty_nonce, test_set.number_of_tests);
    assert!(counts.skipped_empty_nonce <= 6, "{counts:?}");
    assert!(run >= 300, "too few vectors executed: {counts:?}");
    assert!(
        counts.nonce_96_run >= 190,
        "too few 96-bit nonce vectors: {counts:?}"
    );
    assert!(
        counts.invalid_run >= 80,
        "too few invalid vectors: {counts:?}"
    );
}
