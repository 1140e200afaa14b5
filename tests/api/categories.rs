//! Categories: public reads with ETags and 304, admin writes, unique slugs,
//! deletion guarded by products, and cursor pagination.

use std::collections::HashSet;

use serde_json::{json, Value};

use crate::helpers::{access_token, assert_documented, assert_problem, spawn_app, unique_email, TestApp};

async fn create(app: &TestApp, token: &str, body: Value) -> Value {
    let response = app.post("/categories", &body, Some(token)).await;
    assert_eq!(response.status(), 201, "create {body}");
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let created: Value = response.json().await.unwrap();
    assert_eq!(location, format!("/categories/{}", created["id"].as_str().unwrap()));
    created
}

#[tokio::test]
async fn public_reads_send_etag_and_answer_304() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let created = create(&app, &admin, json!({"name": "Leafy Greens", "description": "Kale, chard"})).await;
    assert_eq!(created["slug"], "leafy-greens");
    assert_documented("Category", &created);
    let list: Value = app.get("/categories", None).await.json().await.unwrap();
    assert_documented("CategoryList", &list);

    for path in ["/categories".to_owned(), format!("/categories/{}", created["id"].as_str().unwrap())] {
        let first = app.get(&path, None).await;
        assert_eq!(first.status(), 200);
        assert!(first.headers()["cache-control"].to_str().unwrap().starts_with("public, max-age="));
        let etag = first.headers()["etag"].to_str().unwrap().to_owned();
        let again = app.client.get(app.url(&path)).header("if-none-match", &etag).send().await.unwrap();
        assert_eq!(again.status(), 304, "{path}");
        assert_eq!(again.headers()["etag"], etag.as_str());
        let stale = app.client.get(app.url(&path)).header("if-none-match", "\"other\"").send().await.unwrap();
        assert_eq!(stale.status(), 200);
    }
}

#[tokio::test]
async fn etag_changes_when_the_category_changes() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let created = create(&app, &admin, json!({"name": "Fruit"})).await;
    let path = format!("/categories/{}", created["id"].as_str().unwrap());
    let etag = app.get(&path, None).await.headers()["etag"].to_str().unwrap().to_owned();
    let patched = app
        .client
        .patch(app.url(&path))
        .bearer_auth(&admin)
        .json(&json!({"description": "Apples"}))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), 200);
    let patched: Value = patched.json().await.unwrap();
    assert_eq!(patched["description"], "Apples");
    assert_eq!(patched["version"], 2);
    let response = app.client.get(app.url(&path)).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(response.status(), 200);
    // An explicit null clears the description; an absent field leaves it.
    let cleared = app.client.patch(app.url(&path)).bearer_auth(&admin).json(&json!({"description": null})).send();
    let cleared: Value = cleared.await.unwrap().json().await.unwrap();
    assert_eq!((cleared["description"].clone(), cleared["version"].clone()), (Value::Null, json!(3)));
}

#[tokio::test]
async fn slugs_are_unique_and_validated() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    create(&app, &admin, json!({"name": "Dairy", "slug": "dairy"})).await;
    assert_problem(app.post("/categories", &json!({"name": "Milk", "slug": "dairy"}), Some(&admin)).await, 409).await;
    let other = create(&app, &admin, json!({"name": "Cheese"})).await;
    let path = format!("/categories/{}", other["id"].as_str().unwrap());
    let clash =
        app.client.patch(app.url(&path)).bearer_auth(&admin).json(&json!({"slug": "dairy"})).send().await.unwrap();
    assert_problem(clash, 409).await;
    // After renaming, the old slug is free again.
    let renamed =
        app.client.patch(app.url(&path)).bearer_auth(&admin).json(&json!({"slug": "fromage"})).send().await.unwrap();
    assert_eq!(renamed.status(), 200);
    create(&app, &admin, json!({"name": "Cheese again", "slug": "cheese"})).await;

    let bad = app
        .post("/categories", &json!({"name": "", "slug": "Bad Slug", "description": "x".repeat(501)}), Some(&admin))
        .await;
    let problem = assert_problem(bad, 422).await;
    assert_eq!(problem["errors"].as_array().unwrap().len(), 3);
    let wrong_type = app.post("/categories", &json!({"name": 12}), Some(&admin)).await;
    assert_problem(wrong_type, 422).await;
}

