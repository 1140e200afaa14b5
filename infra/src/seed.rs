//! Demo data for a local marketplace: one admin, two farmers, two customers and a
//! handful of categories, written through `shared::repo`. Seeding is idempotent:
//! an email or slug that already exists is skipped, never changed.
//!
//! The demo passwords are public (printed at start-up, listed in [`DEMO_USERS`]):
//! use them only against local data.

use shared::domain::{
    Category, CategoryDescription, CategoryId, CategoryName, DisplayName, Email, Password, PasswordHash, Role, Slug,
    User,
};
use shared::ports::StoreError;
use shared::repo::categories::{self, CategoryWriteError};
use shared::repo::users::{self, CreateUserError};
use shared::AppState;

/// One demo account.
#[derive(Debug, Clone, Copy)]
pub struct DemoUser {
    pub email: &'static str,
    /// The documented demo password (at least 10 characters).
    pub password: &'static str,
    pub display_name: &'static str,
    pub role: Role,
}

/// The demo accounts.
pub const DEMO_USERS: &[DemoUser] = &[
    DemoUser {
        email: "admin@example.com",
        password: "admin-demo-password",
        display_name: "Ada Admin",
        role: Role::Admin,
    },
    DemoUser {
        email: "farmer.ana@example.com",
        password: "ana-demo-password",
        display_name: "Ana's Orchard",
        role: Role::Farmer,
    },
    DemoUser {
        email: "farmer.ben@example.com",
        password: "ben-demo-password",
        display_name: "Ben's Dairy",
        role: Role::Farmer,
    },
    DemoUser {
        email: "customer.cleo@example.com",
        password: "cleo-demo-password",
        display_name: "Cleo",
        role: Role::Customer,
    },
    DemoUser {
        email: "customer.dev@example.com",
        password: "dev-demo-password",
        display_name: "Dev",
        role: Role::Customer,
    },
];

/// One demo category: name, slug, description.
#[derive(Debug, Clone, Copy)]
pub struct DemoCategory {
    pub name: &'static str,
    pub slug: &'static str,
    pub description: &'static str,
}

/// The demo categories.
pub const DEMO_CATEGORIES: &[DemoCategory] = &[
    DemoCategory { name: "Vegetables", slug: "vegetables", description: "Seasonal vegetables, picked this week." },
    DemoCategory { name: "Fruit", slug: "fruit", description: "Orchard and berry fruit." },
    DemoCategory { name: "Dairy", slug: "dairy", description: "Milk, butter, yoghurt and cheese." },
    DemoCategory { name: "Eggs", slug: "eggs", description: "Free-range hen and duck eggs." },
    DemoCategory { name: "Herbs", slug: "herbs", description: "Fresh and dried culinary herbs." },
];

/// Why seeding stopped.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("demo data {what} is invalid: {reason}")]
    Invalid { what: &'static str, reason: String },
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("password hashing task failed: {0}")]
    Hashing(#[from] tokio::task::JoinError),
}

/// What seeding did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeedReport {
    pub users_created: usize,
    pub users_skipped: usize,
    pub categories_created: usize,
    pub categories_skipped: usize,
}

fn invalid(what: &'static str) -> impl FnOnce(String) -> SeedError {
    move |reason| SeedError::Invalid { what, reason }
}

/// Writes the demo users and categories that do not exist yet.
pub async fn seed(state: &AppState) -> Result<SeedReport, SeedError> {
    let store = state.store.as_ref();
    let mut report = SeedReport::default();
    for demo in DEMO_USERS {
        let email = Email::parse(demo.email).map_err(invalid("email"))?;
        if users::find_by_email(store, &email).await?.is_some() {
            report.users_skipped += 1;
            continue;
        }
        let password = Password::parse(demo.password.to_owned()).map_err(invalid("password"))?;
        let password_hash = tokio::task::spawn_blocking(move || PasswordHash::create(&password)).await?;
        let display_name = DisplayName::parse(demo.display_name).map_err(invalid("display name"))?;
        // Demo accounts count as verified, so demo farmers' products show at once.
        let user = User {
            email_verified: true,
            ..User::new(email, display_name, demo.role, password_hash, state.clock.now())
        };
        match users::create(store, &user).await {
            Ok(()) => report.users_created += 1,
            Err(CreateUserError::DuplicateEmail) => report.users_skipped += 1,
            Err(CreateUserError::Store(e)) => return Err(e.into()),
        }
    }
    for demo in DEMO_CATEGORIES {
        let now = state.clock.now();
        let category = Category {
            id: CategoryId::new(),
            name: CategoryName::parse(demo.name).map_err(invalid("category name"))?,
            slug: Slug::parse(demo.slug).map_err(invalid("category slug"))?,
            description: Some(CategoryDescription::parse(demo.description).map_err(invalid("category description"))?),
            created_at: now,
            updated_at: now,
            version: 1,
            product_count: 0,
        };
        match categories::create(store, &category).await {
            Ok(()) => report.categories_created += 1,
            Err(CategoryWriteError::DuplicateSlug) => report.categories_skipped += 1,
            Err(CategoryWriteError::Store(e)) => return Err(e.into()),
            Err(other) => return Err(SeedError::Invalid { what: "category", reason: other.to_string() }),
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_data_is_valid_domain_data() {
        for demo in DEMO_USERS {
            assert!(Email::parse(demo.email).is_ok(), "{}", demo.email);
            assert!(Password::parse(demo.password.to_owned()).is_ok(), "{}", demo.email);
            assert!(DisplayName::parse(demo.display_name).is_ok());
        }
        assert_eq!(DEMO_USERS.iter().filter(|u| u.role == Role::Admin).count(), 1);
        for demo in DEMO_CATEGORIES {
            assert!(Slug::parse(demo.slug).is_ok());
            assert!(CategoryName::parse(demo.name).is_ok());
        }
    }

    #[tokio::test]
    async fn seeding_twice_creates_once() {
        let dir = tempfile::tempdir().expect("temp dir");
        let state = AppState::embedded(dir.path()).await.expect("embedded state");
        let first = seed(&state).await.expect("first seed");
        assert_eq!(first.users_created, DEMO_USERS.len());
        assert_eq!(first.categories_created, DEMO_CATEGORIES.len());
        let second = seed(&state).await.expect("second seed");
        assert_eq!(
            second,
            SeedReport {
                users_skipped: DEMO_USERS.len(),
                categories_skipped: DEMO_CATEGORIES.len(),
                ..SeedReport::default()
            }
        );
    }
}
