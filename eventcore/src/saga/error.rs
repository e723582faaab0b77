//! Errors of sagas: events and deadlines that do not decode, state that does not (de)serialize.

/// Why a saga step failed (the runner retries it, then stops at it, never skipping it).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SagaError {
    /// A stored event of a handled type does not decode.
    #[error("saga `{saga}` cannot decode `{event_type}` v{event_version} at position {global_position}")]
    Decode {
        /// The saga.
        saga: &'static str,
        /// The event's position.
        global_position: u64,
        /// Its stored type.
        event_type: String,
        /// Its stored version.
        event_version: u32,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// A deadline does not (de)serialize as its type, or names a type no handler takes.
    #[error("saga `{saga}` cannot run deadline `{deadline}`")]
    Deadline {
        /// The saga.
        saga: &'static str,
        /// The deadline type name.
        deadline: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// An instance's state, a deadline or a command does not (de)serialize.
    #[error("saga `{saga}`, instance `{instance}`: {what} does not (de)serialize")]
    Serde {
        /// The saga.
        saga: &'static str,
        /// The instance.
        instance: String,
        /// What failed: the state, a deadline, a command.
        what: &'static str,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
}
