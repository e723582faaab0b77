//! Compatibility modes, table-driven: each case is an old and a new schema, a mode, and whether
//! the Confluent JSON Schema rules accept the change.

use eventcore::schema::compat::{compare, reader_accepts, Compatibility, Rule};
use serde_json::{json, Value};

use Compatibility::{
    Backward, BackwardTransitive, Forward, ForwardTransitive, Full, FullTransitive, None as NoCheck,
};

fn object(properties: Value, required: &[&str], closed: bool) -> Value {
    let mut schema = json!({ "type": "object", "properties": properties, "required": required });
    if closed {
        schema["additionalProperties"] = json!(false);
    }
    schema
}

fn field(schema: Value) -> Value {
    object(json!({ "f": schema }), &["f"], true)
}

#[test]
fn each_mode_accepts_and_rejects_what_its_rules_say() {
    let a = json!({ "a": { "type": "string" } });
    let ab = json!({ "a": { "type": "string" }, "b": { "type": "integer" } });
    let string = json!({ "type": "string" });
    #[rustfmt::skip]
    let cases: Vec<(&str, Compatibility, Value, Value, bool)> = vec![
        ("identical schemas, full transitive", FullTransitive, object(a.clone(), &["a"], true), object(a.clone(), &["a"], true), true),
        ("optional property added, closed model, backward", Backward, object(a.clone(), &["a"], true), object(ab.clone(), &["a"], true), true),
        ("optional property added, closed model, forward", Forward, object(a.clone(), &["a"], true), object(ab.clone(), &["a"], true), false),
        ("optional property added, closed model, full", Full, object(a.clone(), &["a"], true), object(ab.clone(), &["a"], true), false),
        ("optional property added, open model, backward", Backward, object(a.clone(), &["a"], false), object(ab.clone(), &["a"], false), false),
        ("optional property added, open model, forward", Forward, object(a.clone(), &["a"], false), object(ab.clone(), &["a"], false), true),
        ("required property added, closed model, backward", Backward, object(a.clone(), &["a"], true), object(ab.clone(), &["a", "b"], true), false),
        ("required property added, closed model, forward", Forward, object(a.clone(), &["a"], true), object(ab.clone(), &["a", "b"], true), false),
        ("required property added, any mode with NONE", NoCheck, object(a.clone(), &["a"], true), object(ab.clone(), &["a", "b"], true), true),
        ("optional property removed, open model, backward", Backward, object(ab.clone(), &["a"], false), object(a.clone(), &["a"], false), true),
        ("optional property removed, open model, forward", Forward, object(ab.clone(), &["a"], false), object(a.clone(), &["a"], false), false),
        ("optional property removed, closed model, backward", Backward, object(ab.clone(), &["a"], true), object(a.clone(), &["a"], true), false),
        ("optional property removed, closed model, forward", Forward, object(ab.clone(), &["a"], true), object(a.clone(), &["a"], true), true),
        ("required property removed, closed model, forward", Forward, object(ab.clone(), &["a", "b"], true), object(a.clone(), &["a"], true), false),
        ("optional made required, backward", Backward, object(ab.clone(), &["a"], true), object(ab.clone(), &["a", "b"], true), false),
        ("optional made required, forward", Forward, object(ab.clone(), &["a"], true), object(ab.clone(), &["a", "b"], true), true),
        ("required made optional, backward", Backward, object(ab.clone(), &["a", "b"], true), object(ab.clone(), &["a"], true), true),
        ("required made optional, forward", Forward, object(ab.clone(), &["a", "b"], true), object(ab.clone(), &["a"], true), false),
        ("open model closed, backward", Backward, object(a.clone(), &["a"], false), object(a.clone(), &["a"], true), false),
        ("open model closed, forward", Forward, object(a.clone(), &["a"], false), object(a.clone(), &["a"], true), true),
        ("closed model opened, backward", Backward, object(a.clone(), &["a"], true), object(a.clone(), &["a"], false), true),
        ("closed model opened, forward", Forward, object(a.clone(), &["a"], true), object(a.clone(), &["a"], false), false),
        ("type widened to nullable, backward", Backward, field(string.clone()), field(json!({ "type": ["string", "null"] })), true),
        ("type widened to nullable, forward", Forward, field(string.clone()), field(json!({ "type": ["string", "null"] })), false),
        ("integer widened to number, backward", Backward, field(json!({ "type": "integer" })), field(json!({ "type": "number" })), true),
        ("integer widened to number, forward", Forward, field(json!({ "type": "integer" })), field(json!({ "type": "number" })), false),
        ("number narrowed to integer, backward", Backward, field(json!({ "type": "number" })), field(json!({ "type": "integer" })), false),
        ("type changed, none", NoCheck, field(string.clone()), field(json!({ "type": "integer" })), true),
        ("type changed, full", Full, field(string.clone()), field(json!({ "type": "integer" })), false),
        ("enum value added, backward", Backward, field(json!({ "type": "string", "enum": ["x"] })), field(json!({ "type": "string", "enum": ["x", "y"] })), true),
        ("enum value added, forward", Forward, field(json!({ "type": "string", "enum": ["x"] })), field(json!({ "type": "string", "enum": ["x", "y"] })), false),
        ("enum value removed, backward", Backward, field(json!({ "type": "string", "enum": ["x", "y"] })), field(json!({ "type": "string", "enum": ["x"] })), false),
        ("enum value removed, forward", Forward, field(json!({ "type": "string", "enum": ["x", "y"] })), field(json!({ "type": "string", "enum": ["x"] })), true),
        ("enum introduced, backward", Backward, field(string.clone()), field(json!({ "type": "string", "enum": ["x"] })), false),
        ("const changed, backward", Backward, field(json!({ "const": "v1" })), field(json!({ "const": "v2" })), false),
        ("maxLength loosened, backward", Backward, field(json!({ "type": "string", "maxLength": 10 })), field(json!({ "type": "string", "maxLength": 20 })), true),
        ("maxLength loosened, full", Full, field(json!({ "type": "string", "maxLength": 10 })), field(json!({ "type": "string", "maxLength": 20 })), false),
        ("maxLength tightened, backward", Backward, field(json!({ "type": "string", "maxLength": 20 })), field(json!({ "type": "string", "maxLength": 10 })), false),
        ("maxLength introduced, backward", Backward, field(string.clone()), field(json!({ "type": "string", "maxLength": 10 })), false),
        ("maxLength dropped, backward", Backward, field(json!({ "type": "string", "maxLength": 10 })), field(string.clone()), true),
        ("minimum raised, backward", Backward, field(json!({ "type": "integer", "minimum": 0 })), field(json!({ "type": "integer", "minimum": 5 })), false),
        ("minimum raised, forward", Forward, field(json!({ "type": "integer", "minimum": 0 })), field(json!({ "type": "integer", "minimum": 5 })), true),
        ("maximum lowered, backward", Backward, field(json!({ "type": "integer", "maximum": 9 })), field(json!({ "type": "integer", "maximum": 5 })), false),
        ("minItems raised, backward", Backward, field(json!({ "type": "array", "minItems": 0 })), field(json!({ "type": "array", "minItems": 1 })), false),
        ("int32 widened to int64, backward", Backward, field(json!({ "type": "integer", "format": "int32" })), field(json!({ "type": "integer", "format": "int64" })), true),
        ("int64 narrowed to int32, backward", Backward, field(json!({ "type": "integer", "format": "int64" })), field(json!({ "type": "integer", "format": "int32" })), false),
        ("u32 minimum implied by uint32 format, backward", Backward, field(json!({ "type": "integer", "format": "uint32" })), field(json!({ "type": "integer", "format": "uint32", "minimum": 0 })), true),
        ("pattern introduced, backward", Backward, field(string.clone()), field(json!({ "type": "string", "pattern": "^[a-z]+$" })), false),
        ("array items widened, backward", Backward, field(json!({ "type": "array", "items": { "type": "integer" } })), field(json!({ "type": "array", "items": { "type": "number" } })), true),
        ("array items narrowed, backward", Backward, field(json!({ "type": "array", "items": { "type": "number" } })), field(json!({ "type": "array", "items": { "type": "integer" } })), false),
        ("nullable ref unchanged, full", Full, with_defs(json!({ "anyOf": [{ "$ref": "#/$defs/Money" }, { "type": "null" }] }), &["cents"]), with_defs(json!({ "anyOf": [{ "$ref": "#/$defs/Money" }, { "type": "null" }] }), &["cents"]), true),
        ("required field added inside a $ref, backward", Backward, with_defs(json!({ "$ref": "#/$defs/Money" }), &["cents"]), with_defs(json!({ "$ref": "#/$defs/Money" }), &["cents", "currency"]), false),
        ("required field added inside a $ref, forward", Forward, with_defs(json!({ "$ref": "#/$defs/Money" }), &["cents"]), with_defs(json!({ "$ref": "#/$defs/Money" }), &["cents", "currency"]), true),
        ("ref made nullable, backward", Backward, with_defs(json!({ "$ref": "#/$defs/Money" }), &["cents"]), with_defs(json!({ "anyOf": [{ "$ref": "#/$defs/Money" }, { "type": "null" }] }), &["cents"]), true),
        ("ref made nullable, forward", Forward, with_defs(json!({ "$ref": "#/$defs/Money" }), &["cents"]), with_defs(json!({ "anyOf": [{ "$ref": "#/$defs/Money" }, { "type": "null" }] }), &["cents"]), false),
        ("required property added, backward transitive", BackwardTransitive, object(a.clone(), &["a"], true), object(ab.clone(), &["a", "b"], true), false),
        ("optional property added to closed, forward transitive", ForwardTransitive, object(a.clone(), &["a"], true), object(ab.clone(), &["a"], true), false),
        ("optional property removed from open, forward transitive", ForwardTransitive, object(ab.clone(), &["a"], false), object(a.clone(), &["a"], false), false),
        ("description changed only, full transitive", FullTransitive, field(json!({ "type": "string", "description": "old" })), field(json!({ "type": "string", "description": "new" })), true),
    ];
    assert!(cases.len() >= 30);
    let mut failures = Vec::new();
    for (name, mode, old, new, expected) in &cases {
        let found = compare(*mode, old, new);
        if found.is_empty() != *expected {
            failures.push(format!(
                "{name} ({mode}): expected {}, found {found:#?}",
                if *expected { "compatible" } else { "incompatible" }
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases wrong:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

fn with_defs(money: Value, money_required: &[&str]) -> Value {
    json!({
        "type": "object",
        "properties": { "money": money },
        "required": ["money"],
        "additionalProperties": false,
        "$defs": { "Money": object(json!({ "cents": { "type": "integer" }, "currency": { "type": "string" } }), money_required, true) }
    })
}

#[test]
fn incompatibilities_name_the_rule_and_the_place() {
    let old = object(json!({ "a": { "type": "string" } }), &["a"], true);
    let new = object(
        json!({ "a": { "type": "integer" }, "b": { "type": "string" } }),
        &["a", "b"],
        true,
    );
    let found = reader_accepts(&new, &old);
    let rules: Vec<(String, Rule)> = found.iter().map(|i| (i.path.clone(), i.rule)).collect();
    assert_eq!(
        rules,
        vec![
            ("#/properties/a".to_owned(), Rule::TypeNarrowed),
            ("#/required".to_owned(), Rule::RequiredPropertyAdded),
        ]
    );
    assert!(
        found[1].to_string().contains("property `b` is required"),
        "{}",
        found[1]
    );
}

#[test]
fn a_recursive_schema_terminates() {
    let tree = json!({
        "$ref": "#/$defs/Node",
        "$defs": { "Node": { "type": "object", "properties": { "children": { "type": "array", "items": { "$ref": "#/$defs/Node" } } } } }
    });
    assert!(reader_accepts(&tree, &tree).is_empty());
}

#[test]
fn mode_names_parse_and_print_as_confluent_spells_them() {
    for mode in Compatibility::ALL {
        assert_eq!(mode.name().parse::<Compatibility>().unwrap(), mode);
        assert_eq!(serde_json::to_value(mode).unwrap(), json!(mode.name()));
    }
    assert_eq!(
        "full_transitive".parse::<Compatibility>().unwrap(),
        FullTransitive
    );
    assert!("SIDEWAYS".parse::<Compatibility>().is_err());
}
