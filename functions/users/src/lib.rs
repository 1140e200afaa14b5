//! The `users` function: the signed-in user's profile (read, change, erase),
//! in-app notifications, a farmer's sales figures (JSON or CSV), the public
//! farmer pages (list by region, read), and user administration for admins
//! (list with filters, disable, enable, change role). The use cases live
//! in `shared::accounts`; this file parses, authorises and shapes the JSON.

use std::sync::Arc;

use axum::extract::State;
use http::HeaderMap;
use serde::{Deserialize, Serialize};
use shared::accounts::{self, FarmerPage, Profile, ProfileChanges, SelfServiceRole};
use shared::domain::{
    Coordinates, DisplayName, FarmDescription, FarmName, FarmNote, FarmProfile, OrderId, Place, ProductId, Role, User,
    UserId,
};
use shared::http::{
    non_null, paginate, Admins, ApiError, Authorized, Caller, Csv, Farmers, IfNoneMatch, JsonBody, JsonOrCsv, Listed,
    NoContent, Page, PageParams, PathParams, Query, Reply,
};
use shared::AppState;
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

// The function's routes, `routes()` and `router()` (the template's `Users`
// events name the same).
shared::function_routes! {
    [me, update_me, erase_me],
    [list_farmers],
    [read_farmer],
    [list_users],
    [change_user],
    [disable_user],
    [enable_user],
    [list_notifications],
    [read_notification],
    [sales],
}

/// A farm profile as shown.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = FarmProfile)]
struct FarmView {
    #[schema(examples("Green Acres"))]
    farm_name: String,
    description: String,
    #[schema(examples("Ghent"))]
    town: String,
    #[schema(examples("East Flanders"))]
    region: String,
    coordinates: Option<Coordinates>,
    pickup_notes: String,
    /// Whether the farm delivers; checkout offers delivery only then.
    offers_delivery: bool,
    delivery_notes: String,
}

impl From<&FarmProfile> for FarmView {
    fn from(p: &FarmProfile) -> Self {
        Self {
            farm_name: p.farm_name.as_str().to_owned(),
            description: p.description.as_str().to_owned(),
            town: p.town.as_str().to_owned(),
            region: p.region.as_str().to_owned(),
            coordinates: p.coordinates,
            pickup_notes: p.pickup_notes.as_str().to_owned(),
            offers_delivery: p.offers_delivery,
            delivery_notes: p.delivery_notes.as_str().to_owned(),
        }
    }
}

/// A farm profile to store; it replaces the whole profile.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = FarmProfileInput)]
struct FarmInput {
    farm_name: FarmName,
    #[serde(default, deserialize_with = "non_null")]
    #[schema(nullable = false)]
    description: Option<FarmDescription>,
    town: Place,
    /// The `region` filter of `GET /farmers` matches it ignoring case.
    region: Place,
    #[serde(default)]
    coordinates: Option<Coordinates>,
    #[serde(default, deserialize_with = "non_null")]
    #[schema(nullable = false)]
    pickup_notes: Option<FarmNote>,
    /// Default `false`.
    #[serde(default, deserialize_with = "non_null")]
    #[schema(nullable = false)]
    offers_delivery: Option<bool>,
    #[serde(default, deserialize_with = "non_null")]
    #[schema(nullable = false)]
    delivery_notes: Option<FarmNote>,
}

impl From<FarmInput> for FarmProfile {
    fn from(input: FarmInput) -> Self {
        let note = |n: Option<FarmNote>| n.unwrap_or_else(|| FarmNote::parse("").expect("empty note is valid"));
        FarmProfile {
            farm_name: input.farm_name,
            description: input.description.unwrap_or_else(|| FarmDescription::parse("").expect("empty is valid")),
            town: input.town,
            region: input.region,
            coordinates: input.coordinates,
            pickup_notes: note(input.pickup_notes),
            offers_delivery: input.offers_delivery.unwrap_or(false),
            delivery_notes: note(input.delivery_notes),
        }
    }
}

/// An account as its owner and admins see it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = UserAccount)]
struct AccountView {
    id: UserId,
    #[schema(examples("kim@example.com"))]
    email: String,
    display_name: String,
    role: Role,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    created_at: OffsetDateTime,
    email_verified: bool,
    /// A disabled account cannot sign in and its products are hidden.
    disabled: bool,
    /// A farmer's farm profile; `null` for others and until a farmer sets it.
    farm: Option<FarmView>,
}

