//! Template settings that keep secrets out of logs: the `ApplicationLogLevel`
//! parameter stops at DEBUG (at TRACE the Lambda runtime logs every raw event,
//! passwords and tokens included). Each check has a companion that breaks the
//! parsed template in memory and expects the check to say so.

use std::path::Path;

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
