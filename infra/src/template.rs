//! Reads `template.yaml` (SAM) into what local tooling needs: every function with
//! its binary and HttpApi routes, the HTTP API's CORS configuration, the SQS
//! queues (visibility timeout, dead-letter queue and `maxReceiveCount`), the SQS
//! event sources of functions (batch size, partial batch failures, concurrency),
//! and the buckets' queue notifications. Shapes the local tools cannot honour are
//! a clear `TemplateError`, never a guess.
//!
//! `!Ref` to a parameter resolves to the parameter's `Default` (a
//! `CommaDelimitedList` default is split on commas); `!Ref` to a resource is only
//! accepted where a resource is expected (`ApiId`). Other intrinsics (`!Sub`,
//! `!GetAtt`, `!If`, ...) in a field the local tools read are an error, except
//! `!GetAtt <Queue>.Arn` where a queue is named. Schedule events are recognised and
//! left for the scheduler, which will read them here too.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde_norway::{Mapping, Value};

/// Why a template cannot be used locally.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not valid YAML: {source}")]
    Yaml {
        path: PathBuf,
        #[source]
        source: serde_norway::Error,
    },
    /// The template is valid YAML, but `at` holds a shape we do not understand.
    #[error("template {at}: {reason}")]
    Invalid { at: String, reason: String },
}

fn invalid(at: &str, reason: impl Into<String>) -> TemplateError {
    TemplateError::Invalid { at: at.to_owned(), reason: reason.into() }
}

/// One HttpApi route, as API Gateway names it (`GET /categories/{id}`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HttpRoute {
    /// Upper-case HTTP method, or `ANY`.
    pub method: String,
    /// Path template with `{name}` segments.
    pub path: String,
}

impl HttpRoute {
    /// API Gateway's route key, `METHOD /path`.
    pub fn route_key(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

impl fmt::Display for HttpRoute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.path)
    }
}

/// One `AWS::Serverless::Function`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Function {
    /// The resource's logical id, e.g. `CategoriesFunction`.
    pub logical_id: String,
    /// `Metadata.BuildProperties.Binary`: the cargo binary (and handler table) name.
    pub binary: String,
    /// Its `HttpApi` events, in template order.
    pub routes: Vec<HttpRoute>,
}

/// The HTTP API's `CorsConfiguration`, with parameters resolved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CorsConfig {
    pub allow_origins: Vec<String>,
    pub allow_methods: Vec<String>,
    pub allow_headers: Vec<String>,
    pub expose_headers: Vec<String>,
    pub max_age: Option<u64>,
    pub allow_credentials: bool,
}

/// One `AWS::SQS::Queue`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queue {
    pub logical_id: String,
    /// `VisibilityTimeout` (SQS's default is 30 seconds).
    pub visibility_timeout_secs: u64,
    /// `RedrivePolicy`: the dead-letter queue's logical id and `maxReceiveCount`.
    pub dead_letter: Option<(String, u32)>,
}

/// A function's `SQS` event: the local queue pump delivers batches the same way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSource {
    pub function_logical_id: String,
    pub binary: String,
    /// Logical id of the queue.
    pub queue: String,
    /// `BatchSize` (SAM's default is 10).
    pub batch_size: usize,
    /// `FunctionResponseTypes: [ReportBatchItemFailures]`.
    pub report_batch_item_failures: bool,
    /// `ScalingConfig.MaximumConcurrency` (concurrent batches; 1 when absent locally).
    pub maximum_concurrency: usize,
}

/// A bucket's first `CorsConfiguration.CorsRules` entry, as a `CorsConfig`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketCors {
    pub bucket: String,
    pub cors: CorsConfig,
}

/// A bucket's `NotificationConfiguration.QueueConfigurations` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketNotification {
    pub bucket: String,
    /// Logical id of the queue notified.
    pub queue: String,
    /// e.g. `s3:ObjectCreated:*`.
    pub event: String,
    /// The key prefix filter (empty for all keys).
    pub prefix: String,
}

/// A function's `ScheduleV2` event: the local scheduler fires it the same way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// `<binary>.<event name, lower case>`, e.g. `archive.daily`.
    pub name: String,
    pub binary: String,
    /// `ScheduleExpression` as written, e.g. `rate(1 day)`.
    pub expression: String,
    /// The interval a `rate(...)` expression names (the only kind run locally).
    pub every: std::time::Duration,
    /// `Input`, parsed: the event the function receives.
    pub input: serde_json::Value,
}

/// The interval of a `rate(N unit)` schedule expression.
pub fn parse_rate(expression: &str) -> Option<std::time::Duration> {
    let inner = expression.trim().strip_prefix("rate(")?.strip_suffix(')')?;
    let (count, unit) = inner.trim().split_once(' ')?;
    let count: u64 = count.parse().ok().filter(|n| *n > 0)?;
    let unit_secs = match (unit.trim(), count) {
        ("minute", 1) | ("minutes", 2..) => 60,
        ("hour", 1) | ("hours", 2..) => 3600,
        ("day", 1) | ("days", 2..) => 86_400,
        _ => return None,
    };
    Some(std::time::Duration::from_secs(count * unit_secs))
}

