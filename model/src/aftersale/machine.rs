//! The after-sale state machines, one per type, and review routing. Both are per tenant: the
//! defaults here are what a tenant that configures nothing gets (seed 000's flow); a tenant's
//! own machines are checked by the same [`StateMachine::new`] as order machines.
//!
//! Statuses every machine must know, because the application core acts on them: the initial
//! one (`applied`), `approved` (review passed), `rejected` and `appealed` (the one appeal),
//! `refunding` (a refund was issued) and the terminal states; which events lead where is the
//! machine's.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{AfterSaleChannel, AfterSaleType, LedgerEffect, Reviewer};
use crate::ids::{StatusCode, TransitionEvent};
use crate::state::{StateMachine, TransitionDef};

/// One machine per after-sale type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AfterSaleMachines {
    machines: BTreeMap<AfterSaleType, StateMachine>,
}

fn status(name: &str) -> StatusCode {
    StatusCode::parse(name).expect("a built-in status is valid")
}

fn def(from: &str, event: &str, to: &str) -> TransitionDef {
    TransitionDef {
        from: status(from),
        event: TransitionEvent::parse(event).expect("a built-in event is valid"),
        to: status(to),
    }
}

/// Review, the appeal and cancellation: the same for every type.
fn review_defs() -> Vec<TransitionDef> {
    vec![
        def("applied", "approve", "approved"),
        def("applied", "reject", "rejected"),
        def("applied", "cancel", "cancelled"),
        def("rejected", "appeal", "appealed"),
        def("rejected", "close", "closed"),
        def("appealed", "approve", "approved"),
        // customer service's word on an appeal is final
        def("appealed", "reject", "closed"),
        def("approved", "cancel", "cancelled"),
    ]
}

impl AfterSaleMachines {
    /// Seed 000's flows: refund only pays from `approved`; return-and-refund once the goods
    /// are back; exchange and repair ship something back instead of paying.
    pub fn defaults() -> AfterSaleMachines {
        let terminal = ["completed", "closed", "cancelled"].map(status);
        let mut machines = BTreeMap::new();
        for kind in AfterSaleType::ALL.iter().copied() {
            let mut defs = review_defs();
            defs.extend(match kind {
                AfterSaleType::RefundOnly => vec![
                    def("approved", "refund", "refunding"),
                    def("refunding", "complete", "completed"),
                ],
                AfterSaleType::ReturnAndRefund => vec![
                    def("approved", "receive_return", "returned"),
                    def("returned", "refund", "refunding"),
                    def("refunding", "complete", "completed"),
                ],
                AfterSaleType::Exchange | AfterSaleType::Repair => vec![
                    def("approved", "receive_return", "returned"),
                    def("returned", "ship", "shipped"),
                    def("shipped", "complete", "completed"),
                ],
            });
            let states: Vec<StatusCode> = defs
                .iter()
                .flat_map(|d| [d.from.clone(), d.to.clone()])
                .collect();
            let machine = StateMachine::new(status("applied"), states, terminal.clone(), defs)
                .expect("the default after-sale machines are valid");
            machines.insert(kind, machine);
        }
        AfterSaleMachines { machines }
    }

    /// A tenant's machines: the defaults with the types it configures replaced.
    pub fn with(mut self, kind: AfterSaleType, machine: StateMachine) -> AfterSaleMachines {
        self.machines.insert(kind, machine);
        self
    }

    pub fn of(&self, kind: AfterSaleType) -> &StateMachine {
        // every type has a machine: `defaults` builds all of them and `with` only replaces
        &self.machines[&kind]
    }