fn account_view(user: &User, page: Option<&FarmerPage>) -> AccountView {
    AccountView {
        id: user.id,
        email: user.email.to_string(),
        display_name: user.display_name.as_str().to_owned(),
        role: user.role,
        created_at: user.created_at,
        email_verified: user.email_verified,
        disabled: user.disabled,
        farm: page.and_then(|p| p.profile.as_ref()).map(FarmView::from),
    }
}

fn profile_reply(profile: &Profile) -> Reply<AccountView> {
    Reply::ok(account_view(&profile.user, profile.page.as_ref()))
}

/// The signed-in user's account and farm profile.
#[utoipa::path(get, path = "/users/me", tag = "users", operation_id = "getMyProfile",
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The signed-in user.", body = AccountView),
        (status = 401, description = "No valid access token, or its account no longer exists or is disabled."),
    ))]
async fn me(State(state): State<Arc<AppState>>, caller: Caller) -> Result<Reply<AccountView>, ApiError> {
    Ok(profile_reply(&accounts::profile(&state, &caller.0).await?))
}

/// Changes to the signed-in user's profile: absent fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = UpdateMyProfile)]
struct ProfileBody {
    #[serde(default, deserialize_with = "non_null")]
    #[schema(nullable = false)]
    display_name: Option<DisplayName>,
    /// Farmers only: replaces the whole farm profile.
    #[serde(default, deserialize_with = "non_null")]
    #[schema(nullable = false)]
    farm: Option<FarmInput>,
}

/// Change the signed-in user's display name and, for a farmer, farm profile.
#[utoipa::path(patch, path = "/users/me", tag = "users", operation_id = "updateMyProfile",
    security(("bearerAuth" = [])),
    request_body = ProfileBody,
    responses(
        (status = 200, description = "The profile as it is now.", body = AccountView),
        (status = 401, description = "No valid access token, or its account no longer exists or is disabled."),
        (status = 409, description = "The account kept changing under this request; try again."),
        (status = 422, description = "A field is invalid, or `farm` was sent by someone who is not a farmer."),
    ))]
async fn update_me(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    JsonBody { value: body, .. }: JsonBody<ProfileBody>,
) -> Result<Reply<AccountView>, ApiError> {
    let changes = ProfileChanges { display_name: body.display_name, farm: body.farm.map(FarmProfile::from) };
    Ok(profile_reply(&accounts::update_profile(&state, &caller.0, changes).await?))
}

/// The password that confirms erasing the account.
#[derive(Deserialize, ToSchema)]
#[schema(as = EraseAccountRequest)]
struct EraseBody {
    #[schema(max_length = 128, write_only)]
    password: String,
}

/// Erase the signed-in user's account (right to erasure): the email, name,
/// farm profile and sessions go, the email can register again, a farmer's
/// products are unlisted; what others need (their orders) stays under the
/// anonymous account id.
#[utoipa::path(delete, path = "/users/me", tag = "users", operation_id = "eraseMyAccount",
    security(("bearerAuth" = [])),
    request_body = EraseBody,
    responses(
        (status = 204, description = "Erased; every token of the account stops working."),
        (status = 401, description = "No valid access token, or its account no longer exists or is disabled."),
        (status = 403, description = "The account is an admin's: another admin demotes it first."),
        (status = 422, description = "`password` is not the account's password."),
        (status = 429, description = "Five password checks per 15 minutes; retry after `Retry-After` seconds."),
    ))]
async fn erase_me(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    JsonBody { value: body, .. }: JsonBody<EraseBody>,
) -> Result<NoContent, ApiError> {
    accounts::erase(&state, &caller.0, body.password).await?;
    Ok(NoContent)
}

/// A farmer as the public sees them.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Farmer)]
struct FarmerView {
    id: UserId,
    /// `null` until the farmer fills in their farm profile.
    farm: Option<FarmView>,
    /// How many of their products are listed in public.
    #[schema(minimum = 0)]
    listed_products: i64,
}

impl From<&FarmerPage> for FarmerView {
    fn from(page: &FarmerPage) -> Self {
        Self {
            id: page.farmer_id,
            farm: page.profile.as_ref().map(FarmView::from),
            listed_products: page.listed_products,
        }
    }
}

impl Listed for FarmerView {
    const PAGE_NAME: &'static str = "FarmerList";
    const PAGE_DESCRIPTION: &'static str = "A page of farmers.";
}

/// A page of farmers.
type FarmerList = Page<FarmerView>;

/// The farmer list filter.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct FarmerFilter {
    /// Only farmers of this region (as in their profile, ignoring case).
    #[param(inline, nullable = false)]
    region: Option<Place>,
}

