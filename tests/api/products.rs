//! Products: roles and ownership, optimistic concurrency (`If-Match` → 412),
//! ETags and 304, bad input, idempotent creates, and browse pagination with every
//! filter and sort (250 products walked page by page against an independent
//! model). Every scenario runs on both backends.

use std::collections::HashSet;

use serde_json::{json, Value};

use crate::helpers::{access_token, assert_problem, unique_email, TestApp};

async fn create_category(app: &TestApp, admin: &str, name: &str) -> String {
    let response = app.post("/categories", &json!({ "name": name }), Some(admin)).await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    body["id"].as_str().unwrap().to_owned()
}

fn product_body(category: &str) -> Value {
    json!({
        "name": "Heirloom Tomatoes",
        "description": "Mixed colours, picked ripe.",
        "categoryId": category,
        "price": 450,
        "unit": "kg",
        "stock": 12,
        "harvestDate": "2026-11-20",
    })
}

async fn create_product(app: &TestApp, farmer: &str, body: &Value) -> Value {
    let response = app.post("/products", body, Some(farmer)).await;
    assert_eq!(response.status(), 201, "create {body}");
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let created: Value = response.json().await.unwrap();
    assert_eq!(location, format!("/products/{}", created["id"].as_str().unwrap()));
    assert_eq!(etag, format!("\"{}\"", created["version"]));
    created
}

async fn patch(app: &TestApp, path: &str, token: &str, body: &Value, if_match: Option<&str>) -> reqwest::Response {
    let mut request = app.client.patch(app.url(path)).bearer_auth(token).json(body);
    if let Some(tag) = if_match {
        request = request.header("if-match", tag);
    }
    request.send().await.unwrap()
}

async fn delete(app: &TestApp, path: &str, token: &str) -> reqwest::Response {
    app.client.delete(app.url(path)).bearer_auth(token).send().await.unwrap()
}

/// A category, two farmers, a customer and an admin.
struct Cast {
    category: String,
    farmer_a: String,
    farmer_b: String,
    customer: String,
    admin: String,
}

async fn cast(app: &TestApp) -> Cast {
    let admin = app.admin_token().await;
    Cast {
        category: create_category(app, &admin, "Vegetables").await,
        farmer_a: access_token(&app.register(&unique_email("ana"), "farmer").await),
        farmer_b: access_token(&app.register(&unique_email("ben"), "farmer").await),
        customer: access_token(&app.register(&unique_email("cleo"), "customer").await),
        admin,
    }
}

async fn only_farmers_create_and_only_owners_or_admins_change_products(app: TestApp) {
    let cast = cast(&app).await;
    let body = product_body(&cast.category);
    assert_problem(app.post("/products", &body, Some(&cast.customer)).await, 403).await;
    assert_problem(app.post("/products", &body, Some(&cast.admin)).await, 403).await;
    assert_problem(app.post("/products", &body, None).await, 401).await;

    let product = create_product(&app, &cast.farmer_a, &body).await;
    assert_eq!(product["inStock"], true);
    assert_eq!(product["images"], json!([]));
    let path = format!("/products/{}", product["id"].as_str().unwrap());

    // Farmer B may neither edit nor unlist farmer A's product, nor ask to upload to it.
    assert_problem(patch(&app, &path, &cast.farmer_b, &json!({"price": 1}), None).await, 403).await;
    assert_problem(delete(&app, &path, &cast.farmer_b).await, 403).await;
    assert_problem(patch(&app, &path, &cast.customer, &json!({"price": 1}), None).await, 403).await;
    let ticket = json!({"contentType": "image/jpeg", "size": 1000});
    assert_problem(app.post(&format!("{path}/images"), &ticket, Some(&cast.farmer_b)).await, 403).await;
    let unchanged: Value = app.get(&path, None).await.json().await.unwrap();
    assert_eq!(unchanged["price"], 450);

    // The owner may, and so may an admin.
    let response = patch(&app, &path, &cast.farmer_a, &json!({"stock": 0}), None).await;
    assert_eq!(response.status(), 200);
    let patched: Value = response.json().await.unwrap();
    assert_eq!(
        (patched["stock"].clone(), patched["inStock"].clone(), patched["version"].clone()),
        (json!(0), json!(false), json!(2))
    );
    let response = patch(&app, &path, &cast.admin, &json!({"price": 500, "description": null}), None).await;
    assert_eq!(response.status(), 200);
    let patched: Value = response.json().await.unwrap();
    assert_eq!((patched["price"].clone(), patched["description"].clone()), (json!(500), json!("")));
    assert_eq!(delete(&app, &path, &cast.admin).await.status(), 204);
    // Unlisted: gone from reads and browse; unlisting again is idempotent.
    assert_problem(app.get(&path, None).await, 404).await;
    let list: Value = app.get("/products", None).await.json().await.unwrap();
    assert_eq!(list["items"], json!([]));
    assert_eq!(delete(&app, &path, &cast.farmer_a).await.status(), 204);
    assert_problem(patch(&app, &path, &cast.farmer_a, &json!({"price": 1}), None).await, 404).await;
}