    /// What a tenant's machine for `kind` lacks of what the application core relies on
    /// (empty: none). [`StateMachine::new`] has already checked that it is a machine at all;
    /// this checks that it is one the core can drive: the statuses and events it names in
    /// code (the initial `applied`; `approve` and `reject` from it, the merchant's own
    /// application approved at once by that same `approve`; the one `appeal` of a rejection
    /// and the arbiter's final word; for a refunding type, `refund` into `refunding` and the
    /// refund's success completing it in the terminal `completed`, which keeps the units).
    pub fn gaps(kind: AfterSaleType, machine: &StateMachine) -> Vec<MachineGap> {
        let mut gaps = Vec::new();
        // an event nobody fires is a typo or a wish: the API's routes fire only these
        let mut unknown: Vec<String> = machine
            .states()
            .flat_map(|state| machine.events_from(state))
            .map(|event| event.as_str().to_owned())
            .filter(|event| !EVENTS.contains(&event.as_str()))
            .collect();
        unknown.sort();
        unknown.dedup();
        for event in unknown {
            gaps.push(MachineGap {
                at: "transitions",
                event: Some(event.clone()),
                message: format!(
                    "event `{event}` is never fired: an after-sale moves only by {}",
                    EVENTS.join(", ")
                ),
            });
        }
        let applied = status("applied");
        if machine.initial() != &applied {
            gaps.push(MachineGap {
                at: "initial",
                event: None,
                message: format!(
                    "the initial status must be `applied` (got `{}`): applications start there",
                    machine.initial()
                ),
            });
        }
        let need = |from: &str, event: &str, to: Option<&str>, why: &str| {
            let from = status(from);
            let fired = TransitionEvent::parse(event).expect("a built-in event is valid");
            let reached = machine.next(&from, &fired).ok();
            let ok = match (reached, to) {
                (Some(reached), Some(to)) => reached.as_str() == to,
                (Some(reached), None) => machine.is_terminal(reached),
                (None, _) => false,
            };
            (!ok).then(|| {
                let target = to.map_or("a terminal status".to_owned(), |to| format!("`{to}`"));
                MachineGap {
                    at: "transitions",
                    event: None,
                    message: format!("missing transition `{from}` --{event}--> {target}: {why}"),
                }
            })
        };
        gaps.extend(need(
            "applied",
            "approve",
            Some("approved"),
            "a review approves with it, and a merchant's own application is approved at once by it",
        ));
        gaps.extend(need(
            "applied",
            "reject",
            Some("rejected"),
            "a review rejects with it",
        ));
        gaps.extend(need(
            "rejected",
            "appeal",
            Some("appealed"),
            "a rejection may be appealed once, to customer service",
        ));
        gaps.extend(need(
            "appealed",
            "approve",
            Some("approved"),
            "customer service approves an appeal with it",
        ));
        gaps.extend(need(
            "appealed",
            "reject",
            None,
            "customer service's rejection of an appeal is final",
        ));
        if kind.refunds() {
            if !machine.states().any(|state| {
                machine
                    .next(state, &refund_event())
                    .is_ok_and(|to| to.as_str() == "refunding")
            }) {
                gaps.push(MachineGap {
                    at: "transitions",
                    event: None,
                    message: format!(
                        "a {kind} machine needs a `refund` transition into `refunding`: the refund claims the after-sale by it"
                    ),
                });
            }
            gaps.extend(need(
                "refunding",
                "complete",
                Some("completed"),
                "the refund's success completes the after-sale by it",
            ));
            let completed = status("completed");
            if machine.contains(&completed) && !machine.is_terminal(&completed) {
                gaps.push(MachineGap {
                    at: "terminal",
                    event: None,
                    message:
                        "`completed` must be terminal: a completed refund keeps the units for good"
                            .to_owned(),
                });
            }
        }
        gaps
    }
}

/// Every event the after-sale core fires: the review, the appeal, the refund and its
/// completion, and the steps of `POST /v1/after-sales/{id}/transitions`.
pub const EVENTS: &[&str] = &[
    "approve",
    "reject",
    "appeal",
    "refund",
    "complete",
    "receive_return",
    "ship",
    "cancel",
    "close",
];

fn refund_event() -> TransitionEvent {
    TransitionEvent::parse("refund").expect("a built-in event is valid")
}

/// Something a tenant's after-sale machine lacks (see [`AfterSaleMachines::gaps`]): `at` is
/// the key of the machine it concerns (`initial`, `transitions`, `terminal`); `event` the
/// event no route fires, when that is the gap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineGap {
    pub at: &'static str,
    pub event: Option<String>,
    pub message: String,
}

/// Who reviews an application from each channel (seed 000): the user's and customer
/// service's go to the merchant or to customer service by tenant config; the merchant's own
/// is approved at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewRouting {
    pub user: Reviewer,
    pub customer_service: Reviewer,
}

impl Default for ReviewRouting {
    fn default() -> Self {
        ReviewRouting {
            user: Reviewer::Merchant,
            customer_service: Reviewer::Merchant,
        }
    }
}

impl ReviewRouting {
    pub fn reviewer(&self, channel: AfterSaleChannel) -> Reviewer {
        match channel {
            AfterSaleChannel::User => self.user,
            AfterSaleChannel::CustomerService => self.customer_service,
            // seed 000: a merchant may only apply for its own fault, approved at once
            AfterSaleChannel::Merchant => Reviewer::None,
        }
    }
}

