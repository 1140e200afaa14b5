//! `spawn_app()` and friends: the local stack (gateway, local bucket and CDN, queue
//! pumps) over fresh storage (embedded, or DynamoDB on the AWS-compatible endpoint
//! in `AWS_ENDPOINT_URL`), and small request helpers. Every response a function
//! gives during a test is checked against the generated OpenAPI document (status
//! documented, content type, body valid); a test whose responses broke the
//! document fails when its app is dropped.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use infra::gateway::{Exchange, Observer};
use infra::local::LocalStack;
use infra::pump::PumpSettings;
use serde_json::{json, Value};
use shared::adapters::{self, DynamoStore};
use shared::AppState;
use tempfile::TempDir;

use crate::conformance::Conformance;

/// The repository root (template.yaml, events/ live there).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_owned()
}

/// A running local stack and a client for it.
pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub state: AppState,
    /// Kept alive for the test: dropping it stops the gateway and the pumps.
    pub stack: LocalStack,
    /// The embedded data directory (blobs, queues).
    pub dir: TempDir,
    /// The stack's clock, which a scenario may move forward.
    pub clock: MovableClock,
    /// Responses that broke the OpenAPI document.
    violations: Arc<Mutex<Vec<String>>>,
    /// How many responses were checked against it.
    checked: Arc<AtomicUsize>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let violations = self.violations.lock().map(|v| v.clone()).unwrap_or_default();
        if !violations.is_empty() && !std::thread::panicking() {
            panic!("responses broke the OpenAPI document:\n  {}", violations.join("\n  "));
        }
    }
}

/// The system clock moved forward by what a scenario asked for (the stack's
/// `Clock`, so scheduled work can be tested without sleeping; token expiry
/// follows the system clock and is not moved).
#[derive(Debug, Clone, Default)]
pub struct MovableClock(Arc<AtomicI64>);

impl MovableClock {
    pub fn advance(&self, by: time::Duration) {
        self.0.fetch_add(by.whole_seconds(), Ordering::SeqCst);
    }
}

impl shared::ports::Clock for MovableClock {
    fn now(&self) -> time::OffsetDateTime {
        time::OffsetDateTime::now_utc() + time::Duration::seconds(self.0.load(Ordering::SeqCst))
    }
}

/// The generated OpenAPI document's checker, built once for all tests.
fn conformance() -> Arc<Conformance> {
    static CHECKER: OnceLock<Arc<Conformance>> = OnceLock::new();
    CHECKER
        .get_or_init(|| {
            let document = serde_json::to_value(infra::functions::openapi()).expect("the document serializes");
            Arc::new(Conformance::new(document))
        })
        .clone()
}

/// An observer counting exchanges into `checked` and recording every one that
/// breaks the document into `violations`.
pub fn conformance_observer(violations: Arc<Mutex<Vec<String>>>, checked: Arc<AtomicUsize>) -> Observer {
    let checker = conformance();
    Arc::new(move |exchange: &Exchange<'_>| {
        checked.fetch_add(1, Ordering::Relaxed);
        let content_type = exchange.headers.get("content-type").and_then(|v| v.to_str().ok());
        let checked = checker.check(
            exchange.method.as_str(),
            &exchange.route.path,
            exchange.status.as_u16(),
            content_type,
            exchange.body,
        );
        if let Err(violation) = checked {
            violations.lock().expect("violations lock").push(violation);
        }
    })
}

/// The AWS-compatible endpoint the test command started. Never skipped: a missing
/// endpoint fails the test.
pub fn aws_endpoint() -> String {
    let endpoint = std::env::var("AWS_ENDPOINT_URL")
        .expect("AWS_ENDPOINT_URL is not set: run the README's test command (make test), which starts moto");
    for (name, value) in
        [("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"), ("AWS_REGION", "us-east-1")]
    {
        if std::env::var_os(name).is_none() {
            // Tests only; every test sets the same values.
            std::env::set_var(name, value);
        }
    }
    endpoint
}

