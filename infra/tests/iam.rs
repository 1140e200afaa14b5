//! Least privilege, verified: every function's policy statements in
//! `template.yaml` (actions, resources, conditions) must equal the table below,
//! so a widened grant is a visible diff here; no action may use a wildcard. Also
//! the `/auth/*` routes are throttled below the stage default, and the assets
//! bucket is versioned with noncurrent versions expiring.

use std::collections::BTreeMap;
use std::path::Path;

use serde_norway::Value;

/// One statement as the table states it: sid, actions, resource, condition.
type Statement = (String, Vec<String>, String, String);

/// A statement in the expected table: sid, actions, resource, condition (JSON).
type Grant = (&'static str, &'static [&'static str], &'static str, &'static str);

/// What each function may do. Keys are prefixes of the single table's items
/// (`dynamodb:LeadingKeys`); index queries carry no key condition (it names the
/// table's partition key only).
const EXPECTED: &[(&str, &[Grant])] = &[
    (
        "HealthFunction",
        &[(
            "PingTable",
            &["dynamodb:GetItem"],
            "!GetAtt Table.Arn",
            r#"{"ForAllValues:StringEquals":{"dynamodb:LeadingKeys":["HEALTH#PING"]}}"#,
        )],
    ),
    (
        "AuthFunction",
        &[
            (
                "ReadWriteItems",
                &["dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"],
                "!GetAtt Table.Arn",
                r#"{"ForAllValues:StringLike":{"dynamodb:LeadingKeys":["USER#*","EMAIL#*","SESSION#*","THROTTLE#*"]}}"#,
            ),
            ("ReadSigningKey", &["secretsmanager:GetSecretValue"], "!Ref SigningKeySecretArn", ""),
        ],
    ),
    (
        "CategoriesFunction",
        &[
            (
                "ReadWriteItems",
                &["dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem"],
                "!GetAtt Table.Arn",
                r#"{"ForAllValues:StringLike":{"dynamodb:LeadingKeys":["CATEGORY#*","SLUG#*"]}}"#,
            ),
            ("QueryIndexes", &["dynamodb:Query"], "!Sub ${Table.Arn}/index/*", ""),
        ],
    ),
    (
        "ProductsFunction",
        &[
            (
                "ReadWriteItems",
                &["dynamodb:ConditionCheckItem", "dynamodb:GetItem", "dynamodb:PutItem"],
                "!GetAtt Table.Arn",
                r#"{"ForAllValues:StringLike":{"dynamodb:LeadingKeys":["PRODUCT#*","CATEGORY#*","IDEMPOTENCY#*","UPLOAD#*"]}}"#,
            ),
            ("QueryIndexes", &["dynamodb:Query"], "!Sub ${Table.Arn}/index/*", ""),
            ("PresignUploads", &["s3:PutObject"], "!Sub ${AssetsBucket.Arn}/incoming/*", ""),
        ],
    ),
    (
        "WorkerFunction",
        &[
            (
                "ReadWriteItems",
                &["dynamodb:ConditionCheckItem", "dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem"],
                "!GetAtt Table.Arn",
                r#"{"ForAllValues:StringLike":{"dynamodb:LeadingKeys":["PRODUCT#*","CATEGORY#*","UPLOAD#*"]}}"#,
            ),
            ("ConsumeUploads", &["s3:DeleteObject", "s3:GetObject"], "!Sub ${AssetsBucket.Arn}/incoming/*", ""),
            ("TellMissingUploads", &["s3:ListBucket"], "!GetAtt AssetsBucket.Arn", ""),
            ("PublishThumbnails", &["s3:PutObject"], "!Sub ${AssetsBucket.Arn}/public/*", ""),
        ],
    ),
];

fn template() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
    serde_norway::from_str(&std::fs::read_to_string(path).expect("read template.yaml")).expect("template.yaml parses")
}

/// A value as one line: intrinsic functions as `!Tag value`, the rest as JSON.
fn render(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(text) => text.clone(),
        Value::Tagged(tagged) => {
            format!("!{} {}", tagged.tag.to_string().trim_start_matches('!'), render(&tagged.value))
        }
        other => serde_json::to_string(&serde_json::to_value(other).expect("JSON-shaped")).expect("serializes"),
    }
}

fn as_list(value: &Value) -> Vec<String> {
    match value {
        Value::Sequence(items) => items.iter().map(render).collect(),
        other => vec![render(other)],
    }
}

