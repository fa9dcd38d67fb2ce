//! Plan: every change listed, unsafe ones refused with a message naming what is at stake.

mod common;

use common::*;
use oc_tenant_config::{
    ConfigSet, Plan, RefusalKind, Severity, WrittenSlot, plan, plan_against_written,
};

fn live() -> ConfigSet {
    examples()
}

/// Plan from the examples to the examples with express.yaml edited.
fn plan_express(edit_express: impl FnOnce(String) -> String) -> Plan {
    let new = set_of(
        &edit_express(example("express.yaml")),
        &example("retail.yaml"),
    );
    plan(&live(), &new)
}

fn refusal_kinds(plan: &Plan) -> Vec<RefusalKind> {
    plan.refusals.iter().map(|r| r.kind).collect()
}

const LOG_REQUIRED: &str = "          - name: temperature_log_required\n            type: bool\n            slot: order.ext_05\n";

#[test]
fn the_same_config_plans_nothing() {
    let plan = plan(&live(), &live());
    assert!(plan.is_empty() && plan.is_safe(), "{plan}");
    assert!(plan.to_string().contains("no changes"));
}

#[test]
fn reusing_a_slot_for_another_field_is_refused_naming_slot_and_both_fields() {
    let plan = plan_express(|text| edit(&text, "name: temperature_max", "name: box_count"));
    assert!(!plan.is_safe());
    assert_eq!(refusal_kinds(&plan), [RefusalKind::SlotReused]);
    assert_eq!(
        plan.refusals[0].message,
        "slot order.ext_02 of express/cold-chain/standard holds field `temperature_max`; \
         the new config maps it to `box_count`"
    );
    assert!(
        plan.to_string()
            .contains("REFUSED  express/cold-chain/standard: slot order.ext_02")
    );
}

#[test]
fn narrowing_a_type_is_refused_and_widening_is_accepted() {
    let narrowed = plan_express(|text| {
        edit(
            &text,
            "name: pickup_date\n            type: date",
            "name: pickup_date\n            type: bool",
        )
    });
    assert_eq!(refusal_kinds(&narrowed), [RefusalKind::TypeNarrowed]);
    assert!(
        narrowed.refusals[0]
            .message
            .contains("changes type date → bool")
    );

    let widened = plan_express(|text| {
        let text = edit(
            &text,
            "name: delivery_window\n            type: enum\n            slot: order.ext_02\n            values: [morning, afternoon, evening]\n",
            "name: delivery_window\n            type: string\n            slot: order.ext_02\n",
        );
        edit(
            &text,
            "name: signature_required\n            type: bool",
            "name: signature_required\n            type: json",
        )
    });
    assert!(widened.is_safe(), "{widened}");
    let messages: Vec<&str> = widened.changes.iter().map(|c| c.message.as_str()).collect();
    assert!(
        messages
            .iter()
            .any(|m| m.contains("`delivery_window` (order.ext_02) widens enum → string")),
        "{widened}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("`signature_required` (order.ext_03) widens bool → json")),
        "{widened}"
    );
}

#[test]
fn removing_a_field_that_owns_a_slot_is_refused_unless_the_slot_is_retired() {
    let removed = plan_express(|text| edit(&text, LOG_REQUIRED, ""));
    assert_eq!(refusal_kinds(&removed), [RefusalKind::FieldRemoved]);
    let message = &removed.refusals[0].message;
    assert!(
        message.contains("`temperature_log_required`") && message.contains("order.ext_05"),
        "{message}"
    );
    assert!(message.contains("retired_slots"), "{message}");

    let retired = plan_express(|text| {
        let text = edit(&text, LOG_REQUIRED, "");
        edit(
            &text,
            "retired_slots: [order.ext_06]",
            "retired_slots: [order.ext_06, order.ext_05]",
        )
    });
    assert!(retired.is_safe(), "{retired}");
    let warning = retired.warnings().next().unwrap();
    assert!(
        warning.message.contains("reserved forever, never reusable"),
        "{retired}"
    );
}

#[test]
fn a_retired_slot_stays_retired() {
    let released = plan_express(|text| edit(&text, "        retired_slots: [order.ext_06]\n", ""));
    assert_eq!(refusal_kinds(&released), [RefusalKind::RetiredSlotReleased]);
    // and re-using it is a load error, so a plan never sees it
    let reuse = edit(
        &example("express.yaml"),
        "slot: order.ext_05\n",
        "slot: order.ext_06\n",
    );
    let errors = ConfigSet::from_yaml_str("express.yaml", &reuse).unwrap_err();
    assert!(
        errors.to_string().contains("slot order.ext_06 is retired"),
        "{errors}"
    );
}

