//! Route53's model: hosted zones, record sets, changes. Its REST-XML API is
//! `server/route53.rs`.

pub(crate) mod model;
