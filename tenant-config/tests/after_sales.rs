//! `after_sales:` (issue #20): per tenant, the state machine of each after-sale type and who
//! reviews an application from each channel; the defaults where a tenant sets nothing, and a
//! bad section refused at load with its path.

mod common;

use common::*;
use oc_model::aftersale::{AfterSaleChannel, AfterSaleMachines, AfterSaleType, Reviewer};
use oc_model::{StatusCode, TransitionEvent};
use oc_tenant_config::{ConfigError, ConfigSet};

/// A valid file with an `after_sales:` section every case edits once.
fn base() -> String {
    r#"version: 1
tenant: acme
currency: CNY
rate_limits: { per_second: 10, burst: 20 }
shard_policy: { key: buyer_id, shard_group: default }
retention: { hot_days: 30 }
after_sales:
  review_routing:
    user: customer_service
  state_machines:
    refund_only:
      initial: applied
      states: [applied, approved, rejected, appealed, refunding]
      terminal: [completed, closed, cancelled]
      transitions:
        - { from: applied, event: approve, to: approved }
        - { from: applied, event: reject, to: rejected }
        - { from: applied, event: cancel, to: cancelled }
        - { from: rejected, event: appeal, to: appealed }
        - { from: appealed, event: approve, to: approved }
        - { from: appealed, event: reject, to: closed }
        - { from: approved, event: refund, to: refunding }
        - { from: refunding, event: complete, to: completed }
"#
    .to_owned()
}

const MACHINE: &str = "/after_sales/state_machines/refund_only";

fn errors_of(text: &str) -> Vec<ConfigError> {
    match ConfigSet::from_yaml_str("acme.yaml", text) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(errors) => errors.into_vec(),
    }
}

fn status(name: &str) -> StatusCode {
    StatusCode::parse(name).unwrap()
}

fn event(name: &str) -> TransitionEvent {
    TransitionEvent::parse(name).unwrap()
}

#[test]
fn a_configured_section_replaces_what_it_names_and_keeps_the_defaults_elsewhere() {
    let tenant = ConfigSet::from_yaml_str("acme.yaml", &base()).unwrap();
    let rules = tenant.after_sales();
    assert_eq!(
        rules.routing().reviewer(AfterSaleChannel::User),
        Reviewer::CustomerService
    );
    // not configured: the default
    assert_eq!(
        rules.routing().reviewer(AfterSaleChannel::CustomerService),
        Reviewer::Merchant
    );
    assert_eq!(
        rules.routing().reviewer(AfterSaleChannel::Merchant),
        Reviewer::None
    );
    let refund_only = rules.machines().of(AfterSaleType::RefundOnly);
    assert!(
        refund_only
            .next(&status("approved"), &event("cancel"))
            .is_err(),
        "this tenant's refund only may not be withdrawn once approved"
    );
    let defaults = AfterSaleMachines::defaults();
    assert!(
        defaults
            .of(AfterSaleType::RefundOnly)
            .next(&status("approved"), &event("cancel"))
            .is_ok()
    );
    for kind in [
        AfterSaleType::ReturnAndRefund,
        AfterSaleType::Exchange,
        AfterSaleType::Repair,
    ] {
        assert_eq!(rules.machines().of(kind), defaults.of(kind), "{kind}");
    }
}

#[test]
fn the_examples_differ_for_express_and_keep_the_defaults_for_retail() {
    let set = examples();
    let express = tenant(&set, "express").after_sales();
    assert_eq!(
        express.routing().reviewer(AfterSaleChannel::User),
        Reviewer::CustomerService
    );
    assert_eq!(
        express
            .routing()
            .reviewer(AfterSaleChannel::CustomerService),
        Reviewer::CustomerService
    );
    assert_ne!(
        express.machines().of(AfterSaleType::RefundOnly),
        AfterSaleMachines::defaults().of(AfterSaleType::RefundOnly)
    );
    let retail = tenant(&set, "retail").after_sales();
    assert_eq!(retail, &oc_tenant_config::AfterSalesConfig::default());
}

#[test]
fn a_bad_section_is_refused_at_load_with_its_path() {
    let cases: Vec<(&str, &str, &str, String, &str)> = vec![
        (
            "a reviewer that is nobody",
            "user: customer_service",
            "user: none",
            "/after_sales/review_routing/user".into(),
            "is `merchant` or `customer_service`",
        ),
        (
            "an unknown type",
            "    refund_only:\n",
            "    refund_only_fast:\n",
            "/after_sales/state_machines/refund_only_fast".into(),
            "unknown after-sale type `refund_only_fast`; one of refund_only, return_and_refund, exchange, repair",
        ),
        (
            "an unknown key in a transition",
            "{ from: applied, event: cancel, to: cancelled }",
            "{ from: applied, event: cancel, to: cancelled, stock: release }",
            format!("{MACHINE}/transitions/2/stock"),
            "unknown key `stock`",
        ),
        (
            "the machine check shared with orders",
            "{ from: applied, event: cancel, to: cancelled }",
            "{ from: applied, event: cancel, to: nowhere }",
            format!("{MACHINE}/transitions/2"),
            "undeclared state nowhere",
        ),
        (
            "a status the core needs is missing",
            "{ from: appealed, event: approve, to: approved }",
            "{ from: appealed, event: approve, to: refunding }",
            format!("{MACHINE}/transitions"),
            "missing transition `appealed` --approve--> `approved`",
        ),
        (
            "an event no route fires",
            "{ from: applied, event: cancel, to: cancelled }",
            "{ from: applied, event: withdraw, to: cancelled }",
            format!("{MACHINE}/transitions/2/event"),
            "event `withdraw` is never fired",
        ),
        (
            "no refund at all",
            "{ from: approved, event: refund, to: refunding }",
            "{ from: approved, event: complete, to: refunding }",
            format!("{MACHINE}/transitions"),
            "a refund_only machine needs a `refund` transition into `refunding`",
        ),
    ];
    for (name, from, to, path, message) in cases {
        let text = edit(&base(), from, to);
        let errors = errors_of(&text);
        assert!(
            errors
                .iter()
                .any(|e| e.file == "acme.yaml" && e.path == path && e.message.contains(message)),
            "{name}: expected {path}: …{message}…, got:\n{}",
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

#[test]
fn the_initial_status_must_be_applied() {
    let text = edit(
        &edit(&base(), "initial: applied", "initial: start"),
        "states: [applied,",
        "states: [start, applied,",
    );
    let text = edit(
        &text,
        "transitions:\n        - { from: applied, event: approve, to: approved }",
        "transitions:\n        - { from: start, event: approve, to: applied }\n        - { from: applied, event: approve, to: approved }",
    );
    let errors = errors_of(&text);
    assert!(
        errors.iter().any(|e| e.path == format!("{MACHINE}/initial")
            && e.message.contains("the initial status must be `applied`")),
        "{errors:?}"
    );
}