#[test]
fn flipping_encryption_is_refused_either_way() {
    let decrypted = plan_express(|text| {
        edit(
            &text,
            "slot: order.ext_04\n            encrypted: true           # PII, not searchable",
            "slot: order.ext_04",
        )
    });
    assert_eq!(refusal_kinds(&decrypted), [RefusalKind::EncryptionChanged]);
    assert!(decrypted.refusals[0].message.contains("`sender_id_number`"));
    assert!(
        decrypted.refusals[0]
            .message
            .contains("served as if it were plaintext")
    );

    let encrypted = plan_express(|text| {
        edit(
            &text,
            "slot: order.ext_05\n            searchable: true",
            "slot: order.ext_05\n            encrypted: true\n            searchable: true",
        )
    });
    assert_eq!(refusal_kinds(&encrypted), [RefusalKind::EncryptionChanged]);
}

#[test]
fn moving_a_field_to_another_slot_is_refused() {
    let moved = plan_express(|text| {
        edit(
            &text,
            LOG_REQUIRED,
            &LOG_REQUIRED.replace("order.ext_05", "order.ext_07"),
        )
    });
    assert_eq!(refusal_kinds(&moved), [RefusalKind::FieldMoved]);
    assert!(
        moved.refusals[0]
            .message
            .contains("moves from slot order.ext_05 to order.ext_07")
    );
}

#[test]
fn additions_are_safe_and_new_obligations_are_warnings() {
    let added = plan_express(|text| {
        let text = edit(
            &text,
            "        retired_slots: [order.ext_06]\n",
            "          - name: ice_pack_brand\n            type: string\n            slot: order.ext_07\n          - name: courier_grade\n            type: enum\n            values: [a, b]\n            slot: order.ext_08\n            required: true\n        retired_slots: [order.ext_06]\n",
        );
        // a kept field becomes required
        edit(
            &text,
            "slot: order.ext_05\n",
            "slot: order.ext_05\n            required: true\n",
        )
    });
    assert!(added.is_safe(), "{added}");
    let find = |needle: &str| {
        added
            .changes
            .iter()
            .find(|c| c.message.contains(needle))
            .unwrap_or_else(|| panic!("{needle} not in {added}"))
    };
    assert_eq!(
        find("`ice_pack_brand` (string) added on free slot order.ext_07").severity,
        Severity::Safe
    );
    assert_eq!(
        find("`courier_grade` (enum) added on free slot order.ext_08").severity,
        Severity::Warning
    );
    assert_eq!(
        find("`temperature_log_required` (order.ext_05) becomes required").severity,
        Severity::Warning
    );
}

#[test]
fn state_machines_may_grow_but_not_lose_states() {
    let grown = plan_express(|text| {
        let text = edit(
            &text,
            "states: [pending_payment, paid, picked_up, in_transit, delivered]",
            "states: [pending_payment, paid, picked_up, in_transit, delivered, held]",
        );
        edit(
            &text,
            "        - { from: in_transit, event: deliver, to: delivered }\n",
            "        - { from: in_transit, event: deliver, to: delivered }\n        - { from: in_transit, event: hold, to: held }\n        - { from: held, event: release, to: in_transit }\n",
        )
    });
    assert!(grown.is_safe(), "{grown}");
    assert!(
        grown
            .changes
            .iter()
            .any(|c| c.message == "state `held` added"),
        "{grown}"
    );
    assert!(
        grown
            .changes
            .iter()
            .any(|c| c.message.contains("--hold--> `held` added")),
        "{grown}"
    );

    let shrunk = plan_express(|text| {
        let text = edit(
            &text,
            "terminal: [completed, cancelled, rejected]",
            "terminal: [completed, cancelled]",
        );
        let text = edit(
            &text,
            "        - { from: in_transit, event: temperature_breach, to: rejected }\n",
            "",
        );
        edit(
            &text,
            "        - { from: delivered, event: reject, to: rejected }\n",
            "",
        )
    });
    assert_eq!(refusal_kinds(&shrunk), [RefusalKind::StateRemoved]);
    assert!(
        shrunk.refusals[0]
            .message
            .contains("state `rejected` is removed")
    );
    assert_eq!(shrunk.refusals[0].scope, "express/cold-chain");
}

#[test]
fn removing_tenants_identities_or_order_types_is_refused() {
    let without_return = plan_express(|text| {
        let start = text.find("      return:\n").unwrap();
        text[..start].to_owned()
    });
    assert_eq!(
        refusal_kinds(&without_return),
        [RefusalKind::OrderTypeRemoved]
    );

    let without_retail = ConfigSet::from_tenants([ConfigSet::from_yaml_str(
        "express.yaml",
        &example("express.yaml"),
    )
    .unwrap()])
    .unwrap();
    let plan = plan(&live(), &without_retail);
    assert_eq!(refusal_kinds(&plan), [RefusalKind::TenantRemoved]);
    assert!(
        plan.refusals[0]
            .message
            .contains("tenant `retail` is removed")
    );

    let without_express_identity = plan_express(|text| {
        let start = text
            .find("  express:\n    description: standard parcels")
            .unwrap();
        text[..start].to_owned()
    });
    assert_eq!(
        refusal_kinds(&without_express_identity),
        [RefusalKind::BusinessIdentityRemoved]
    );
}