/// Embedded state in a fresh directory.
pub async fn embedded_state() -> (AppState, TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let state = AppState::embedded(dir.path()).await.expect("embedded state");
    (state, dir)
}

/// A fresh DynamoDB table on the test endpoint.
pub async fn fresh_table() -> (aws_config::SdkConfig, String) {
    aws_endpoint();
    let sdk = adapters::sdk_config().await;
    let table = format!("test-{}", ulid::Ulid::new().to_string().to_lowercase());
    adapters::provision::create_table(&adapters::dynamo_client(&sdk), &table).await.expect("create table");
    (sdk, table)
}

/// A fresh S3 bucket on the test endpoint, as a blob store.
pub async fn fresh_bucket() -> adapters::S3Blobs {
    aws_endpoint();
    let sdk = adapters::sdk_config().await;
    let bucket = format!("assets-{}", ulid::Ulid::new().to_string().to_lowercase());
    let client = adapters::s3_client(&sdk);
    adapters::provision::create_bucket(&client, &bucket).await.expect("create bucket");
    adapters::S3Blobs::new(client, bucket)
}

/// Points `state`'s store at a fresh DynamoDB table and its data bucket at a
/// fresh S3 bucket (tokens and the assets bucket stay local).
async fn use_dynamo(state: &mut AppState) {
    let (sdk, table) = fresh_table().await;
    state.store = Arc::new(DynamoStore::new(adapters::dynamo_client(&sdk), table.clone()));
    state.backend = shared::Backend::Aws { table };
    state.data_bucket = Some(Arc::new(fresh_bucket().await));
}

pub async fn spawn_app() -> TestApp {
    spawn_stack(false, PumpSettings::default()).await
}

pub async fn spawn_app_on_aws() -> TestApp {
    spawn_stack(true, PumpSettings::default()).await
}

/// A stack with the deployed order limits (`OrderLimits::default()`) rather
/// than the lenient ones of other tests.
pub async fn spawn_app_with_order_limits() -> TestApp {
    spawn_stack_with(false, PumpSettings::default(), |state| state.order_limits = Default::default()).await
}

/// The local stack on a free port, its store embedded or (with `aws`) DynamoDB.
pub async fn spawn_stack(aws: bool, settings: PumpSettings) -> TestApp {
    spawn_stack_with(aws, settings, |_| {}).await
}

/// The order limits of a test stack: far above what any scenario places, so
/// storms of checkouts by one customer test what they mean to; the scenarios
/// of the limits themselves set `OrderLimits::default()` back.
pub const LENIENT_ORDER_LIMITS: shared::config::OrderLimits = shared::config::OrderLimits {
    max_open_orders: 100_000,
    max_open_units_per_product: 100_000_000,
    pending_expiry: time::Duration::hours(48),
    checkouts_per_minute: 100_000,
};

/// `spawn_stack`, with `configure` adjusting the state first (such as a
/// shorter access token life).
pub async fn spawn_stack_with(aws: bool, settings: PumpSettings, configure: impl FnOnce(&mut AppState)) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("bound address");
    let mut state = AppState::embedded_serving(dir.path(), &format!("http://{addr}")).await.expect("embedded state");
    if aws {
        use_dynamo(&mut state).await;
    }
    state.order_limits = LENIENT_ORDER_LIMITS;
    let clock = MovableClock::default();
    state.clock = Arc::new(clock.clone());
    configure(&mut state);
    let violations = Arc::new(Mutex::new(Vec::new()));
    let checked = Arc::new(AtomicUsize::new(0));
    let observer = conformance_observer(Arc::clone(&violations), Arc::clone(&checked));
    let template = repo_root().join("template.yaml");
    let stack = LocalStack::start(state.clone(), dir.path(), &template, listener, settings, Some(observer))
        .await
        .expect("local stack starts");
    TestApp { addr, client: reqwest::Client::new(), state, stack, dir, clock, violations, checked }
}

