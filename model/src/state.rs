//! Order state machines. States and transitions come from tenant config, one machine per
//! business identity; this type checks the definition once and then answers transitions.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use crate::error::{DomainError, ErrorCode};
use crate::ids::{StatusCode, TransitionEvent};

/// One declared transition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransitionDef {
    pub from: StatusCode,
    pub event: TransitionEvent,
    pub to: StatusCode,
}

/// Why a state machine definition was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateMachineError {
    #[error("initial state {0} is not declared")]
    UnknownInitial(StatusCode),
    #[error("transition {event} from {from} names an undeclared state {state}")]
    UnknownState {
        from: StatusCode,
        event: TransitionEvent,
        state: StatusCode,
    },
    #[error("state {state} has two transitions for event {event}")]
    Ambiguous {
        state: StatusCode,
        event: TransitionEvent,
    },
    #[error("terminal state {state} has an outgoing transition {event}")]
    TerminalHasExit {
        state: StatusCode,
        event: TransitionEvent,
    },
    #[error("state {0} cannot be reached from the initial state")]
    Unreachable(StatusCode),
    #[error("no terminal state is declared")]
    NoTerminal,
    #[error("non-terminal state {0} has no outgoing transition (orders would be stuck)")]
    DeadEnd(StatusCode),
}

/// A checked state machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateMachine {
    initial: StatusCode,
    terminal: BTreeSet<StatusCode>,
    states: BTreeSet<StatusCode>,
    transitions: BTreeMap<(StatusCode, TransitionEvent), StatusCode>,
}

impl StateMachine {
    /// Build and check: every referenced state declared, deterministic, terminal states
    /// without exits, every state reachable, no non-terminal dead ends.
    pub fn new(
        initial: StatusCode,
        states: impl IntoIterator<Item = StatusCode>,
        terminal: impl IntoIterator<Item = StatusCode>,
        transitions: impl IntoIterator<Item = TransitionDef>,
    ) -> Result<StateMachine, StateMachineError> {
        let terminal: BTreeSet<StatusCode> = terminal.into_iter().collect();
        let mut states: BTreeSet<StatusCode> = states.into_iter().collect();
        states.extend(terminal.iter().cloned());
        if !states.contains(&initial) {
            return Err(StateMachineError::UnknownInitial(initial));
        }
        if terminal.is_empty() {
            return Err(StateMachineError::NoTerminal);
        }
        let mut table = BTreeMap::new();
        for TransitionDef { from, event, to } in transitions {
            for state in [&from, &to] {
                if !states.contains(state) {
                    return Err(StateMachineError::UnknownState {
                        from: from.clone(),
                        event: event.clone(),
                        state: state.clone(),
                    });
                }
            }
            if terminal.contains(&from) {
                return Err(StateMachineError::TerminalHasExit { state: from, event });
            }
            if table.insert((from.clone(), event.clone()), to).is_some() {
                return Err(StateMachineError::Ambiguous { state: from, event });
            }
        }
        let machine = StateMachine {
            initial,
            terminal,
            states,
            transitions: table,
        };
        let reachable = machine.reachable();
        if let Some(lost) = machine.states.iter().find(|s| !reachable.contains(*s)) {
            return Err(StateMachineError::Unreachable(lost.clone()));
        }
        if let Some(stuck) = machine
            .states
            .iter()
            .find(|s| !machine.terminal.contains(*s) && machine.events_from(s).next().is_none())
        {
            return Err(StateMachineError::DeadEnd(stuck.clone()));
        }
        Ok(machine)
    }

    fn reachable(&self) -> BTreeSet<StatusCode> {
        let mut seen = BTreeSet::from([self.initial.clone()]);
        let mut queue = VecDeque::from([self.initial.clone()]);
        while let Some(state) = queue.pop_front() {
            for ((from, _), to) in &self.transitions {
                if *from == state && seen.insert(to.clone()) {
                    queue.push_back(to.clone());
                }
            }
        }
        seen
    }

    pub fn initial(&self) -> &StatusCode {
        &self.initial
    }

    pub fn is_terminal(&self, state: &StatusCode) -> bool {
        self.terminal.contains(state)
    }

    pub fn contains(&self, state: &StatusCode) -> bool {
        self.states.contains(state)
    }

    pub fn states(&self) -> impl Iterator<Item = &StatusCode> {
        self.states.iter()
    }

