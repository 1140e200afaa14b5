//! The mail channel: mail leaves through the jobs queue, so a failing mail
//! provider never fails a sign-up, and its message is retried then
//! dead-lettered; SES (on the test endpoint) receives what the worker sends;
//! and a password reset request does the same work whether or not the email
//! has an account (counted store and queue operations), the worker sending
//! mail only for the known one.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use counting::CountingStore;
use serde_json::{json, Value};
use shared::accounts;
use shared::domain::{DisplayName, Email, PasswordHash, Role, User};
use shared::jobs::Job;
use shared::ports::{JobError, JobMessage, JobQueue, OutgoingMail};
use worker::Outcome;

use crate::accounts::eventually;
use crate::helpers::{aws_endpoint, unique_email, StateFixture};

/// How often the jobs queue has delivered the mail job to `to` so far (0 when
/// it is not on the queue).
fn deliveries(db: &std::path::Path, to: &str) -> i64 {
    let db = rusqlite::Connection::open(db).unwrap();
    let pattern = format!("%\"sendEmail\"%{to}%");
    db.query_row(
        "SELECT COALESCE(MAX(receive_count), 0) FROM jobs WHERE queue = 'JobsQueue' AND body LIKE ?1",
        [pattern],
        |row| row.get(0),
    )
    .unwrap()
}

/// The local stack, retrying failed jobs after a second, with its mailbox
/// broken (a file where the directory goes makes every send fail).
async fn stack_with_a_failing_mailbox() -> crate::helpers::TestApp {
    let settings = infra::pump::PumpSettings { visibility_timeout: Some(Duration::from_secs(1)) };
    let app = crate::helpers::spawn_stack(false, settings).await;
    std::fs::write(app.dir.path().join("mail"), "not a directory").unwrap();
    app
}

#[tokio::test]
async fn with_the_mail_provider_failing_sign_up_succeeds_and_the_message_is_retried() {
    let app = stack_with_a_failing_mailbox().await;
    let email = unique_email("patient");
    app.register_unverified(&email, "customer").await; // asserts 201
    let db = app.dir.path().join("marketplace.db");
    eventually("a second delivery of the mail job", || async { (deliveries(&db, &email) >= 2).then_some(()) }).await;
    // The provider recovers: the next retry goes out.
    std::fs::remove_file(app.dir.path().join("mail")).unwrap();
    crate::accounts::wait_for_mail(&app, &email, "Confirm your email").await;
}

#[tokio::test]
async fn a_mail_that_keeps_failing_is_dead_lettered() {
    let app = stack_with_a_failing_mailbox().await;
    let email = unique_email("unlucky");
    app.register_unverified(&email, "customer").await; // asserts 201
    let template = infra::template::Template::load(&crate::helpers::repo_root().join("template.yaml")).unwrap();
    let (dead_letter_name, max_receives) = template.queue("JobsQueue").unwrap().dead_letter.clone().unwrap();
    let db = app.dir.path().join("marketplace.db");
    let dead_letters = infra::pump::open_queue(&db, &dead_letter_name).unwrap();
    let mut most_deliveries = 0;
    let dead = eventually("the mail job in the dead-letter queue", || {
        most_deliveries = most_deliveries.max(deliveries(&db, &email));
        let dead_letters = dead_letters.clone();
        async move {
            let found = dead_letters.receive(10, Duration::from_secs(60)).await.unwrap();
            (!found.is_empty()).then_some(found)
        }
    })
    .await;
    assert_eq!(dead.len(), 1);
    let job: Value = serde_json::from_str(&dead[0].body).unwrap();
    assert_eq!(job["job"], "sendEmail");
    assert_eq!(job["mail"]["to"], email.as_str());
    assert!(most_deliveries >= 2, "retried before it was dead-lettered (seen {most_deliveries} of {max_receives})");
}

#[tokio::test]
async fn the_worker_sends_mail_through_ses_on_the_test_endpoint() {
    let endpoint = aws_endpoint();
    let sdk = shared::adapters::sdk_config().await;
    let client = shared::adapters::ses_client(&sdk);
    let sender = format!("no-reply-{}@example.com", ulid::Ulid::new().to_string().to_lowercase());
    client.create_email_identity().email_identity(&sender).send().await.expect("create the sender identity");
    let fixture = crate::helpers::embedded_fixture().await;
    let mut state = fixture.state.clone();
    state.mailer = Some(Arc::new(shared::adapters::SesMailer::new(client, sender.clone(), Some("marketplace".into()))));
    let subject = format!("Hello {}", ulid::Ulid::new());
    let mail = OutgoingMail {
        to: "kim@example.com".into(),
        subject: subject.clone(),
        text: "plain".into(),
        html: "<p>html</p>".into(),
    };
    let outcome = worker::run_job(&state, Job::SendEmail { mail }).await.expect("sent");
    let Outcome::Mailed(message_id) = outcome else { panic!("not mailed: {outcome:?}") };

    let data: Value = reqwest::get(format!("{endpoint}/moto-api/data.json")).await.unwrap().json().await.unwrap();
    let sent = data["ses"]["Message"].as_array().expect("SES messages");
    let message = sent.iter().find(|m| m["id"] == message_id.as_str()).expect("the endpoint received the message");
    assert_eq!(message["subject"], subject.as_str());
    assert_eq!(message["source"], sender.as_str());
    assert_eq!(message["destinations"]["ToAddresses"], json!(["kim@example.com"]));
}

