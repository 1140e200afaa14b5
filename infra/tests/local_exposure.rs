//! The local stack shows its mailbox (`/_local/mail`, `/_local/links/*`, whose
//! mail holds live sign-in and reset links) only when it listens on loopback;
//! bound to every interface (`marketplace-local --host 0.0.0.0 --allow-remote`)
//! it serves the API without them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use infra::local::LocalStack;
use infra::pump::PumpSettings;
use shared::AppState;
use tempfile::TempDir;

fn template_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("infra/ has a parent").join("template.yaml")
}

/// A stack listening on `bind`, and the loopback address that reaches it.
async fn stack_on(bind: &str) -> (LocalStack, SocketAddr, TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let listener = tokio::net::TcpListener::bind(bind).await.expect("bind");
    let port = listener.local_addr().expect("bound address").port();
    let reach = SocketAddr::from(([127, 0, 0, 1], port));
    let state = AppState::embedded_serving(dir.path(), &format!("http://{reach}")).await.expect("embedded state");
    let stack = LocalStack::start(state, dir.path(), &template_path(), listener, PumpSettings::default(), None)
        .await
        .expect("local stack starts");
    (stack, reach, dir)
}

async fn status(addr: SocketAddr, path: &str) -> u16 {
    reqwest::get(format!("http://{addr}{path}")).await.expect("request sent").status().as_u16()
}

#[tokio::test]
async fn the_mailbox_is_served_on_loopback_only() {
    let (_stack, addr, _dir) = stack_on("127.0.0.1:0").await;
    assert_eq!(status(addr, "/_local/mail").await, 200);
    assert_eq!(status(addr, "/_local/links/verify-email?token=x").await, 200);

    let (_stack, addr, _dir) = stack_on("0.0.0.0:0").await;
    assert_eq!(status(addr, "/health").await, 200, "the API is served");
    assert_eq!(status(addr, "/_local/mail").await, 404);
    assert_eq!(status(addr, "/_local/mail?format=json").await, 404);
    assert_eq!(status(addr, "/_local/links/verify-email?token=x").await, 404);
    assert_eq!(status(addr, "/_local/links/reset-password?token=x").await, 404);
}
