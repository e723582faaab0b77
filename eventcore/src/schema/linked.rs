//! The event sets a registry check names, so their crates are linked into the checking binary.

use crate::event::{DecodeError, DomainEvent, EventDescriptor};

/// Event sets a registry check names: an event enum or struct, a tuple of up to twelve, or `()`.
///
/// Naming the sets does two things. It links their crates into the test binary (registration is
/// link-time, and the linker drops a crate nothing refers to, with every event it registers), and
/// it tells the check which event types must be registered: one that is not fails the check
/// with a message about linking instead of reading as a removal.
///
/// ```
/// use eventcore::schema::EventSets;
/// # use eventcore::prelude::*;
/// # use serde::{Deserialize, Serialize};
/// # #[derive(DomainEvent, Serialize, Deserialize, schemars::JsonSchema)]
/// # #[event(aggregate = "book")]
/// # struct BookLent { member: String }
/// # #[derive(DomainEvent, Serialize, Deserialize, schemars::JsonSchema)]
/// # #[event(aggregate = "member")]
/// # struct MemberSuspended { reason: String }
/// let types = <(BookLent, MemberSuspended)>::descriptors();
/// assert_eq!(types[0].event_type, "book.lent");
/// assert_eq!(types[1].event_type, "member.suspended");
/// ```
pub trait EventSets {
    /// Every event type of the sets, at its current version, in the order named.
    fn descriptors() -> Vec<EventDescriptor>;

    /// The Rust names of the sets, for messages.
    fn names() -> Vec<&'static str>;
}

/// A decoder of `E`: referring to it keeps the object code defining `E` in the binary.
type Decoder<E> = fn(&str, u32, &[u8]) -> Result<E, DecodeError>;

impl<E: DomainEvent> EventSets for E {
    fn descriptors() -> Vec<EventDescriptor> {
        // A function of the defining crate, not only its constants (which are copied into the
        // caller): the linker then keeps that crate's code, and its registrations with it.
        std::hint::black_box(E::decode_payload as Decoder<E>);
        E::EVENT_TYPES.to_vec()
    }

    fn names() -> Vec<&'static str> {
        vec![std::any::type_name::<E>()]
    }
}

impl EventSets for () {
    fn descriptors() -> Vec<EventDescriptor> {
        Vec::new()
    }

    fn names() -> Vec<&'static str> {
        Vec::new()
    }
}

macro_rules! tuple_sets {
    ($($name:ident)+) => {
        impl<$($name: DomainEvent),+> EventSets for ($($name,)+) {
            fn descriptors() -> Vec<EventDescriptor> {
                let mut all = Vec::new();
                $(all.extend(<$name as EventSets>::descriptors());)+
                all
            }

            fn names() -> Vec<&'static str> {
                vec![$(std::any::type_name::<$name>()),+]
            }
        }
    };
}

tuple_sets!(A);
tuple_sets!(A B);
tuple_sets!(A B C);
tuple_sets!(A B C D);
tuple_sets!(A B C D E);
tuple_sets!(A B C D E F);
tuple_sets!(A B C D E F G);
tuple_sets!(A B C D E F G H);
tuple_sets!(A B C D E F G H I);
tuple_sets!(A B C D E F G H I J);
tuple_sets!(A B C D E F G H I J K);
tuple_sets!(A B C D E F G H I J K L);