/// Every function's statements, as the template states them.
fn policies(template: &Value) -> BTreeMap<String, Vec<Statement>> {
    let mut found = BTreeMap::new();
    for (id, resource) in template["Resources"].as_mapping().expect("Resources") {
        if resource["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let mut statements = Vec::new();
        for policy in resource["Properties"]["Policies"].as_sequence().into_iter().flatten() {
            for statement in policy["Statement"].as_sequence().expect("a policy document with statements") {
                assert_eq!(statement["Effect"].as_str(), Some("Allow"), "{statement:?}");
                let mut actions = as_list(&statement["Action"]);
                actions.sort();
                statements.push((
                    render(&statement["Sid"]),
                    actions,
                    as_list(&statement["Resource"]).join(", "),
                    render(&statement["Condition"]),
                ));
            }
        }
        found.insert(id.as_str().expect("a logical id").to_owned(), statements);
    }
    found
}

fn expected() -> BTreeMap<String, Vec<Statement>> {
    EXPECTED
        .iter()
        .map(|(function, statements)| {
            let statements = statements
                .iter()
                .map(|(sid, actions, resource, condition)| {
                    let mut actions: Vec<String> = actions.iter().map(|a| (*a).to_owned()).collect();
                    actions.sort();
                    ((*sid).to_owned(), actions, (*resource).to_owned(), (*condition).to_owned())
                })
                .collect();
            ((*function).to_owned(), statements)
        })
        .collect()
}

/// One line per difference between the template's grants and the table.
fn differences(found: &BTreeMap<String, Vec<Statement>>) -> Vec<String> {
    let mut diffs = Vec::new();
    let wanted = expected();
    for (function, statements) in found {
        for (sid, actions, _, _) in statements {
            for action in actions.iter().filter(|a| a.contains('*')) {
                diffs.push(format!("{function} {sid}: wildcard action {action}"));
            }
        }
        match wanted.get(function) {
            None => diffs.push(format!("{function}: not in the expected table")),
            Some(expected) if expected != statements => {
                diffs.push(format!("{function}:\n    template {statements:?}\n    expected {expected:?}"))
            }
            Some(_) => {}
        }
    }
    for function in wanted.keys().filter(|f| !found.contains_key(*f)) {
        diffs.push(format!("{function}: expected but not in the template"));
    }
    diffs
}

#[test]
fn every_function_holds_exactly_the_grants_in_the_table() {
    let diffs = differences(&policies(&template()));
    assert!(diffs.is_empty(), "policies differ from the table:\n  {}", diffs.join("\n  "));
}

#[test]
fn a_widened_grant_is_reported() {
    let template = template();
    let mut found = policies(&template);
    found.get_mut("ProductsFunction").unwrap()[0].1.push("dynamodb:*".into());
    let diffs = differences(&found);
    assert!(diffs.iter().any(|d| d.contains("wildcard action dynamodb:*")), "{diffs:?}");
    let mut found = policies(&template);
    found.get_mut("HealthFunction").unwrap()[0].2 = "*".into();
    assert_eq!(differences(&found).len(), 1);
    let mut found = policies(&template);
    found.get_mut("AuthFunction").unwrap()[0].3 = String::new();
    assert_eq!(differences(&found).len(), 1, "dropping a key condition is reported");
}

#[test]
fn auth_routes_are_throttled_below_the_stage_default() {
    let template = template();
    let settings = &template["Mappings"]["StageSettings"];
    for stage in ["dev", "prod"] {
        let stage = &settings[stage];
        for limit in ["BurstLimit", "RateLimit"] {
            let auth = stage[format!("AuthThrottling{limit}").as_str()].as_u64().expect("auth limit");
            let default = stage[format!("Throttling{limit}").as_str()].as_u64().expect("default limit");
            assert!(auth < default, "{limit}: auth {auth} is not below the default {default}");
        }
    }
    let routes = template["Resources"]["HttpApi"]["Properties"]["RouteSettings"].as_mapping().expect("RouteSettings");
    for route in ["POST /auth/register", "POST /auth/login", "POST /auth/refresh", "POST /auth/logout"] {
        let setting = &routes[route];
        assert!(render(&setting["ThrottlingBurstLimit"]).contains("AuthThrottlingBurstLimit"), "{route}");
        assert!(render(&setting["ThrottlingRateLimit"]).contains("AuthThrottlingRateLimit"), "{route}");
    }
}

#[test]
fn the_assets_bucket_keeps_overwritten_and_deleted_photos_for_30_days() {
    let template = template();
    let bucket = &template["Resources"]["AssetsBucket"]["Properties"];
    assert_eq!(bucket["VersioningConfiguration"]["Status"].as_str(), Some("Enabled"));
    let rules = bucket["LifecycleConfiguration"]["Rules"].as_sequence().expect("lifecycle rules");
    let noncurrent = rules
        .iter()
        .find(|rule| rule["Prefix"].is_null() && !rule["NoncurrentVersionExpiration"].is_null())
        .expect("a bucket-wide noncurrent version rule");
    assert_eq!(noncurrent["NoncurrentVersionExpiration"]["NoncurrentDays"].as_u64(), Some(30));
    assert!(rules.iter().any(|rule| rule["ExpiredObjectDeleteMarker"].as_bool() == Some(true)));
}