    /// Events allowed from `state`.
    pub fn events_from<'a>(
        &'a self,
        state: &'a StatusCode,
    ) -> impl Iterator<Item = &'a TransitionEvent> + 'a {
        self.transitions
            .keys()
            .filter(move |(from, _)| from == state)
            .map(|(_, event)| event)
    }

    /// The state `event` leads to from `from`, or an `InvalidTransition` error that says
    /// which events are allowed.
    pub fn next(
        &self,
        from: &StatusCode,
        event: &TransitionEvent,
    ) -> Result<&StatusCode, DomainError> {
        self.transitions
            .get(&(from.clone(), event.clone()))
            .ok_or_else(|| {
                let allowed: Vec<&str> = self.events_from(from).map(|e| e.as_str()).collect();
                DomainError::new(
                    ErrorCode::InvalidTransition,
                    format!(
                        "event {event} is not allowed in status {from}; allowed: [{}]",
                        allowed.join(", ")
                    ),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn s(code: &str) -> StatusCode {
        StatusCode::parse(code).unwrap()
    }

    fn t(from: &str, event: &str, to: &str) -> TransitionDef {
        TransitionDef {
            from: s(from),
            event: TransitionEvent::parse(event).unwrap(),
            to: s(to),
        }
    }

    fn retail() -> StateMachine {
        StateMachine::new(
            s("pending_payment"),
            ["pending_payment", "paid", "shipped", "received"].map(s),
            ["completed", "cancelled"].map(s),
            [
                t("pending_payment", "pay", "paid"),
                t("pending_payment", "cancel", "cancelled"),
                t("pending_payment", "timeout", "cancelled"),
                t("paid", "ship", "shipped"),
                t("shipped", "receive", "received"),
                t("received", "complete", "completed"),
            ],
        )
        .unwrap()
    }

    #[test]
    fn follows_declared_transitions_only() {
        let machine = retail();
        let event = |e: &str| TransitionEvent::parse(e).unwrap();
        assert_eq!(
            machine.next(&s("pending_payment"), &event("pay")).unwrap(),
            &s("paid")
        );
        let refused = machine.next(&s("paid"), &event("cancel")).unwrap_err();
        assert_eq!(refused.code, ErrorCode::InvalidTransition);
        assert!(
            refused.message.contains("allowed: [ship]"),
            "{}",
            refused.message
        );
        assert!(machine.is_terminal(&s("cancelled")));
    }

    #[test]
    fn refuses_broken_definitions() {
        let states = || ["a", "b"].map(s);
        let terminal = || [s("z")];
        let err = |transitions: Vec<TransitionDef>| {
            StateMachine::new(s("a"), states(), terminal(), transitions).unwrap_err()
        };
        assert!(matches!(
            err(vec![t("a", "go", "b"), t("b", "go", "nowhere")]),
            StateMachineError::UnknownState { .. }
        ));
        assert!(matches!(
            err(vec![
                t("a", "go", "b"),
                t("a", "go", "z"),
                t("b", "go", "z")
            ]),
            StateMachineError::Ambiguous { .. }
        ));
        assert!(matches!(
            err(vec![
                t("a", "go", "b"),
                t("b", "go", "z"),
                t("z", "back", "a")
            ]),
            StateMachineError::TerminalHasExit { .. }
        ));
        assert!(matches!(
            err(vec![t("a", "go", "z")]),
            StateMachineError::Unreachable(_)
        ));
        assert!(matches!(
            err(vec![t("a", "go", "b"), t("a", "end", "z")]),
            StateMachineError::DeadEnd(_)
        ));
        assert!(matches!(
            StateMachine::new(s("q"), states(), terminal(), vec![]).unwrap_err(),
            StateMachineError::UnknownInitial(_)
        ));
        assert!(matches!(
            StateMachine::new(s("a"), states(), [], vec![]).unwrap_err(),
            StateMachineError::NoTerminal
        ));
    }

    proptest! {
        /// Any walk through a valid machine only visits declared states and stops at terminals.
        #[test]
        fn random_walks_stay_inside_the_machine(choices in proptest::collection::vec(0usize..8, 0..50)) {
            let machine = retail();
            let mut state = machine.initial().clone();
            for choice in choices {
                let events: Vec<_> = machine.events_from(&state).cloned().collect();
                if events.is_empty() {
                    prop_assert!(machine.is_terminal(&state));
                    break;
                }
                let event = &events[choice % events.len()];
                state = machine.next(&state, event).unwrap().clone();
                prop_assert!(machine.contains(&state));
            }
        }
    }
}
