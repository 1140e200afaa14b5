//! The farmer's sales figures as CSV: private, varying on `Accept`, and safe to
//! open in a spreadsheet whatever the products are called.

use shared::domain::{OrderLine, ProductId, Unit, UserId};
use shared::repo::sales;

use crate::helpers::{access_token, spawn_app, unique_email};

#[tokio::test]
async fn sales_csv_neutralises_formulas() {
    let app = spawn_app().await;
    let session = app.register(&unique_email("farmer"), "farmer").await;
    let farmer = UserId::parse(session["user"]["id"].as_str().unwrap()).unwrap();
    let today = shared::domain::format_date(time::OffsetDateTime::now_utc().date());
    let names = ["=HYPERLINK(\"http://evil.example\",\"click\")", "+1+1", "@SUM(A1)", "Apples"];
    let lines: Vec<OrderLine> = names
        .iter()
        .map(|name| OrderLine {
            product_id: ProductId::new(),
            name: (*name).into(),
            unit: Unit::Kg,
            unit_price: 250,
            quantity: 2,
            line_total: 500,
        })
        .collect();
    assert!(sales::apply(app.state.store.as_ref(), farmer, &today, &lines, 1, "event-1", 0).await.unwrap());

    let response = app
        .client
        .get(app.url("/farmers/me/sales"))
        .bearer_auth(access_token(&session))
        .header("accept", "text/csv")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/csv; charset=utf-8");
    assert_eq!(response.headers()["cache-control"], "private, no-store");
    assert_eq!(response.headers()["vary"], "Accept");
    let csv = response.text().await.unwrap();
    for cell in
        ["\"'=HYPERLINK(\"\"http://evil.example\"\",\"\"click\"\")\"", "\"'+1+1\"", "\"'@SUM(A1)\"", "\"Apples\""]
    {
        assert!(csv.contains(&format!("{cell},2,500\r\n")), "{cell} in {csv}");
    }
    for line in csv.lines().skip(1) {
        let name = line.split(',').nth(2).unwrap();
        assert!(!name.starts_with("\"=") && !name.starts_with('='), "{line}");
    }
}
