//! `Conformance`: checks one HTTP exchange (operation, status, content type, body) against an OpenAPI 3.1
//! document, validating JSON bodies with JSON Schema 2020-12 (formats asserted). The unit tests below show
//! that each rule can fail, on small inline documents and on the real `openapi.json`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use jsonschema::Validator;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::Value;

/// The HTTP methods an OpenAPI path item can document.
const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// At most this many schema violations are listed in one error.
const MAX_SCHEMA_ERRORS: usize = 10;

/// An OpenAPI 3.1 document and the schema validators compiled from it so far.
pub struct Conformance {
    document: Value,
    /// Compiled validators by the JSON pointer (into `document`) of the schema they check.
    validators: Mutex<HashMap<String, Arc<Validator>>>,
}

impl Conformance {
    pub fn new(document: Value) -> Self {
        Conformance { document, validators: Mutex::new(HashMap::new()) }
    }

    /// Checks that the operation `method` (any case) on `path` (the document's path template, such as
    /// `/products/{id}`) may answer `status` with this content type and body. Errors name the operation, the
    /// status and what is wrong.
    pub fn check(
        &self,
        method: &str,
        path: &str,
        status: u16,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<(), String> {
        let method = method.to_ascii_lowercase();
        let fail = |what: String| format!("{} {path} -> {status}: {what}", method.to_ascii_uppercase());

        let (operation_pointer, operation) = self.operation(&method, path).map_err(fail)?;
        let responses_pointer = format!("{operation_pointer}/responses");
        let responses = operation
            .get("responses")
            .and_then(Value::as_object)
            .ok_or_else(|| fail("the operation documents no responses".into()))?;
        let key = [status.to_string(), format!("{}XX", status / 100), format!("{}xx", status / 100), "default".into()]
            .into_iter()
            .find(|key| responses.contains_key(key))
            .ok_or_else(|| {
                let documented: Vec<&str> = responses.keys().map(String::as_str).collect();
                fail(format!("the status is not documented (documented: {})", documented.join(", ")))
            })?;
        let (response_pointer, response) =
            self.resolve(format!("{responses_pointer}/{}", escape_token(&key))).map_err(fail)?;

        let content = response.get("content").and_then(Value::as_object).filter(|content| !content.is_empty());
        let Some(content) = content else {
            if !body.is_empty() {
                return Err(fail(format!(
                    "the documented response ({key}) has no content, but the body has {} bytes: {}",
                    body.len(),
                    preview(body)
                )));
            }
            return Ok(());
        };

        let documented = || content.keys().map(String::as_str).collect::<Vec<_>>().join(", ");
        let Some(content_type) = content_type else {
            return Err(fail(format!("no Content-Type, but the response documents {}", documented())));
        };
        let essence = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        let media_key = media_type_match(content.keys().map(String::as_str), &essence).ok_or_else(|| {
            fail(format!("content type {content_type:?} is not documented (documented: {})", documented()))
        })?;
        // A HEAD response describes the GET response's body without carrying it.
        if method == "head" || !is_json(&essence) {
            return Ok(());
        }

        let instance: Value = serde_json::from_slice(body)
            .map_err(|error| fail(format!("the {essence} body is not JSON ({error}): {}", preview(body))))?;
        let media = &content[media_key];
        if media.get("schema").is_none() {
            return Ok(());
        }
        let schema_pointer =
            self.schema_target(format!("{response_pointer}/content/{}/schema", escape_token(media_key)));
        let validator = self.validator(&schema_pointer).map_err(fail)?;
        let mut problems = String::new();
        let mut count = 0;
        for error in validator.iter_errors(&instance) {
            count += 1;
            if count <= MAX_SCHEMA_ERRORS {
                let at = error.instance_path().to_string();
                let at = if at.is_empty() { "(root)" } else { at.as_str() };
                let _ = write!(problems, "\n  {at}: {}", truncate(&error.to_string(), 300));
            }
        }
        if count == 0 {
            return Ok(());
        }
        if count > MAX_SCHEMA_ERRORS {
            let _ = write!(problems, "\n  ... and {} more", count - MAX_SCHEMA_ERRORS);
        }
        Err(fail(format!("the body does not match the schema at #{schema_pointer}:{problems}")))
    }

    /// The operation `method` (lower case) of `path`, with its JSON pointer.
    fn operation(&self, method: &str, path: &str) -> Result<(String, &Value), String> {
        let paths = self.document.get("paths").and_then(Value::as_object).ok_or("the document has no paths")?;
        if !paths.contains_key(path) {
            return Err(format!("the operation is not in the document (no path {path})"));
        }
        let (item_pointer, item) = self.resolve(format!("/paths/{}", escape_token(path)))?;
        match item.get(method) {
            Some(operation) if METHODS.contains(&method) => Ok((format!("{item_pointer}/{method}"), operation)),
            _ => {
                let documented: Vec<String> =
                    METHODS.iter().filter(|m| item.get(**m).is_some()).map(|m| m.to_ascii_uppercase()).collect();
                Err(format!("the operation is not in the document ({path} documents {})", documented.join(", ")))
            }
        }
    }

    /// The value at `pointer`, following `$ref`s to local targets; returns where it ended up.
    fn resolve(&self, mut pointer: String) -> Result<(String, &Value), String> {
        for _ in 0..32 {
            let value = self.document.pointer(&pointer).ok_or_else(|| format!("nothing at #{pointer}"))?;
            match value.get("$ref").and_then(Value::as_str) {
                Some(reference) => pointer = local_pointer(reference)?,
                None => return Ok((pointer, value)),
            }
        }
        Err(format!("$ref chain from #{pointer} is too long (a cycle?)"))
    }

    /// Where the schema at `pointer` really lives: a schema that is nothing but a local `$ref` is replaced by
    /// its target, so every use of `#/components/schemas/X` shares one compiled validator.
    fn schema_target(&self, mut pointer: String) -> String {
        for _ in 0..32 {
            let Some(reference) = self
                .document
                .pointer(&pointer)
                .and_then(Value::as_object)
                .filter(|schema| schema.len() == 1)
                .and_then(|schema| schema.get("$ref"))
                .and_then(Value::as_str)
            else {
                break;
            };
            match local_pointer(reference) {
                Ok(target) if self.document.pointer(&target).is_some() => pointer = target,
                _ => break,
            }
        }
        pointer
    }

    /// The validator of the schema at `pointer`, compiled on first use.
    fn validator(&self, pointer: &str) -> Result<Arc<Validator>, String> {
        let mut validators = self.validators.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(validator) = validators.get(pointer) {
            return Ok(Arc::clone(validator));
        }
        // The whole document is the root resource, so `$ref`s to `#/components/schemas/...` (or anywhere
        // else in it) resolve; its other members are unknown keywords, which JSON Schema ignores.
        let mut root = self.document.clone();
        let Some(members) = root.as_object_mut() else {
            return Err("the document is not a JSON object".into());
        };
        members.insert("$ref".into(), Value::String(format!("#{}", encode_fragment(pointer))));
        let validator = jsonschema::draft202012::options()
            .should_validate_formats(true)
            .build(&root)
            .map_err(|error| format!("the schema at #{pointer} does not compile: {error}"))?;
        let validator = Arc::new(validator);
        validators.insert(pointer.to_owned(), Arc::clone(&validator));
        Ok(validator)
    }
}

/// The documented media type (a key of `content`) that `essence` (lower case) matches: exactly (ignoring
/// case), else `type/*`, else `*/*`.
fn media_type_match<'a>(documented: impl Iterator<Item = &'a str>, essence: &str) -> Option<&'a str> {
    let candidates: Vec<(&str, String)> = documented.map(|key| (key, key.trim().to_ascii_lowercase())).collect();
    let range = essence.split_once('/').map(|(kind, _)| format!("{kind}/*"));
    [Some(essence.to_owned()), range, Some("*/*".to_owned())]
        .into_iter()
        .flatten()
        .find_map(|wanted| candidates.iter().find(|(_, key)| *key == wanted))
        .map(|(key, _)| *key)
}

