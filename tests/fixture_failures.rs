//! The aggregate fixture fails loudly and readably on every kind of unmet expectation.

use eventcore_examples::bank::*;
use eventcore_testing::AggregateFixture;

fn opened() -> AccountEvent {
    AccountOpened { owner: "ada".into() }.into()
}

#[test]
#[should_panic(expected = "field `amount`: expected 20, actual 30")]
fn then_events_shows_the_differing_field() {
    AggregateFixture::<Account>::new()
        .given(vec![
            opened(),
            MoneyDeposited {
                amount: 100,
                currency: "EUR".into(),
            }
            .into(),
        ])
        .when(Withdraw { amount: 30 })
        .then_events(vec![MoneyWithdrawn { amount: 20 }.into()]);
}

#[test]
#[should_panic(
    expected = "#0 differs:\n    expected account.opened v1 {\"owner\":\"ada\"}\n    actual   account.money_deposited v2"
)]
fn then_events_shows_type_and_version() {
    AggregateFixture::<Account>::new()
        .given(vec![opened()])
        .when(Deposit { amount: 1 })
        .then_events(vec![opened()]);
}

#[test]
#[should_panic(expected = "#1 missing:  expected account.withdrawn v1 {\"amount\":1}")]
fn then_events_reports_a_missing_event() {
    AggregateFixture::<Account>::new()
        .given(vec![opened()])
        .when(Deposit { amount: 1 })
        .then_events(vec![
            MoneyDeposited {
                amount: 1,
                currency: "EUR".into(),
            }
            .into(),
            MoneyWithdrawn { amount: 1 }.into(),
        ]);
}

#[test]
#[should_panic(expected = "then_events: the command failed with insufficient funds")]
fn then_events_on_a_rejected_command() {
    AggregateFixture::<Account>::new()
        .given(vec![opened()])
        .when(Withdraw { amount: 1 })
        .then_events(vec![]);
}

#[test]
#[should_panic(
    expected = "then_error: expected InsufficientFunds, but the command succeeded with\n  #0 account.money_deposited v2"
)]
fn then_error_on_success_lists_the_events() {
    AggregateFixture::<Account>::new()
        .given(vec![opened()])
        .when(Deposit { amount: 1 })
        .then_error(AccountError::InsufficientFunds);
}

#[test]
#[should_panic(expected = "then_error: expected AlreadyOpen\n  actual error: InsufficientFunds")]
fn then_error_with_another_error() {
    AggregateFixture::<Account>::new()
        .given(vec![opened()])
        .when(Withdraw { amount: 1 })
        .then_error(AccountError::AlreadyOpen);
}

#[test]
#[should_panic(expected = "then_error: expected an error matching the predicate")]
fn then_error_matches_with_a_false_predicate() {
    AggregateFixture::<Account>::new()
        .given(vec![opened()])
        .when(Withdraw { amount: 1 })
        .then_error_matches(|e| *e == AccountError::AlreadyOpen);
}

#[test]
#[should_panic(expected = "then_state: the state check failed")]
fn then_state_with_a_false_check() {
    AggregateFixture::<Account>::new()
        .given(vec![opened()])
        .when(Deposit { amount: 1 })
        .then_state(|s| s.balance == 2);
}

#[test]
#[should_panic(expected = "expected 0 event(s), got 1")]
fn then_no_events_is_strict_the_other_way_round() {
    AggregateFixture::<Account>::new()
        .given(vec![opened()])
        .when(Deposit { amount: 1 })
        .then_no_events();
}

#[test]
#[should_panic(expected = "dropped without any `then_*` check")]
fn an_unchecked_outcome_fails() {
    let _ = AggregateFixture::<Account>::new()
        .given_nothing()
        .when(Deposit { amount: 1 });
}

#[test]
fn state_checks_see_the_produced_events() {
    AggregateFixture::<Account>::new()
        .given(vec![
            opened(),
            MoneyDeposited {
                amount: 10,
                currency: "EUR".into(),
            }
            .into(),
        ])
        .when(Withdraw { amount: 4 })
        .then_events(vec![MoneyWithdrawn { amount: 4 }.into()])
        .then_state(|s| assert_eq!(s.balance, 6));
}
