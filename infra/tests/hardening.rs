//! Template settings that keep secrets out of logs and out of reach of scripts:
//! the `ApplicationLogLevel` parameter stops at DEBUG (at TRACE the Lambda
//! runtime logs every raw event, passwords and tokens included), and the image
//! distribution's response headers policy sends `nosniff`, a strict
//! `Content-Security-Policy` and a `Referrer-Policy`, the same headers the local
//! asset server sends. Each check has a companion that breaks the parsed
//! template in memory and expects the check to say so.

use std::path::Path;

use infra::assets::{ASSET_CACHE_CONTROL, ASSET_SECURITY_HEADERS};
use serde_norway::Value;

fn template() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
    serde_norway::from_str(&std::fs::read_to_string(path).expect("read template.yaml")).expect("template.yaml parses")
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_sequence()
        .map(|items| items.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

/// What is wrong with the log level parameter.
fn log_level_problems(template: &Value) -> Vec<String> {
    let parameter = &template["Parameters"]["ApplicationLogLevel"];
    let allowed = strings(&parameter["AllowedValues"]);
    let mut problems = Vec::new();
    if allowed.is_empty() {
        problems.push("ApplicationLogLevel has no AllowedValues".to_owned());
    }
    if allowed.iter().any(|level| level.eq_ignore_ascii_case("trace")) {
        problems.push("ApplicationLogLevel allows TRACE".to_owned());
    }
    if !allowed.iter().any(|level| level == "DEBUG") {
        problems.push("ApplicationLogLevel lost DEBUG".to_owned());
    }
    let default = parameter["Default"].as_str().unwrap_or_default();
    if !allowed.iter().any(|level| level == default) {
        problems.push(format!("ApplicationLogLevel's default {default:?} is not allowed"));
    }
    problems
}

#[test]
fn the_log_level_parameter_stops_at_debug() {
    assert_eq!(log_level_problems(&template()), Vec::<String>::new());

    let mut broken = template();
    let parameter = broken["Parameters"]["ApplicationLogLevel"].as_mapping_mut().unwrap();
    let mut allowed = parameter["AllowedValues"].as_sequence().unwrap().clone();
    allowed.insert(0, Value::String("TRACE".into()));
    parameter.insert("AllowedValues".into(), Value::Sequence(allowed));
    assert_eq!(log_level_problems(&broken), ["ApplicationLogLevel allows TRACE"]);
}

/// The response headers policy the image distribution's default behaviour names.
fn distribution_headers_policy(template: &Value) -> Option<&Value> {
    let behaviour =
        &template["Resources"]["AssetsDistribution"]["Properties"]["DistributionConfig"]["DefaultCacheBehavior"];
    let Value::Tagged(reference) = &behaviour["ResponseHeadersPolicyId"] else { return None };
    let name = reference.value.as_str()?;
    Some(&template["Resources"][name]["Properties"]["ResponseHeadersPolicyConfig"]).filter(|policy| policy.is_mapping())
}

/// The headers (lower-case name, value) the image distribution adds, each
/// overriding what the origin sends.
fn cdn_headers(template: &Value) -> Result<Vec<(String, String)>, String> {
    let policy = distribution_headers_policy(template).ok_or("AssetsDistribution names no response headers policy")?;
    let mut headers = Vec::new();
    let overriding = |config: &Value, what: &str| match config["Override"].as_bool() {
        Some(true) => Ok(()),
        _ => Err(format!("{what} does not override the origin")),
    };
    let security = &policy["SecurityHeadersConfig"];
    let options = &security["ContentTypeOptions"];
    overriding(options, "ContentTypeOptions")?;
    headers.push(("x-content-type-options".to_owned(), "nosniff".to_owned()));
    let csp = &security["ContentSecurityPolicy"];
    overriding(csp, "ContentSecurityPolicy")?;
    let csp = csp["ContentSecurityPolicy"].as_str().ok_or("no Content-Security-Policy value")?;
    headers.push(("content-security-policy".to_owned(), csp.to_owned()));
    let referrer = &security["ReferrerPolicy"];
    overriding(referrer, "ReferrerPolicy")?;
    let referrer = referrer["ReferrerPolicy"].as_str().ok_or("no Referrer-Policy value")?;
    headers.push(("referrer-policy".to_owned(), referrer.to_owned()));
    for item in policy["CustomHeadersConfig"]["Items"].as_sequence().into_iter().flatten() {
        overriding(item, "a custom header")?;
        let name = item["Header"].as_str().ok_or("a custom header has no name")?;
        headers.push((name.to_ascii_lowercase(), item["Value"].as_str().unwrap_or_default().to_owned()));
    }
    headers.sort();
    Ok(headers)
}

/// The headers the local asset server adds, as (lower-case name, value).
fn local_headers() -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> =
        ASSET_SECURITY_HEADERS.iter().map(|(name, value)| (name.to_ascii_lowercase(), (*value).to_owned())).collect();
    headers.push(("cache-control".to_owned(), ASSET_CACHE_CONTROL.to_owned()));
    headers.sort();
    headers
}

#[test]
fn the_image_cdn_sends_nosniff_a_strict_csp_and_a_referrer_policy_like_the_local_asset_server() {
    let headers = cdn_headers(&template()).unwrap();
    assert_eq!(headers, local_headers(), "the CDN and the local asset server send the same headers");
    let value = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str()).unwrap();
    assert_eq!(value("x-content-type-options"), "nosniff");
    let csp = value("content-security-policy");
    for directive in ["default-src 'none'", "sandbox"] {
        assert!(csp.split(';').any(|d| d.trim() == directive), "{csp} lacks {directive}");
    }
    assert!(!csp.contains("script-src"), "{csp}");

    let mut broken = template();
    let policy = broken["Resources"]["AssetsResponseHeadersPolicy"]["Properties"]["ResponseHeadersPolicyConfig"]
        .as_mapping_mut()
        .unwrap();
    policy.remove("SecurityHeadersConfig");
    assert!(cdn_headers(&broken).is_err());
}
