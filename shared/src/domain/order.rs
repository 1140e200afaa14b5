//! Orders: ids, quantities, the status lifecycle and who may move it, fulfilment
//! (pickup or delivery), lines snapshotted at checkout, and payment.
//!
//! Lifecycle: `pending → confirmed → ready | shipped → delivered`, and
//! `cancelled` from `pending` (customer or farmer) or `confirmed` (farmer, with
//! a reason). Admins may do what the farmer may.
//!
//! Payment is `{method, status}`: today only `payOnFulfilment` (the farmer marks
//! it `paid`). An online provider adds a method and statuses (and a provider
//! reference) to the same object, so no stored order needs migrating.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::{ProductId, Unit, UserId};

ulid_id! {
    /// An order's id (a ULID: ordering by id is ordering by time).
    OrderId
}

ulid_id! {
    /// A checkout's id: the orders one `POST /orders` made, one per farmer.
    CheckoutId
}

/// How many units of a product a line buys: 1 to `MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "i64")]
pub struct Quantity(i64);

domain_value!(
    Quantity,
    i64,
    Quantity::parse,
    super::integer_schema("Units of the product's `unit`.", 1, Quantity::MAX)
);

impl Quantity {
    pub const MAX: i64 = 1000;

    pub fn parse(raw: i64) -> Result<Self, String> {
        if (1..=Self::MAX).contains(&raw) {
            Ok(Self(raw))
        } else {
            Err(format!("must be an integer from 1 to {}", Self::MAX))
        }
    }

    pub fn count(self) -> i64 {
        self.0
    }
}

/// Where an order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OrderStatus {
    Pending,
    Confirmed,
    /// Ready for pickup.
    Ready,
    Shipped,
    Delivered,
    Cancelled,
}

/// Who asks for a status change, as far as the lifecycle cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Party {
    Customer,
    /// The order's farmer, or an admin.
    Farmer,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 6] = [
        OrderStatus::Pending,
        OrderStatus::Confirmed,
        OrderStatus::Ready,
        OrderStatus::Shipped,
        OrderStatus::Delivered,
        OrderStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "pending",
            OrderStatus::Confirmed => "confirmed",
            OrderStatus::Ready => "ready",
            OrderStatus::Shipped => "shipped",
            OrderStatus::Delivered => "delivered",
            OrderStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    /// Whether `party` may move an order from `self` to `to` (a cancellation of
    /// a confirmed order also needs a reason; see `needs_reason`).
    pub fn may_become(self, to: OrderStatus, party: Party, fulfilment: FulfilmentMethod) -> bool {
        use OrderStatus::*;
        match (self, to, party) {
            (Pending, Cancelled, _) => true,
            (Pending, Confirmed, Party::Farmer) => true,
            (Confirmed, Cancelled, Party::Farmer) => true,
            (Confirmed, Ready, Party::Farmer) => fulfilment == FulfilmentMethod::Pickup,
            (Confirmed, Shipped, Party::Farmer) => fulfilment == FulfilmentMethod::Delivery,
            (Ready | Shipped, Delivered, Party::Farmer) => true,
            _ => false,
        }
    }

    /// Pending and confirmed orders are open: they hold the customer's claim on
    /// stock and count against the customer's open-order limits.
    pub fn is_open(self) -> bool {
        matches!(self, OrderStatus::Pending | OrderStatus::Confirmed)
    }

    /// A confirmed order is cancelled only with a reason.
    pub fn needs_reason(self, to: OrderStatus) -> bool {
        self == OrderStatus::Confirmed && to == OrderStatus::Cancelled
    }
}

/// Pickup at the farm or delivery to an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FulfilmentMethod {
    Pickup,
    Delivery,
}

/// A delivery address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Address {
    #[schema(min_length = 1, max_length = 200)]
    pub line1: String,
    #[serde(default)]
    #[schema(max_length = 200)]
    pub line2: Option<String>,
    #[schema(min_length = 1, max_length = 20)]
    pub postal_code: String,
    #[schema(min_length = 1, max_length = 100)]
    pub town: String,
}