impl TestApp {
    /// How many responses were checked against the OpenAPI document so far.
    pub fn checked_responses(&self) -> usize {
        self.checked.load(Ordering::Relaxed)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// A client whose requests come from `address` (another loopback address,
    /// such as `127.0.0.2`), so the gateway sees another source address.
    pub fn client_from(&self, address: &str) -> reqwest::Client {
        let address: std::net::IpAddr = address.parse().expect("an IP address");
        reqwest::Client::builder().local_address(address).build().expect("a client")
    }

    pub async fn post(&self, path: &str, body: &Value, token: Option<&str>) -> reqwest::Response {
        let mut req = self.client.post(self.url(path)).json(body);
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        req.send().await.expect("request sent")
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut req = self.client.get(self.url(path));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        req.send().await.expect("request sent")
    }

    /// Registers a user whose address counts as verified (as most tests want:
    /// a farmer's products show in public) and returns the session body
    /// (tokens and user, as registered).
    pub async fn register(&self, email: &str, role: &str) -> Value {
        let session = self.register_unverified(email, role).await;
        self.mark_verified(&session).await;
        session
    }

    /// Marks the account of a session body verified in the store, as following
    /// the mailed link would.
    pub async fn mark_verified(&self, session: &Value) {
        let id = shared::domain::UserId::parse(session["user"]["id"].as_str().unwrap()).unwrap();
        let store = self.state.store.as_ref();
        let user = shared::repo::users::get(store, id).await.unwrap().unwrap();
        let next = shared::domain::User { email_verified: true, version: user.version + 1, ..user };
        shared::repo::users::save(store, &next).await.unwrap();
    }

    /// Registers a user, leaving the address unverified, and signs them in;
    /// returns the session body.
    pub async fn register_unverified(&self, email: &str, role: &str) -> Value {
        self.register_as(email, role, "Test User").await
    }

    /// Registers a user named `display_name` and signs them in (registering
    /// alone answers 202 and signs nobody in); returns the session body.
    pub async fn register_as(&self, email: &str, role: &str, display_name: &str) -> Value {
        let response = self
            .post(
                "/auth/register",
                &json!({"email": email, "password": PASSWORD, "displayName": display_name, "role": role}),
                None,
            )
            .await;
        assert_eq!(response.status(), 202, "register {email}");
        let login = self.post("/auth/login", &json!({"email": email, "password": PASSWORD}), None).await;
        assert_eq!(login.status(), 200, "sign in as {email}");
        login.json().await.unwrap()
    }

    /// An access token for a fresh admin (admins cannot self-register).
    pub async fn admin_token(&self) -> String {
        use shared::domain::{DisplayName, Email, Password, PasswordHash, Role, User};
        let email = format!("admin-{}@example.com", ulid::Ulid::new().to_string().to_lowercase());
        let user = User::new(
            Email::parse(&email).unwrap(),
            DisplayName::parse("Admin").unwrap(),
            Role::Admin,
            PasswordHash::create(&Password::parse(PASSWORD.into()).unwrap()),
            time::OffsetDateTime::now_utc(),
        );
        shared::repo::users::create(self.state.store.as_ref(), &user).await.unwrap();
        let response = self.post("/auth/login", &json!({"email": email, "password": PASSWORD}), None).await;
        assert_eq!(response.status(), 200);
        access_token(&response.json().await.unwrap())
    }
}

/// The password every test user has.
pub const PASSWORD: &str = "correct horse battery staple";

pub fn access_token(session: &Value) -> String {
    session["accessToken"].as_str().expect("accessToken").to_owned()
}

pub fn refresh_token(session: &Value) -> String {
    session["refreshToken"].as_str().expect("refreshToken").to_owned()
}

/// Asserts a problem+json response with `status`, returning its body.
pub async fn assert_problem(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status(), status, "status");
    let content_type =
        response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert_eq!(content_type, "application/problem+json");
    assert!(response.headers().contains_key("x-request-id"));
    let body: Value = response.json().await.expect("problem body is JSON");
    assert_eq!(body["status"], status);
    for field in ["type", "title", "detail", "requestId"] {
        assert!(body[field].is_string(), "problem has {field}: {body}");
    }
    body
}

