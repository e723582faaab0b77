//! The payment aggregate (one per order): charges a card, and gives the money back on request.
//!
//! Like a card provider, it charges every charge request it gets: only the idempotency key of
//! the saga's command keeps a re-sent request from charging the customer twice.

use eventcore::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A card that the bank declines.
pub const DECLINED_CARD: &str = "4000 0000 0000 0002";
/// A card that needs the customer's 3-D Secure confirmation, which never comes in the demo.
pub const CONFIRMATION_CARD: &str = "4000 0027 6000 3184";
/// A card that is charged at once.
pub const GOOD_CARD: &str = "4242 4242 4242 4242";

/// The card was charged.
#[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[event(name = "payment.charged")]
pub struct PaymentCharged {
    /// The order paid for.
    pub order_id: String,
    /// Who paid.
    pub customer_id: String,
    /// Cents charged.
    pub amount: i64,
}

/// The bank declined the card.
#[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[event(name = "payment.declined")]
pub struct PaymentDeclined {
    /// The order.
    pub order_id: String,
    /// The bank's reason.
    pub reason: String,
}

/// The charge waits for the customer to confirm it (3-D Secure).
#[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[event(name = "payment.awaiting_confirmation")]
pub struct PaymentAwaitingConfirmation {
    /// The order.
    pub order_id: String,
}

/// A charged payment was given back.
#[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[event(name = "payment.refunded")]
pub struct PaymentRefunded {
    /// The order.
    pub order_id: String,
    /// Who gets the money back.
    pub customer_id: String,
    /// Cents refunded.
    pub amount: i64,
}

/// A charge still waiting for confirmation was called off: no money moved.
#[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[event(name = "payment.voided")]
pub struct PaymentVoided {
    /// The order.
    pub order_id: String,
}

/// Every event of a payment.
#[derive(DomainEvent, Debug, Clone, PartialEq)]
pub enum PaymentEvent {
    /// See [`PaymentCharged`].
    Charged(PaymentCharged),
    /// See [`PaymentDeclined`].
    Declined(PaymentDeclined),
    /// See [`PaymentAwaitingConfirmation`].
    AwaitingConfirmation(PaymentAwaitingConfirmation),
    /// See [`PaymentRefunded`].
    Refunded(PaymentRefunded),
    /// See [`PaymentVoided`].
    Voided(PaymentVoided),
}

/// Money held for an order.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Held {
    /// Nothing.
    #[default]
    Nothing,
    /// A charge waiting for confirmation.
    Pending,
    /// This many cents, charged.
    Charged(i64),
}

/// A payment's state.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Payment {
    /// Who pays.
    pub customer_id: String,
    /// What is held now.
    pub held: Held,
}

/// Charges a card for an order.
pub struct Charge {
    /// The order.
    pub order_id: String,
    /// Who pays.
    pub customer_id: String,
    /// Cents to charge.
    pub amount: i64,
    /// The card.
    pub card: String,
}

/// Gives back whatever is held for an order: refunds a charge, voids a pending one.
pub struct Refund {
    /// The order.
    pub order_id: String,
}

/// A payment refuses nothing: outcomes are events. (The aggregate needs an error type.)
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("payment refused")]
pub struct PaymentError;

#[aggregate(events = PaymentEvent, error = PaymentError)]
impl Payment {
    #[command]
    fn charge(&self, cmd: Charge) -> Result<Vec<PaymentEvent>, PaymentError> {
        let Charge {
            order_id,
            customer_id,
            amount,
            card,
        } = cmd;
        Ok(vec![match card.as_str() {
            DECLINED_CARD => PaymentDeclined {
                order_id,
                reason: "card declined".into(),
            }
            .into(),
            CONFIRMATION_CARD => PaymentAwaitingConfirmation { order_id }.into(),
            _ => PaymentCharged {
                order_id,
                customer_id,
                amount,
            }
            .into(),
        }])
    }

    #[command]
    fn refund(&self, cmd: Refund) -> Result<Vec<PaymentEvent>, PaymentError> {
        Ok(match self.held {
            Held::Nothing => Vec::new(),
            Held::Pending => vec![PaymentVoided {
                order_id: cmd.order_id,
            }
            .into()],
            Held::Charged(amount) => vec![PaymentRefunded {
                order_id: cmd.order_id,
                customer_id: self.customer_id.clone(),
                amount,
            }
            .into()],
        })
    }

    #[apply]
    fn charged(&mut self, e: &PaymentCharged) {
        self.customer_id = e.customer_id.clone();
        self.held = Held::Charged(e.amount);
    }

    #[apply]
    fn declined(&mut self, _: &PaymentDeclined) {
        self.held = Held::Nothing;
    }

    #[apply]
    fn awaiting_confirmation(&mut self, _: &PaymentAwaitingConfirmation) {
        self.held = Held::Pending;
    }

    #[apply]
    fn refunded(&mut self, _: &PaymentRefunded) {
        self.held = Held::Nothing;
    }

    #[apply]
    fn voided(&mut self, _: &PaymentVoided) {
        self.held = Held::Nothing;
    }
}