/// A job queue counting what is sent through it.
struct CountingJobs {
    inner: Arc<dyn JobQueue>,
    sent: AtomicUsize,
}

#[async_trait::async_trait]
impl JobQueue for CountingJobs {
    async fn send(&self, body: &str) -> Result<String, JobError> {
        self.sent.fetch_add(1, Ordering::SeqCst);
        self.inner.send(body).await
    }
    async fn receive(&self, max: usize, visibility: Duration) -> Result<Vec<JobMessage>, JobError> {
        self.inner.receive(max, visibility).await
    }
    async fn delete(&self, receipt: &str) -> Result<(), JobError> {
        self.inner.delete(receipt).await
    }
}

/// Store calls by kind: get, transact, query, increment.
type Calls = [usize; 4];

async fn reset_costs_the_same_for_known_and_unknown_emails(fixture: StateFixture) {
    let base = fixture.state.clone();
    let store = Arc::new(CountingStore::new(Arc::clone(&base.store)));
    let jobs = Arc::new(CountingJobs { inner: base.jobs.clone().unwrap(), sent: AtomicUsize::new(0) });
    let mut state = base.clone();
    state.store = store.clone();
    state.jobs = Some(jobs.clone());

    let known = Email::parse(&unique_email("known")).unwrap();
    let password = shared::domain::Password::parse("correct horse battery".into()).unwrap();
    let user = User::new(
        known.clone(),
        DisplayName::parse("Kim").unwrap(),
        Role::Customer,
        PasswordHash::create(&password),
        time::OffsetDateTime::now_utc(),
    );
    shared::repo::users::create(base.store.as_ref(), &user).await.unwrap();
    let unknown = Email::parse(&unique_email("unknown")).unwrap();

    let mut costs: Vec<(Calls, usize)> = Vec::new();
    for email in [&known, &unknown] {
        let (calls_before, sent_before) = (store.calls(), jobs.sent.load(Ordering::SeqCst));
        accounts::request_password_reset(&state, email.clone(), "203.0.113.7").await.expect("accepted");
        let calls = store.calls();
        let delta = [0, 1, 2, 3].map(|i| calls[i] - calls_before[i]);
        costs.push((delta, jobs.sent.load(Ordering::SeqCst) - sent_before));
    }
    assert_eq!(costs[0], costs[1], "known and unknown emails cost the same (store calls, jobs queued)");
    assert_eq!(costs[0].1, 1, "each queues one job");

    // The worker tells them apart: a mail for the known address only.
    let outcome = worker::run_job(&state, Job::PasswordReset { email: known.to_string() }).await.unwrap();
    assert_eq!(outcome, Outcome::ResetRequested { account_found: true });
    let queued_before = jobs.sent.load(Ordering::SeqCst);
    let outcome = worker::run_job(&state, Job::PasswordReset { email: unknown.to_string() }).await.unwrap();
    assert_eq!(outcome, Outcome::ResetRequested { account_found: false });
    assert_eq!(jobs.sent.load(Ordering::SeqCst), queued_before, "nothing to send for an unknown address");
    let queued = jobs.receive(10, Duration::from_secs(60)).await.unwrap();
    let mails: Vec<Value> = queued
        .iter()
        .map(|m| serde_json::from_str::<Value>(&m.body).unwrap())
        .filter(|job| job["job"] == "sendEmail")
        .collect();
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert_eq!(mails[0]["mail"]["to"], known.as_str());
}

crate::helpers::scenarios!(
    using embedded_fixture;
    embedded: [
        reset_costs_the_same_for_known_and_unknown_emails,
    ],
);

/// A store that counts calls by kind and passes them on.
mod counting {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use shared::ports::{Item, ItemKey, Page, Query, Scan, ScanPage, Store, StoreError, WriteOp};

    pub struct CountingStore {
        inner: Arc<dyn Store>,
        counts: [AtomicUsize; 4],
    }

    impl CountingStore {
        pub fn new(inner: Arc<dyn Store>) -> Self {
            Self { inner, counts: Default::default() }
        }

        /// get, transact, query, increment.
        pub fn calls(&self) -> super::Calls {
            [0, 1, 2, 3].map(|i| self.counts[i].load(Ordering::SeqCst))
        }

        fn count(&self, kind: usize) {
            self.counts[kind].fetch_add(1, Ordering::SeqCst);
        }
    }

    #[async_trait::async_trait]
    impl Store for CountingStore {
        async fn get(&self, key: &ItemKey) -> Result<Option<Item>, StoreError> {
            self.count(0);
            self.inner.get(key).await
        }
        async fn transact(&self, writes: Vec<WriteOp>) -> Result<(), StoreError> {
            self.count(1);
            self.inner.transact(writes).await
        }
        async fn query(&self, query: &Query) -> Result<Page, StoreError> {
            self.count(2);
            self.inner.query(query).await
        }
        async fn scan(&self, scan: &Scan) -> Result<ScanPage, StoreError> {
            self.inner.scan(scan).await
        }
        async fn ping(&self) -> Result<(), StoreError> {
            self.inner.ping().await
        }
        async fn increment(&self, key: &ItemKey, attr: &str, expires_at: i64) -> Result<i64, StoreError> {
            self.count(3);
            self.inner.increment(key, attr, expires_at).await
        }
    }
}
