//! Translation of domain events into integration events on the way out of a service.

use std::sync::Arc;

use uuid::Uuid;

use super::event::IntegrationEvent;
use super::message::{IntegrationEncodeError, IntegrationMessage, MessageMeta};
use crate::codec::RecordDecodeError;
use crate::envelope::{Envelope, RecordedEvent};
use crate::event::SingleEvent;

type TranslateFn =
    dyn Fn(&RecordedEvent) -> Result<Option<IntegrationMessage>, TranslateError> + Send + Sync + 'static;

/// A domain event could not be translated.
#[derive(Debug, thiserror::Error)]
pub enum TranslateError {
    /// The stored domain event does not decode.
    #[error(transparent)]
    Decode(#[from] RecordDecodeError),
    /// The integration event does not encode.
    #[error(transparent)]
    Encode(#[from] IntegrationEncodeError),
}

/// Which domain events leave the service, and as which integration events: the relay asks it
/// for each stored event and publishes what it returns (zero or one message).
///
/// The translated message carries the domain event's correlation id (or, at the start of a
/// chain, its id) and the domain event's id as causation; its id is derived from the domain
/// event's id and the integration name (UUID v5), so a republished translation keeps its id and
/// broker deduplication holds.
///
/// ```
/// use eventcore::integration::{IntegrationEvent, Translate};
/// use eventcore::prelude::*;
/// # use serde::{Deserialize, Serialize};
/// # use schemars::JsonSchema;
/// # #[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
/// # #[event(aggregate = "account")]
/// # pub struct AccountOpened { pub owner: String }
///
/// #[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, PartialEq)]
/// #[integration(name = "accounts.customer_joined", version = 1)]
/// pub struct CustomerJoined { pub customer: String }
///
/// impl From<&Envelope<AccountOpened>> for CustomerJoined {
///     fn from(e: &Envelope<AccountOpened>) -> Self { Self { customer: e.payload.owner.clone() } }
/// }
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let translate = Translate::new().event::<AccountOpened, CustomerJoined>();
/// let opened = eventcore::NewEvent::encode(&AccountOpened { owner: "ada".into() }, "account", "acc-1")?
///     .into_recorded("account-acc-1", 1, 1);
/// let message = translate.translate(&opened)?.expect("translated");
/// assert_eq!(message.name, "accounts.customer_joined");
/// assert_eq!(message.causation_id, Some(opened.event_id.to_string()));
/// assert_eq!(message.decode::<CustomerJoined>()?, CustomerJoined { customer: "ada".into() });
/// # Ok(()) }
/// ```
#[derive(Clone, Default)]
pub struct Translate {
    routes: Vec<(&'static str, Arc<TranslateFn>)>,
    /// Domain event type → integration event name, for the catalog.
    names: Vec<(&'static str, &'static str)>,
    /// The metadata keys carried over; `None`: all of them.
    metadata_keys: Option<Arc<[String]>>,
}

impl std::fmt::Debug for Translate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Translate")
            .field("event_types", &self.event_types())
            .field("metadata_keys", &self.metadata_keys)
            .finish()
    }
}

impl Translate {
    /// Translates nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Publishes every domain event `D` as integration event `I`, with the user's
    /// `From<&Envelope<D>>`. A later translation of the same `D` replaces this one.
    pub fn event<D, I>(self) -> Self
    where
        D: SingleEvent,
        I: IntegrationEvent + for<'a> From<&'a Envelope<D>>,
    {
        self.filter_map::<D, I>(|envelope| Some(I::from(envelope)))
    }

    /// Publishes the domain events `D` for which `translate` returns `Some`, as integration
    /// event `I`; the others stay inside. A later translation of the same `D` replaces this one.
    pub fn filter_map<D, I>(
        mut self,
        translate: impl Fn(&Envelope<D>) -> Option<I> + Send + Sync + 'static,
    ) -> Self
    where
        D: SingleEvent,
        I: IntegrationEvent,
    {
        let route = move |record: &RecordedEvent| -> Result<Option<IntegrationMessage>, TranslateError> {
            let envelope = record.decode::<D>()?;
            let Some(event) = translate(&envelope) else {
                return Ok(None);
            };
            Ok(Some(translated(record, &event)?))
        };
        self.routes.retain(|(event_type, _)| *event_type != D::EVENT_TYPE);
        self.routes.push((D::EVENT_TYPE, Arc::new(route)));
        self.names.retain(|(event_type, _)| *event_type != D::EVENT_TYPE);
        self.names.push((D::EVENT_TYPE, I::NAME));
        self
    }

