//! DAG engine. Being written (issue #3).