#[tokio::test]
async fn deleting_a_category_that_lists_products_is_409_until_they_are_unlisted() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let created = create(&app, &admin, json!({"name": "Eggs"})).await;
    let id = created["id"].as_str().unwrap();
    let farmer = access_token(&app.register(&unique_email("hen"), "farmer").await);
    let body = json!({"name": "Duck eggs", "categoryId": id, "price": 450, "unit": "dozen", "stock": 3});
    let response = app.post("/products", &body, Some(&farmer)).await;
    assert_eq!(response.status(), 201);
    let product: Value = response.json().await.unwrap();
    let category: Value = app.get(&format!("/categories/{id}"), None).await.json().await.unwrap();
    assert_eq!(category["productCount"], 1);

    let path = format!("/categories/{id}");
    assert_problem(app.client.delete(app.url(&path)).bearer_auth(&admin).send().await.unwrap(), 409).await;

    let product_path = format!("/products/{}", product["id"].as_str().unwrap());
    let unlisted = app.client.delete(app.url(&product_path)).bearer_auth(&farmer).send().await.unwrap();
    assert_eq!(unlisted.status(), 204);
    let deleted = app.client.delete(app.url(&path)).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(deleted.status(), 204);
    assert_problem(app.get(&path, None).await, 404).await;
    // Its slug can be used again.
    create(&app, &admin, json!({"name": "Eggs"})).await;
}

#[tokio::test]
async fn unknown_or_malformed_ids_are_404() {
    let app = spawn_app().await;
    assert_problem(app.get("/categories/not-a-ulid", None).await, 404).await;
    assert_problem(app.get(&format!("/categories/{}", ulid::Ulid::new()), None).await, 404).await;
}

async fn walk_pages(app: &TestApp, limit: usize) -> Vec<String> {
    let mut names = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let path = match &cursor {
            Some(c) => format!("/categories?limit={limit}&cursor={c}"),
            None => format!("/categories?limit={limit}"),
        };
        let page: Value = app.get(&path, None).await.json().await.unwrap();
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= limit);
        names.extend(items.iter().map(|c| c["name"].as_str().unwrap().to_owned()));
        match page["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return names,
        }
    }
    panic!("pagination did not end");
}

async fn pagination_returns_each_category_once_in_name_order(app: TestApp) {
    let admin = app.admin_token().await;
    let mut expected = Vec::new();
    for i in 0..23 {
        let name = format!("Category {:02}", (i * 7) % 23);
        create(&app, &admin, json!({"name": name})).await;
        expected.push(name);
    }
    expected.sort();
    let names = walk_pages(&app, 5).await;
    assert_eq!(names, expected);
    assert_eq!(names.iter().collect::<HashSet<_>>().len(), 23);

    let first: Value = app.get("/categories?limit=5", None).await.json().await.unwrap();
    let cursor = first["nextCursor"].as_str().unwrap();
    // Another last character (both are canonical base64 endings): the checksum fails.
    let last = if cursor.ends_with('A') { 'Q' } else { 'A' };
    let tampered = format!("{}{last}", &cursor[..cursor.len() - 1]);
    for bad in [tampered.as_str(), "garbage", "eyJxIjoiIiwiayI6e319"] {
        assert_problem(app.get(&format!("/categories?cursor={bad}"), None).await, 400).await;
    }
    for bad in ["0", "101", "x", "-1"] {
        let problem = assert_problem(app.get(&format!("/categories?limit={bad}"), None).await, 422).await;
        assert_eq!(problem["errors"][0]["field"], "limit");
    }
}