async fn reads_send_etags_answer_304_and_a_stale_if_match_is_412(app: TestApp) {
    let cast = cast(&app).await;
    let product = create_product(&app, &cast.farmer_a, &product_body(&cast.category)).await;
    let path = format!("/products/{}", product["id"].as_str().unwrap());

    let first = app.get(&path, None).await;
    assert_eq!(first.status(), 200);
    let cache = first.headers()["cache-control"].to_str().unwrap().to_owned();
    assert!(cache.starts_with("public, max-age=") && cache.contains("stale-while-revalidate="), "{cache}");
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    let again = app.client.get(app.url(&path)).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(again.status(), 304);
    assert_eq!(again.headers()["etag"], etag.as_str());
    let list = app.get("/products", None).await;
    let list_etag = list.headers()["etag"].to_str().unwrap().to_owned();
    let again = app.client.get(app.url("/products")).header("if-none-match", &list_etag).send().await.unwrap();
    assert_eq!(again.status(), 304);

    // A matching If-Match applies; the old one is then stale: 412, nothing changes.
    let response = patch(&app, &path, &cast.farmer_a, &json!({"price": 475}), Some(&etag)).await;
    assert_eq!(response.status(), 200);
    let new_etag = response.headers()["etag"].to_str().unwrap().to_owned();
    assert_ne!(new_etag, etag);
    let stale = patch(&app, &path, &cast.farmer_a, &json!({"price": 999}), Some(&etag)).await;
    assert_problem(stale, 412).await;
    let current: Value = app.get(&path, None).await.json().await.unwrap();
    assert_eq!((current["price"].clone(), current["version"].clone()), (json!(475), json!(2)));
    // The old ETag no longer answers 304.
    let response = app.client.get(app.url(&path)).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(response.status(), 200);
}

async fn concurrent_patches_without_if_match_all_apply(app: TestApp) {
    let cast = cast(&app).await;
    let product = create_product(&app, &cast.farmer_a, &product_body(&cast.category)).await;
    let path = format!("/products/{}", product["id"].as_str().unwrap());
    let patches = (0..6).map(|i| {
        let (app, path, token) = (&app, &path, &cast.farmer_a);
        async move { patch(app, path, token, &json!({ "stock": 20 + i }), None).await.status() }
    });
    let statuses = futures::future::join_all(patches).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let current: Value = app.get(&path, None).await.json().await.unwrap();
    assert_eq!(current["version"], 7, "each patch applied on top of the last");
}