    /// Carries only the metadata keys `keys` of a domain event over to its message (by default
    /// every key is): metadata that is the service's own business, such as client data,
    /// stays inside.
    ///
    /// ```
    /// use eventcore::integration::{IntegrationEvent, Translate};
    /// use eventcore::prelude::*;
    /// # use serde::{Deserialize, Serialize};
    /// # use schemars::JsonSchema;
    /// # #[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
    /// # #[event(aggregate = "account")]
    /// # pub struct AccountOpened { pub owner: String }
    /// # #[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, PartialEq)]
    /// # #[integration(name = "accounts.customer_joined", version = 1)]
    /// # pub struct CustomerJoined { pub customer: String }
    /// # impl From<&Envelope<AccountOpened>> for CustomerJoined {
    /// #     fn from(e: &Envelope<AccountOpened>) -> Self { Self { customer: e.payload.owner.clone() } }
    /// # }
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let context = CommandContext::new().metadata("tenant", "acme").metadata("client_ip", "203.0.113.7");
    /// let opened = eventcore::NewEvent::encode(&AccountOpened { owner: "ada".into() }, "account", "acc-1")?
    ///     .with_context(&context)
    ///     .into_recorded("account-acc-1", 1, 1);
    /// let all = Translate::new().event::<AccountOpened, CustomerJoined>();
    /// assert_eq!(all.translate(&opened)?.expect("translated").metadata.len(), 2);
    /// let some = all.metadata_keys(["tenant"]);
    /// let message = some.translate(&opened)?.expect("translated");
    /// assert_eq!(message.metadata.keys().collect::<Vec<_>>(), ["tenant"]);
    /// # Ok(()) }
    /// ```
    pub fn metadata_keys<K: Into<String>>(mut self, keys: impl IntoIterator<Item = K>) -> Self {
        self.metadata_keys = Some(keys.into_iter().map(Into::into).collect());
        self
    }

    /// The domain event types translated, in registration order.
    pub fn event_types(&self) -> Vec<&'static str> {
        self.routes.iter().map(|(event_type, _)| *event_type).collect()
    }

    /// Each translated domain event type with the integration event it is published as (what
    /// the event catalog draws as the relay's translations).
    pub fn translations(&self) -> Vec<(&'static str, &'static str)> {
        self.names.clone()
    }

    /// Whether a stored event of `event_type` may be translated.
    pub fn handles(&self, event_type: &str) -> bool {
        self.routes.iter().any(|(t, _)| *t == event_type)
    }

    /// The integration message `record` becomes, if any. Records are matched by their stored
    /// type name; an older version of `D` is upcast before the translation sees it.
    pub fn translate(&self, record: &RecordedEvent) -> Result<Option<IntegrationMessage>, TranslateError> {
        let Some((_, route)) = self.routes.iter().find(|(t, _)| *t == record.event_type) else {
            return Ok(None);
        };
        let mut message = route(record)?;
        if let (Some(keys), Some(message)) = (&self.metadata_keys, message.as_mut()) {
            message.metadata.retain(|key, _| keys.contains(key));
        }
        Ok(message)
    }
}

/// The message of `event`, translated from `record`.
fn translated<I: IntegrationEvent>(
    record: &RecordedEvent,
    event: &I,
) -> Result<IntegrationMessage, IntegrationEncodeError> {
    let cause = record.event_id.to_string();
    let meta = MessageMeta {
        source: Some(format!("eventcore://{}", record.aggregate_type)),
        subject: Some(record.aggregate_id.clone()),
        correlation_id: Some(record.correlation_id.clone().unwrap_or_else(|| cause.clone())),
        causation_id: Some(cause),
        metadata: record.metadata.clone(),
    };
    let id = Uuid::new_v5(&record.event_id, I::NAME.as_bytes());
    let mut message = IntegrationMessage::with_id(id, event, &meta)?;
    message.time = record.occurred_at;
    Ok(message)
}
