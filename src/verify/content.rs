//! What the body of a delivery is (JSON, or a form with a `payload=` field) and how to
//! get the JSON document out of it.

use std::borrow::Cow;

use super::Headers;

/// The body's encoding, from `Content-Type`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Encoding {
    Json,
    /// `application/x-www-form-urlencoded` with the JSON in a `payload` field, as GitHub,
    /// Gitea, Forgejo and Gogs send when the hook is set to "form".
    Form,
    /// Anything else, or no `Content-Type` at all.
    Unsupported(String),
}

/// Why a verified body cannot be read as a delivery. Answered 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContentError {
    #[error(
        "unsupported Content-Type {0:?}: send application/json (or application/x-www-form-urlencoded where the forge offers it)"
    )]
    Unsupported(String),
    #[error("this forge sends JSON only, but Content-Type is application/x-www-form-urlencoded")]
    FormNotExpected,
    #[error("form-encoded body has no payload field")]
    NoPayloadField,
}

impl Encoding {
    pub fn of(headers: &dyn Headers) -> Encoding {
        let Some(raw) = headers.get("Content-Type") else {
            return Encoding::Unsupported("(none)".to_owned());
        };
        let value = String::from_utf8_lossy(raw);
        let media = value.split(';').next().unwrap_or("").trim();
        if media.eq_ignore_ascii_case("application/json") {
            Encoding::Json
        } else if media.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
            Encoding::Form
        } else {
            Encoding::Unsupported(media.chars().take(100).collect())
        }
    }

    /// The JSON document for forges that may send either encoding.
    pub fn json_document<'a>(&self, body: &'a [u8]) -> Result<Cow<'a, [u8]>, ContentError> {
        match self {
            Encoding::Json => Ok(Cow::Borrowed(body)),
            Encoding::Form => form_payload(body)
                .map(|p| Cow::Owned(p.into_bytes()))
                .ok_or(ContentError::NoPayloadField),
            Encoding::Unsupported(t) => Err(ContentError::Unsupported(t.clone())),
        }
    }

    /// The JSON document for forges that only send JSON.
    pub fn json_only<'a>(&self, body: &'a [u8]) -> Result<Cow<'a, [u8]>, ContentError> {
        match self {
            Encoding::Json => Ok(Cow::Borrowed(body)),
            Encoding::Form => Err(ContentError::FormNotExpected),
            Encoding::Unsupported(t) => Err(ContentError::Unsupported(t.clone())),
        }
    }
}

fn form_payload(body: &[u8]) -> Option<String> {
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(body).ok()?;
    fields
        .into_iter()
        .find(|(k, _)| k == "payload")
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::tests::TestHeaders;

    #[test]
    fn content_type_parameters_and_case_are_ignored() {
        let h = TestHeaders::with(&[("content-type", "Application/JSON; charset=utf-8")]);
        assert_eq!(Encoding::of(&h), Encoding::Json);
        let h = TestHeaders::with(&[("content-type", "text/plain")]);
        assert_eq!(Encoding::of(&h), Encoding::Unsupported("text/plain".into()));
        assert_eq!(
            Encoding::of(&TestHeaders::default()),
            Encoding::Unsupported("(none)".into())
        );
    }

    #[test]
    fn form_payload_is_url_decoded() {
        let body = b"payload=%7B%22a%22%3A+1%7D&other=x";
        let doc = Encoding::Form.json_document(body).unwrap();
        assert_eq!(&*doc, br#"{"a": 1}"#);
        assert_eq!(
            Encoding::Form.json_document(b"other=x").unwrap_err(),
            ContentError::NoPayloadField
        );
        assert_eq!(
            Encoding::Form.json_only(body).unwrap_err(),
            ContentError::FormNotExpected
        );
    }
}