/// What the local tools read from the template.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Template {
    /// Every function, in template order.
    pub functions: Vec<Function>,
    /// CORS of the HTTP API the routes belong to; `None` when not configured.
    pub cors: Option<CorsConfig>,
    /// Every SQS queue, in template order.
    pub queues: Vec<Queue>,
    /// Every function's SQS event, in template order.
    pub queue_sources: Vec<QueueSource>,
    /// Every bucket-to-queue notification, in template order.
    pub bucket_notifications: Vec<BucketNotification>,
    /// Every bucket's CORS rule, in template order.
    pub bucket_cors: Vec<BucketCors>,
    /// Every function's `ScheduleV2` event, in template order.
    pub schedules: Vec<Schedule>,
}

/// Event types that belong to other local tools (queue pump, scheduler, stream relay).
const NON_HTTP_EVENTS: &[&str] =
    &["Schedule", "ScheduleV2", "EventBridgeRule", "CloudWatchEvent", "DynamoDB", "S3", "SNS", "Kinesis"];

const HTTP_METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "ANY"];

impl Template {
    /// Reads and parses the template at `path`.
    pub fn load(path: &Path) -> Result<Self, TemplateError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| TemplateError::Read { path: path.to_owned(), source })?;
        let root: Value =
            serde_norway::from_str(&text).map_err(|source| TemplateError::Yaml { path: path.to_owned(), source })?;
        Self::from_value(&root)
    }

    /// Parses template text (for tests and tools that already hold it).
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        let root: Value = serde_norway::from_str(text)
            .map_err(|source| TemplateError::Yaml { path: PathBuf::from("(text)"), source })?;
        Self::from_value(&root)
    }

    /// The queue with this logical id.
    pub fn queue(&self, logical_id: &str) -> Option<&Queue> {
        self.queues.iter().find(|q| q.logical_id == logical_id)
    }

    /// Every route with the function serving it, in template order.
    pub fn routes(&self) -> impl Iterator<Item = (&Function, &HttpRoute)> {
        self.functions.iter().flat_map(|f| f.routes.iter().map(move |r| (f, r)))
    }

    fn from_value(root: &Value) -> Result<Self, TemplateError> {
        let root = mapping(root, "(root)")?;
        let resources = root.get("Resources").ok_or_else(|| invalid("Resources", "is missing"))?;
        let resources = mapping(resources, "Resources")?;
        let ctx = Ctx::new(root, resources)?;

        let mut functions = Vec::new();
        // The HttpApi each route belongs to: `None` is SAM's implicit API.
        let mut apis: BTreeMap<Option<String>, String> = BTreeMap::new();
        let mut seen_routes = HashSet::new();
        let mut queues = Vec::new();
        let mut queue_sources = Vec::new();
        let mut bucket_notifications = Vec::new();
        let mut bucket_cors = Vec::new();
        let mut schedules = Vec::new();
        for (id, resource) in resources {
            let id = key_str(id, "Resources")?;
            let at = format!("Resources.{id}");
            let resource = mapping(resource, &at)?;
            match resource.get("Type").and_then(Value::as_str) {
                Some("AWS::Serverless::Function") => {}
                Some("AWS::SQS::Queue") => {
                    queues.push(ctx.queue(id, resource, &at)?);
                    continue;
                }
                Some("AWS::S3::Bucket") => {
                    bucket_notifications.extend(ctx.bucket_notifications(id, resource, &at)?);
                    bucket_cors.extend(ctx.bucket_cors(id, resource, &at)?);
                    continue;
                }
                _ => continue,
            }
            let binary = resource
                .get("Metadata")
                .and_then(|m| m.get("BuildProperties"))
                .and_then(|p| p.get("Binary"))
                .ok_or_else(|| {
                    invalid(&at, "has no Metadata.BuildProperties.Binary (the cargo binary to build and run)")
                })?;
            let binary = ctx.string(binary, &format!("{at}.Metadata.BuildProperties.Binary"))?;
            let mut routes = Vec::new();
            let events = resource.get("Properties").and_then(|p| p.get("Events"));
            if let Some(events) = events {
                for (name, event) in mapping(events, &format!("{at}.Properties.Events"))? {
                    let name = key_str(name, &at)?;
                    let at = format!("{at}.Properties.Events.{name}");
                    let kind = event.get("Type").and_then(Value::as_str).ok_or_else(|| invalid(&at, "has no Type"))?;
                    match kind {
                        "HttpApi" => {
                            let (route, api) = ctx.http_event(event, &at)?;
                            if !seen_routes.insert(route.clone()) {
                                return Err(invalid(&at, format!("route {route} is declared twice")));
                            }
                            apis.entry(api).or_insert(at);
                            routes.push(route);
                        }
                        "SQS" => queue_sources.push(ctx.queue_source(id, &binary, event, &at)?),
                        "ScheduleV2" => schedules.push(ctx.schedule(&binary, name, event, &at)?),
                        other if NON_HTTP_EVENTS.contains(&other) => {}
                        "Api" => {
                            return Err(invalid(&at, "REST API (Type: Api) events are not supported; use HttpApi"));
                        }
                        other => return Err(invalid(&at, format!("unsupported event type {other:?}"))),
                    }
                }
            }
            functions.push(Function { logical_id: id.to_owned(), binary, routes });
        }
        if apis.len() > 1 {
            let names: Vec<String> =
                apis.keys().map(|k| k.clone().unwrap_or_else(|| "(implicit ServerlessHttpApi)".into())).collect();
            return Err(invalid(
                "Resources",
                format!("routes belong to several HTTP APIs ({}); one is supported", names.join(", ")),
            ));
        }
        let cors = match apis.keys().next() {
            Some(api) => ctx.cors(api.as_deref())?,
            None => None,
        };
        for source in &queue_sources {
            if !queues.iter().any(|q: &Queue| q.logical_id == source.queue) {
                return Err(invalid(
                    &format!("Resources.{}", source.function_logical_id),
                    format!("its SQS event names {}, which is not an AWS::SQS::Queue here", source.queue),
                ));
            }
        }
        Ok(Self { functions, cors, queues, queue_sources, bucket_notifications, bucket_cors, schedules })
    }
}