async fn bad_product_input_is_4xx_with_field_errors(app: TestApp) {
    let cast = cast(&app).await;
    let base = product_body(&cast.category);
    let with = |field: &str, value: Value| {
        let mut body = base.clone();
        body[field] = value;
        body
    };
    let cases = [
        ("price", with("price", json!(-5))),
        ("price", with("price", json!(0))),
        ("price", with("price", json!("4.50"))),
        ("price", with("price", json!(4.5))),
        ("stock", with("stock", json!(1_000_000_000_000i64))),
        ("stock", with("stock", json!(-1))),
        ("unit", with("unit", json!("tonne"))),
        ("unit", with("unit", json!(3))),
        ("categoryId", with("categoryId", json!("01ARZ3NDEKTSV4RRFFQ69G5FAV"))),
        ("categoryId", with("categoryId", json!("not-an-id"))),
        ("name", with("name", json!("x".repeat(10_000)))),
        ("name", with("name", json!(["a list"]))),
        ("harvestDate", with("harvestDate", json!("2026-02-30"))),
        ("name", json!({"categoryId": cast.category, "price": 1, "unit": "kg", "stock": 1})),
    ];
    for (field, body) in cases {
        let problem = assert_problem(app.post("/products", &body, Some(&cast.farmer_a)).await, 422).await;
        let fields: Vec<&str> =
            problem["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
        assert!(fields.contains(&field), "{field} for {body}: {problem}");
    }
    // Invalid UTF-8 and malformed JSON are 400; another media type 415.
    let raw = |bytes: Vec<u8>, content_type: &'static str| {
        app.client
            .post(app.url("/products"))
            .bearer_auth(&cast.farmer_a)
            .header("content-type", content_type)
            .body(bytes)
    };
    let mut invalid = br#"{"name": "Tomatoes "#.to_vec();
    invalid.extend([0xff, 0xfe]);
    invalid.extend(br#"", "price": 1}"#);
    assert_problem(raw(invalid, "application/json").send().await.unwrap(), 400).await;
    assert_problem(raw(b"{".to_vec(), "application/json").send().await.unwrap(), 400).await;
    assert_problem(raw(b"name=x".to_vec(), "application/x-www-form-urlencoded").send().await.unwrap(), 415).await;

    // PATCH validates the same way, and changes nothing.
    let product = create_product(&app, &cast.farmer_a, &base).await;
    let path = format!("/products/{}", product["id"].as_str().unwrap());
    for (field, body) in
        [("price", json!({"price": -1})), ("unit", json!({"unit": "ton"})), ("description", json!({"description": 5}))]
    {
        let problem = assert_problem(patch(&app, &path, &cast.farmer_a, &body, None).await, 422).await;
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
    }
    let unknown_category = json!({"categoryId": "01ARZ3NDEKTSV4RRFFQ69G5FAV"});
    let problem = assert_problem(patch(&app, &path, &cast.farmer_a, &unknown_category, None).await, 422).await;
    assert_eq!(problem["errors"][0]["field"], "categoryId");
    let current: Value = app.get(&path, None).await.json().await.unwrap();
    assert_eq!(current["version"], 1);

    // Browse parameters.
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("sort=cheapest", "sort"),
        ("minPrice=-1", "minPrice"),
        ("minPrice=500&maxPrice=100", "maxPrice"),
        ("inStock=yes", "inStock"),
        ("category=nope", "category"),
    ] {
        let problem = assert_problem(app.get(&format!("/products?{query}"), None).await, 422).await;
        assert_eq!(problem["errors"][0]["field"], field, "{query}: {problem}");
    }
    // Image tickets: wrong type 415, too large 413, before any ticket exists.
    let images = format!("{path}/images");
    let gif = json!({"contentType": "image/gif", "size": 100});
    assert_problem(app.post(&images, &gif, Some(&cast.farmer_a)).await, 415).await;
    let huge = json!({"contentType": "image/jpeg", "size": 6 * 1024 * 1024});
    assert_problem(app.post(&images, &huge, Some(&cast.farmer_a)).await, 413).await;
    let empty = json!({"contentType": "image/jpeg", "size": 0});
    assert_problem(app.post(&images, &empty, Some(&cast.farmer_a)).await, 422).await;
}

/// One product of the model the browse walk is checked against.
#[derive(Debug, Clone)]
struct Model {
    id: String,
    farmer: usize,
    category: usize,
    price: i64,
    stock: i64,
    name: String,
}

