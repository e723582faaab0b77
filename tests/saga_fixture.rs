//! The DESIGN "Testing" block of `SagaFixture`, verbatim, and the rest of the fixture: the
//! clock, scheduled deadlines, state, and readable failures.

#![allow(missing_docs)] // test types, not API

mod design_sagas;

use std::time::Duration;

use design_sagas::*;
use eventcore::chrono;
use eventcore_testing::SagaFixture;

#[test]
fn design_testing_block() {
    SagaFixture::<Checkout>::new()
        .given(OrderPlaced {
            order_id: "o-1".into(),
            amount: 30,
        })
        .when(PaymentCharged {
            order_id: "o-1".into(),
        })
        .then_commands(vec![ShopCommand::Ship {
            order_id: "o-1".into(),
        }])
        .then_active();

    SagaFixture::<Checkout>::new()
        .given(OrderPlaced {
            order_id: "o-1".into(),
            amount: 30,
        })
        .when_time_elapses(Duration::from_secs(601))
        .then_commands(vec![ShopCommand::Cancel {
            order_id: "o-1".into(),
            reason: "payment timed out".into(),
        }])
        .then_ended();
}

#[test]
fn a_start_sends_the_charge_and_schedules_the_timeout() {
    SagaFixture::<Checkout>::new()
        .when(OrderPlaced {
            order_id: "o-1".into(),
            amount: 30,
        })
        .then_commands(vec![ShopCommand::Charge {
            order_id: "o-1".into(),
            amount: 30,
        }])
        .then_scheduled(Duration::from_secs(600), PaymentTimedOut)
        .then_state(|s| s.amount == 30 && !s.paid)
        .then_active();
}

#[test]
fn the_deadline_is_not_due_a_second_early_and_is_cancelled_by_the_payment() {
    SagaFixture::<Checkout>::new()
        .given(OrderPlaced {
            order_id: "o-1".into(),
            amount: 30,
        })
        .when_time_elapses(Duration::from_secs(599))
        .then_no_commands()
        .then_active();

    SagaFixture::<Checkout>::new()
        .given(OrderPlaced {
            order_id: "o-1".into(),
            amount: 30,
        })
        .given(PaymentCharged {
            order_id: "o-1".into(),
        })
        .when_time_elapses(Duration::from_secs(3600))
        .then_no_commands()
        .then_no_scheduled()
        .then_state(|s| assert!(s.paid))
        .then_active();
}

#[test]
fn given_time_and_advancing_to_a_time() {
    let start = chrono::DateTime::parse_from_rfc3339("2030-05-01T12:00:00Z")
        .unwrap()
        .to_utc();
    SagaFixture::<Checkout>::new()
        .given_time(start)
        .given(OrderPlaced {
            order_id: "o-9".into(),
            amount: 5,
        })
        .when_time_advances_to(start + chrono::Duration::seconds(600))
        .then_commands(vec![ShopCommand::Cancel {
            order_id: "o-9".into(),
            reason: "payment timed out".into(),
        }])
        .then_ended();
}

#[test]
fn only_the_when_step_is_checked_and_an_ended_instance_starts_nothing() {
    SagaFixture::<Checkout>::new()
        .given(OrderPlaced {
            order_id: "o-1".into(),
            amount: 300,
        })
        .given(PaymentFailed {
            order_id: "o-1".into(),
        })
        .when(OrderPlaced {
            order_id: "o-1".into(),
            amount: 300,
        })
        .then_no_commands()
        .then_no_scheduled()
        .then_ended();
}

#[test]
fn a_failure_names_the_commands_that_differ_and_the_history() {
    let panic = std::panic::catch_unwind(|| {
        SagaFixture::<Checkout>::new()
            .given(OrderPlaced {
                order_id: "o-1".into(),
                amount: 30,
            })
            .when(PaymentCharged {
                order_id: "o-1".into(),
            })
            .then_commands(vec![ShopCommand::Ship {
                order_id: "o-2".into(),
            }]);
    })
    .unwrap_err();
    let message = panic.downcast_ref::<String>().unwrap();
    assert!(message.contains("then_commands"), "{message}");
    assert!(
        message.contains(r#"! #0 expected: Ship { order_id: "o-2" }"#),
        "{message}"
    );
    assert!(
        message.contains(r#"! #0 actual:   Ship { order_id: "o-1" }"#),
        "{message}"
    );
    assert!(message.contains("payment.charged"), "{message}");
    assert!(message.contains("order.placed"), "{message}");
}

#[test]
fn a_missing_deadline_is_reported_with_what_was_scheduled() {
    let panic = std::panic::catch_unwind(|| {
        SagaFixture::<Checkout>::new()
            .when(OrderPlaced {
                order_id: "o-1".into(),
                amount: 30,
            })
            .then_scheduled(Duration::from_secs(60), PaymentTimedOut);
    })
    .unwrap_err();
    let message = panic.downcast_ref::<String>().unwrap();
    assert!(
        message.contains("then_scheduled: expected `PaymentTimedOut`"),
        "{message}"
    );
    assert!(message.contains("(600s after the step)"), "{message}");
}

#[test]
#[should_panic(expected = "then_ended: instance `o-1` is still active")]
fn then_ended_fails_on_an_active_instance() {
    SagaFixture::<Checkout>::new()
        .given(OrderPlaced {
            order_id: "o-1".into(),
            amount: 30,
        })
        .when(PaymentCharged {
            order_id: "o-1".into(),
        })
        .then_ended();
}

#[test]
#[should_panic(expected = "dropped without any `then_*` check")]
fn an_unchecked_outcome_panics() {
    let _ = SagaFixture::<Checkout>::new().when(OrderPlaced {
        order_id: "o-1".into(),
        amount: 30,
    });
}