/// Lookup context: parameter defaults, resources and `Globals`.
struct Ctx<'a> {
    parameters: &'a Mapping,
    resources: &'a Mapping,
    globals: Option<&'a Mapping>,
}

/// A `Ref` target found in a value.
enum Intrinsic<'a> {
    None,
    Ref(&'a str),
}

impl<'a> Ctx<'a> {
    fn new(root: &'a Mapping, resources: &'a Mapping) -> Result<Self, TemplateError> {
        static EMPTY: std::sync::OnceLock<Mapping> = std::sync::OnceLock::new();
        let parameters = match root.get("Parameters") {
            Some(p) => mapping(p, "Parameters")?,
            None => EMPTY.get_or_init(Mapping::new),
        };
        let globals = root.get("Globals").map(|g| mapping(g, "Globals")).transpose()?;
        Ok(Self { parameters, resources, globals })
    }

    /// Recognises `!Ref X` and `{Ref: X}`; any other intrinsic is an error.
    fn intrinsic<'v>(&self, value: &'v Value, at: &str) -> Result<Intrinsic<'v>, TemplateError> {
        match value {
            Value::Tagged(tagged) if tagged.tag == "Ref" => match &tagged.value {
                Value::String(name) => Ok(Intrinsic::Ref(name)),
                _ => Err(invalid(at, "!Ref must name a parameter or resource")),
            },
            Value::Tagged(tagged) => Err(invalid(
                at,
                format!("intrinsic {} is not supported here; use a literal or !Ref to a parameter", tagged.tag),
            )),
            Value::Mapping(map) if map.len() == 1 => {
                let (key, inner) = map.iter().next().ok_or_else(|| invalid(at, "empty mapping"))?;
                match key.as_str() {
                    Some("Ref") => inner
                        .as_str()
                        .map(Intrinsic::Ref)
                        .ok_or_else(|| invalid(at, "Ref must name a parameter or resource")),
                    Some(name) if name.starts_with("Fn::") => Err(invalid(
                        at,
                        format!("intrinsic {name} is not supported here; use a literal or Ref to a parameter"),
                    )),
                    _ => Ok(Intrinsic::None),
                }
            }
            _ => Ok(Intrinsic::None),
        }
    }

    /// The value with a parameter `Ref` replaced by the parameter's `Default`.
    /// Returns whether it came from a parameter (for list splitting).
    fn resolve<'v>(&self, value: &'v Value, at: &str) -> Result<(Cow<'v, Value>, bool), TemplateError>
    where
        'a: 'v,
    {
        match self.intrinsic(value, at)? {
            Intrinsic::None => Ok((Cow::Borrowed(value), false)),
            Intrinsic::Ref(name) => {
                if let Some(parameter) = self.parameters.get(name) {
                    let default = parameter.get("Default").ok_or_else(|| {
                        invalid(at, format!("parameter {name} has no Default, so it cannot be resolved locally"))
                    })?;
                    if let Intrinsic::Ref(_) = self.intrinsic(default, at)? {
                        return Err(invalid(at, format!("parameter {name}'s Default must be a literal")));
                    }
                    Ok((Cow::Borrowed(default), true))
                } else if name.starts_with("AWS::") {
                    Err(invalid(at, format!("pseudo parameter {name} has no local value")))
                } else {
                    Err(invalid(at, format!("!Ref {name} names no parameter")))
                }
            }
        }
    }

    fn string(&self, value: &Value, at: &str) -> Result<String, TemplateError> {
        match self.resolve(value, at)?.0.as_ref() {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            other => Err(invalid(at, format!("expected a string, found {}", kind_of(other)))),
        }
    }

    fn string_list(&self, value: &Value, at: &str) -> Result<Vec<String>, TemplateError> {
        let (resolved, from_parameter) = self.resolve(value, at)?;
        match resolved.as_ref() {
            // A CommaDelimitedList parameter's Default is one comma-separated string.
            Value::String(s) if from_parameter => {
                Ok(s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect())
            }
            Value::Sequence(items) => {
                items.iter().enumerate().map(|(i, item)| self.string(item, &format!("{at}[{i}]"))).collect()
            }
            other => Err(invalid(at, format!("expected a list of strings, found {}", kind_of(other)))),
        }
    }

    /// The logical id in `!GetAtt <Id>.Arn` (or `Fn::GetAtt: [Id, Arn]`).
    fn arn_of(&self, value: &Value, at: &str) -> Result<String, TemplateError> {
        let target = match value {
            Value::Tagged(tagged) if tagged.tag == "GetAtt" => match &tagged.value {
                Value::String(path) => path.strip_suffix(".Arn").map(str::to_owned),
                Value::Sequence(parts) if parts.len() == 2 && parts[1].as_str() == Some("Arn") => {
                    parts[0].as_str().map(str::to_owned)
                }
                _ => None,
            },
            Value::Mapping(map) => match map.get("Fn::GetAtt") {
                Some(Value::Sequence(parts)) if parts.len() == 2 && parts[1].as_str() == Some("Arn") => {
                    parts[0].as_str().map(str::to_owned)
                }
                _ => None,
            },
            _ => None,
        };
        let target = target.ok_or_else(|| invalid(at, "must be !GetAtt <Resource>.Arn"))?;
        if !self.resources.contains_key(target.as_str()) {
            return Err(invalid(at, format!("!GetAtt names no resource {target}")));
        }
        Ok(target)
    }

    fn number(&self, value: &Value, at: &str) -> Result<u64, TemplateError> {
        let raw = self.string(value, at)?;
        raw.parse().map_err(|_| invalid(at, format!("{raw:?} is not a whole number")))
    }

    fn queue(&self, id: &str, resource: &Mapping, at: &str) -> Result<Queue, TemplateError> {
        let props = resource.get("Properties");
        let visibility_timeout_secs = match props.and_then(|p| p.get("VisibilityTimeout")) {
            Some(v) => self.number(v, &format!("{at}.Properties.VisibilityTimeout"))?,
            None => 30,
        };
        let dead_letter = match props.and_then(|p| p.get("RedrivePolicy")) {
            None => None,
            Some(policy) => {
                let at = format!("{at}.Properties.RedrivePolicy");
                let target =
                    policy.get("deadLetterTargetArn").ok_or_else(|| invalid(&at, "has no deadLetterTargetArn"))?;
                let count = policy.get("maxReceiveCount").ok_or_else(|| invalid(&at, "has no maxReceiveCount"))?;
                let count = self.number(count, &format!("{at}.maxReceiveCount"))?;
                let count =
                    u32::try_from(count).ok().filter(|c| *c >= 1).ok_or_else(|| invalid(&at, "bad maxReceiveCount"))?;
                Some((self.arn_of(target, &format!("{at}.deadLetterTargetArn"))?, count))
            }
        };
        Ok(Queue { logical_id: id.to_owned(), visibility_timeout_secs, dead_letter })
    }

    fn schedule(&self, binary: &str, event_name: &str, event: &Value, at: &str) -> Result<Schedule, TemplateError> {
        let props = event.get("Properties").ok_or_else(|| invalid(at, "has no Properties"))?;
        let expression = props.get("ScheduleExpression").ok_or_else(|| invalid(at, "has no ScheduleExpression"))?;
        let expression = self.string(expression, &format!("{at}.Properties.ScheduleExpression"))?;
        let every = parse_rate(&expression).ok_or_else(|| {
            invalid(
                at,
                format!("ScheduleExpression {expression:?}: the local scheduler runs rate(N minutes|hours|days) only"),
            )
        })?;
        let input = match props.get("Input") {
            Some(input) => {
                let text = self.string(input, &format!("{at}.Properties.Input"))?;
                serde_json::from_str(&text).map_err(|e| invalid(at, format!("Input is not JSON: {e}")))?
            }
            None => serde_json::Value::Object(Default::default()),
        };
        Ok(Schedule {
            name: format!("{binary}.{}", event_name.to_ascii_lowercase()),
            binary: binary.to_owned(),
            expression,
            every,
            input,
        })
    }

    fn queue_source(
        &self,
        function: &str,
        binary: &str,
        event: &Value,
        at: &str,
    ) -> Result<QueueSource, TemplateError> {
        let props = event.get("Properties").ok_or_else(|| invalid(at, "has no Properties"))?;
        let queue = props.get("Queue").ok_or_else(|| invalid(at, "has no Queue"))?;
        let queue = self.arn_of(queue, &format!("{at}.Properties.Queue"))?;
        let batch_size = match props.get("BatchSize") {
            Some(v) => self.number(v, &format!("{at}.Properties.BatchSize"))?,
            None => 10,
        };
        let batch_size = usize::try_from(batch_size)
            .ok()
            .filter(|b| (1..=10).contains(b))
            .ok_or_else(|| invalid(at, "BatchSize must be 1 to 10 locally (larger batches need a batching window)"))?;
        let report_batch_item_failures = match props.get("FunctionResponseTypes") {
            Some(v) => self
                .string_list(v, &format!("{at}.Properties.FunctionResponseTypes"))?
                .iter()
                .any(|t| t == "ReportBatchItemFailures"),
            None => false,
        };
        let maximum_concurrency = match props.get("ScalingConfig").and_then(|c| c.get("MaximumConcurrency")) {
            Some(v) => usize::try_from(self.number(v, &format!("{at}.Properties.ScalingConfig.MaximumConcurrency"))?)
                .unwrap_or(1),
            None => 1,
        };
        Ok(QueueSource {
            function_logical_id: function.to_owned(),
            binary: binary.to_owned(),
            queue,
            batch_size,
            report_batch_item_failures,
            maximum_concurrency: maximum_concurrency.max(1),
        })
    }

    fn bucket_notifications(
        &self,
        id: &str,
        resource: &Mapping,
        at: &str,
    ) -> Result<Vec<BucketNotification>, TemplateError> {
        let configs = resource
            .get("Properties")
            .and_then(|p| p.get("NotificationConfiguration"))
            .and_then(|n| n.get("QueueConfigurations"));
        let Some(configs) = configs else { return Ok(Vec::new()) };
        let at = format!("{at}.Properties.NotificationConfiguration.QueueConfigurations");
        let Value::Sequence(configs) = configs else {
            return Err(invalid(&at, "expected a list"));
        };
        let mut notifications = Vec::new();
        for (i, config) in configs.iter().enumerate() {
            let at = format!("{at}[{i}]");
            let event = config.get("Event").ok_or_else(|| invalid(&at, "has no Event"))?;
            let event = self.string(event, &format!("{at}.Event"))?;
            let queue = config.get("Queue").ok_or_else(|| invalid(&at, "has no Queue"))?;
            let queue = self.arn_of(queue, &format!("{at}.Queue"))?;
            let mut prefix = String::new();
            if let Some(Value::Sequence(rules)) =
                config.get("Filter").and_then(|f| f.get("S3Key")).and_then(|k| k.get("Rules"))
            {
                for rule in rules {
                    let name = rule.get("Name").map(|n| self.string(n, &at)).transpose()?.unwrap_or_default();
                    let value = rule.get("Value").map(|v| self.string(v, &at)).transpose()?.unwrap_or_default();
                    match name.to_ascii_lowercase().as_str() {
                        "prefix" => prefix = value,
                        other => return Err(invalid(&at, format!("key filter {other:?} is not supported locally"))),
                    }
                }
            }
            notifications.push(BucketNotification { bucket: id.to_owned(), queue, event, prefix });
        }
        Ok(notifications)
    }

    /// The first CORS rule of a bucket (one rule is all the local tools honour).
    fn bucket_cors(&self, id: &str, resource: &Mapping, at: &str) -> Result<Option<BucketCors>, TemplateError> {
        let rules =
            resource.get("Properties").and_then(|p| p.get("CorsConfiguration")).and_then(|c| c.get("CorsRules"));
        let Some(rules) = rules else { return Ok(None) };
        let at = format!("{at}.Properties.CorsConfiguration.CorsRules");
        let rule = match rules {
            Value::Sequence(rules) if rules.len() == 1 => &rules[0],
            _ => return Err(invalid(&at, "expected exactly one rule")),
        };
        let list = |name: &str| -> Result<Vec<String>, TemplateError> {
            rule.get(name)
                .map(|v| self.string_list(v, &format!("{at}[0].{name}")))
                .transpose()
                .map(Option::unwrap_or_default)
        };
        let cors = CorsConfig {
            allow_origins: list("AllowedOrigins")?,
            allow_methods: list("AllowedMethods")?.into_iter().map(|m| m.to_ascii_uppercase()).collect(),
            allow_headers: list("AllowedHeaders")?,
            expose_headers: list("ExposedHeaders")?,
            max_age: rule.get("MaxAge").map(|v| self.number(v, &format!("{at}[0].MaxAge"))).transpose()?,
            allow_credentials: false,
        };
        Ok(Some(BucketCors { bucket: id.to_owned(), cors }))
    }

    fn http_event(&self, event: &Value, at: &str) -> Result<(HttpRoute, Option<String>), TemplateError> {
        let props = event.get("Properties").ok_or_else(|| {
            invalid(at, "has no Properties: a catch-all $default route is not supported; give Path and Method")
        })?;
        let props = mapping(props, &format!("{at}.Properties"))?;
        for key in props.keys() {
            let key = key_str(key, at)?;
            if !["Path", "Method", "ApiId", "TimeoutInMillis", "PayloadFormatVersion", "RouteSettings", "Auth"]
                .contains(&key)
            {
                return Err(invalid(at, format!("unsupported HttpApi property {key}")));
            }
        }
        if props.contains_key("Auth") {
            return Err(invalid(
                at,
                "HttpApi Auth (API Gateway authorizers) is not supported locally; functions check tokens",
            ));
        }
        if let Some(version) = props.get("PayloadFormatVersion") {
            if self.string(version, &format!("{at}.Properties.PayloadFormatVersion"))? != "2.0" {
                return Err(invalid(at, "only PayloadFormatVersion 2.0 is supported"));
            }
        }
        let path = props.get("Path").ok_or_else(|| invalid(at, "has no Path"))?;
        let path = self.string(path, &format!("{at}.Properties.Path"))?;
        validate_path(&path, at)?;
        let method = props.get("Method").ok_or_else(|| invalid(at, "has no Method"))?;
        let mut method = self.string(method, &format!("{at}.Properties.Method"))?.to_ascii_uppercase();
        if method == "X-AMAZON-APIGATEWAY-ANY-METHOD" || method == "*" {
            method = "ANY".into();
        }
        if !HTTP_METHODS.contains(&method.as_str()) {
            return Err(invalid(at, format!("unsupported method {method}")));
        }
        let api = match props.get("ApiId") {
            None => None,
            Some(api) => {
                let at = format!("{at}.Properties.ApiId");
                let Intrinsic::Ref(name) = self.intrinsic(api, &at)? else {
                    return Err(invalid(&at, "must be !Ref to an AWS::Serverless::HttpApi resource"));
                };
                let kind = self.resources.get(name).and_then(|r| r.get("Type")).and_then(Value::as_str);
                if kind != Some("AWS::Serverless::HttpApi") {
                    return Err(invalid(&at, format!("{name} is not an AWS::Serverless::HttpApi resource")));
                }
                Some(name.to_owned())
            }
        };
        Ok((HttpRoute { method, path }, api))
    }

    /// The CORS configuration of `api` (SAM's implicit API when `None`), falling
    /// back to `Globals.HttpApi`.
    fn cors(&self, api: Option<&str>) -> Result<Option<CorsConfig>, TemplateError> {
        let global = self.globals.and_then(|g| g.get("HttpApi"));
        let (props, at) = match api {
            Some(name) => {
                let at = format!("Resources.{name}.Properties");
                let props = self.resources.get(name).and_then(|r| r.get("Properties"));
                if let Some(props) = props {
                    let props_map = mapping(props, &at)?;
                    for unsupported in ["DefinitionBody", "DefinitionUri"] {
                        if props_map.contains_key(unsupported) {
                            return Err(invalid(
                                &at,
                                format!("{unsupported} is not supported: declare routes as HttpApi events"),
                            ));
                        }
                    }
                    if let Some(stage) = props_map.get("StageName") {
                        let stage = self.string(stage, &format!("{at}.StageName"))?;
                        if stage != "$default" {
                            return Err(invalid(
                                &at,
                                format!("StageName {stage:?}: only the $default stage is supported"),
                            ));
                        }
                    }
                }
                (props, at)
            }
            None => (None, "Globals.HttpApi".to_owned()),
        };
        let (config, at) = match props.and_then(|p| p.get("CorsConfiguration")) {
            Some(config) => (config, format!("{at}.CorsConfiguration")),
            None => match global.and_then(|g| g.get("CorsConfiguration")) {
                Some(config) => (config, "Globals.HttpApi.CorsConfiguration".to_owned()),
                None => return Ok(None),
            },
        };
        self.cors_config(config, &at)
    }

    fn cors_config(&self, config: &Value, at: &str) -> Result<Option<CorsConfig>, TemplateError> {
        let (resolved, _) = self.resolve(config, at)?;
        let map = match resolved.as_ref() {
            // SAM: `CorsConfiguration: true` allows every origin, method and header.
            Value::Bool(true) => {
                let all = vec!["*".to_owned()];
                return Ok(Some(CorsConfig {
                    allow_origins: all.clone(),
                    allow_methods: all.clone(),
                    allow_headers: all,
                    ..CorsConfig::default()
                }));
            }
            Value::Bool(false) => return Ok(None),
            Value::Mapping(map) => map,
            other => return Err(invalid(at, format!("expected a mapping or boolean, found {}", kind_of(other)))),
        };
        let mut cors = CorsConfig::default();
        for (key, value) in map {
            let key = key_str(key, at)?;
            let at = format!("{at}.{key}");
            match key {
                "AllowOrigins" => cors.allow_origins = self.string_list(value, &at)?,
                "AllowMethods" => {
                    cors.allow_methods =
                        self.string_list(value, &at)?.into_iter().map(|m| m.to_ascii_uppercase()).collect()
                }
                "AllowHeaders" => cors.allow_headers = self.string_list(value, &at)?,
                "ExposeHeaders" => cors.expose_headers = self.string_list(value, &at)?,
                "MaxAge" => {
                    let raw = self.string(value, &at)?;
                    cors.max_age =
                        Some(raw.parse().map_err(|_| invalid(&at, format!("{raw:?} is not a number of seconds")))?);
                }
                "AllowCredentials" => {
                    cors.allow_credentials = match self.resolve(value, &at)?.0.as_ref() {
                        Value::Bool(b) => *b,
                        Value::String(s) if s.eq_ignore_ascii_case("true") => true,
                        Value::String(s) if s.eq_ignore_ascii_case("false") => false,
                        other => return Err(invalid(&at, format!("expected a boolean, found {}", kind_of(other)))),
                    }
                }
                other => return Err(invalid(&at, format!("unsupported CORS setting {other}"))),
            }
        }
        Ok(Some(cors))
    }
}

