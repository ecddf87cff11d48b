//! tidemark's own Avro schemas, built into the binary.

use apache_avro::Schema;

/// `(file name, schema text)` of every schema in `schemas/avro/`.
pub const BUNDLED: [(&str, &str); 11] = [
    ("metric_event", include_str!("../../../schemas/avro/metric_event.avsc")),
    (
        "task_execution",
        include_str!("../../../schemas/avro/task_execution.avsc"),
    ),
    ("api_request", include_str!("../../../schemas/avro/api_request.avsc")),
    (
        "system_sample",
        include_str!("../../../schemas/avro/system_sample.avsc"),
    ),
    (
        "user_activity",
        include_str!("../../../schemas/avro/user_activity.avsc"),
    ),
    ("sale", include_str!("../../../schemas/avro/sale.avsc")),
    (
        "security_signal",
        include_str!("../../../schemas/avro/security_signal.avsc"),
    ),
    (
        "window_update",
        include_str!("../../../schemas/avro/window_update.avsc"),
    ),
    (
        "anomaly_score",
        include_str!("../../../schemas/avro/anomaly_score.avsc"),
    ),
    (
        "forecast_point",
        include_str!("../../../schemas/avro/forecast_point.avsc"),
    ),
    ("alert_event", include_str!("../../../schemas/avro/alert_event.avsc")),
];

/// The bundled schemas, parsed, with their file names.
pub fn bundled_schemas() -> Vec<(&'static str, Schema)> {
    BUNDLED
        .iter()
        .map(|(name, text)| (*name, Schema::parse_str(text).expect("bundled Avro schemas are valid")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidemark_schemas::{EventKind, FieldType};

    /// The Avro schemas of the input kinds carry exactly the fields of the event model, with
    /// matching types, so an Avro producer and a JSON producer describe the same events.
    #[test]
    fn input_schemas_match_the_event_model() {
        for kind in EventKind::ALL.into_iter().filter(|k| *k != EventKind::Metric) {
            let (_, schema) = bundled_schemas()
                .into_iter()
                .find(|(n, _)| *n == kind.as_str())
                .expect("a schema per kind");
            let Schema::Record(record) = schema else {
                panic!("{kind} is a record")
            };
            let names: Vec<&str> = record
                .fields
                .iter()
                .map(|f| f.name.as_str())
                .filter(|n| *n != "kind" && *n != "ts")
                .collect();
            let want: Vec<&str> = kind.fields().iter().map(|f| f.name).collect();
            assert_eq!(names, want, "{kind}");
            for (field, spec) in record
                .fields
                .iter()
                .filter(|f| f.name != "kind" && f.name != "ts")
                .zip(kind.fields())
            {
                let avro = format!("{:?}", field.schema);
                let ok = match spec.ty {
                    FieldType::Str => avro == "String",
                    FieldType::Int => avro == "Long",
                    FieldType::Num => avro == "Double",
                    FieldType::OptStr => avro.contains("Null") && avro.contains("String"),
                };
                assert!(ok, "{kind}.{}: {avro}", field.name);
            }
        }
    }
}