pub fn unique_email(prefix: &str) -> String {
    format!("{prefix}-{}@example.com", ulid::Ulid::new().to_string().to_lowercase())
}

/// Asserts that `value` has exactly the properties the OpenAPI document's schema
/// `schema` declares (so a field added to a handler without the document, or
/// documented but never sent, fails a test).
pub fn assert_documented(schema: &str, value: &Value) {
    let document: Value =
        serde_json::from_str(&std::fs::read_to_string(repo_root().join("openapi.json")).unwrap()).unwrap();
    let declared = &document["components"]["schemas"][schema];
    let mut documented: Vec<&str> = declared["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("no schema {schema}"))
        .keys()
        .map(String::as_str)
        .collect();
    let mut sent: Vec<&str> = value.as_object().expect("an object").keys().map(String::as_str).collect();
    documented.sort_unstable();
    sent.sort_unstable();
    assert_eq!(sent, documented, "{schema}: the response and openapi.json disagree");
}

/// Declares the calling module's end-to-end scenarios, each an
/// `async fn name(app: TestApp)` (or taking what `using` names). Every scenario
/// runs on the embedded backend, as `embedded::name`. Those listed under
/// `on_both` also run on DynamoDB and S3 on the test endpoint, as `aws::name`.
///
/// The contract suite (shared/tests/contract) proves the two backends store
/// alike, operation by operation, so a scenario runs on both only when it walks
/// a storage path that suite does not: the AWS smoke set (one checkout, one
/// upload, one archive; backups are restored across the backends in
/// scheduled.rs). `using make_embedded, make_aws;` (or `using make_embedded;`)
/// names other fixture makers from this module.
macro_rules! scenarios {
    ($(on_both: [$($both:ident),* $(,)?],)? embedded: [$($only:ident),* $(,)?] $(,)?) => {
        crate::helpers::scenarios!(
            using spawn_app, spawn_app_on_aws; $(on_both: [$($both),*],)? embedded: [$($only),*]
        );
    };
    (using $embedded:ident; embedded: [$($only:ident),* $(,)?] $(,)?) => {
        crate::helpers::scenarios!(using $embedded, unused; embedded: [$($only),*]);
    };
    (using $embedded:ident, $aws:ident; $(on_both: [$($both:ident),* $(,)?],)? embedded: [$($only:ident),* $(,)?] $(,)?) => {
        mod embedded {
            $($(
                #[tokio::test]
                async fn $both() {
                    super::$both(crate::helpers::$embedded().await).await
                }
            )*)?
            $(
                #[tokio::test]
                async fn $only() {
                    super::$only(crate::helpers::$embedded().await).await
                }
            )*
        }
        $(mod aws {
            $(
                #[tokio::test]
                async fn $both() {
                    super::$both(crate::helpers::$aws().await).await
                }
            )*
        })?
    };
}
pub(crate) use scenarios;

/// State without a running stack, and the directory keeping its local parts.
pub struct StateFixture {
    pub state: AppState,
    /// Kept alive for the test (the embedded parts live in it).
    _dir: TempDir,
}

/// Embedded store, blobs and queues in a fresh directory.
pub async fn embedded_fixture() -> StateFixture {
    let (state, dir) = embedded_state().await;
    StateFixture { state, _dir: dir }
}

/// A fresh DynamoDB table and S3 bucket on the test endpoint (tokens and queues
/// stay local).
pub async fn aws_fixture() -> StateFixture {
    let (mut state, dir) = embedded_state().await;
    use_dynamo(&mut state).await;
    state.blobs = Some(Arc::new(fresh_bucket().await));
    StateFixture { state, _dir: dir }
}
