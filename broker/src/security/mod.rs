//! Authentication and access-control files in Mosquitto's formats: the password file
//! (`password_file.rs`, and the `wren-passwd` tool) and the ACL file (`acl.rs`), loaded by the
//! shell and handed to the core as its [`UserStore`](crate::UserStore) and
//! [`TopicRules`](crate::TopicRules) (`access.rs` here).

pub mod acl;
pub mod password_file;