/// What entering `to` does to the units of an after-sale of `kind`: a terminal state gives
/// them back unless it completed a refund, which keeps them for good.
pub fn ledger_effect(machine: &StateMachine, kind: AfterSaleType, to: &StatusCode) -> LedgerEffect {
    if !machine.is_terminal(to) {
        return LedgerEffect::None;
    }
    if to.as_str() == "completed" && kind.refunds() {
        LedgerEffect::Settle
    } else {
        LedgerEffect::Release
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walk(machine: &StateMachine, events: &[&str]) -> String {
        let mut at = machine.initial().clone();
        for event in events {
            at = machine
                .next(&at, &TransitionEvent::parse(*event).unwrap())
                .unwrap()
                .clone();
        }
        at.as_str().to_owned()
    }

    #[test]
    fn each_type_goes_through_its_own_default_machine() {
        let machines = AfterSaleMachines::defaults();
        let refund = machines.of(AfterSaleType::RefundOnly);
        assert_eq!(
            walk(refund, &["approve", "refund", "complete"]),
            "completed"
        );
        assert!(
            refund
                .next(
                    &status("approved"),
                    &TransitionEvent::parse("receive_return").unwrap()
                )
                .is_err()
        );
        let returned = machines.of(AfterSaleType::ReturnAndRefund);
        assert_eq!(
            walk(
                returned,
                &["approve", "receive_return", "refund", "complete"]
            ),
            "completed"
        );
        assert!(
            returned
                .next(
                    &status("approved"),
                    &TransitionEvent::parse("refund").unwrap()
                )
                .is_err(),
            "no refund before the goods are back"
        );
        for kind in [AfterSaleType::Exchange, AfterSaleType::Repair] {
            let machine = machines.of(kind);
            assert_eq!(
                walk(machine, &["approve", "receive_return", "ship", "complete"]),
                "completed"
            );
            assert!(
                machine
                    .next(
                        &status("returned"),
                        &TransitionEvent::parse("refund").unwrap()
                    )
                    .is_err()
            );
        }
    }

    #[test]
    fn the_default_machines_have_no_gaps_and_a_machine_without_refund_has() {
        let machines = AfterSaleMachines::defaults();
        for kind in AfterSaleType::ALL.iter().copied() {
            assert_eq!(AfterSaleMachines::gaps(kind, machines.of(kind)), vec![]);
        }
        // the exchange machine has no refund: fine for an exchange, a gap for a refund
        let gaps = AfterSaleMachines::gaps(
            AfterSaleType::RefundOnly,
            machines.of(AfterSaleType::Exchange),
        );
        assert_eq!(gaps.len(), 2, "{gaps:?}");
        assert!(
            gaps[0]
                .message
                .contains("`refund` transition into `refunding`")
        );
        assert!(
            gaps[1]
                .message
                .contains("`refunding` --complete--> `completed`")
        );
    }

    #[test]
    fn a_rejection_can_be_appealed_once_and_the_arbiter_is_final() {
        let machine = AfterSaleMachines::defaults();
        let machine = machine.of(AfterSaleType::RefundOnly);
        assert_eq!(walk(machine, &["reject", "appeal", "approve"]), "approved");
        assert_eq!(walk(machine, &["reject", "appeal", "reject"]), "closed");
        assert!(machine.is_terminal(&status("closed")));
    }

    #[test]
    fn routing_sends_the_merchants_own_application_to_nobody() {
        let routing = ReviewRouting {
            user: Reviewer::CustomerService,
            customer_service: Reviewer::Merchant,
        };
        assert_eq!(routing.reviewer(AfterSaleChannel::Merchant), Reviewer::None);
        assert_eq!(
            routing.reviewer(AfterSaleChannel::User),
            Reviewer::CustomerService
        );
        assert_eq!(
            routing.reviewer(AfterSaleChannel::CustomerService),
            Reviewer::Merchant
        );
    }

    #[test]
    fn terminal_states_release_units_unless_a_refund_completed() {
        let machines = AfterSaleMachines::defaults();
        let refund = machines.of(AfterSaleType::RefundOnly);
        let exchange = machines.of(AfterSaleType::Exchange);
        assert_eq!(
            ledger_effect(refund, AfterSaleType::RefundOnly, &status("completed")),
            LedgerEffect::Settle
        );
        assert_eq!(
            ledger_effect(exchange, AfterSaleType::Exchange, &status("completed")),
            LedgerEffect::Release
        );
        assert_eq!(
            ledger_effect(refund, AfterSaleType::RefundOnly, &status("closed")),
            LedgerEffect::Release
        );
        assert_eq!(
            ledger_effect(refund, AfterSaleType::RefundOnly, &status("refunding")),
            LedgerEffect::None
        );
    }
}