impl Address {
    /// Trimmed fields within their limits, without control characters.
    pub fn check(&self) -> Result<Address, String> {
        let field = |name: &str, raw: &str, min: usize, max: usize| -> Result<String, String> {
            if raw.chars().count() > max {
                return Err(format!("{name} must be at most {max} characters"));
            }
            let value = raw.trim();
            if value.chars().count() < min {
                return Err(format!("{name} must not be empty"));
            }
            if value.chars().any(char::is_control) {
                return Err(format!("{name} must not contain control characters"));
            }
            Ok(value.to_owned())
        };
        Ok(Address {
            line1: field("line1", &self.line1, 1, 200)?,
            line2: self.line2.as_deref().map(|l| field("line2", l, 0, 200)).transpose()?,
            postal_code: field("postalCode", &self.postal_code, 1, 20)?,
            town: field("town", &self.town, 1, 100)?,
        })
    }
}

/// How one order reaches its customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Fulfilment {
    pub method: FulfilmentMethod,
    /// Present for delivery.
    pub address: Option<Address>,
}

/// One product bought, as it was at checkout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderLine {
    pub product_id: ProductId,
    /// The product's name at checkout.
    pub name: String,
    pub unit: Unit,
    /// Price per unit at checkout, in minor units.
    #[schema(minimum = 1)]
    pub unit_price: i64,
    #[schema(minimum = 1, maximum = 1000)]
    pub quantity: i64,
    /// `unitPrice × quantity`, in minor units.
    #[schema(minimum = 1)]
    pub line_total: i64,
}

/// Payment state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PaymentStatus {
    Due,
    Paid,
}

/// How and whether an order is paid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Payment {
    /// `payOnFulfilment`: paid at pickup or delivery. Other methods may follow.
    #[schema(examples("payOnFulfilment"))]
    pub method: String,
    pub status: PaymentStatus,
}

/// One status change in an order's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatusChange {
    pub status: OrderStatus,
    #[schema(format = DateTime)]
    pub at: String,
    /// Who made the change: the customer, the farmer, an admin, or the
    /// all-zero id for the marketplace itself (an order left pending expires).
    pub by: UserId,
    pub reason: Option<String>,
}

/// A stored order: one farmer's part of a checkout.
#[derive(Debug, Clone, PartialEq)]
pub struct Order {
    pub id: OrderId,
    pub checkout_id: CheckoutId,
    pub customer_id: UserId,
    pub farmer_id: UserId,
    pub lines: Vec<OrderLine>,
    pub total: i64,
    pub fulfilment: Fulfilment,
    pub status: OrderStatus,
    pub history: Vec<StatusChange>,
    pub payment: Payment,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub version: i64,
    /// Read from the archive (`crate::archive`): finished and out of the table.
    pub archived: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lifecycle_allows_only_its_arrows() {
        use FulfilmentMethod::*;
        use OrderStatus::*;
        assert!(Pending.may_become(Cancelled, Party::Customer, Pickup));
        assert!(!Confirmed.may_become(Cancelled, Party::Customer, Pickup));
        assert!(Confirmed.may_become(Cancelled, Party::Farmer, Pickup) && Confirmed.needs_reason(Cancelled));
        assert!(!Pending.may_become(Confirmed, Party::Customer, Pickup));
        assert!(Confirmed.may_become(Ready, Party::Farmer, Pickup));
        assert!(!Confirmed.may_become(Ready, Party::Farmer, Delivery));
        assert!(Confirmed.may_become(Shipped, Party::Farmer, Delivery));
        assert!(Ready.may_become(Delivered, Party::Farmer, Pickup));
        for from in [Delivered, Cancelled] {
            for to in OrderStatus::ALL {
                assert!(!from.may_become(to, Party::Farmer, Pickup), "{from:?} → {to:?}");
            }
        }
    }

    #[test]
    fn quantities_are_bounded() {
        assert!(Quantity::parse(0).is_err() && Quantity::parse(-1).is_err() && Quantity::parse(1001).is_err());
        assert_eq!(Quantity::parse(3).unwrap().count(), 3);
    }
}
