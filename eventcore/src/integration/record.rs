//! An integration message inside a broker consumer: carried as a [`RecordedEvent`] so retries,
//! dead letters and per-key order work as for domain events, and read back losslessly.

use super::message::IntegrationMessage;
use crate::envelope::RecordedEvent;

impl IntegrationMessage {
    /// The key that orders messages on a broker: messages with one key keep their order
    /// (`{source}#{subject}`, or the source alone when there is no subject).
    pub fn ordering_key(&self) -> String {
        match &self.subject {
            Some(subject) => format!("{}#{subject}", self.source),
            None => self.source.clone(),
        }
    }

    /// The message as a record for a broker consumer: `event_type` is the name, `stream_id` the
    /// [`ordering_key`](Self::ordering_key), `aggregate_type` the source, `aggregate_id` the
    /// subject; it has no store positions (both 0): it was never stored in a stream.
    pub fn to_record(&self) -> RecordedEvent {
        RecordedEvent {
            event_id: self.id,
            event_type: self.name.clone(),
            event_version: self.version,
            stream_id: self.ordering_key(),
            aggregate_type: self.source.clone(),
            aggregate_id: self.subject.clone().unwrap_or_default(),
            stream_version: 0,
            global_position: 0,
            occurred_at: self.time,
            correlation_id: self.correlation_id.clone(),
            causation_id: self.causation_id.clone(),
            metadata: self.metadata.clone(),
            payload: self.data.clone(),
        }
    }

    /// The message a record made by [`to_record`](Self::to_record) carries.
    pub fn from_record(record: &RecordedEvent) -> Self {
        // Without a subject the ordering key is the source alone.
        let subject = (record.stream_id != record.aggregate_type).then(|| record.aggregate_id.clone());
        Self {
            id: record.event_id,
            name: record.event_type.clone(),
            version: record.event_version,
            source: record.aggregate_type.clone(),
            subject,
            time: record.occurred_at,
            correlation_id: record.correlation_id.clone(),
            causation_id: record.causation_id.clone(),
            metadata: record.metadata.clone(),
            data: record.payload.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloudevents::from_json_unless_kind;
    use crate::integration::{MessageMeta, EVENT_KIND};

    #[derive(serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
    struct Joined {
        customer: String,
    }

    impl crate::integration::IntegrationEvent for Joined {
        const NAME: &'static str = "test.joined";
        const VERSION: u32 = 1;
    }

    #[test]
    fn a_record_reads_back_as_the_same_message() {
        let event = Joined {
            customer: "ada".into(),
        };
        for meta in [
            MessageMeta::new(),
            MessageMeta::new()
                .source("svc")
                .subject("c-1")
                .correlation_id("c")
                .causation_id("k")
                .metadata("a", "b"),
        ] {
            let message = IntegrationMessage::new(&event, &meta).unwrap();
            assert_eq!(IntegrationMessage::from_record(&message.to_record()), message);
            let json = message.to_cloudevent().unwrap();
            assert!(from_json_unless_kind(&json, EVENT_KIND).is_none());
        }
        assert!(from_json_unless_kind("{\"eventkind\":\"domain\"}", EVENT_KIND).is_some());
        assert!(from_json_unless_kind("not json", EVENT_KIND).is_some());
    }
}
