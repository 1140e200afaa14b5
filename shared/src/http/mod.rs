//! The HTTP kit every function uses: the application around a function's typed
//! routes, extractors (strict JSON bodies, queries, the bearer-token guard),
//! problem+json errors, typed responses with cache headers and ETags, cursors,
//! pages of lists (`Page`, `paginate`), and the OpenAPI document built from the routes.

mod app;
mod cursor;
mod extract;
mod openapi;
mod page;
mod problem;
mod response;

pub use app::{app, run, RouteGroup, Router, Routes};
pub use cursor::{Cursors, Limit, PageParams};
pub use extract::{
    body_fingerprint, date_param, idempotency_key, non_null, nullable, Admins, Allowed, Authorized, Caller, Farmers,
    IfMatch, JsonBody, PathParams, Query, SourceAddress, MAX_JSON_BODY_BYTES,
};
pub use openapi::{document, IfNoneMatch, BEARER};
pub use page::{paginate, Listed, NoFields, Page};
pub use problem::{ApiError, Problem};
pub use response::{
    etag_of, none_match_hits, Csv, CsvCell, JsonOrCsv, NoContent, Reply, ReplyBody, PRIVATE_NO_STORE,
    PUBLIC_CATALOGUE_CACHE,
};