/// Browse verified farmers with at least one product on sale, by region.
#[utoipa::path(get, path = "/farmers", tag = "users", operation_id = "listFarmers",
    params(FarmerFilter, PageParams, IfNoneMatch),
    responses(
        (status = 200, description = "A page of farmers, ordered by region.", body = FarmerList),
        (status = 400, description = "The cursor is invalid or belongs to another query."),
    ))]
async fn list_farmers(
    State(state): State<Arc<AppState>>,
    Query(filter): Query<FarmerFilter>,
    Query(page): Query<PageParams>,
    headers: HeaderMap,
) -> Result<Reply<FarmerList>, ApiError> {
    let query = accounts::farmers_query(filter.region.as_ref(), page.limit());
    let found = paginate(&state, "farmers", query, &page, |query| accounts::list_farmers(&state, query)).await?;
    Ok(Reply::public(found.map(|farmer| FarmerView::from(&farmer)), &headers))
}

/// The farmer id in the path.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct FarmerPath {
    /// The farmer's user id (a ULID); anything else answers 404.
    id: String,
}

/// A farmer's public page.
#[utoipa::path(get, path = "/farmers/{id}", tag = "users", operation_id = "getFarmer",
    params(FarmerPath, IfNoneMatch),
    responses(
        (status = 200, description = "The farmer's profile and listed product count.", body = FarmerView),
        (status = 404, description = "No such farmer, or one not (or no longer) selling in public."),
    ))]
async fn read_farmer(
    State(state): State<Arc<AppState>>,
    PathParams(path): PathParams<FarmerPath>,
    headers: HeaderMap,
) -> Result<Reply<FarmerView>, ApiError> {
    let page = accounts::public_farmer(&state, &path.id).await?;
    Ok(Reply::public(FarmerView::from(&page), &headers))
}

impl Listed for AccountView {
    const PAGE_NAME: &'static str = "UserList";
    const PAGE_DESCRIPTION: &'static str = "A page of accounts.";
    const SHORT_PAGES: bool = true;
}

/// A page of accounts.
type UserList = Page<AccountView>;

/// The admin list filters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
struct UserFilter {
    /// Only accounts with this role.
    #[param(inline, nullable = false)]
    role: Option<Role>,
    /// Only accounts whose email starts with this (ignoring case).
    #[param(nullable = false, min_length = 1, max_length = 254)]
    email_prefix: Option<String>,
    /// Only disabled (`true`) or enabled (`false`) accounts.
    #[param(nullable = false)]
    disabled: Option<bool>,
}

/// List accounts by email (admins).
#[utoipa::path(get, path = "/users", tag = "users", operation_id = "listUsers",
    security(("bearerAuth" = [])),
    params(UserFilter, PageParams),
    responses(
        (status = 200, description = "A page of accounts, ordered by email.", body = UserList),
        (status = 400, description = "The cursor is invalid or belongs to another query."),
        (status = 403, description = "Admins only."),
    ))]
async fn list_users(
    State(state): State<Arc<AppState>>,
    _admin: Authorized<Admins>,
    Query(filter): Query<UserFilter>,
    Query(page): Query<PageParams>,
) -> Result<Reply<UserList>, ApiError> {
    if filter.email_prefix.as_deref().is_some_and(|p| p.is_empty() || p.chars().count() > 254) {
        return Err(ApiError::field("emailPrefix", "must be 1 to 254 characters"));
    }
    let filter =
        accounts::UserFilter { role: filter.role, email_prefix: filter.email_prefix, disabled: filter.disabled };
    let found = paginate(&state, &filter.scope(), filter.query(), &page, |query| {
        accounts::list_users(&state, &filter, query, page.limit())
    })
    .await?;
    Ok(Reply::ok(found.map(|profile| account_view(&profile.user, profile.page.as_ref()))))
}

/// The user id in the path.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct UserPath {
    /// The user's id (a ULID); anything else answers 404.
    id: String,
}

/// A role change.
#[derive(Deserialize, ToSchema)]
#[schema(as = ChangeUserRequest)]
struct RoleBody {
    /// `customer` or `farmer` (admin rights are given with the command-line tool only).
    role: SelfServiceRole,
}

/// Make a customer a farmer, or a farmer a customer, or demote an admin (admins).
#[utoipa::path(patch, path = "/users/{id}", tag = "users", operation_id = "changeUser",
    security(("bearerAuth" = [])),
    params(UserPath),
    request_body = RoleBody,
    responses(
        (status = 200, description = "The account as it is now. The user's tokens carry the new role from their next refresh (at most 15 minutes); product writes and image upload tickets follow the stored role at once; a former farmer's products leave public view.", body = AccountView),
        (status = 403, description = "Admins only."),
        (status = 404, description = "No such account."),
        (status = 409, description = "The account is the last enabled admin, which can be neither disabled nor demoted, or kept changing; try again."),
    ))]
