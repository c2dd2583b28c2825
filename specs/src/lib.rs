//! The spec.yaml model: types, defaults, validation with locations, the desired cluster and the change classifier. Filled by issue #4; nothing here yet.
