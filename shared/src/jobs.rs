//! The application's jobs on the jobs queue, for the worker (besides the S3
//! notifications of uploads): JSON objects tagged by `job`. Every job is safe
//! to run twice. Order events reach the queue through the transactional outbox
//! (`repo::outbox`), never directly.

use serde::{Deserialize, Serialize};

use crate::domain::{CheckoutId, OrderId, OrderLine, OrderStatus, UserId};
use crate::ports::{JobError, OutgoingMail};
use crate::AppState;

/// A job for the worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "job", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum Job {
    /// Send one rendered message.
    SendEmail { mail: OutgoingMail },
    /// Someone asked to reset the password of `email`: when an account has it,
    /// issue a reset token and enqueue its mail; otherwise send nothing. The
    /// request only enqueues this, so it does the same work whether or not the
    /// account exists.
    PasswordReset { email: String },
    /// Bring a farmer's products and page in line with the account (verified,
    /// disabled, role, erased). Reads the account when it runs, so duplicates
    /// and reorderings converge on the current state.
    SyncFarmer { farmer_id: UserId },
    /// An order was placed (from the transactional outbox).
    OrderPlaced(OrderEvent),
    /// An order's status changed (from the transactional outbox).
    OrderStatusChanged(OrderEvent),
}

/// What the worker needs to know about an order event. `event_id` is unique
/// per event and names its effects, so a duplicate delivery changes nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderEvent {
    pub event_id: String,
    pub order_id: OrderId,
    pub checkout_id: CheckoutId,
    pub customer_id: UserId,
    pub farmer_id: UserId,
    pub lines: Vec<OrderLine>,
    pub total: i64,
    /// When the order was placed (RFC 3339): the day its sales count on.
    pub placed_at: String,
    /// The status before (`None` for a new order) and after.
    pub from: Option<OrderStatus>,
    pub to: OrderStatus,
    pub reason: Option<String>,
    pub at: String,
    /// Who made the change (`None` for a new order; the marketplace's own id,
    /// `orders::MARKETPLACE`, for an expiry).
    #[serde(default)]
    pub by: Option<UserId>,
}

/// Puts `job` on the jobs queue.
pub async fn enqueue(state: &AppState, job: &Job) -> Result<(), JobError> {
    let queue = state.jobs.as_ref().ok_or_else(|| {
        JobError::backend("enqueue a job", "this function has no jobs queue configured (JOBS_QUEUE_URL)")
    })?;
    let body = serde_json::to_string(job).map_err(|e| JobError::backend("encode a job", e))?;
    queue.send(&body).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_are_tagged_objects() {
        let job = Job::PasswordReset { email: "a@example.com".into() };
        let body = serde_json::to_value(&job).unwrap();
        assert_eq!(body, serde_json::json!({"job": "passwordReset", "email": "a@example.com"}));
        assert_eq!(serde_json::from_value::<Job>(body).unwrap(), job);
        let sync = serde_json::to_value(Job::SyncFarmer { farmer_id: UserId::new() }).unwrap();
        assert!(sync.get("farmerId").is_some());
        let event = OrderEvent {
            event_id: "E1".into(),
            order_id: OrderId::new(),
            checkout_id: CheckoutId::new(),
            customer_id: UserId::new(),
            farmer_id: UserId::new(),
            lines: Vec::new(),
            total: 0,
            placed_at: "2026-11-28T10:00:00Z".into(),
            from: None,
            to: OrderStatus::Pending,
            reason: None,
            at: "2026-11-28T10:00:00Z".into(),
            by: None,
        };
        let placed = serde_json::to_value(Job::OrderPlaced(event.clone())).unwrap();
        assert_eq!(placed["job"], "orderPlaced");
        assert_eq!(placed["eventId"], "E1");
        assert_eq!(serde_json::from_value::<Job>(placed).unwrap(), Job::OrderPlaced(event));
    }
}