/// `application/json` and the structured `+json` types (`application/problem+json`).
fn is_json(essence: &str) -> bool {
    essence == "application/json" || essence.ends_with("+json")
}

/// The JSON pointer of a `$ref` into this document (`#/components/responses/NotFound`).
fn local_pointer(reference: &str) -> Result<String, String> {
    let fragment = reference.strip_prefix('#').ok_or_else(|| format!("$ref {reference:?} is not local"))?;
    let pointer = decode_percent(fragment).ok_or_else(|| format!("$ref {reference:?} is badly percent-encoded"))?;
    if !pointer.is_empty() && !pointer.starts_with('/') {
        return Err(format!("$ref {reference:?} is not a JSON pointer"));
    }
    Ok(pointer)
}

/// One JSON pointer token: `/products/{id}` becomes `~1products~1{id}`.
fn escape_token(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// What a URI fragment percent-encodes: every byte outside RFC 3986's `pchar` and `/`.
const FRAGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'!')
    .remove(b'$')
    .remove(b'&')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')')
    .remove(b'*')
    .remove(b'+')
    .remove(b',')
    .remove(b';')
    .remove(b'=')
    .remove(b':')
    .remove(b'@')
    .remove(b'/');

/// A JSON pointer as a URI fragment.
fn encode_fragment(pointer: &str) -> String {
    utf8_percent_encode(pointer, FRAGMENT).to_string()
}

