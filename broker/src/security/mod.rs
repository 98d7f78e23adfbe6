//! Access control and authentication files in Mosquitto's formats.

pub mod acl;