/// 250 products over 4 categories and 3 farmers, with repeated prices (so ties
/// are ordered by id), some out of stock, and names drawn from a few words,
/// created `parallel` at a time (so creations race on the categories' counts).
async fn seed_catalogue(app: &TestApp, parallel: usize) -> (Vec<String>, Vec<String>, Vec<Model>) {
    let admin = app.admin_token().await;
    let mut categories = Vec::new();
    for name in ["Vegetables", "Fruit", "Dairy", "Herbs"] {
        categories.push(create_category(app, &admin, name).await);
    }
    let mut farmers = Vec::new();
    let mut farmer_ids = Vec::new();
    for name in ["ana", "ben", "cai"] {
        let session = app.register(&unique_email(name), "farmer").await;
        farmer_ids.push(session["user"]["id"].as_str().unwrap().to_owned());
        farmers.push(access_token(&session));
    }
    let adjectives = ["Red", "Green", "Heirloom", "Wild", "Sweet"];
    let nouns = ["Tomatoes", "Apples", "Kale", "Honey"];
    let specs: Vec<(usize, usize, i64, i64, String)> = (0..250usize)
        .map(|i| {
            let name = format!("{} {} no {i}", adjectives[i % 5], nouns[(i / 5) % 4]);
            (i % 3, (i * 7) % 4, 100 + ((i * 37) % 50) as i64 * 10, (i % 6) as i64, name)
        })
        .collect();
    let mut models = Vec::new();
    for chunk in specs.chunks(parallel) {
        let creations = chunk.iter().map(|(farmer, category, price, stock, name)| {
            let body = json!({
                "name": name, "categoryId": categories[*category], "price": price, "unit": "kg", "stock": stock,
            });
            let token = farmers[*farmer].clone();
            async move { (app.post("/products", &body, Some(&token)).await, body) }
        });
        for ((response, body), (farmer, category, price, stock, name)) in
            futures::future::join_all(creations).await.into_iter().zip(chunk)
        {
            assert_eq!(response.status(), 201, "{body}");
            let created: Value = response.json().await.unwrap();
            models.push(Model {
                id: created["id"].as_str().unwrap().to_owned(),
                farmer: *farmer,
                category: *category,
                price: *price,
                stock: *stock,
                name: name.clone(),
            });
        }
    }
    (categories, farmer_ids, models)
}

/// Walks every page of `/products?<query>` with page size `limit`.
async fn walk(app: &TestApp, query: &str, limit: usize) -> (Vec<Value>, usize) {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut url = format!("/products?{query}&limit={limit}");
        if let Some(cursor) = &cursor {
            url.push_str(&format!("&cursor={cursor}"));
        }
        let response = app.get(&url, None).await;
        assert_eq!(response.status(), 200, "{url}");
        let page: Value = response.json().await.unwrap();
        let page_items = page["items"].as_array().unwrap();
        assert!(page_items.len() <= limit);
        items.extend(page_items.iter().cloned());
        pages += 1;
        assert!(pages < 400, "{query}: the walk does not end");
        match page["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return (items, pages),
        }
    }
}

async fn browse_walks_every_filter_in_order(app: TestApp) {
    let (categories, farmers, models) = seed_catalogue(&app, 10).await;
    let newest = |a: &&Model, b: &&Model| b.id.cmp(&a.id);
    let cheapest = |a: &&Model, b: &&Model| (a.price, &a.id).cmp(&(b.price, &b.id));
    type Filter<'a> = Box<dyn Fn(&Model) -> bool + 'a>;
    type Order = fn(&&Model, &&Model) -> std::cmp::Ordering;
    let cases: Vec<(String, Filter, Order)> = vec![
        ("sort=newest".into(), Box::new(|_| true), newest),
        (format!("category={}", categories[1]), Box::new(|m| m.category == 1), newest),
        (format!("farmer={}", farmers[2]), Box::new(|m| m.farmer == 2), newest),
        ("inStock=true".into(), Box::new(|m| m.stock > 0), newest),
        ("inStock=false".into(), Box::new(|m| m.stock == 0), newest),
        ("minPrice=200&maxPrice=350".into(), Box::new(|m| (200..=350).contains(&m.price)), newest),
        ("sort=price_asc".into(), Box::new(|_| true), cheapest),
        ("sort=price_desc".into(), Box::new(|_| true), |a, b| (b.price, &b.id).cmp(&(a.price, &a.id))),
        (
            format!("sort=price_asc&minPrice=250&maxPrice=400&category={}", categories[2]),
            Box::new(|m| m.category == 2 && (250..=400).contains(&m.price)),
            cheapest,
        ),
        (format!("sort=price_desc&farmer={}", farmers[0]), Box::new(|m| m.farmer == 0), |a, b| {
            (b.price, &b.id).cmp(&(a.price, &a.id))
        }),
        (
            format!("farmer={}&category={}&inStock=true", farmers[1], categories[3]),
            Box::new(|m| m.farmer == 1 && m.category == 3 && m.stock > 0),
            newest,
        ),
        ("q=HEIRLOOM%20kale".into(), Box::new(|m| m.name.starts_with("Heirloom Kale")), newest),
        ("q=honey&sort=price_asc".into(), Box::new(|m| m.name.contains("Honey")), cheapest),
        ("q=nothing-matches".into(), Box::new(|_| false), newest),
    ];
    for (query, filter, order) in cases {
        let mut expected: Vec<&Model> = models.iter().filter(|m| filter(m)).collect();
        expected.sort_by(order);
        let expected: Vec<&str> = expected.iter().map(|m| m.id.as_str()).collect();
        let (items, pages) = walk(&app, &query, 17).await;
        let got: Vec<&str> = items.iter().map(|p| p["id"].as_str().unwrap()).collect();
        let unique: HashSet<&&str> = got.iter().collect();
        assert_eq!(unique.len(), got.len(), "{query}: a product came back twice");
        assert_eq!(got, expected, "{query}: every match once, in order");
        assert!(pages >= expected.len().div_ceil(17), "{query}");
    }

    // A tampered cursor, or one from another query, is 400.
    let first: Value = app.get("/products?limit=5", None).await.json().await.unwrap();
    let cursor = first["nextCursor"].as_str().unwrap().to_owned();
    let mut tampered = cursor.clone().into_bytes();
    let middle = tampered.len() / 2;
    tampered[middle] = if tampered[middle] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    for bad in [tampered.as_str(), "garbage", &format!("{cursor}x")] {
        assert_problem(app.get(&format!("/products?limit=5&cursor={bad}"), None).await, 400).await;
    }
    let foreign = format!("/products?limit=5&sort=price_asc&cursor={cursor}");
    assert_problem(app.get(&foreign, None).await, 400).await;
    let foreign = format!("/products?limit=5&inStock=true&cursor={cursor}");
    assert_problem(app.get(&foreign, None).await, 400).await;
    let categories_page: Value = app.get("/categories?limit=1", None).await.json().await.unwrap();
    let category_cursor = categories_page["nextCursor"].as_str().unwrap();
    assert_problem(app.get(&format!("/products?cursor={category_cursor}"), None).await, 400).await;
}

