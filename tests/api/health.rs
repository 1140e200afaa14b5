//! `GET /health` on both backends.

use serde_json::Value;

use crate::helpers::{spawn_app, spawn_app_on_aws};

#[tokio::test]
async fn health_answers_ok_with_embedded_storage() {
    let app = spawn_app().await;
    let response = app.get("/health", None).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["storage"]["backend"], "embedded");
}

#[tokio::test]
async fn health_answers_ok_with_aws_storage() {
    let app = spawn_app_on_aws().await;
    let body: Value = app.get("/health", None).await.json().await.unwrap();
    assert_eq!(body["storage"]["status"], "ok");
    assert_eq!(body["storage"]["backend"], "aws");
}

#[tokio::test]
async fn health_answers_503_when_the_store_is_unreachable() {
    let mut app = spawn_app_on_aws().await;
    // A table that does not exist stands for an unreachable store.
    let sdk = shared::adapters::sdk_config().await;
    let state = {
        let mut state = app.state.clone();
        state.store = std::sync::Arc::new(shared::adapters::DynamoStore::new(
            shared::adapters::dynamo_client(&sdk),
            "no-such-table".into(),
        ));
        state
    };
    let (addr, _h) = infra::gateway::spawn(
        state,
        &crate::helpers::repo_root().join("template.yaml"),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    app.addr = addr;
    let response = app.get("/health", None).await;
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["storage"]["status"], "unreachable");
}