/// A percent-encoded fragment decoded: `None` when a `%` is not followed by two
/// hex digits or the bytes are not UTF-8.
fn decode_percent(text: &str) -> Option<String> {
    let well_formed = text
        .split('%')
        .skip(1)
        .all(|after| after.as_bytes().get(..2).is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit)));
    let decoded = percent_encoding::percent_decode_str(text).decode_utf8().ok()?;
    well_formed.then(|| decoded.into_owned())
}

/// The start of a body, for error messages.
fn preview(body: &[u8]) -> String {
    truncate(&String::from_utf8_lossy(body), 200)
}

fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::{decode_percent, encode_fragment, Conformance};

    const JSON: Option<&str> = Some("application/json");
    const PROBLEM: Option<&str> = Some("application/problem+json");

    /// A small document: products by id (200 Product, 304, 404 through `components/responses`, 4XX range,
    /// default), a 204 delete, and a list of tags with format-asserting properties.
    fn document() -> Value {
        json!({
            "openapi": "3.1.0",
            "info": {"title": "t", "version": "1"},
            "paths": {
                "/products/{id}": {
                    "get": {
                        "responses": {
                            "200": {
                                "description": "A product.",
                                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Product"}}}
                            },
                            "304": {"description": "Not modified."},
                            "404": {"$ref": "#/components/responses/NotFound"},
                            "4XX": {
                                "description": "Any other client error (an inline schema under a templated path).",
                                "content": {"application/problem+json": {"schema": {
                                    "allOf": [{"$ref": "#/components/schemas/Problem"}],
                                    "properties": {"status": {"minimum": 400, "maximum": 499}}
                                }}}
                            },
                            "default": {
                                "description": "Anything else.",
                                "content": {"text/plain": {"schema": {"type": "string"}}}
                            }
                        }
                    },
                    "delete": {"responses": {"204": {"description": "Deleted."}}}
                },
                "/contacts": {
                    "get": {
                        "responses": {
                            "200": {
                                "description": "Inline schema with formats and unknown keywords.",
                                "content": {"application/json": {"schema": {
                                    "type": "object",
                                    "required": ["email", "site", "seen"],
                                    "discriminator": {"propertyName": "kind"},
                                    "xml": {"name": "contact"},
                                    "example": {"email": "a@example.com"},
                                    "properties": {
                                        "email": {"type": "string", "format": "email"},
                                        "site": {"type": "string", "format": "uri"},
                                        "seen": {"type": "string", "format": "date-time"}
                                    }
                                }}}
                            }
                        }
                    }
                }
            },
            "components": {
                "responses": {"NotFound": {"$ref": "#/components/responses/Missing"}, "Missing": {
                    "description": "No such resource.",
                    "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
                }},
                "schemas": {
                    "Ulid": {"type": "string", "pattern": "^[0-9A-HJKMNP-TV-Z]{26}$"},
                    "Problem": {
                        "type": "object",
                        "required": ["title", "status"],
                        "properties": {"title": {"type": "string"}, "status": {"type": "integer"}}
                    },
                    "Product": {
                        "type": "object",
                        "required": ["id", "name", "price", "harvestDate", "createdAt"],
                        "properties": {
                            "id": {"$ref": "#/components/schemas/Ulid"},
                            "name": {"type": "string", "minLength": 1},
                            "price": {"type": "integer", "minimum": 1},
                            "harvestDate": {"type": ["string", "null"], "format": "date"},
                            "createdAt": {"type": "string", "format": "date-time"}
                        },
                        "example": {"id": "not checked"}
                    }
                }
            }
        })
    }

    fn product() -> Value {
        json!({
            "id": "01JD7M2K4Q9R3S5T6V8W0X1Y2Z",
            "name": "Cherry tomatoes",
            "price": 450,
            "harvestDate": "2024-11-18",
            "createdAt": "2024-11-18T07:42:10Z"
        })
    }

    fn bytes(value: &Value) -> Vec<u8> {
        serde_json::to_vec(value).unwrap()
    }

    fn check_product(conformance: &Conformance, body: &Value) -> Result<(), String> {
        conformance.check("GET", "/products/{id}", 200, JSON, &bytes(body))
    }

    fn assert_fails(result: Result<(), String>, needles: &[&str]) {
        let error = result.expect_err("the exchange should not conform");
        for needle in needles {
            assert!(error.contains(needle), "{needle:?} not in the error: {error}");
        }
    }

    #[test]
    fn conformance_is_shareable_between_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<Conformance>();
    }

    #[test]
    fn a_valid_product_body_passes() {
        let conformance = Conformance::new(document());
        check_product(&conformance, &product()).unwrap();
        // Again, through the cached validator, with parameters on the content type and a null date.
        let mut body = product();
        body["harvestDate"] = Value::Null;
        conformance
            .check("get", "/products/{id}", 200, Some("application/json; charset=utf-8"), &bytes(&body))
            .unwrap();
    }

    #[test]
    fn an_unknown_operation_fails() {
        let conformance = Conformance::new(document());
        assert_fails(conformance.check("GET", "/products", 200, JSON, b"{}"), &["GET /products -> 200", "no path"]);
        assert_fails(
            conformance.check("PATCH", "/products/{id}", 200, JSON, b"{}"),
            &["PATCH /products/{id} -> 200", "not in the document", "GET, DELETE"],
        );
    }

    #[test]
    fn an_undocumented_status_fails() {
        let conformance = Conformance::new(document());
        assert_fails(
            conformance.check("DELETE", "/products/{id}", 200, JSON, b"{}"),
            &["DELETE /products/{id} -> 200", "status is not documented", "204"],
        );
    }

    #[test]
    fn ranges_and_default_stand_in_for_undocumented_codes() {
        let conformance = Conformance::new(document());
        let problem = bytes(&json!({"title": "Gone", "status": 410}));
        conformance.check("GET", "/products/{id}", 410, PROBLEM, &problem).unwrap();
        assert_fails(
            conformance.check("GET", "/products/{id}", 410, PROBLEM, &bytes(&json!({"title": "Gone", "status": 200}))),
            &["-> 410", "/status", "400"],
        );
        assert_fails(conformance.check("GET", "/products/{id}", 410, JSON, &problem), &["-> 410", "not documented"]);
        conformance.check("GET", "/products/{id}", 503, Some("text/plain"), b"down").unwrap();
        assert_fails(conformance.check("GET", "/products/{id}", 503, JSON, b"{}"), &["-> 503", "text/plain"]);
    }

    #[test]
    fn responses_resolve_through_refs() {
        let conformance = Conformance::new(document());
        conformance
            .check("GET", "/products/{id}", 404, PROBLEM, &bytes(&json!({"title": "Nope", "status": 404})))
            .unwrap();
        assert_fails(
            conformance.check("GET", "/products/{id}", 404, PROBLEM, &bytes(&json!({"title": "Nope"}))),
            &["GET /products/{id} -> 404", "#/components/schemas/Problem", "status"],
        );
        // Both went through one validator, compiled for the schema the media type `$ref`s.
        let validators = conformance.validators.lock().unwrap();
        assert_eq!(validators.keys().collect::<Vec<_>>(), ["/components/schemas/Problem"]);
    }

    #[test]
    fn a_wrong_content_type_fails() {
        let conformance = Conformance::new(document());
        let body = bytes(&product());
        assert_fails(
            conformance.check("GET", "/products/{id}", 200, Some("text/html"), &body),
            &["GET /products/{id} -> 200", "\"text/html\" is not documented", "application/json"],
        );
        // The structured suffix is not the plain type, either way round.
        assert_fails(conformance.check("GET", "/products/{id}", 200, PROBLEM, &body), &["-> 200", "not documented"]);
        let problem = bytes(&json!({"title": "Nope", "status": 404}));
        assert_fails(conformance.check("GET", "/products/{id}", 404, JSON, &problem), &["-> 404", "not documented"]);
        assert_fails(conformance.check("GET", "/products/{id}", 200, None, &body), &["-> 200", "no Content-Type"]);
    }

    #[test]
    fn a_body_missing_a_required_property_fails() {
        let conformance = Conformance::new(document());
        let mut body = product();
        body.as_object_mut().unwrap().remove("price");
        assert_fails(check_product(&conformance, &body), &["GET /products/{id} -> 200", "\"price\"", "required"]);
    }

    #[test]
    fn a_wrong_type_fails() {
        let conformance = Conformance::new(document());
        let mut body = product();
        body["price"] = json!("4.50");
        assert_fails(check_product(&conformance, &body), &["-> 200", "/price", "integer"]);
        // Through a `$ref`ed component (a pattern), and at the root.
        let mut body = product();
        body["id"] = json!("not-a-ulid");
        assert_fails(check_product(&conformance, &body), &["/id", "not-a-ulid"]);
        assert_fails(check_product(&conformance, &json!([])), &["(root)", "object"]);
    }

    #[test]
    fn formats_are_asserted() {
        let conformance = Conformance::new(document());
        let mut body = product();
        body["createdAt"] = json!("yesterday");
        assert_fails(check_product(&conformance, &body), &["/createdAt", "date-time"]);
        let mut body = product();
        body["harvestDate"] = json!("2024-13-40");
        assert_fails(check_product(&conformance, &body), &["/harvestDate", "date"]);

        let contact =
            json!({"email": "a@example.com", "site": "https://example.com/a", "seen": "2024-11-18T07:42:10Z"});
        let check = |body: &Value| conformance.check("GET", "/contacts", 200, JSON, &bytes(body));
        check(&contact).unwrap();
        let mut body = contact.clone();
        body["email"] = json!("not an email");
        assert_fails(check(&body), &["/email", "email"]);
        let mut body = contact.clone();
        body["site"] = json!("no scheme");
        assert_fails(check(&body), &["/site", "uri"]);
    }

    #[test]
    fn a_body_that_is_not_json_fails() {
        let conformance = Conformance::new(document());
        assert_fails(
            conformance.check("GET", "/products/{id}", 200, JSON, b"<html>"),
            &["-> 200", "not JSON", "<html>"],
        );
        assert_fails(conformance.check("GET", "/products/{id}", 200, JSON, b""), &["-> 200", "not JSON"]);
    }

    #[test]
    fn a_body_on_a_response_without_content_fails() {
        let conformance = Conformance::new(document());
        conformance.check("DELETE", "/products/{id}", 204, None, b"").unwrap();
        assert_fails(
            conformance.check("DELETE", "/products/{id}", 204, JSON, b"{}"),
            &["DELETE /products/{id} -> 204", "no content", "2 bytes"],
        );
        conformance.check("GET", "/products/{id}", 304, None, b"").unwrap();
        assert_fails(conformance.check("GET", "/products/{id}", 304, None, b"x"), &["-> 304", "no content"]);
    }

    fn real_document() -> Conformance {
        Conformance::new(serde_json::from_str(include_str!("../../openapi.json")).expect("openapi.json is JSON"))
    }

    #[test]
    fn the_real_document_accepts_a_category_list_and_a_problem() {
        let conformance = real_document();
        let list = json!({
            "items": [{
                "id": "01JD3Q6V7N0G8X3Y5Z2W4K6M8P",
                "name": "Leafy greens",
                "slug": "leafy-greens",
                "description": null,
                "createdAt": "2024-11-18T07:42:10Z",
                "updatedAt": "2024-11-18T07:42:10.123Z",
                "version": 1,
                "productCount": 0
            }],
            "nextCursor": null
        });
        conformance.check("GET", "/categories", 200, JSON, &bytes(&list)).unwrap();
        let problem = json!({
            "type": "/problems/not-found",
            "title": "Not Found",
            "status": 404,
            "detail": "no category 01JD3Q6V7N0G8X3Y5Z2W4K6M8P",
            "requestId": "01JD3Q6V7N0G8X3Y5Z2W4K6M8Q"
        });
        conformance.check("GET", "/categories/{id}", 404, PROBLEM, &bytes(&problem)).unwrap();
        conformance.check("GET", "/categories", 304, None, b"").unwrap();

        let mut bad = list.clone();
        bad["items"][0].as_object_mut().unwrap().remove("slug");
        assert_fails(conformance.check("GET", "/categories", 200, JSON, &bytes(&bad)), &["/items/0", "\"slug\""]);
        let mut bad = problem.clone();
        bad["status"] = json!(200);
        assert_fails(conformance.check("GET", "/categories/{id}", 404, PROBLEM, &bytes(&bad)), &["/status", "400"]);
        assert_fails(conformance.check("GET", "/categories/{id}", 418, PROBLEM, &bytes(&problem)), &["not documented"]);
    }

    #[test]
    fn the_real_documents_product_example_is_a_valid_product() {
        let conformance = real_document();
        let document: Value = serde_json::from_str(include_str!("../../openapi.json")).unwrap();
        let examples = &document["components"]["schemas"]["Product"]["examples"];
        let example = examples.get(0).expect("Product has an example");
        conformance.check("GET", "/products/{id}", 200, JSON, &bytes(example)).unwrap();
    }

    #[test]
    fn fragments_round_trip_and_bad_escapes_are_refused() {
        let pointer = "/paths/~1products~1{id}/get/responses/200 é";
        let fragment = encode_fragment(pointer);
        assert_eq!(fragment, "/paths/~1products~1%7Bid%7D/get/responses/200%20%C3%A9");
        assert_eq!(decode_percent(&fragment).as_deref(), Some(pointer));
        for bad in ["%", "%4", "%zz", "%+1", "a%-1", "%FF"] {
            assert_eq!(decode_percent(bad), None, "{bad}");
        }
    }
}
