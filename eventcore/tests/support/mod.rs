//! Hand-written event registrations, standing in for `#[derive(DomainEvent)]` in runtime tests.

/// Implements `DomainEvent` + `SingleEvent` for a struct and registers it, as the derive does.
#[macro_export]
macro_rules! hand_event {
    ($ty:ident, $name:literal, $version:literal, $aggregate:expr) => {
        impl ::eventcore::DomainEvent for $ty {
            const EVENT_TYPES: &'static [::eventcore::EventDescriptor] = &[::eventcore::EventDescriptor {
                event_type: $name,
                version: $version,
            }];
            fn event_type(&self) -> &'static str {
                $name
            }
            fn event_version(&self) -> u32 {
                $version
            }
            fn encode_payload(&self) -> Result<Vec<u8>, ::eventcore::EncodeError> {
                ::eventcore::__private::encode_single(self)
            }
            fn decode_payload(t: &str, v: u32, p: &[u8]) -> Result<Self, ::eventcore::DecodeError> {
                ::eventcore::__private::decode_single(t, v, p)
            }
        }
        impl ::eventcore::SingleEvent for $ty {
            const EVENT_TYPE: &'static str = $name;
            const EVENT_VERSION: u32 = $version;
            const AGGREGATE: Option<&'static str> = $aggregate;
        }
        ::eventcore::__private::inventory::submit! {
            ::eventcore::__private::EventRegistration {
                event_type: $name,
                version: $version,
                aggregate: $aggregate,
                rust_type: concat!(module_path!(), "::", stringify!($ty)),
                schema: ::eventcore::__private::schema_of::<$ty>,
            }
        }
    };
}

/// Registers a raw upcaster step.
#[macro_export]
macro_rules! hand_upcaster {
    ($name:ident, $from_type:literal, $from:literal => [$(($to_type:literal, $to:literal)),*]) => {
        ::eventcore::__private::inventory::submit! {
            ::eventcore::__private::UpcasterRegistration {
                event_type: $from_type,
                from_version: $from,
                produces: &[$(::eventcore::EventDescriptor { event_type: $to_type, version: $to }),*],
                kind: ::eventcore::__private::UpcasterKind::Raw,
                name: stringify!($name),
                upcast: $name,
            }
        }
    };
}

/// Registers a typed upcaster step `Old -> New`.
#[macro_export]
macro_rules! hand_typed_upcaster {
    ($old:ty => $new:ty) => {
        ::eventcore::__private::inventory::submit! {
            ::eventcore::__private::UpcasterRegistration {
                event_type: <$old as ::eventcore::SingleEvent>::EVENT_TYPE,
                from_version: <$old as ::eventcore::SingleEvent>::EVENT_VERSION,
                produces: &[<$new as ::eventcore::SingleEvent>::DESCRIPTOR],
                kind: ::eventcore::__private::UpcasterKind::Typed,
                name: concat!("From<", stringify!($old), "> for ", stringify!($new)),
                upcast: ::eventcore::__private::typed_upcast::<$old, $new>,
            }
        }
    };
}