async fn a_create_repeated_with_its_idempotency_key_makes_one_product(app: TestApp) {
    let cast = cast(&app).await;
    let body = product_body(&cast.category);
    let post = |token: String, key: &'static str, body: String| {
        let request = app.client.post(app.url("/products")).bearer_auth(token).header("idempotency-key", key);
        async move { request.header("content-type", "application/json").body(body).send().await.unwrap() }
    };
    let first = post(cast.farmer_a.clone(), "order-form-1", body.to_string()).await;
    assert_eq!(first.status(), 201);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.unwrap();

    // The same request again, laid out differently: the same product, replayed.
    let relaid = serde_json::to_string_pretty(&body).unwrap();
    let again = post(cast.farmer_a.clone(), "order-form-1", relaid).await;
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["id"], first["id"]);

    // Racing repeats of a new key: one product.
    let racing = (0..5).map(|_| post(cast.farmer_a.clone(), "order-form-2", body.to_string()));
    let responses = futures::future::join_all(racing).await;
    let mut ids = HashSet::new();
    for response in responses {
        assert_eq!(response.status(), 201);
        ids.insert(response.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), 1, "{ids:?}");

    // Another body under a used key is refused; keys are per farmer.
    let mut other = body.clone();
    other["price"] = json!(999);
    let problem = assert_problem(post(cast.farmer_a.clone(), "order-form-1", other.to_string()).await, 422).await;
    assert_eq!(problem["errors"][0]["field"], "Idempotency-Key");
    let theirs = post(cast.farmer_b.clone(), "order-form-1", body.to_string()).await;
    assert_eq!(theirs.status(), 201);
    assert_ne!(theirs.json::<Value>().await.unwrap()["id"], first["id"]);
    assert_problem(post(cast.farmer_a.clone(), "has spaces", body.to_string()).await, 400).await;

    let listed: Value = app.get("/products", None).await.json().await.unwrap();
    assert_eq!(listed["items"].as_array().unwrap().len(), 3, "one per distinct (farmer, key)");
    let category: Value = app.get(&format!("/categories/{}", cast.category), None).await.json().await.unwrap();
    assert_eq!(category["productCount"], 3);
}

crate::helpers::scenarios!(
    embedded: [
        only_farmers_create_and_only_owners_or_admins_change_products,
        reads_send_etags_answer_304_and_a_stale_if_match_is_412,
        concurrent_patches_without_if_match_all_apply,
        bad_product_input_is_4xx_with_field_errors,
        browse_walks_every_filter_in_order,
        a_create_repeated_with_its_idempotency_key_makes_one_product,
    ],
);
