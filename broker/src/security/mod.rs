//! Authentication and authorisation files in Mosquitto's formats.

pub mod password_file;