async fn change_user(
    State(state): State<Arc<AppState>>,
    _admin: Authorized<Admins>,
    PathParams(path): PathParams<UserPath>,
    JsonBody { value: body, .. }: JsonBody<RoleBody>,
) -> Result<Reply<AccountView>, ApiError> {
    Ok(profile_reply(&accounts::set_role(&state, &path.id, body.role).await?))
}

/// Disable an account (admins): its sessions end at once, it cannot sign in,
/// and a farmer's products leave public view until enabled again.
#[utoipa::path(post, path = "/users/{id}/disable", tag = "users", operation_id = "disableUser",
    security(("bearerAuth" = [])),
    params(UserPath),
    responses(
        (status = 200, description = "Disabled (disabling a disabled account changes nothing). Refresh tokens fail at once; access tokens within their 15-minute life, and at once on routes that read the account.", body = AccountView),
        (status = 403, description = "Admins only."),
        (status = 404, description = "No such account."),
        (status = 409, description = "The account is the last enabled admin, which can be neither disabled nor demoted, or kept changing; try again."),
    ))]
async fn disable_user(
    State(state): State<Arc<AppState>>,
    _admin: Authorized<Admins>,
    PathParams(path): PathParams<UserPath>,
) -> Result<Reply<AccountView>, ApiError> {
    Ok(profile_reply(&accounts::set_disabled(&state, &path.id, true).await?))
}

/// Enable a disabled account again (admins).
#[utoipa::path(post, path = "/users/{id}/enable", tag = "users", operation_id = "enableUser",
    security(("bearerAuth" = [])),
    params(UserPath),
    responses(
        (status = 200, description = "Enabled; the user signs in again, and a verified farmer's products return to public view.", body = AccountView),
        (status = 403, description = "Admins only."),
        (status = 404, description = "No such account."),
        (status = 409, description = "The account kept changing; try again."),
    ))]
async fn enable_user(
    State(state): State<Arc<AppState>>,
    _admin: Authorized<Admins>,
    PathParams(path): PathParams<UserPath>,
) -> Result<Reply<AccountView>, ApiError> {
    Ok(profile_reply(&accounts::set_disabled(&state, &path.id, false).await?))
}

/// A notification.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Notification)]
struct NotificationView {
    id: String,
    title: String,
    body: String,
    /// The order it is about.
    order_id: Option<OrderId>,
    read: bool,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    created_at: OffsetDateTime,
}

impl Listed for NotificationView {
    const PAGE_NAME: &'static str = "NotificationList";
    const PAGE_DESCRIPTION: &'static str = "A page of notifications, newest first.";
}

/// What a page of notifications carries besides its items and cursor.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct Unread {
    /// Unread notifications in all.
    #[schema(minimum = 0)]
    unread_count: i64,
}

/// A page of notifications, newest first, with the unread count.
type NotificationList = Page<NotificationView, Unread>;

/// The signed-in user's notifications (new orders for farmers, status changes
/// for customers), newest first, with the unread count.
#[utoipa::path(get, path = "/users/me/notifications", tag = "users", operation_id = "listMyNotifications",
    security(("bearerAuth" = [])),
    params(PageParams),
    responses(
        (status = 200, description = "A page of notifications and the unread count.", body = NotificationList),
        (status = 400, description = "The cursor is invalid or belongs to another query."),
    ))]
async fn list_notifications(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Query(page): Query<PageParams>,
) -> Result<Reply<NotificationList>, ApiError> {
    let user = caller.user_id()?;
    let query = accounts::notifications_query(user, page.limit());
    let found =
        paginate(&state, "notifications", query, &page, |query| accounts::list_notifications(&state, query)).await?;
    let unread = Unread { unread_count: accounts::unread_notifications(&state, user).await? };
    let body = found
        .map(|n| NotificationView {
            id: n.id,
            title: n.title,
            body: n.body,
            order_id: n.order_id,
            read: n.read,
            created_at: n.created_at,
        })
        .with(unread);
    Ok(Reply::ok(body))
}

/// The notification id in the path.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct NotificationPath {
    /// The notification's id.
    #[param(max_length = 64)]
    id: String,
}

/// Mark one of the signed-in user's notifications read.
#[utoipa::path(post, path = "/users/me/notifications/{id}/read", tag = "users", operation_id = "readMyNotification",
    security(("bearerAuth" = [])),
    params(NotificationPath),
    responses(
        (status = 204, description = "Read (marking it again changes nothing)."),
        (status = 404, description = "No such notification of the caller's."),
    ))]
