//! Handling integration messages on a broker bus: [`IntegrationHandler`] and its adapter
//! [`Integrated`], which any bus subscribes like an event handler.

use std::future::Future;

use super::message::IntegrationMessage;
use crate::bus::{EventHandler, HandleError, Handled};
use crate::envelope::RecordedEvent;

/// A consumer of integration messages: subscribe it with `bus.subscribe(Integrated(handler))`.
///
/// It gets every arrived message whose name is in [`HANDLED_NAMES`](Self::HANDLED_NAMES), after
/// the consumer checked it against the schema registry (an unknown name or a newer version is
/// dead-lettered before it gets here). Decode with `message.decode::<I>()?`: a payload that does
/// not decode becomes [`HandleError::Integration`], dead-lettered at once; any other error is
/// retried with backoff, then dead-lettered. Runs at least once per message: make it idempotent
/// (the message id is stable across republishing).
pub trait IntegrationHandler: Send + Sync + 'static {
    /// The consumer's name: its broker group, its dead letters.
    const NAME: &'static str;
    /// The integration event names it handles (for example `[CustomerJoined::NAME]`).
    const HANDLED_NAMES: &'static [&'static str];

    /// Handles one message.
    fn handle(&self, message: &IntegrationMessage) -> impl Future<Output = Result<(), HandleError>> + Send;
}

/// Runs an [`IntegrationHandler`] as an [`EventHandler`], so it subscribes to a bus like any.
#[derive(Debug, Clone, Default)]
pub struct Integrated<H>(pub H);

impl<H: IntegrationHandler> EventHandler for Integrated<H> {
    const NAME: &'static str = H::NAME;
    const HANDLED_EVENT_TYPES: &'static [&'static str] = H::HANDLED_NAMES;

    async fn handle(&self, record: &RecordedEvent) -> Result<Handled, HandleError> {
        if !H::HANDLED_NAMES.contains(&record.event_type.as_str()) {
            return Ok(Handled::Skipped);
        }
        let message = IntegrationMessage::from_record(record);
        self.0.handle(&message).await?;
        Ok(Handled::Done)
    }
}
