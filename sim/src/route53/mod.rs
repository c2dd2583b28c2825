//! Route53: hosted zones, record sets, changes, spoken in AWS's REST-XML.

pub(crate) mod api;
pub(crate) mod model;
