//! Building SQL whose shape depends on the request (optional filters, a keyset cursor),
//! with numbered placeholders and the values to bind in order.

use uuid::Uuid;

use crate::Timestamp;

/// A value to bind.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Text(String),
    Bool(bool),
    Time(Timestamp),
    Id(Uuid),
    Int(i64),
    Json(serde_json::Value),
    NoTime,
    NoText,
}

/// SQL text and its arguments.
#[derive(Debug, Default)]
pub(crate) struct Sql {
    pub text: String,
    pub args: Vec<Arg>,
}

impl Sql {
    pub fn new(text: &str) -> Self {
        Self {
            text: text.to_owned(),
            args: Vec::new(),
        }
    }

    /// Adds `arg` and returns its placeholder.
    pub fn arg(&mut self, arg: Arg) -> String {
        self.args.push(arg);
        format!("${}", self.args.len())
    }

    pub fn push(&mut self, text: &str) {
        self.text.push_str(text);
    }
}

/// Binds every argument of a [`Sql`] to a query, in order.
macro_rules! bind_args {
    ($query:expr, $args:expr) => {{
        let mut query = $query;
        for arg in $args {
            query = match arg {
                $crate::query::Arg::Text(v) => query.bind(v.clone()),
                $crate::query::Arg::Bool(v) => query.bind(*v),
                $crate::query::Arg::Time(v) => query.bind(*v),
                $crate::query::Arg::Id(v) => query.bind(*v),
                $crate::query::Arg::Int(v) => query.bind(*v),
                $crate::query::Arg::Json(v) => query.bind(sqlx::types::Json(v.clone())),
                $crate::query::Arg::NoTime => query.bind(Option::<$crate::Timestamp>::None),
                $crate::query::Arg::NoText => query.bind(Option::<String>::None),
            };
        }
        query
    }};
}
pub(crate) use bind_args;

/// Escapes `%`, `_` and `\` for a `LIKE ... ESCAPE '\'` pattern.
pub(crate) fn like_contains(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

#[cfg(test)]
mod tests {
    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(super::like_contains("a_b%c\\"), "%a\\_b\\%c\\\\%");
    }
}