#[test]
fn shard_policy_changes_are_refused() {
    let plan = plan_express(|text| edit(&text, "shard_group: default", "shard_group: big"));
    assert_eq!(refusal_kinds(&plan), [RefusalKind::ShardPolicyChanged]);
}

#[test]
fn tenant_settings_changes_are_listed() {
    let plan = plan_express(|text| {
        let text = edit(&text, "hot_days: 90", "hot_days: 30");
        let text = edit(&text, "per_second: 500", "per_second: 800");
        edit(&text, "role: analytics\n", "role: customer_service\n")
    });
    assert!(plan.is_safe(), "{plan}");
    let text = plan.to_string();
    assert!(
        text.contains("warning  express: hot retention 90 → 30 days"),
        "{text}"
    );
    assert!(
        text.contains("safe     express: rate limits changed"),
        "{text}"
    );
    assert!(
        text.contains("API key `analytics` role analytics → customer_service"),
        "{text}"
    );
}

#[test]
fn every_refusal_is_listed_at_once() {
    let plan = plan_express(|text| {
        let text = edit(&text, "name: temperature_max", "name: box_count");
        let text = edit(&text, LOG_REQUIRED, "");
        edit(
            &text,
            "name: pickup_date\n            type: date",
            "name: pickup_date\n            type: bool",
        )
    });
    let mut kinds = refusal_kinds(&plan);
    kinds.sort_by_key(|k| format!("{k:?}"));
    assert_eq!(
        kinds,
        [
            RefusalKind::FieldRemoved,
            RefusalKind::SlotReused,
            RefusalKind::TypeNarrowed
        ]
    );
    assert!(plan.to_string().starts_with("plan: "));
}

/// Every field of `config` as the store's slot ledger would hold it once each was written.
fn all_written(config: &ConfigSet) -> Vec<WrittenSlot> {
    let mut written = Vec::new();
    for tenant in config.tenants() {
        for (identity, identity_config) in tenant.business_identities() {
            for (order_type, type_config) in identity_config.order_types() {
                for field in type_config.fields() {
                    written.push(WrittenSlot {
                        tenant: tenant.id().clone(),
                        business_identity: identity.clone(),
                        order_type: order_type.clone(),
                        slot: field.slot.clone(),
                        field: field.name.clone(),
                        field_type: field.field_type,
                        encrypted: field.encrypted,
                    });
                }
            }
        }
    }
    written
}

#[test]
fn a_start_planned_against_the_written_slots_refuses_what_a_reload_refuses() {
    let moved = LOG_REQUIRED.replace("order.ext_05", "order.ext_07");
    let edits: [(&str, &str); 5] = [
        ("name: temperature_max", "name: box_count"),
        (
            "name: pickup_date\n            type: date",
            "name: pickup_date\n            type: bool",
        ),
        (
            "slot: order.ext_04\n            encrypted: true           # PII, not searchable",
            "slot: order.ext_04",
        ),
        (LOG_REQUIRED, ""),
        (LOG_REQUIRED, &moved),
    ];
    let written = all_written(&live());
    for (from, to) in edits {
        let new = set_of(
            &edit(&example("express.yaml"), from, to),
            &example("retail.yaml"),
        );
        let reload = plan(&live(), &new);
        let start = plan_against_written(&written, &new);
        assert!(!reload.is_safe(), "{from:?}: {reload}");
        assert_eq!(start.refusals, reload.refusals, "{from:?}");
        // nothing written: the start has nothing to refuse
        assert!(plan_against_written(&[], &new).is_safe(), "{from:?}");
    }
    // a removed order type that holds data is refused, as by plan
    let retail_only =
        ConfigSet::from_tenants([
            ConfigSet::from_yaml_str("retail.yaml", &example("retail.yaml")).unwrap(),
        ])
        .unwrap();
    let start = plan_against_written(&written, &retail_only);
    assert_eq!(refusal_kinds(&start), [RefusalKind::TenantRemoved]);
}

/// `after_sales:` (issue #20): a routing change is a warning (stored after-sales keep their
/// reviewer), an after-sale machine is planned like an order machine.
#[test]
fn after_sale_routing_and_machines_are_planned() {
    let plan = plan_express(|text| {
        let text = edit(
            &text,
            "    user: customer_service\n",
            "    user: merchant\n",
        );
        edit(
            &text,
            "        - { from: refunding, event: complete, to: completed }\n",
            "        - { from: refunding, event: complete, to: completed }\n        - { from: approved, event: cancel, to: cancelled }\n",
        )
    });
    assert!(plan.is_safe(), "{plan}");
    let warning = plan
        .changes
        .iter()
        .find(|c| c.scope == "express/after_sales")
        .unwrap_or_else(|| panic!("{plan}"));
    assert_eq!(warning.severity, Severity::Warning);
    assert!(
        warning
            .message
            .contains("a user application is reviewed by merchant instead of customer_service"),
        "{plan}"
    );
    assert!(
        plan.changes
            .iter()
            .any(|c| c.scope == "express/after_sales/refund_only"
                && c.message == "transition `approved` --cancel--> `cancelled` added"),
        "{plan}"
    );
}
