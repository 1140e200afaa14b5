//! The OpenAPI 3.1 document: what every function's routes share (the problem
//! body, the bearer scheme, the API description) and `document`, which merges the
//! functions' own operations and completes each with the statuses the shared
//! extractors can answer, so none goes undocumented.

use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::server::{ServerBuilder, ServerVariableBuilder};
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{ComponentsBuilder, InfoBuilder, OpenApi, OpenApiBuilder, Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

use super::problem::Problem;
use crate::domain::FieldError;

/// The name of the bearer-token security scheme operations refer to.
pub const BEARER: &str = "bearerAuth";

const IF_NONE_MATCH: &str = "If-None-Match";

/// The `If-None-Match` header of a public, cacheable read (`params(IfNoneMatch)`):
/// the operation is documented with its 304. `Reply::public` answers it.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IfNoneMatch {
    /// ETags from an earlier response; a match answers 304.
    #[param(rename = "If-None-Match", nullable = false)]
    pub if_none_match: Option<String>,
}

const DESCRIPTION: &str = "The marketplace's HTTP API (API Gateway HTTP API in AWS; \
`marketplace-local` on a laptop, which also serves this document at `/openapi.json`). \
This document is generated from the functions' routes; `openapi.json` in the repository is its committed copy.\n\n\
JSON bodies are camelCase. A request body must be a JSON object; unknown fields are ignored; `null` is \
accepted only where a schema says the field is nullable, and in a PATCH it clears the field while an absent \
field leaves it unchanged. Errors are `application/problem+json` (RFC 9457) carrying the request id; every \
response carries `x-request-id`. Lists page with `?limit=&cursor=`. Public catalogue reads send `ETag` and \
`Cache-Control` and answer `If-None-Match` with 304; personal data is `Cache-Control: private, no-store`. The \
gateway rejects bodies over 10 MB with 413 and unknown routes with 404.";

/// The tags, one per function, in the order the document lists them.
const TAGS: &[(&str, &str)] = &[
    ("health", "The `health` function."),
    ("auth", "The `auth` function: accounts and sessions."),
    ("categories", "The `categories` function: public catalogue reads, admin writes."),
    ("products", "The `products` function: public catalogue reads, farmer writes and image uploads."),
    ("users", "The `users` function: profiles, notifications, sales figures, farmer pages, user administration."),
    ("orders", "The `orders` function: checkout, order history, status changes, payment."),
];

/// What a problem status means wherever an operation does not say more.
fn default_problem_description(status: &str) -> &'static str {
    match status {
        "400" => "Malformed request: the body is not JSON, or a value (such as the cursor) cannot be parsed.",
        "401" => "No bearer token, or an invalid or expired one.",
        "403" => "Authenticated, but not allowed to do this.",
        "404" => "No such resource.",
        "409" => "Conflicts with the current state, or the data is busy with concurrent requests (then `Retry-After` says when to try again); nothing was changed.",
        "412" => "`If-Match` does not name the current version; nothing changed.",
        "413" => "The body is larger than the endpoint accepts.",
        "415" => "The body is not `application/json`.",
        "422" => "Well-formed, but fields are missing or invalid; `errors` names each.",
        "429" => "Throttled; retry after the `Retry-After` seconds.",
        "500" => "A bug or a backend failure; quote the request id when reporting it.",
        _ => "An error.",
    }
}

fn request_id_header() -> utoipa::openapi::header::Header {
    HeaderBuilder::new()
        .schema(ObjectBuilder::new().schema_type(Type::String))
        .description(Some("The request id (also in problem bodies); quote it when reporting a problem."))
        .build()
}

fn problem_response(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/problem+json",
            ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build(),
        )
        .build()
}

