//! Least privilege, verified: every function's policy statements in
//! `template.yaml` (sid, effect, actions, resources, conditions) must equal the
//! table below, so a widened grant is a visible diff here. No Allow statement
//! anywhere in the template may use a wildcard action or `Resource: "*"`, and
//! every item prefix the table grants must be one the code writes. Also: the
//! credential routes (`POST /auth/*`) are throttled below the stage default in
//! every stage, and the assets bucket is versioned with noncurrent versions
//! expiring after 30 days while `incoming/` keeps expiring after a day. Each
//! check has a companion that breaks the parsed template in memory and expects
//! the check to say so, so none can pass vacuously.
//!
//! Why each statement exists is said next to it in `template.yaml`. Item
//! statements are scoped by `dynamodb:LeadingKeys` (the partition key of the
//! items an action touches); index queries have statements of their own, scoped
//! by index ARN, since that key names the table's partition key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use infra::template::Template;
use serde_norway::{Mapping, Value};

/// One statement as the table states it: sid, actions, resources, condition.
type Statement = (String, Vec<String>, String, String);

/// `ForAllValues:StringLike` on `dynamodb:LeadingKeys`, as the template writes it.
macro_rules! keys {
    ($($prefix:literal),+) => {
        concat!(r#"{"ForAllValues:StringLike":{"dynamodb:LeadingKeys":["#, keys!(@list $($prefix),+), "]}}")
    };
    (@list $first:literal $(, $rest:literal)*) => { concat!("\"", $first, "\"" $(, ",\"", $rest, "\"")*) };
}

const TABLE: &str = "!GetAtt Table.Arn";

/// A row of the table: sid, actions, resources (joined by `, `), condition.
type Row = (&'static str, &'static [&'static str], &'static str, &'static str);

/// What each function may do, statement by statement (`Effect: Allow` always).
const EXPECTED: &[(&str, &[Row])] = &[
    ("HealthFunction", &[("PingTable", &["dynamodb:GetItem"], TABLE, keys!("HEALTH#PING"))]),
    (
        "AuthFunction",
        &[
            (
                "ReadWriteAccounts",
                &["dynamodb:GetItem", "dynamodb:PutItem"],
                TABLE,
                keys!("USER#*", "EMAIL#*", "SESSION#*", "LINKTOKEN#*", "OUTBOX"),
            ),
            (
                "CountAttempts",
                &["dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:UpdateItem"],
                TABLE,
                keys!("THROTTLE#*"),
            ),
            ("ReadSigningKey", &["secretsmanager:GetSecretValue"], "!Ref SigningKeySecretArn", ""),
            ("QueueJobs", &["sqs:SendMessage"], "!GetAtt JobsQueue.Arn", ""),
        ],
    ),
    (
        "CategoriesFunction",
        &[
            ("ReadCategories", &["dynamodb:GetItem"], TABLE, keys!("CATEGORY#*")),
            ("CheckAdmin", &["dynamodb:GetItem"], TABLE, keys!("USER#*")),
            ("WriteCategories", &["dynamodb:DeleteItem", "dynamodb:PutItem"], TABLE, keys!("CATEGORY#*", "SLUG#*")),
            ("ListCategories", &["dynamodb:Query"], "!Sub ${Table.Arn}/index/gsi1", ""),
            ("SignCursors", &["dynamodb:GetItem", "dynamodb:PutItem"], TABLE, keys!("CURSORKEY")),
        ],
    ),
    (
        "ProductsFunction",
        &[
            (
                "ReadCatalogue",
                &["dynamodb:GetItem"],
                TABLE,
                keys!("PRODUCT#*", "CATEGORY#*", "FARMER#*", "IDEMPOTENCY#*", "USER#*"),
            ),
            (
                "WriteCatalogue",
                &["dynamodb:PutItem"],
                TABLE,
                keys!("PRODUCT#*", "CATEGORY#*", "FARMER#*", "IDEMPOTENCY#*", "UPLOAD#*"),
            ),
            ("CheckItems", &["dynamodb:ConditionCheckItem"], TABLE, keys!("CATEGORY#*", "PRODUCT#*", "USER#*")),
            ("CountTickets", &["dynamodb:GetItem", "dynamodb:UpdateItem"], TABLE, keys!("THROTTLE#*")),
            (
                "BrowseIndexes",
                &["dynamodb:Query"],
                "!Sub ${Table.Arn}/index/gsi1, !Sub ${Table.Arn}/index/gsi2, !Sub ${Table.Arn}/index/gsi3, \
                 !Sub ${Table.Arn}/index/gsi4, !Sub ${Table.Arn}/index/gsi5, !Sub ${Table.Arn}/index/gsi6",
                "",
            ),
            ("PresignUploads", &["s3:PutObject"], "!Sub ${AssetsBucket.Arn}/incoming/*", ""),
            ("SignCursors", &["dynamodb:GetItem", "dynamodb:PutItem"], TABLE, keys!("CURSORKEY")),
        ],
    ),
    (
        "UsersFunction",
        &[
            (
                "ReadWriteAccounts",
                &["dynamodb:GetItem", "dynamodb:PutItem"],
                TABLE,
                keys!("USER#*", "FARMER#*", "OUTBOX", "ERASURE"),
            ),
            ("EraseAccounts", &["dynamodb:DeleteItem"], TABLE, keys!("EMAIL#*", "FARMER#*")),
            ("CountAttempts", &["dynamodb:GetItem", "dynamodb:UpdateItem"], TABLE, keys!("THROTTLE#*", "NOTIF#*")),
            (
                "ReadNotificationsAndSales",
                &["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query"],
                TABLE,
                keys!("NOTIF#*", "SALES#*"),
            ),
            ("ListAccounts", &["dynamodb:Query"], "!Sub ${Table.Arn}/index/gsi7", ""),
            ("SignCursors", &["dynamodb:GetItem", "dynamodb:PutItem"], TABLE, keys!("CURSORKEY")),
        ],
    ),
    (
        "OrdersFunction",
        &[
            (
                "ReadOrdersAndCatalogue",
                &["dynamodb:GetItem"],
                TABLE,
                keys!(
                    "USER#*",
                    "PRODUCT#*",
                    "FARMER#*",
                    "ORDER#*",
                    "CHECKOUT#*",
                    "IDEMPOTENCY#*",
                    "OPENORDERS#*",
                    "THROTTLE#*"
                ),
            ),
            (
                "WriteOrders",
                &["dynamodb:PutItem"],
                TABLE,
                keys!("ORDER#*", "CHECKOUT#*", "IDEMPOTENCY#*", "OUTBOX", "OPENORDERS#*"),
            ),
            ("MoveStock", &["dynamodb:UpdateItem"], TABLE, keys!("PRODUCT#*", "OPENORDERS#*", "THROTTLE#*")),
            ("ReadArchivedOrders", &["s3:GetObject"], "!Sub ${DataBucket.Arn}/archive/orders/*", ""),
            (
                "ListOrders",
                &["dynamodb:Query"],
                "!Sub ${Table.Arn}/index/gsi8, !Sub ${Table.Arn}/index/gsi9, !Sub ${Table.Arn}/index/gsi10",
                "",
            ),
            ("SignCursors", &["dynamodb:GetItem", "dynamodb:PutItem"], TABLE, keys!("CURSORKEY")),
        ],
    ),
    (
        "ArchiveFunction",
        &[
            ("FindOldOrders", &["dynamodb:Query"], "!Sub ${Table.Arn}/index/gsi10", ""),
            ("ReadJournal", &["dynamodb:GetItem", "dynamodb:Query"], TABLE, keys!("ARCHIVE", "PHOTOORPHAN", "ORDER#*")),
            (
                "MoveOrders",
                &["dynamodb:DeleteItem", "dynamodb:PutItem"],
                TABLE,
                keys!("ORDER#*", "ARCHIVE", "PHOTOORPHAN"),
            ),
            ("FindReferencedPhotos", &["dynamodb:Scan"], TABLE, ""),
            ("WriteArchive", &["s3:GetObject", "s3:PutObject"], "!Sub ${DataBucket.Arn}/archive/orders/*", ""),
            (
                "ListArchive",
                &["s3:ListBucket"],
                "!GetAtt DataBucket.Arn",
                r#"{"StringLike":{"s3:prefix":["archive/orders/*"]}}"#,
            ),
            (
                "ListPublicPhotos",
                &["s3:ListBucket"],
                "!GetAtt AssetsBucket.Arn",
                r#"{"StringLike":{"s3:prefix":["public/*"]}}"#,
            ),
            ("RemoveUnreferencedPhotos", &["s3:DeleteObject"], "!Sub ${AssetsBucket.Arn}/public/*", ""),
            ("ReadForExpiry", &["dynamodb:GetItem"], TABLE, keys!("PRODUCT#*", "OPENORDERS#*", "ORDEREXPIRY")),
            ("WriteExpiries", &["dynamodb:PutItem"], TABLE, keys!("OUTBOX", "ORDEREXPIRY")),
            ("PutBackStock", &["dynamodb:UpdateItem"], TABLE, keys!("PRODUCT#*", "OPENORDERS#*")),
        ],
    ),
    (
        "BackupFunction",
        &[
            ("ScanTable", &["dynamodb:Scan"], TABLE, ""),
            ("ReadBackupKey", &["secretsmanager:GetSecretValue"], "!Ref BackupKeySecret", ""),
            ("ReadArchive", &["s3:GetObject"], "!Sub ${DataBucket.Arn}/archive/orders/*", ""),
            (
                "WriteBackups",
                &["s3:DeleteObject", "s3:GetObject", "s3:PutObject"],
                "!Sub ${DataBucket.Arn}/backups/*",
                "",
            ),
            (
                "ListBackups",
                &["s3:ListBucket"],
                "!GetAtt DataBucket.Arn",
                r#"{"StringLike":{"s3:prefix":["backups/*"]}}"#,
            ),
        ],
    ),
    (
        "WorkerFunction",
        &[
            (
                "ReadItems",
                &["dynamodb:GetItem"],
                TABLE,
                keys!("UPLOAD#*", "PRODUCT#*", "USER#*", "EMAIL#*", "FARMER#*", "CATEGORY#*"),
            ),
            (
                "WriteProducts",
                &["dynamodb:PutItem"],
                TABLE,
                keys!("PRODUCT#*", "FARMER#*", "CATEGORY#*", "LINKTOKEN#*"),
            ),
            ("CheckCategories", &["dynamodb:ConditionCheckItem"], TABLE, keys!("CATEGORY#*")),
            ("DiscardTickets", &["dynamodb:DeleteItem"], TABLE, keys!("UPLOAD#*")),
            ("ConsumeUploads", &["s3:DeleteObject", "s3:GetObject"], "!Sub ${AssetsBucket.Arn}/incoming/*", ""),
            ("TellMissingUploads", &["s3:ListBucket"], "!GetAtt AssetsBucket.Arn", ""),
            ("PublishImages", &["s3:DeleteObject", "s3:PutObject"], "!Sub ${AssetsBucket.Arn}/public/*", ""),
            ("FindFarmerProducts", &["dynamodb:Query"], "!Sub ${Table.Arn}/index/gsi2", ""),
            (
                "ApplyOrderEvents",
                &["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"],
                TABLE,
                keys!("NOTIF#*", "SALES#*", "APPLIED#*", "OUTBOX"),
            ),
            ("QueueJobs", &["sqs:SendMessage"], "!GetAtt JobsQueue.Arn", ""),
            (
                "SendMail",
                &["ses:SendEmail"],
                "!Sub arn:${AWS::Partition}:ses:${AWS::Region}:${AWS::AccountId}:identity/${MailFromAddress}, \
                 !Sub [\"arn:${AWS::Partition}:ses:${AWS::Region}:${AWS::AccountId}:identity/${Domain}\",\
                 {\"Domain\":{\"!Select\":[1,{\"!Split\":[\"@\",{\"!Ref\":\"MailFromAddress\"}]}]}}], \
                 !If [\"HasMailConfigurationSet\",{\"!Sub\":\"arn:${AWS::Partition}:ses:${AWS::Region}:\
                 ${AWS::AccountId}:configuration-set/${MailConfigurationSet}\"},{\"!Ref\":\"AWS::NoValue\"}]",
                r#"{"StringEquals":{"ses:FromAddress":{"!Ref":"MailFromAddress"}}}"#,
            ),
        ],
    ),
];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("infra/ has a parent").to_owned()
}

fn template() -> Value {
    let path = repo_root().join("template.yaml");
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

fn resources(template: &Value) -> &Mapping {
    template["Resources"].as_mapping().expect("Resources is a mapping")
}

/// Every function's statements, as the template states them. What the table
/// cannot state (a managed policy, a SAM policy template, a statement that is
/// not an Allow, a role of its own) becomes a statement named after it, so it
/// shows up as a difference rather than slipping through.
fn policies(template: &Value) -> BTreeMap<String, Vec<Statement>> {
    let mut found = BTreeMap::new();
    let odd = |what: String| (what, Vec::new(), String::new(), String::new());
    for (id, resource) in resources(template) {
        if resource["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let mut statements = Vec::new();
        if !resource["Properties"]["Role"].is_null() {
            statements.push(odd(format!("<a role of its own: {}>", render(&resource["Properties"]["Role"]))));
        }
        let global = &template["Globals"]["Function"]["Policies"];
        for policy in as_sequence(global).iter().chain(&as_sequence(&resource["Properties"]["Policies"])) {
            let Some(document) = policy["Statement"].as_sequence() else {
                statements.push(odd(format!("<not an inline policy document: {}>", render(policy))));
                continue;
            };
            for statement in document {
                let mut actions = as_list(&statement["Action"]);
                actions.sort();
                let mut sid = render(&statement["Sid"]);
                if statement["Effect"].as_str() != Some("Allow") {
                    sid = format!("{sid} <Effect {}>", render(&statement["Effect"]));
                }
                for unstated in ["NotAction", "NotResource", "Principal"] {
                    if !statement[unstated].is_null() {
                        sid = format!("{sid} <{unstated}>");
                    }
                }
                statements.push((
                    sid,
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

/// A list, or a single value as a list of one (SAM accepts both for Policies).
fn as_sequence(value: &Value) -> Vec<Value> {
    match value {
        Value::Null => Vec::new(),
        Value::Sequence(items) => items.clone(),
        other => vec![other.clone()],
    }
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
        for (sid, actions, resource, _) in statements {
            for action in actions.iter().filter(|a| a.contains('*')) {
                diffs.push(format!("{function} {sid}: wildcard action {action}"));
            }
            if resource.split(", ").any(|r| r == "*") {
                diffs.push(format!("{function} {sid}: Resource \"*\""));
            }
        }
        let Some(expected) = wanted.get(function) else {
            diffs.push(format!("{function}: not in the expected table"));
            continue;
        };
        for statement in statements.iter().filter(|s| !expected.contains(s)) {
            diffs.push(format!("{function}: template has {statement:?}, which the table does not"));
        }
        for statement in expected.iter().filter(|s| !statements.contains(s)) {
            diffs.push(format!("{function}: table has {statement:?}, which the template does not"));
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

/// The first statement named `sid` of `function`, in the parsed template.
fn statement_mut<'t>(template: &'t mut Value, function: &str, sid: &str) -> &'t mut Mapping {
    let policies = template["Resources"][function]["Properties"]["Policies"].as_sequence_mut().expect("Policies");
    policies
        .iter_mut()
        .flat_map(|policy| policy["Statement"].as_sequence_mut().expect("statements").iter_mut())
        .find(|statement| statement["Sid"].as_str() == Some(sid))
        .and_then(Value::as_mapping_mut)
        .unwrap_or_else(|| panic!("{function} has a statement {sid}"))
}

fn reported(template: &Value, what: &str) -> Vec<String> {
    let diffs = differences(&policies(template));
    assert!(!diffs.is_empty(), "{what} is not reported");
    diffs
}

#[test]
fn a_widened_grant_is_reported() {
    // A wildcard action.
    let mut widened = template();
    let statement = statement_mut(&mut widened, "ProductsFunction", "WriteCatalogue");
    statement.insert("Action".into(), Value::Sequence(vec!["dynamodb:PutItem".into(), "dynamodb:*".into()]));
    assert!(reported(&widened, "dynamodb:*").iter().any(|d| d.contains("wildcard action dynamodb:*")));

    // One more action, no wildcard: products deleting items.
    let mut widened = template();
    let statement = statement_mut(&mut widened, "ProductsFunction", "WriteCatalogue");
    statement.insert("Action".into(), Value::Sequence(vec!["dynamodb:PutItem".into(), "dynamodb:DeleteItem".into()]));
    assert!(reported(&widened, "an added action").iter().all(|d| d.contains("ProductsFunction")));

    // Every resource.
    let mut widened = template();
    statement_mut(&mut widened, "HealthFunction", "PingTable").insert("Resource".into(), "*".into());
    assert!(reported(&widened, "Resource *").iter().any(|d| d.contains("Resource \"*\"")));

    // No key condition, or a key condition that matches every item.
    let mut widened = template();
    statement_mut(&mut widened, "AuthFunction", "ReadWriteAccounts").remove("Condition");
    reported(&widened, "a dropped key condition");
    let mut widened = template();
    let condition = &mut statement_mut(&mut widened, "ProductsFunction", "WriteCatalogue")["Condition"];
    condition["ForAllValues:StringLike"]["dynamodb:LeadingKeys"] = Value::Sequence(vec!["*".into()]);
    reported(&widened, "a key condition matching every item");

    // A statement or a policy template more.
    let mut widened = template();
    let extra = statement_mut(&mut widened, "WorkerFunction", "ConsumeUploads").clone();
    let policies = widened["Resources"]["WorkerFunction"]["Properties"]["Policies"].as_sequence_mut().unwrap();
    policies[0]["Statement"].as_sequence_mut().unwrap().push(Value::Mapping(extra));
    policies.push(serde_norway::from_str("DynamoDBCrudPolicy: {TableName: !Ref Table}").unwrap());
    let diffs = reported(&widened, "an extra statement");
    assert!(diffs.iter().any(|d| d.contains("not an inline policy document")), "{diffs:?}");

    // The table is the reference both ways: a grant gone missing is reported too.
    let mut narrowed = template();
    let policies = narrowed["Resources"]["AuthFunction"]["Properties"]["Policies"].as_sequence_mut().unwrap();
    policies[0]["Statement"].as_sequence_mut().unwrap().pop();
    assert!(reported(&narrowed, "a removed statement").iter().any(|d| d.contains("which the template does not")));
}

/// Allow statements of every policy in the template (functions, bucket and
/// queue policies, IAM resources) with a wildcard action or `Resource: "*"`.
/// Deny statements may be broad: denying more is never a widening.
fn wildcard_grants(template: &Value) -> Vec<String> {
    fn walk(value: &Value, at: &str, found: &mut Vec<String>) {
        match value {
            Value::Mapping(map) => {
                if map.contains_key("Effect") && (map.contains_key("Action") || map.contains_key("NotAction")) {
                    if map.get("Effect").and_then(Value::as_str) == Some("Allow") {
                        for action in as_list(map.get("Action").unwrap_or(&Value::Null)) {
                            if action.contains('*') {
                                found.push(format!("{at}: wildcard action {action}"));
                            }
                        }
                        if map.contains_key("NotAction") || map.contains_key("NotResource") {
                            found.push(format!("{at}: NotAction/NotResource in an Allow"));
                        }
                        if as_list(map.get("Resource").unwrap_or(&Value::Null)).iter().any(|r| r == "*") {
                            found.push(format!("{at}: Resource \"*\""));
                        }
                    }
                    return;
                }
                for (key, inner) in map {
                    walk(inner, &format!("{at}.{}", render(key)), found);
                }
            }
            Value::Sequence(items) => {
                for (i, item) in items.iter().enumerate() {
                    walk(item, &format!("{at}[{i}]"), found);
                }
            }
            Value::Tagged(tagged) => walk(&tagged.value, at, found),
            _ => {}
        }
    }
    let mut found = Vec::new();
    walk(&template["Resources"], "Resources", &mut found);
    walk(&template["Globals"], "Globals", &mut found);
    found
}

#[test]
fn no_allow_statement_in_the_template_uses_a_wildcard_action_or_every_resource() {
    let template = template();
    let found = wildcard_grants(&template);
    assert!(found.is_empty(), "wildcard grants:\n  {}", found.join("\n  "));

    let mut widened = template.clone();
    let cdn = widened["Resources"]["AssetsBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"][0]
        .as_mapping_mut()
        .expect("the CDN statement");
    cdn.insert("Action".into(), "s3:Get*".into());
    assert!(wildcard_grants(&widened).iter().any(|f| f.contains("AssetsBucketPolicy") && f.contains("s3:Get*")));
    let mut widened = template;
    statement_mut(&mut widened, "AuthFunction", "ReadSigningKey").insert("Resource".into(), "*".into());
    assert!(wildcard_grants(&widened).iter().any(|f| f.contains("AuthFunction") && f.contains("Resource")));
}

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path, into: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read source directory") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, into);
        } else if path.extension().is_some_and(|e| e == "rs") {
            into.push(path);
        }
    }
}

/// The prefixes no string literal in `code` starts with.
fn unknown_prefixes<'p>(prefixes: &'p [String], code: &str) -> Vec<&'p String> {
    prefixes.iter().filter(|p| !code.contains(&format!("\"{p}"))).collect()
}

#[test]
fn every_key_prefix_the_table_grants_is_one_the_code_uses() {
    let mut files = Vec::new();
    rust_files(&repo_root().join("shared/src"), &mut files);
    let code: String = files.iter().map(|f| std::fs::read_to_string(f).expect("read source")).collect();
    let condition_keys = EXPECTED.iter().flat_map(|(_, statements)| statements.iter().map(|s| s.3));
    let mut prefixes: Vec<String> = condition_keys
        .filter(|c| c.contains("dynamodb:LeadingKeys"))
        .flat_map(|c| {
            let parsed: serde_json::Value = serde_json::from_str(c).expect("conditions are JSON");
            let keys = parsed["ForAllValues:StringLike"]["dynamodb:LeadingKeys"].as_array().cloned();
            keys.expect("LeadingKeys under ForAllValues:StringLike")
        })
        .map(|k| k.as_str().expect("a string").trim_end_matches('*').to_owned())
        .collect();
    prefixes.sort();
    prefixes.dedup();
    let unknown = unknown_prefixes(&prefixes, &code);
    assert!(unknown.is_empty(), "no string in shared/src starts with {unknown:?}: a typo, or a key layout changed");

    prefixes.push("USERS#".into());
    assert_eq!(unknown_prefixes(&prefixes, &code), [&"USERS#".to_owned()]);
}

/// A `!FindInMap [StageSettings, !Ref Stage, Key]` (or a number) in `stage`.
fn stage_value(template: &Value, value: &Value, stage: &str) -> f64 {
    let value = match value {
        Value::Tagged(tagged) if tagged.tag == "FindInMap" => {
            let parts = tagged.value.as_sequence().expect("FindInMap takes a list");
            let (map, key) = (parts[0].as_str().expect("map name"), parts[2].as_str().expect("key"));
            &template["Mappings"][map][stage][key]
        }
        other => other,
    };
    value.as_f64().unwrap_or_else(|| panic!("{} is not a number in stage {stage}", render(value)))
}

/// One line per way the auth routes' throttling falls short.
fn throttling_problems(template: &Value) -> Vec<String> {
    let text = serde_norway::to_string(template).expect("serializes");
    let routes: Vec<String> = Template::parse(&text)
        .expect("the local parser reads the template")
        .routes()
        .map(|(_, r)| r.route_key())
        .collect();
    let api = &template["Resources"]["HttpApi"]["Properties"];
    let settings = api["RouteSettings"].as_mapping().cloned().unwrap_or_default();
    let stages = as_list(&template["Parameters"]["Stage"]["AllowedValues"]);
    let mut problems = Vec::new();
    for key in settings.keys() {
        if !routes.contains(&render(key)) {
            problems.push(format!("RouteSettings names {}, which is no route of the template", render(key)));
        }
    }
    let credential_routes = routes.iter().filter(|r| r.starts_with("POST /auth/"));
    for route in credential_routes {
        let Some(setting) = settings.get(route.as_str()) else {
            problems.push(format!("{route} has no RouteSettings"));
            continue;
        };
        for stage in &stages {
            for limit in ["ThrottlingBurstLimit", "ThrottlingRateLimit"] {
                let default = stage_value(template, &api["DefaultRouteSettings"][limit], stage);
                let own = stage_value(template, &setting[limit], stage);
                if !(own > 0.0 && own < default) {
                    problems.push(format!("{route} {limit} in {stage}: {own}, not below the default {default}"));
                }
            }
        }
    }
    problems
}

#[test]
fn auth_routes_are_throttled_below_the_stage_default() {
    let template = template();
    let problems = throttling_problems(&template);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert_eq!(as_list(&template["Parameters"]["Stage"]["AllowedValues"]), ["dev", "prod"]);

    let mut loose = template.clone();
    let prod = loose["Mappings"]["StageSettings"]["prod"].as_mapping_mut().unwrap();
    prod.insert("AuthThrottlingRateLimit".into(), 100.into());
    assert!(throttling_problems(&loose).iter().any(|p| p.contains("ThrottlingRateLimit in prod")));
    let mut missing = template.clone();
    let settings = missing["Resources"]["HttpApi"]["Properties"]["RouteSettings"].as_mapping_mut().unwrap();
    let login = settings.remove("POST /auth/login").unwrap();
    settings.insert("POST /auth/signin".into(), login);
    let problems = throttling_problems(&missing);
    assert!(problems.iter().any(|p| p.contains("POST /auth/login has no RouteSettings")), "{problems:?}");
    assert!(problems.iter().any(|p| p.contains("POST /auth/signin, which is no route")), "{problems:?}");
}

/// One line per way the assets bucket could lose photos for good, or keep
/// uploads longer than a day.
fn bucket_problems(template: &Value) -> Vec<String> {
    let bucket = &template["Resources"]["AssetsBucket"];
    let props = &bucket["Properties"];
    let mut problems = Vec::new();
    if props["VersioningConfiguration"]["Status"].as_str() != Some("Enabled") {
        problems.push("versioning is not enabled".to_owned());
    }
    if bucket["DeletionPolicy"].as_str() != Some("Retain") {
        problems.push("the bucket is not retained with the stack".to_owned());
    }
    let rules = as_sequence(&props["LifecycleConfiguration"]["Rules"]);
    let enabled: Vec<&Value> = rules.iter().filter(|r| r["Status"].as_str() == Some("Enabled")).collect();
    let prefix = |rule: &Value| render(&rule["Prefix"]) + &render(&rule["Filter"]["Prefix"]);
    let noncurrent = |rule: &Value| rule["NoncurrentVersionExpiration"]["NoncurrentDays"].as_u64();
    let whole = enabled.iter().find(|r| prefix(r).is_empty() && r["Filter"].is_null() && noncurrent(r).is_some());
    match whole.and_then(|rule| noncurrent(rule)) {
        Some(30) => {}
        other => problems.push(format!("no bucket-wide rule expires noncurrent versions after 30 days ({other:?})")),
    }
    if !enabled.iter().any(|r| r["ExpiredObjectDeleteMarker"].as_bool() == Some(true) && prefix(r).is_empty()) {
        problems.push("expired delete markers are never removed".to_owned());
    }
    for rule in &enabled {
        let expires_current = !rule["ExpirationInDays"].is_null() || !rule["ExpirationDate"].is_null();
        if expires_current && prefix(rule) != "incoming/" {
            problems.push(format!("rule {} expires current objects outside incoming/", render(&rule["Id"])));
        }
    }
    match enabled.iter().find(|r| prefix(r) == "incoming/") {
        None => problems.push("no rule expires incoming/".to_owned()),
        Some(incoming) => {
            if incoming["ExpirationInDays"].as_u64() != Some(1) || noncurrent(incoming) != Some(1) {
                problems.push("incoming/ uploads (current and noncurrent) must go after a day".to_owned());
            }
            if incoming["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"].as_u64() != Some(1) {
                problems.push("incomplete incoming/ uploads are not aborted after a day".to_owned());
            }
        }
    }
    problems
}

#[test]
fn the_assets_bucket_keeps_overwritten_and_deleted_photos_for_30_days() {
    let template = template();
    let problems = bucket_problems(&template);
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    let mut unversioned = template.clone();
    unversioned["Resources"]["AssetsBucket"]["Properties"].as_mapping_mut().unwrap().remove("VersioningConfiguration");
    assert!(bucket_problems(&unversioned).iter().any(|p| p.contains("versioning")));
    let mut expiring = template.clone();
    let rules = expiring["Resources"]["AssetsBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
        .as_sequence_mut()
        .unwrap();
    for rule in rules.iter_mut().filter(|r| r["Prefix"].is_null()) {
        rule.as_mapping_mut().unwrap().insert("ExpirationInDays".into(), 365.into());
        if let Some(days) = rule["NoncurrentVersionExpiration"].as_mapping_mut() {
            days.insert("NoncurrentDays".into(), 1.into());
        }
    }
    let problems = bucket_problems(&expiring);
    assert!(problems.iter().any(|p| p.contains("expires current objects outside incoming/")), "{problems:?}");
    assert!(problems.iter().any(|p| p.contains("30 days")), "{problems:?}");
}

/// The backup function's actions on the table other than reads.
fn backup_table_writes(template: &Value) -> Vec<String> {
    const READS: &[&str] = &["dynamodb:Scan", "dynamodb:Query", "dynamodb:GetItem", "dynamodb:BatchGetItem"];
    let policies = policies(template);
    let statements = policies.get("BackupFunction").expect("a backup function");
    statements
        .iter()
        .flat_map(|(sid, actions, _, _)| actions.iter().map(move |action| (sid, action)))
        .filter(|(_, action)| action.starts_with("dynamodb:") && !READS.contains(&action.as_str()))
        .map(|(sid, action)| format!("{sid}: {action}"))
        .collect()
}

#[test]
fn the_backup_functions_role_cannot_write_to_the_table() {
    let template = template();
    assert_eq!(backup_table_writes(&template), Vec::<String>::new(), "restores are marketplace-admin's alone");

    let mut widened = template;
    let statement = statement_mut(&mut widened, "BackupFunction", "ScanTable");
    statement.insert("Action".into(), Value::Sequence(vec!["dynamodb:Scan".into(), "dynamodb:PutItem".into()]));
    assert_eq!(backup_table_writes(&widened), ["ScanTable: dynamodb:PutItem"]);
}
