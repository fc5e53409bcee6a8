//! lakegate integration tests.
