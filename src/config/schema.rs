//! The config file's JSON Schema (draft-07), generated from the same structs
//! and doc comments as docs/config.md. `sidewatch schema` prints it; the
//! Helm chart's values.schema.json embeds it under `config`, so a misspelled
//! key fails `helm lint`/`install` instead of crash-looping the pod.

use schemars::generate::SchemaSettings;
use serde_json::{json, Value};

use super::Config;

/// The schema of a whole config file.
pub fn json_schema() -> Value {
    let generator = SchemaSettings::draft07().into_generator();
    let mut schema = generator.into_root_schema_for::<Config>().to_value();
    loosen_scalars(&mut schema);
    schema
}

/// The YAML loader reads any scalar as a string, and a number or boolean
/// field may hold a `${VAR}` reference that is interpolated before
/// parsing; the schema says so rather than reject files the loader accepts.
/// Strings with a pattern or a closed set of values stay strict.
fn loosen_scalars(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.values_mut().for_each(loosen_scalars);
            let types = type_names(map.get("type"));
            let strict = ["pattern", "enum", "const"]
                .iter()
                .any(|k| map.contains_key(*k));
            if types.iter().any(|t| t == "string") {
                if !strict {
                    let mut all = types.clone();
                    all.extend(["number".to_string(), "boolean".to_string()]);
                    map.insert("type".into(), json!(all));
                }
            } else if types
                .iter()
                .any(|t| ["integer", "number", "boolean"].contains(&t.as_str()))
            {
                let description = map.remove("description");
                let original = Value::Object(std::mem::take(map));
                map.insert("anyOf".into(), json!([original, ENV_REFERENCE.clone()]));
                if let Some(d) = description {
                    map.insert("description".into(), d);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(loosen_scalars),
        _ => {}
    }
}

static ENV_REFERENCE: std::sync::LazyLock<Value> =
    std::sync::LazyLock::new(|| json!({"type": "string", "pattern": r"\$\{"}));

fn type_names(t: Option<&Value>) -> Vec<String> {
    match t {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(String::from)
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_misspelled_key_is_not_allowed_and_docs_become_descriptions() {
        let s = json_schema();
        assert_eq!(s["additionalProperties"], json!(false), "{s}");
        let listen = &s["properties"]["listen"];
        assert!(
            listen["description"]
                .as_str()
                .unwrap()
                .starts_with("Address of the HTTP server"),
            "{listen}"
        );
        let http = &s["definitions"]["HttpConfig"];
        assert_eq!(http["additionalProperties"], json!(false), "{http}");
        assert_eq!(http["required"], json!(["url"]));
    }

    #[test]
    fn scalars_are_loosened_as_the_loader_reads_them() {
        let mut v = json!({"properties": {
            "a": {"type": "string", "description": "A."},
            "b": {"type": ["integer", "null"], "minimum": 0, "description": "B."},
            "c": {"type": "string", "enum": ["grpc"]},
            "d": {"type": "object"}}});
        loosen_scalars(&mut v);
        let p = &v["properties"];
        assert_eq!(p["a"]["type"], json!(["string", "number", "boolean"]));
        assert_eq!(p["b"]["description"], json!("B."));
        assert_eq!(
            p["b"]["anyOf"][0],
            json!({"type": ["integer", "null"], "minimum": 0})
        );
        assert_eq!(p["b"]["anyOf"][1]["pattern"], json!(r"\$\{"));
        assert_eq!(p["c"], json!({"type": "string", "enum": ["grpc"]}));
        assert_eq!(p["d"], json!({"type": "object"}));
    }
}
