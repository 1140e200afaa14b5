//! Outgoing mail: the templates (kept in `shared/mail/`, compiled in) and
//! their rendering. A template names its values `{{name}}`; the HTML body gets
//! them HTML-escaped. This is written by hand rather than with a template
//! engine: a few fixed templates with a few plain values need no loops,
//! conditions or inheritance, and no extra dependency in every function.

use crate::ports::OutgoingMail;

/// A message the marketplace sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Template<'a> {
    /// A link verifying the address, valid `hours`.
    VerifyEmail { name: &'a str, link: &'a str, hours: i64 },
    /// A link setting a new password, valid `hours`.
    ResetPassword { name: &'a str, link: &'a str, hours: i64 },
    /// To the owner of an address someone tried to sign up with again: sign
    /// in, or reset the password.
    AccountExists { name: &'a str },
    /// A notice (order placed, order status changed): its title and text.
    Notice { name: &'a str, title: &'a str, body: &'a str },
}

const VERIFY_TEXT: &str = include_str!("../mail/verify-email.txt");
const VERIFY_HTML: &str = include_str!("../mail/verify-email.html");
const RESET_TEXT: &str = include_str!("../mail/reset-password.txt");
const RESET_HTML: &str = include_str!("../mail/reset-password.html");
const EXISTS_TEXT: &str = include_str!("../mail/account-exists.txt");
const EXISTS_HTML: &str = include_str!("../mail/account-exists.html");
const NOTICE_TEXT: &str = include_str!("../mail/notice.txt");
const NOTICE_HTML: &str = include_str!("../mail/notice.html");

/// Replaces each `{{key}}` of `template` by its value (escaped by `escape`),
/// in one pass over the template: a value is never read for placeholders, so
/// a display name spelling `{{link}}` stays that text. A placeholder with no
/// value stays as it is.
fn fill(template: &str, values: &[(&str, &str)], escape: fn(&str) -> String) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let value = after.find("}}").and_then(|end| {
            let key = &after[..end];
            values.iter().find(|(k, _)| *k == key).map(|(_, value)| (value, end))
        });
        match value {
            Some((value, end)) => {
                out.push_str(&escape(value));
                rest = &after[end + 2..];
            }
            None => {
                out.push_str("{{");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// `raw` as HTML text (also safe inside a double- or single-quoted attribute).
pub fn html_escape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

impl Template<'_> {
    /// The message to `to`.
    pub fn render(&self, to: &str) -> OutgoingMail {
        let hours;
        let (subject, text, html, values): (&str, &str, &str, Vec<(&str, &str)>) = match self {
            Template::VerifyEmail { name, link, hours: h } => {
                hours = h.to_string();
                let values = vec![("name", *name), ("link", *link), ("hours", hours.as_str())];
                ("Confirm your email address", VERIFY_TEXT, VERIFY_HTML, values)
            }
            Template::ResetPassword { name, link, hours: h } => {
                hours = h.to_string();
                let values = vec![("name", *name), ("link", *link), ("hours", hours.as_str())];
                ("Reset your password", RESET_TEXT, RESET_HTML, values)
            }
            Template::AccountExists { name } => {
                ("You already have an account", EXISTS_TEXT, EXISTS_HTML, vec![("name", *name)])
            }
            Template::Notice { name, title, body } => {
                (*title, NOTICE_TEXT, NOTICE_HTML, vec![("name", *name), ("title", *title), ("body", *body)])
            }
        };
        OutgoingMail {
            to: to.to_owned(),
            subject: subject.to_owned(),
            text: fill(text, &values, str::to_owned),
            html: fill(html, &values, html_escape),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_fill_both_bodies_and_html_is_escaped() {
        let mail = Template::VerifyEmail { name: "Ana <b>&", link: "https://x.test/v?token=a&b", hours: 48 }
            .render("ana@example.com");
        assert_eq!(mail.to, "ana@example.com");
        assert!(mail.text.contains("Hello Ana <b>&,") && mail.text.contains("https://x.test/v?token=a&b"));
        assert!(mail.html.contains("Hello Ana &lt;b&gt;&amp;,"));
        assert!(mail.html.contains("href=\"https://x.test/v?token=a&amp;b\""));
        assert!(mail.text.contains("48 hours") && !mail.text.contains("{{") && !mail.html.contains("{{"));
    }

    #[test]
    fn a_value_spelling_a_placeholder_is_never_filled_again() {
        let link = "https://x.test/v?token=secret";
        let mail = Template::VerifyEmail { name: "{{link}} {{hours}}", link, hours: 48 }.render("ana@example.com");
        assert!(mail.text.contains("Hello {{link}} {{hours}},"), "{}", mail.text);
        assert!(mail.html.contains("Hello {{link}} {{hours}},"), "{}", mail.html);
        assert_eq!(mail.text.matches(link).count(), 1, "{}", mail.text);
        let notice = Template::Notice { name: "Ana", title: "{{body}}", body: "{{name}}" }.render("ana@example.com");
        assert!(notice.text.contains("{{body}}") && notice.html.contains("{{body}}"), "{}", notice.text);
    }
}
