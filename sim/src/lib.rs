//! A Packet (Equinix Metal) API, Route53, SSH node and apiserver simulator. Filled by issue #5; nothing here yet.