/// A burst of listings into one category, then of unlistings: every request
/// lands (none answers "busy") and the count is exact, on both backends.
async fn a_burst_of_listings_into_one_category_all_land_and_count_exactly(app: TestApp) {
    let admin = app.admin_token().await;
    let created = create(&app, &admin, json!({"name": "Greens"})).await;
    let id = created["id"].as_str().unwrap().to_owned();
    let mut farmers = Vec::new();
    let mut farmer_ids = Vec::new();
    for name in ["dee", "eli"] {
        let session = app.register(&unique_email(name), "farmer").await;
        farmer_ids.push(session["user"]["id"].as_str().unwrap().to_owned());
        farmers.push(access_token(&session));
    }
    // The first farmer has a public page, whose count the burst also keeps.
    let farm = json!({"farmName": "Chard Hill", "town": "Ghent", "region": "Flanders"});
    let profiled = app.client.patch(app.url("/users/me")).bearer_auth(&farmers[0]).json(&json!({"farm": farm}));
    assert_eq!(profiled.send().await.unwrap().status(), 200);
    // Three in four from the first farmer: 18 of them racing on one page.
    let listings = (0..24).map(|i| {
        let body = json!({"name": format!("Chard no {i}"), "categoryId": id, "price": 300, "unit": "kg", "stock": 4});
        let token = farmers[usize::from(i % 4 == 3)].clone();
        let app = &app;
        async move { (app.post("/products", &body, Some(&token)).await, token) }
    });
    let mut products = Vec::new();
    for (response, token) in futures::future::join_all(listings).await {
        assert_eq!(response.status(), 201);
        products.push((response.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned(), token));
    }
    let path = format!("/categories/{id}");
    let category: Value = app.get(&path, None).await.json().await.unwrap();
    assert_eq!(category["productCount"], 24);
    let farmer_path = format!("/farmers/{}", farmer_ids[0]);
    let page: Value = app.get(&farmer_path, None).await.json().await.unwrap();
    assert_eq!(page["listedProducts"], 18);
    let list: Value = app.get("/farmers?region=Flanders", None).await.json().await.unwrap();
    assert!(list["items"].as_array().unwrap().iter().any(|f| f["id"] == farmer_ids[0].as_str()), "{list}");

    // Every one of the first farmer's products leaves at once, with one of
    // the other's: the page's count reaches zero and the page leaves the list.
    let unlistings = products
        .iter()
        .filter(|(_, token)| *token == farmers[0])
        .chain(products.iter().filter(|(_, token)| *token == farmers[1]).take(1))
        .map(|(product, token)| {
            let request = app.client.delete(app.url(&format!("/products/{product}"))).bearer_auth(token);
            async move { request.send().await.unwrap() }
        });
    for response in futures::future::join_all(unlistings).await {
        assert_eq!(response.status(), 204);
    }
    let category: Value = app.get(&path, None).await.json().await.unwrap();
    assert_eq!(category["productCount"], 5);
    let page: Value = app.get(&farmer_path, None).await.json().await.unwrap();
    assert_eq!(page["listedProducts"], 0);
    let list: Value = app.get("/farmers?region=Flanders", None).await.json().await.unwrap();
    assert!(list["items"].as_array().unwrap().iter().all(|f| f["id"] != farmer_ids[0].as_str()), "{list}");
}

#[tokio::test]
async fn writes_need_an_admin() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let created = create(&app, &admin, json!({"name": "Herbs"})).await;
    let path = format!("/categories/{}", created["id"].as_str().unwrap());
    let customer = access_token(&app.register(&unique_email("c"), "customer").await);
    let patch =
        app.client.patch(app.url(&path)).bearer_auth(&customer).json(&json!({"name": "X"})).send().await.unwrap();
    assert_problem(patch, 403).await;
    let delete = app.client.delete(app.url(&path)).bearer_auth(&customer).send().await.unwrap();
    assert_problem(delete, 403).await;
    let anonymous = app.client.delete(app.url(&path)).send().await.unwrap();
    assert_problem(anonymous, 401).await;
}

crate::helpers::scenarios!(
    embedded: [
        pagination_returns_each_category_once_in_name_order,
        a_burst_of_listings_into_one_category_all_land_and_count_exactly,
    ],
);
