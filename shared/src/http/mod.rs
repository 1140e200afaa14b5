//! The HTTP kit every function uses: routing, request parsing, the auth guard,
//! problem+json errors, JSON responses with cache headers and ETags, and cursors.

mod cursor;
mod problem;
mod request;
mod response;
mod router;

pub use cursor::Cursor;
pub use problem::ApiError;
pub use request::{explicit, RequestCtx, MAX_JSON_BODY_BYTES};
pub use response::{
    etag_of, json, json_cacheable, json_cacheable_tagged, no_content, none_match_hits, HttpResponse, PRIVATE_NO_STORE,
    PUBLIC_CATALOGUE_CACHE,
};
pub use router::{serve, Route};
