//! The generated code compiles cleanly under strict lints (checked by `cargo clippy --all-targets`).
#![deny(warnings, missing_docs, unused_qualifications, rust_2018_idioms)]
#![deny(clippy::all, clippy::pedantic)]
#![allow(clippy::unwrap_used)]

use eventcore::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

mod domain {
    //! An aggregate written the way the docs show, in a module with public items.
    use super::{aggregate, event_handler, projection, Deserialize, DomainEvent, JsonSchema, Serialize};

    /// A light was switched.
    #[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Eq)]
    #[event(aggregate = "light", version = 2)]
    pub struct LightSwitched {
        /// The new state.
        pub on: bool,
    }

    /// A light was renamed.
    #[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Eq)]
    #[event(name = "light.renamed")]
    pub struct LightRenamed(pub String);

    /// The events of a light.
    #[derive(DomainEvent, Debug, Clone, PartialEq, Eq)]
    pub enum LightEvent {
        /// Switched on or off.
        Switched(LightSwitched),
        /// Renamed.
        Renamed(LightRenamed),
    }

    /// A light.
    #[derive(Debug, Default, Clone, Serialize, Deserialize)]
    pub struct Light {
        /// Whether it is on.
        pub on: bool,
        /// Its name.
        pub name: String,
    }

    /// Switch the light.
    #[derive(Clone, Copy)]
    pub struct Switch(pub bool);

    /// Nothing to switch.
    #[derive(Debug, thiserror::Error)]
    #[error("no change")]
    pub struct NoChange;

    #[aggregate(events = LightEvent, error = NoChange, snapshot_every = 10)]
    impl Light {
        #[command]
        fn switch(&self, cmd: Switch) -> Result<Vec<LightEvent>, NoChange> {
            if cmd.0 == self.on {
                return Err(NoChange);
            }
            Ok(vec![LightSwitched { on: cmd.0 }.into()])
        }

        #[apply]
        fn switched(&mut self, e: &LightSwitched) {
            self.on = e.on;
        }

        #[apply]
        fn renamed(&mut self, e: &LightRenamed) {
            self.name.clone_from(&e.0);
        }
    }

    /// How often each light was switched, keyed by light.
    #[derive(Debug, Default, Serialize, Deserialize)]
    pub struct SwitchCount {
        /// Switches seen.
        pub switches: u64,
        /// The last name seen.
        pub name: String,
    }

    /// A handler failure.
    #[derive(Debug, thiserror::Error)]
    #[error("empty name")]
    pub struct EmptyName;

    #[projection(version = 2)]
    impl SwitchCount {
        #[on]
        fn switched(&mut self, _: &LightSwitched) {
            self.switches += 1;
        }

        #[on(key = 0)]
        fn renamed(&mut self, e: &eventcore::Envelope<LightRenamed>) -> Result<(), EmptyName> {
            if e.payload.0.is_empty() {
                return Err(EmptyName);
            }
            self.name.clone_from(&e.payload.0);
            Ok(())
        }
    }

    /// Counts switches as they are committed.
    #[derive(Debug, Default)]
    pub struct SwitchWatcher {
        /// Switches seen.
        pub seen: std::sync::atomic::AtomicU32,
    }

    #[event_handler(name = "switch_watcher")]
    impl SwitchWatcher {
        #[on]
        async fn switched(&self, _: &LightSwitched) -> Result<(), EmptyName> {
            self.seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok(())
        }

        #[on]
        async fn renamed(&self, e: &eventcore::Envelope<LightRenamed>) -> Result<(), EmptyName> {
            if e.payload.0.is_empty() {
                return Err(EmptyName);
            }
            Ok(())
        }
    }
}

#[test]
fn strict_lints_accept_the_generated_code() {
    use domain::{Light, LightEvent, LightSwitched, Switch};
    let mut light = Light::default();
    for event in light.handle(Switch(true)).unwrap() {
        light.apply(&event);
    }
    assert!(light.on);
    assert_eq!(LightEvent::from(LightSwitched { on: true }).event_version(), 2);
    assert_eq!(
        <Light as Aggregate>::SNAPSHOT_POLICY,
        eventcore::SnapshotPolicy::Every(10)
    );
}

#[test]
fn strict_lints_accept_the_generated_projection() {
    use eventcore::projection::Projection;
    assert_eq!(domain::SwitchCount::NAME, "switch_count");
    assert_eq!(domain::SwitchCount::VERSION, 2);
    assert_eq!(
        domain::SwitchCount::HANDLED_EVENT_TYPES,
        ["light.renamed", "light.switched"]
    );
}

#[test]
fn strict_lints_accept_the_generated_event_handler() {
    use eventcore::bus::EventHandler;
    assert_eq!(domain::SwitchWatcher::NAME, "switch_watcher");
    assert_eq!(
        domain::SwitchWatcher::HANDLED_EVENT_TYPES,
        ["light.renamed", "light.switched"]
    );
}
