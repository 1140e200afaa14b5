//! The hello-world floor of the Lambda harness: answers every API Gateway event
//! with 200 `{"ok":true}` and does nothing else.

use lambda_http::{run, service_fn, Body, Error, Request, Response};

async fn hello(_request: Request) -> Result<Response<Body>, Error> {
    Ok(Response::builder().status(200).header("content-type", "application/json").body(Body::from(r#"{"ok":true}"#))?)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    run(service_fn(hello)).await
}
