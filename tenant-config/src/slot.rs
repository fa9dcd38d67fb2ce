//! The text form of a slot in config files: `order.ext_07`, `line.ext_03`,
//! `kv:logistics/cold_box_id`. The inverse of `Slot`'s `Display`.

use oc_model::{BusinessDomain, ColumnIndex, ExtTable, KvIdentifier, KvValue, Slot};

/// Parse a slot as written in a config file. The message says what is wrong.
pub fn parse_slot(text: &str) -> Result<Slot, String> {
    if let Some(rest) = text.strip_prefix("kv:") {
        let Some((domain, key)) = rest.split_once('/') else {
            return Err(format!(
                "KV slot {text:?} must be `kv:<domain>/<key>`, e.g. `kv:logistics/cold_box_id`"
            ));
        };
        let Some(domain) = BusinessDomain::ALL
            .into_iter()
            .find(|known| known.as_str() == domain)
        else {
            let known: Vec<&str> = BusinessDomain::ALL.iter().map(|d| d.as_str()).collect();
            return Err(format!(
                "unknown business domain {domain:?} in slot {text:?} (one of: {})",
                known.join(", ")
            ));
        };
        KvIdentifier::new(domain, key, KvValue::clear("")).map_err(|error| error.message)?;
        return Ok(Slot::Kv {
            domain,
            key: key.to_owned(),
        });
    }
    let Some((table, column)) = text.split_once('.') else {
        return Err(format!(
            "slot {text:?} must be `order.ext_NN`, `line.ext_NN` or `kv:<domain>/<key>`"
        ));
    };
    let table = match table {
        "order" => ExtTable::Order,
        "line" => ExtTable::Line,
        other => {
            return Err(format!(
                "unknown table {other:?} in slot {text:?} (reserved columns live in `order` or `line`)"
            ));
        }
    };
    let column: ColumnIndex = column
        .parse()
        .map_err(|error: oc_model::DomainError| error.message)?;
    Ok(Slot::Column { table, column })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_display_prints() {
        for text in [
            "order.ext_01",
            "line.ext_20",
            "kv:logistics/cold_box_id",
            "kv:product/a.b-c_1",
        ] {
            let slot = parse_slot(text).unwrap();
            assert_eq!(slot.to_string(), text);
        }
        assert_eq!(
            parse_slot("order.ext_7").unwrap().to_string(),
            "order.ext_07"
        );
    }

    #[test]
    fn says_what_is_wrong() {
        for (text, expected) in [
            ("order.ext_21", "not a reserved column"),
            ("order.ext_00", "not a reserved column"),
            ("header.ext_01", "unknown table"),
            ("ext_01", "must be `order.ext_NN`"),
            ("kv:warehouse/x", "unknown business domain"),
            ("kv:order", "must be `kv:<domain>/<key>`"),
            ("kv:order/Bad Key", "identifier key"),
        ] {
            let message = parse_slot(text).unwrap_err();
            assert!(message.contains(expected), "{text}: {message}");
        }
    }
}
