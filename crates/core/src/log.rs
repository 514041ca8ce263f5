//! The Worker's log lines: one JSON object per line, `{"event": name, …fields}`, in the
//! order given. Every name and value is written by serde_json, so quotes, newlines, control
//! characters and any Unicode stay inside their string (Rust's `{:?}` is not JSON's escaping).

use serde_json::Value;

/// The line for event `name` with `fields` (`("topic", topic.into())`, …).
pub fn line(name: &str, fields: &[(&str, Value)]) -> String {
    let mut line = format!("{{\"event\":{}", Value::from(name));
    for (key, value) in fields {
        line.push(',');
        line.push_str(&Value::from(*key).to_string());
        line.push(':');
        line.push_str(&value.to_string());
    }
    line.push('}');
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hostile_strings_stay_valid_json_in_one_line() {
        let hostile = [
            "plain",
            "quote \" and backslash \\",
            "new\nline\r\nand tab\t",
            "controls \u{0} \u{1} \u{1f} \u{7f}",
            "unicode é 日本 🎉 \u{2028} \u{2029} \u{feff}",
            "{\"event\":\"forged\"}",
            "\\u0022 not an escape",
            "",
        ];
        for text in hostile {
            let out = line(
                text,
                &[(text, text.into()), ("n", 3.into()), ("v", json!([text]))],
            );
            assert!(!out.contains('\n') && !out.contains('\r'), "{out}");
            let parsed: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
            assert_eq!(parsed["event"], text, "{out}");
            assert_eq!(parsed["n"], 3);
            assert_eq!(parsed["v"][0], text);
            if text != "n" && text != "v" && text != "event" {
                assert_eq!(parsed[text], text, "{out}");
            }
        }
    }

    #[test]
    fn fields_follow_the_event_in_order() {
        assert_eq!(
            line("random_unavailable", &[]),
            r#"{"event":"random_unavailable"}"#
        );
        assert_eq!(
            line(
                "webhook_parked",
                &[
                    ("topic", "orders/create".into()),
                    ("kept", json!("keep")),
                    ("left_out", 2.into())
                ]
            ),
            r#"{"event":"webhook_parked","topic":"orders/create","kept":"keep","left_out":2}"#
        );
    }
}
