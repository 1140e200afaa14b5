//! Development-only pages of the local gateway (absent from the template and
//! the OpenAPI document):
//! - `GET /_local/mail`: the local mailbox, newest first, as a page with
//!   clickable links, or as JSON (`Accept: application/json` or `?format=json`);
//! - `GET /_local/links/verify-email?token=…` and `/_local/links/reset-password?token=…`:
//!   what the links in local mail open, standing in for the frontend's pages.
//!   They call the API (`POST /auth/verify-email`, `POST /auth/password-reset/confirm`)
//!   from the browser and show the answer.

use axum::body::Body as AxumBody;
use http::header::{self, HeaderMap, HeaderValue};
use http::StatusCode;
use shared::adapters::{MailDir, StoredMail};
use shared::http::ApiError;
use shared::mail::html_escape;

use crate::gateway::problem;

/// The mailbox page.
pub const MAIL_PATH: &str = "/_local/mail";

/// Turns every `http(s)://…` run of the (escaped) text into a link.
fn linkify(escaped: &str) -> String {
    let mut out = String::new();
    for (n, line) in escaped.split('\n').enumerate() {
        if n > 0 {
            out.push('\n');
        }
        let words: Vec<String> = line
            .split(' ')
            .map(|word| {
                if word.starts_with("http://") || word.starts_with("https://") {
                    format!("<a href=\"{word}\">{word}</a>")
                } else {
                    word.to_owned()
                }
            })
            .collect();
        out.push_str(&words.join(" "));
    }
    out
}

fn html_response(status: StatusCode, html: String) -> http::Response<AxumBody> {
    let mut response = http::Response::new(AxumBody::from(html));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn mail_page(mails: &[StoredMail]) -> String {
    let mut html = String::from(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Local mailbox</title>\
         <style>body{font-family:sans-serif;max-width:50rem;margin:2rem auto}article{border:1px solid #ccc;\
         padding:1rem;margin:1rem 0}pre{white-space:pre-wrap}</style></head><body><h1>Local mailbox</h1>\
         <p>Mail the marketplace sent on this machine, newest first. Development only.</p>",
    );
    if mails.is_empty() {
        html.push_str("<p>No mail yet.</p>");
    }
    for mail in mails.iter().rev() {
        html.push_str(&format!(
            "<article><h2>{}</h2><p>To <b>{}</b> at {}</p><pre>{}</pre></article>",
            html_escape(&mail.mail.subject),
            html_escape(&mail.mail.to),
            html_escape(&mail.sent_at),
            linkify(&html_escape(&mail.mail.text)),
        ));
    }
    html.push_str("</body></html>");
    html
}

/// `GET /_local/mail`.
pub fn serve_mail(mailbox: &MailDir, headers: &HeaderMap, query: &str, request_id: &str) -> http::Response<AxumBody> {
    let mails = match mailbox.list() {
        Ok(mails) => mails,
        Err(e) => return problem(ApiError::internal(e), request_id),
    };
    let wants_json = query.split('&').any(|pair| pair == "format=json")
        || headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("application/json"));
    if !wants_json {
        return html_response(StatusCode::OK, mail_page(&mails));
    }
    let newest_first: Vec<&StoredMail> = mails.iter().rev().collect();
    let body = serde_json::to_vec(&serde_json::json!({ "items": newest_first })).unwrap_or_default();
    let mut response = http::Response::new(AxumBody::from(body));
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

const PAGE_HEAD: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
    <style>body{font-family:sans-serif;max-width:40rem;margin:2rem auto}</style>";

/// A page that posts `{token, …}` to `endpoint` and shows the answer.
const SCRIPT: &str = r#"<script>
const token = new URLSearchParams(location.search).get("token") || "";
async function call(endpoint, extra) {
  const out = document.getElementById("out");
  const response = await fetch(endpoint, {method: "POST", headers: {"content-type": "application/json"},
    body: JSON.stringify(Object.assign({token}, extra))});
  const text = await response.text();
  let detail = text;
  try { const body = JSON.parse(text); detail = body.detail || body.title || JSON.stringify(body, null, 2); } catch (e) {}
  out.textContent = response.ok ? "Done (" + response.status + ")." : "Failed (" + response.status + "): " + detail;
}
</script>"#;

/// `GET /_local/links/<page>`: the stand-in frontend pages.
pub fn serve_link_page(page: &str, request_id: &str) -> http::Response<AxumBody> {
    match page {
        "verify-email" => html_response(
            StatusCode::OK,
            format!(
                "{PAGE_HEAD}<title>Verify email</title>{SCRIPT}</head><body><h1>Verifying your email address…</h1>\
                 <p id=\"out\"></p><script>call(\"/auth/verify-email\", {{}});</script></body></html>"
            ),
        ),
        "reset-password" => html_response(
            StatusCode::OK,
            format!(
                "{PAGE_HEAD}<title>Reset password</title>{SCRIPT}</head><body><h1>Choose a new password</h1>\
                 <form onsubmit=\"event.preventDefault(); call('/auth/password-reset/confirm', \
                 {{password: document.getElementById('password').value}});\">\
                 <input id=\"password\" type=\"password\" minlength=\"10\" maxlength=\"128\" required \
                 autocomplete=\"new-password\"> <button>Set password</button></form><p id=\"out\"></p></body></html>"
            ),
        ),
        other => problem(ApiError::NotFound(format!("no local page {other:?}")), request_id),
    }
}