/// Paths start with `/`; each `{name}` spans a whole segment; greedy `{name+}` is
/// not supported.
fn validate_path(path: &str, at: &str) -> Result<(), TemplateError> {
    if !path.starts_with('/') {
        return Err(invalid(at, format!("path {path:?} must start with /")));
    }
    if path == "/" {
        return Ok(());
    }
    for segment in path[1..].split('/') {
        if segment.is_empty() {
            return Err(invalid(at, format!("path {path:?} has an empty segment")));
        }
        let opens = segment.contains('{') || segment.contains('}');
        if opens {
            let name = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}'));
            match name {
                Some(name) if name.ends_with('+') => {
                    return Err(invalid(at, format!("greedy path variable {segment} is not supported locally")));
                }
                Some(name)
                    if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') => {}
                _ => {
                    return Err(invalid(at, format!("path segment {segment:?} must be a literal or a whole {{name}}")))
                }
            }
        }
    }
    Ok(())
}

fn mapping<'v>(value: &'v Value, at: &str) -> Result<&'v Mapping, TemplateError> {
    match value {
        Value::Mapping(map) => Ok(map),
        other => Err(invalid(at, format!("expected a mapping, found {}", kind_of(other)))),
    }
}

fn key_str<'v>(key: &'v Value, at: &str) -> Result<&'v str, TemplateError> {
    match key {
        Value::String(s) => Ok(s),
        other => Err(invalid(at, format!("expected string keys, found {}", kind_of(other)))),
    }
}