async fn read_notification(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathParams(path): PathParams<NotificationPath>,
) -> Result<NoContent, ApiError> {
    let user = caller.user_id()?;
    let not_found = || ApiError::NotFound(format!("no notification with id {:?}", path.id));
    if path.id.is_empty() || path.id.len() > 64 {
        return Err(not_found());
    }
    if !accounts::read_notification(&state, user, &path.id).await? {
        return Err(not_found());
    }
    Ok(NoContent)
}

/// A date range of sales figures.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct SalesRange {
    /// First day (UTC), default 29 days before `to`.
    #[param(nullable = false, format = Date)]
    from: Option<String>,
    /// Last day (UTC), default today; at most 366 days after `from`.
    #[param(nullable = false, format = Date)]
    to: Option<String>,
}

/// One product's sales on a day.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct ProductSalesView {
    product_id: ProductId,
    name: String,
    units: i64,
    /// In minor units.
    revenue: i64,
}

/// One day's sales.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct SalesDayView {
    #[schema(format = Date)]
    date: String,
    orders: i64,
    units: i64,
    revenue: i64,
    products: Vec<ProductSalesView>,
}

/// A farmer's sales figures over a range (orders placed, net of cancellations).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct SalesReport {
    #[schema(format = Date)]
    from: String,
    #[schema(format = Date)]
    to: String,
    orders: i64,
    units: i64,
    /// In minor units.
    revenue: i64,
    /// Days with sales, oldest first.
    days: Vec<SalesDayView>,
}

/// The signed-in farmer's daily sales (orders, units, revenue, by product),
/// kept current as orders arrive; `Accept: text/csv` gives the same as CSV
/// (`date,productId,productName,units,revenue`; text cells quoted, and one that a
/// spreadsheet would run as a formula prefixed with `'`).
#[utoipa::path(get, path = "/farmers/me/sales", tag = "users", operation_id = "getMySales",
    security(("bearerAuth" = [])),
    params(SalesRange),
    responses(
        (status = 200, description = "The figures, per day and product.",
            content((SalesReport = "application/json"), (String = "text/csv"))),
        (status = 403, description = "Farmers only."),
        (status = 422, description = "A date is malformed, `to` is before `from`, or the range is longer than 366 days."),
    ))]
async fn sales(
    State(state): State<Arc<AppState>>,
    farmer: Authorized<Farmers>,
    Query(range): Query<SalesRange>,
    headers: HeaderMap,
) -> Result<Reply<JsonOrCsv<SalesReport>>, ApiError> {
    let today = state.clock.now().date();
    let to = shared::http::date_param("to", range.to.as_deref())?.unwrap_or(today);
    let from = shared::http::date_param("from", range.from.as_deref())?.unwrap_or(to - time::Duration::days(29));
    if from > to {
        return Err(ApiError::field("to", "must not be before from"));
    }
    if (to - from).whole_days() > 366 {
        return Err(ApiError::field("from", "the range is at most 366 days"));
    }
    let (from, to) = (shared::domain::format_date(from), shared::domain::format_date(to));
    let days = accounts::sales(&state, farmer.user_id()?, &from, &to).await?;
    if JsonOrCsv::<SalesReport>::wanted(&headers) {
        let mut csv = Csv::new(&["date", "productId", "productName", "units", "revenue"]);
        for day in &days {
            for (id, product) in &day.products {
                let id = id.to_string();
                csv.row(&[
                    day.date.as_str().into(),
                    id.as_str().into(),
                    product.name.as_str().into(),
                    product.units.into(),
                    product.revenue.into(),
                ]);
            }
        }
        return Ok(Reply::negotiated(JsonOrCsv::Csv(csv)));
    }
    let report = SalesReport {
        from,
        to,
        orders: days.iter().map(|d| d.orders).sum(),
        units: days.iter().map(|d| d.units).sum(),
        revenue: days.iter().map(|d| d.revenue).sum(),
        days: days
            .iter()
            .map(|d| SalesDayView {
                date: d.date.clone(),
                orders: d.orders,
                units: d.units,
                revenue: d.revenue,
                products: d
                    .products
                    .iter()
                    .map(|(id, p)| ProductSalesView {
                        product_id: *id,
                        name: p.name.clone(),
                        units: p.units,
                        revenue: p.revenue,
                    })
                    .collect(),
            })
            .collect(),
    };
    Ok(Reply::negotiated(JsonOrCsv::Json(report)))
}
