//! A stored SCIM representation as the database returned it: JSON text, parsed only by
//! those who change it.

use serde_json::Value as JsonValue;
use serde_json::value::RawValue;

/// A resource's stored attributes (without `id`, `meta` and `groups`) as JSON text.
///
/// A read that answers with the resource as stored splices this text into its answer
/// rather than building a `serde_json::Value` and serialising it again (on SQLite that
/// parse and serialisation were a quarter of a GET). Writes parse it:
/// [`Document::to_value`].
#[derive(Debug, Clone)]
pub struct Document(Box<RawValue>);

impl Document {
    /// The text of `value`.
    pub fn from_value(value: &JsonValue) -> Self {
        // A `Value` always serialises (its keys are strings).
        Self(serde_json::value::to_raw_value(value).unwrap_or_else(|_| RawValue::NULL.to_owned()))
    }

    /// Checked JSON text: the bytes of a column, say.
    pub(crate) fn from_slice(text: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(text).map(Self)
    }

    pub(crate) fn from_raw(raw: Box<RawValue>) -> Self {
        Self(raw)
    }

    /// The JSON text, as stored.
    pub fn text(&self) -> &str {
        self.0.get()
    }

    /// The parsed document.
    pub fn to_value(&self) -> Result<JsonValue, serde_json::Error> {
        serde_json::from_str(self.text())
    }
}

/// Equal when the texts are: two reads of one row are equal.
impl PartialEq for Document {
    fn eq(&self, other: &Self) -> bool {
        self.text() == other.text()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_document_keeps_its_text_and_parses_back() {
        let v = json!({"userName": "a\"b", "emails": [{"value": "x@example.com"}]});
        let doc = Document::from_value(&v);
        assert_eq!(doc.text(), serde_json::to_string(&v).unwrap());
        assert_eq!(doc.to_value().unwrap(), v);
        assert_eq!(Document::from_slice(doc.text().as_bytes()).unwrap(), doc);
        assert!(Document::from_slice(b"{\"a\":").is_err());
    }
}
