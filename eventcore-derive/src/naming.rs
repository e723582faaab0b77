//! Event and aggregate type names: the default rule and the validity check.

/// `AccountOpened` -> `account_opened`; `HTTPRequestSent` -> `http_request_sent`.
pub fn snake_case(ident: &str) -> String {
    let ident = ident.strip_prefix("r#").unwrap_or(ident);
    let chars: Vec<char> = ident.chars().collect();
    let mut out = String::with_capacity(ident.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_uppercase() {
            let prev = i.checked_sub(1).map(|p| chars[p]);
            let next = chars.get(i + 1).copied();
            let word_start = match prev {
                None | Some('_') => false,
                Some(p) if p.is_lowercase() || p.is_ascii_digit() => true,
                Some(p) => p.is_uppercase() && next.is_some_and(char::is_lowercase),
            };
            if word_start {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The default event type name of the struct `type_name`, optionally in `aggregate`.
///
/// A leading aggregate name is stripped (compared in snake_case): `AccountOpened` in `account`
/// is `account.opened`, `MoneyDeposited` in `account` is `account.money_deposited`.
pub fn default_event_type(type_name: &str, aggregate: Option<&str>) -> String {
    let snake = snake_case(type_name);
    match aggregate {
        None => snake,
        Some(aggregate) => {
            let action = snake
                .strip_prefix(aggregate)
                .and_then(|rest| rest.strip_prefix('_'))
                .filter(|rest| !rest.is_empty())
                .unwrap_or(&snake);
            format!("{aggregate}.{action}")
        }
    }
}

/// Why `name` is not a valid event type name, if it is not. `what` names it in the message.
pub fn invalid_name(what: &str, name: &str) -> Option<String> {
    invalid_common(what, name).or_else(|| {
        let bad = name.chars().find(|c| !is_name_char(*c))?;
        Some(format!(
            "{what} `{name}` contains `{bad}`: use only `a-z`, `0-9`, `_`, `.` and `-`"
        ))
    })
}

/// Why `name` is not a valid aggregate type name: only `[a-z0-9_]`, since stream ids are
/// `{aggregate}-{id}` and event names `{aggregate}.{action}`.
pub fn invalid_aggregate_name(name: &str) -> Option<String> {
    let what = "aggregate name";
    invalid_common(what, name).or_else(|| {
        let bad = name.chars().find(|c| !is_aggregate_char(*c))?;
        Some(match bad {
            '.' => format!(
                "{what} `{name}` contains `.`: it separates the aggregate from the action in event names"
            ),
            '-' => format!(
                "{what} `{name}` contains `-`: it separates the aggregate from the id in stream ids, \
                 so `{name}` could collide with another aggregate; use `_`, like `{}`",
                name.replace('-', "_")
            ),
            _ => format!("{what} `{name}` contains `{bad}`: use only `a-z`, `0-9` and `_`"),
        })
    })
}

/// The rules every name shares: not empty, lower case, no white space.
fn invalid_common(what: &str, name: &str) -> Option<String> {
    if name.is_empty() {
        return Some(format!("{what} is empty"));
    }
    if name.chars().any(char::is_uppercase) {
        return Some(format!(
            "{what} `{name}` has upper case letters: names are lower case, like `{}`",
            name.to_lowercase()
        ));
    }
    if name.chars().any(char::is_whitespace) {
        return Some(format!(
            "{what} `{name}` contains white space: use `_` between words"
        ));
    }
    None
}

fn is_name_char(c: char) -> bool {
    is_aggregate_char(c) || matches!(c, '.' | '-')
}

fn is_aggregate_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'
}

/// Why `name` (a projection or consumer name, `what` in messages) is not `[a-z0-9_]`, non-empty.
pub fn invalid_snake_name(what: &str, name: &str) -> Option<String> {
    invalid_name(what, name).or_else(|| {
        name.chars()
            .find(|c| matches!(c, '.' | '-'))
            .map(|bad| format!("{what} `{name}` contains `{bad}`: use only `a-z`, `0-9` and `_`"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snake_case_splits_words_acronyms_and_digits() {
        assert_eq!(snake_case("AccountOpened"), "account_opened");
        assert_eq!(snake_case("Account"), "account");
        assert_eq!(snake_case("HTTPRequestSent"), "http_request_sent");
        assert_eq!(snake_case("Sha256Computed"), "sha256_computed");
        assert_eq!(snake_case("V2Event"), "v2_event");
        assert_eq!(snake_case("already_snake"), "already_snake");
        assert_eq!(snake_case("r#Match"), "match");
    }

    #[test]
    fn default_event_type_strips_the_aggregate() {
        assert_eq!(
            default_event_type("AccountOpened", Some("account")),
            "account.opened"
        );
        assert_eq!(
            default_event_type("MoneyDeposited", Some("account")),
            "account.money_deposited"
        );
        assert_eq!(
            default_event_type("BankAccountOpened", Some("bank_account")),
            "bank_account.opened"
        );
        // Only a whole leading word is stripped, and never the whole name.
        assert_eq!(
            default_event_type("AccountantHired", Some("account")),
            "account.accountant_hired"
        );
        assert_eq!(default_event_type("Account", Some("account")), "account.account");
    }

    #[test]
    fn default_event_type_without_aggregate_is_snake_case() {
        assert_eq!(default_event_type("OrderShipped", None), "order_shipped");
    }

    #[test]
    fn valid_names_pass() {
        for name in ["account.opened", "a-b_c.d9", "x"] {
            assert_eq!(invalid_name("event name", name), None, "{name}");
        }
        assert_eq!(invalid_aggregate_name("bank_account"), None);
    }

    #[test]
    fn invalid_names_say_why() {
        let why = |name| invalid_name("event name", name).unwrap_or_default();
        assert_eq!(why(""), "event name is empty");
        assert!(
            why("Account.Opened").contains("upper case"),
            "{}",
            why("Account.Opened")
        );
        assert!(why("account opened").contains("white space"));
        assert!(why("account/opened").contains("`/`"));
        assert!(why("café").contains("`é`"));
        assert!(invalid_aggregate_name("a.b").is_some_and(|m| m.contains("`.`")));
        assert!(invalid_snake_name("projection name", "a-b").is_some_and(|m| m.contains("`-`")));
        assert!(invalid_snake_name("projection name", "").is_some());
        assert_eq!(invalid_snake_name("projection name", "account_summary2"), None);
    }

    #[test]
    fn aggregate_names_are_a_z_0_9_and_underscore() {
        for name in ["order", "order_line", "v2"] {
            assert_eq!(invalid_aggregate_name(name), None, "{name}");
        }
        let why = |name| invalid_aggregate_name(name).unwrap_or_default();
        assert_eq!(why(""), "aggregate name is empty");
        assert!(
            why("order-line").contains("contains `-`"),
            "{}",
            why("order-line")
        );
        assert!(
            why("order-line").contains("`order_line`"),
            "{}",
            why("order-line")
        );
        assert!(
            why("café").contains("`é`: use only `a-z`, `0-9` and `_`"),
            "{}",
            why("café")
        );
        assert!(why("a/b").contains("`/`"));
        // Event type names still allow `.` and `-`.
        assert_eq!(invalid_name("event name", "order-line.added"), None);
    }
}