fn kind_of(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(_) => "a boolean".into(),
        Value::Number(_) => "a number".into(),
        Value::String(_) => "a string".into(),
        Value::Sequence(_) => "a list".into(),
        Value::Mapping(_) => "a mapping".into(),
        Value::Tagged(t) => format!("intrinsic {}", t.tag),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = r#"
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Parameters:
  AllowedOrigins:
    Type: CommaDelimitedList
    Default: "http://localhost:5173, http://127.0.0.1:5173"
Resources:
  HttpApi:
    Type: AWS::Serverless::HttpApi
    Properties:
      CorsConfiguration:
        AllowOrigins: !Ref AllowedOrigins
        AllowMethods: [GET, post]
        AllowHeaders: [authorization, content-type]
        ExposeHeaders: [etag, x-request-id]
        MaxAge: 600
  Table:
    Type: AWS::DynamoDB::Table
    Properties:
      TableName: !Sub "${AWS::StackName}-table"
  CategoriesFunction:
    Type: AWS::Serverless::Function
    Metadata:
      BuildMethod: rust-cargolambda
      BuildProperties:
        Binary: categories
    Properties:
      Environment:
        Variables:
          TABLE_NAME: !Ref Table
      Events:
        List:
          Type: HttpApi
          Properties: {Path: /categories, Method: get, ApiId: !Ref HttpApi}
        Read:
          Type: HttpApi
          Properties:
            Path: /categories/{id}
            Method: GET
            ApiId: !Ref HttpApi
        Nightly:
          Type: Schedule
          Properties: {Schedule: rate(1 day)}
  WorkerFunction:
    Type: AWS::Serverless::Function
    Metadata:
      BuildProperties:
        Binary: worker
    Properties:
      Events:
        Jobs:
          Type: SQS
          Properties:
            Queue: !GetAtt JobsQueue.Arn
            BatchSize: 5
            FunctionResponseTypes: [ReportBatchItemFailures]
            ScalingConfig: {MaximumConcurrency: 2}
  JobsQueue:
    Type: AWS::SQS::Queue
    Properties:
      VisibilityTimeout: 360
      RedrivePolicy:
        deadLetterTargetArn: !GetAtt JobsDeadLetterQueue.Arn
        maxReceiveCount: 3
  JobsDeadLetterQueue:
    Type: AWS::SQS::Queue
  AssetsBucket:
    Type: AWS::S3::Bucket
    Properties:
      CorsConfiguration:
        CorsRules:
          - AllowedOrigins: !Ref AllowedOrigins
            AllowedMethods: [PUT]
            AllowedHeaders: [content-type]
            MaxAge: 600
      NotificationConfiguration:
        QueueConfigurations:
          - Event: s3:ObjectCreated:*
            Filter: {S3Key: {Rules: [{Name: prefix, Value: incoming/}]}}
            Queue: !GetAtt JobsQueue.Arn
"#;

    #[test]
    fn reads_functions_routes_and_cors_with_parameter_defaults() {
        let template = Template::parse(TEMPLATE).unwrap();
        assert_eq!(template.functions.len(), 2);
        let function = &template.functions[0];
        assert_eq!(function.logical_id, "CategoriesFunction");
        assert_eq!(function.binary, "categories");
        let keys: Vec<String> = function.routes.iter().map(HttpRoute::route_key).collect();
        assert_eq!(keys, ["GET /categories", "GET /categories/{id}"]);
        let cors = template.cors.unwrap();
        assert_eq!(cors.allow_origins, ["http://localhost:5173", "http://127.0.0.1:5173"]);
        assert_eq!(cors.allow_methods, ["GET", "POST"]);
        assert_eq!(cors.expose_headers, ["etag", "x-request-id"]);
        assert_eq!(cors.max_age, Some(600));
    }

    fn error_of(template: &str) -> String {
        Template::parse(template).unwrap_err().to_string()
    }

    #[test]
    fn unsupported_shapes_are_clear_errors() {
        let sub = TEMPLATE.replace("Path: /categories, Method", "Path: !Sub /categories, Method");
        assert!(error_of(&sub).contains("intrinsic !Sub is not supported"), "{}", error_of(&sub));
        let greedy = TEMPLATE.replace("/categories/{id}", "/categories/{proxy+}");
        assert!(error_of(&greedy).contains("greedy"));
        let no_binary = TEMPLATE.replace("Binary: categories", "Other: x");
        assert!(error_of(&no_binary).contains("Metadata.BuildProperties.Binary"));
        let rest =
            TEMPLATE.replace("Type: HttpApi\n          Properties: {Path", "Type: Api\n          Properties: {Path");
        assert!(error_of(&rest).contains("REST API"));
        let unknown_ref = TEMPLATE.replace("!Ref AllowedOrigins", "!Ref Nope");
        assert!(error_of(&unknown_ref).contains("names no parameter"));
        let duplicate = TEMPLATE.replace("/categories/{id}", "/categories").replace("Method: GET", "Method: get");
        assert!(error_of(&duplicate).contains("declared twice"));
        let not_api = TEMPLATE.replace("Method: get, ApiId: !Ref HttpApi", "Method: get, ApiId: !Ref Table");
        assert!(error_of(&not_api).contains("not an AWS::Serverless::HttpApi"));
        assert!(error_of("Resources: [1]").contains("expected a mapping"));
        assert!(matches!(Template::parse(": : :"), Err(TemplateError::Yaml { .. })));
    }

    #[test]
    fn reads_queues_their_event_sources_and_bucket_notifications() {
        let template = Template::parse(TEMPLATE).unwrap();
        let jobs = template.queue("JobsQueue").unwrap();
        assert_eq!(jobs.visibility_timeout_secs, 360);
        assert_eq!(jobs.dead_letter, Some(("JobsDeadLetterQueue".to_owned(), 3)));
        assert_eq!(template.queue("JobsDeadLetterQueue").unwrap().visibility_timeout_secs, 30);
        assert_eq!(
            template.queue_sources,
            [QueueSource {
                function_logical_id: "WorkerFunction".into(),
                binary: "worker".into(),
                queue: "JobsQueue".into(),
                batch_size: 5,
                report_batch_item_failures: true,
                maximum_concurrency: 2,
            }]
        );
        assert_eq!(
            template.bucket_notifications,
            [BucketNotification {
                bucket: "AssetsBucket".into(),
                queue: "JobsQueue".into(),
                event: "s3:ObjectCreated:*".into(),
                prefix: "incoming/".into(),
            }]
        );
        let bucket_cors = &template.bucket_cors[0].cors;
        assert_eq!(bucket_cors.allow_origins, ["http://localhost:5173", "http://127.0.0.1:5173"]);
        assert_eq!((bucket_cors.allow_methods.clone(), bucket_cors.max_age), (vec!["PUT".to_owned()], Some(600)));
        let missing = TEMPLATE.replace(
            "Queue: !GetAtt JobsQueue.Arn\n            BatchSize",
            "Queue: !GetAtt Nope.Arn\n            BatchSize",
        );
        assert!(error_of(&missing).contains("names no resource Nope"), "{}", error_of(&missing));
        let not_arn = TEMPLATE.replace(
            "deadLetterTargetArn: !GetAtt JobsDeadLetterQueue.Arn",
            "deadLetterTargetArn: !Ref JobsDeadLetterQueue",
        );
        assert!(error_of(&not_arn).contains("!GetAtt <Resource>.Arn"));
    }

    #[test]
    fn cors_true_allows_everything_and_absent_cors_is_none() {
        let all = TEMPLATE.replace(
            "CorsConfiguration:\n        AllowOrigins: !Ref AllowedOrigins\n        AllowMethods: [GET, post]\n        AllowHeaders: [authorization, content-type]\n        ExposeHeaders: [etag, x-request-id]\n        MaxAge: 600",
            "CorsConfiguration: true",
        );
        assert_eq!(Template::parse(&all).unwrap().cors.unwrap().allow_origins, ["*"]);
        let none = TEMPLATE.replace("CorsConfiguration:", "Other:");
        assert!(Template::parse(&none).unwrap().cors.is_none());
    }
}
