//! The frozen ciphertexts of `fixtures/sealed-v1.json`, written once by the sealing code
//! that lived in `services/api` before the contract moved to this crate, must keep opening
//! through today's [`oc_core::sealing`]: every party field, encrypted order and line column
//! and encrypted KV identifier of one order, at the same associated data, with the same
//! blind indexes. A change of any table, record or field string fails here.

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;

use oc_core::Sealer;
use oc_core::sealing::{EXT_NORMALIZER, kv_sealing, party_normalizer, sealed_key_versions};
use oc_crypto::{BlindIndexer, FieldCipher, KeyRing, MasterKey, WrappedKeyRing};
use oc_model::sealing::{SealedSite, sealed_values};
use oc_model::{ExtValue, Order, Protected};
use oc_tenant_config::{ConfigSet, TenantConfig};

struct Frozen {
    fixture: Value,
    order: Order,
    tenant: Arc<TenantConfig>,
    master: MasterKey,
    ring: Arc<KeyRing>,
}

fn frozen() -> Frozen {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let fixture: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("sealed-v1.json")).unwrap())
            .unwrap();
    let yaml = std::fs::read_to_string(dir.join("sealed-v1.tenant.yaml")).unwrap();
    let config =
        ConfigSet::from_tenants(
            [ConfigSet::from_yaml_str("sealed-v1.tenant.yaml", &yaml).unwrap()],
        )
        .unwrap();
    let tenant = Arc::clone(config.tenants().next().unwrap());
    let hex = fixture["master_key_hex"].as_str().unwrap();
    let mut bytes = [0u8; 32];
    for (index, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[index * 2..index * 2 + 2], 16).unwrap();
    }
    let master = MasterKey::from_bytes(bytes);
    let wrapped = WrappedKeyRing::from_json(&fixture["key_ring"].to_string()).unwrap();
    let ring = Arc::new(KeyRing::import(&master, &wrapped).unwrap());
    let order: Order = serde_json::from_value(fixture["order"].clone()).unwrap();
    Frozen {
        fixture,
        order,
        tenant,
        master,
        ring,
    }
}

impl Frozen {
    fn sealer(&self) -> Sealer {
        Sealer::new(
            FieldCipher::new(Arc::clone(&self.ring)),
            Arc::new(BlindIndexer::new(&self.master)),
        )
    }

    /// Today's plaintext of a site: the party text, or the tagged JSON of an extension value.
    fn open(&self, sealer: &Sealer, order: &Order, site: &SealedSite) -> String {
        let tenant = &order.main.tenant;
        let sealed = sealed_values(order, &kv_sealing(Some(&*self.tenant), order))
            .unwrap()
            .into_iter()
            .find(|(at, _)| at == site)
            .unwrap()
            .1;
        match site {
            SealedSite::Party { .. } => sealer
                .open_text(tenant, order.main.id, site, &Protected::Sealed { sealed })
                .unwrap(),
            _ => serde_json::to_string(
                &sealer
                    .open_ext(tenant, order.main.id, site, &sealed)
                    .unwrap(),
            )
            .unwrap(),
        }
    }
}

#[test]
fn frozen_ciphertexts_open_at_the_same_sites_with_the_same_blind_indexes() {
    let frozen = frozen();
    let sealer = frozen.sealer();
    let order = &frozen.order;
    let expected = frozen.fixture["sites"].as_array().unwrap();
    let found = sealed_values(order, &kv_sealing(Some(&*frozen.tenant), order)).unwrap();
    assert_eq!(
        found.len(),
        expected.len(),
        "the same sealed values, and only them: {found:?}"
    );
    // 3 per party, 2 order columns, 1 line column, 1 KV identifier; the clear KV value that
    // looks sealed is none of them
    assert_eq!(found.len(), 10);
    for ((site, sealed), want) in found.iter().zip(expected) {
        let location = site.location(order.main.id);
        assert_eq!(location.table, want["table"], "{site:?}");
        assert_eq!(location.record_id, want["record_id"], "{site:?}");
        assert_eq!(location.field, want["field"], "{site:?}");
        assert_eq!(sealed.ciphertext, want["ciphertext"], "{site:?}");
        let plaintext = frozen.open(&sealer, order, site);
        assert_eq!(plaintext, want["plaintext"], "{site:?}");
        // the blind index written at sealing time is the one a search computes today
        let normalizer = match site {
            SealedSite::Party { field, .. } => party_normalizer(*field),
            _ => sealed.blind_index.as_ref().map(|_| EXT_NORMALIZER),
        };
        let text = match site {
            SealedSite::Party { .. } => plaintext.clone(),
            _ => serde_json::from_str::<ExtValue>(&plaintext)
                .unwrap()
                .canonical_text(),
        };
        let recomputed = normalizer.map(|normalizer| {
            sealer.blind_index(&order.main.tenant, &site.field(), &normalizer, &text)
        });
        assert_eq!(recomputed, sealed.blind_index, "{site:?}");
        assert_eq!(
            sealed.blind_index.as_deref(),
            want["blind_index"].as_str(),
            "{site:?}"
        );
    }
    let versions: Vec<u32> = sealed_key_versions(order, &kv_sealing(Some(&*frozen.tenant), order))
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(versions, vec![2; 10], "sealed under the ring's version 2");
}

#[test]
fn frozen_values_reseal_under_a_new_key_and_still_open() {
    let frozen = frozen();
    let sealer = frozen.sealer();
    let mut order = frozen.order.clone();
    let before: Vec<String> = sealed_values(&order, &kv_sealing(Some(&*frozen.tenant), &order))
        .unwrap()
        .iter()
        .map(|(site, _)| frozen.open(&sealer, &order, site))
        .collect();
    frozen.ring.rotate("sealfix").unwrap();
    let kv = kv_sealing(Some(&*frozen.tenant), &order);
    let done = sealer.reseal(&mut order, &kv).unwrap();
    assert_eq!((done.values, done.rewritten), (10, 10));
    let versions: Vec<u32> = sealed_key_versions(&order, &kv)
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(versions, vec![3; 10]);
    let after: Vec<String> = sealed_values(&order, &kv)
        .unwrap()
        .iter()
        .map(|(site, _)| frozen.open(&sealer, &order, site))
        .collect();
    assert_eq!(after, before);
    // the clear KV value that looks sealed is carried over as it was stored
    let campaign = |order: &Order| {
        order
            .extension
            .identifiers
            .iter()
            .find(|i| i.key == "campaign_id")
            .map(|i| i.value.clone())
    };
    assert_eq!(campaign(&order), campaign(&frozen.order));
    assert_eq!(
        campaign(&order).unwrap().clear_text(),
        r#"{"sealed":{"c":"AQIDBA"}}"#
    );
}