/// Adds the statuses the shared extractors answer (a JSON body: 400, 413, 415,
/// 422; a query: 422; a bearer token: 401 and 403; `If-None-Match`: 304; anything: 500),
/// problem+json content on every error response that has none, and
/// `x-request-id` on every response.
fn complete(operation: &mut Operation, writes: bool) {
    let mut implied = vec!["500"];
    if writes {
        // A write can find its items busy (`StoreError::Contended`).
        implied.push("409");
    }
    if operation.request_body.is_some() {
        implied.extend(["400", "413", "415", "422"]);
    }
    let has_query = operation
        .parameters
        .iter()
        .flatten()
        .any(|p| matches!(p.parameter_in, utoipa::openapi::path::ParameterIn::Query));
    if has_query {
        implied.push("422");
    }
    if operation.security.as_ref().is_some_and(|s| !s.is_empty()) {
        // 403 too: a token claiming admin rights the stored account no longer has.
        implied.extend(["401", "403"]);
    }
    let conditional = operation.parameters.iter().flatten().any(|p| p.name == IF_NONE_MATCH);
    if conditional {
        let not_modified = ResponseBuilder::new().description("Not modified: the `If-None-Match` ETag is current.");
        operation.responses.responses.entry("304".into()).or_insert_with(|| RefOr::T(not_modified.build()));
    }
    for status in implied {
        operation
            .responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| RefOr::T(problem_response(default_problem_description(status))));
    }
    for (status, response) in operation.responses.responses.iter_mut() {
        let RefOr::T(response) = response else { continue };
        if status.starts_with('4') || status.starts_with('5') {
            if response.content.is_empty() {
                response.content = problem_response("").content;
            }
            if status == "429" || status == "409" {
                let retry_after = HeaderBuilder::new()
                    .schema(ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(1)))
                    .description(Some("Seconds to wait before trying again."))
                    .build();
                response.headers.insert("Retry-After".into(), retry_after);
            }
        }
        response.headers.insert("x-request-id".into(), request_id_header());
    }
}

/// The whole API's document: the shared parts, then every function's operations
/// (`functions`, each from its routes), each completed as above.
pub fn document(functions: impl IntoIterator<Item = OpenApi>) -> OpenApi {
    let bearer = HttpBuilder::new()
        .scheme(HttpAuthScheme::Bearer)
        .bearer_format("JWT")
        .description(Some("The `accessToken` of an AuthSession (Ed25519-signed JWT, 15 minutes by default)."))
        .build();
    let components = ComponentsBuilder::new()
        .schema(Problem::name(), Problem::schema())
        .schema(FieldError::name(), FieldError::schema())
        .schema(crate::orders::Shortage::name(), crate::orders::Shortage::schema())
        .schema(crate::orders::OpenLimit::name(), crate::orders::OpenLimit::schema())
        .security_scheme(BEARER, SecurityScheme::Http(bearer))
        .build();
    let deployed = ServerBuilder::new()
        .url("https://{apiId}.execute-api.{region}.amazonaws.com")
        .description(Some("A deployed stack (see the stack's ApiUrl output)"))
        .parameter("apiId", ServerVariableBuilder::new().default_value("abcdef1234"))
        .parameter("region", ServerVariableBuilder::new().default_value("eu-west-1"))
        .build();
    let local =
        ServerBuilder::new().url("http://127.0.0.1:3000").description(Some("Local gateway (`make run`)")).build();
    let mut doc = OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Farmers' marketplace API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(DESCRIPTION))
                .build(),
        )
        .servers(Some([local, deployed]))
        .tags(Some(
            TAGS.iter()
                .map(|(name, description)| TagBuilder::new().name(*name).description(Some(*description)).build()),
        ))
        .components(Some(components))
        .build();
    for function in functions {
        doc.merge(function);
    }
    for item in doc.paths.paths.values_mut() {
        for (operation, writes) in [
            (&mut item.get, false),
            (&mut item.put, true),
            (&mut item.post, true),
            (&mut item.delete, true),
            (&mut item.options, false),
            (&mut item.head, false),
            (&mut item.patch, true),
            (&mut item.trace, false),
        ] {
            if let Some(operation) = operation {
                complete(operation, writes);
            }
        }
    }
    doc
}
