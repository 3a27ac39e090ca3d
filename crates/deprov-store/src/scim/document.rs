//! A stored SCIM representation as the database returned it: JSON text, parsed only by
//! those who change it.

use serde_json::Value as JsonValue;

/// A resource's stored attributes (without `id`, `meta` and `groups`) as JSON text.
///
/// A read that answers with the resource as stored splices this text into its answer
/// rather than building a `serde_json::Value` and serialising it again (on SQLite that
/// parse and serialisation were a quarter of a GET). The text is what the column holds,
/// not checked when read: whoever uses it parses it (its syntax is checked then), writes
/// with [`Document::to_value`].
///
/// Two are equal when their texts are (two reads of one row are).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document(String);

impl Document {
    /// The text of `value`.
    pub fn from_value(value: &JsonValue) -> Self {
        // A `Value` always serialises (its keys are strings).
        Self(serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned()))
    }

    /// The text of a column.
    pub(crate) fn from_text(text: String) -> Self {
        Self(text)
    }

    /// The JSON text, as stored.
    pub fn text(&self) -> &str {
        &self.0
    }

    /// The parsed document.
    pub fn to_value(&self) -> Result<JsonValue, serde_json::Error> {
        serde_json::from_str(&self.0)
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
        assert!(
            Document::from_text("{\"a\":".to_owned())
                .to_value()
                .is_err()
        );
    }
}
